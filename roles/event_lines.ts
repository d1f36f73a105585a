/**
 * Servers' event lines on stdout (the chat server's `join: alice`, the stream
 * server's `-v` lines, the origin's and cache's `--log`, the upload and
 * repeat servers' lines) and their per-peer problems on stderr (SNW give-up
 * lines included), written so that a reader who does not keep up can never
 * stop a server.
 *
 * A synchronous write to a pipe blocks the whole process once the pipe is
 * full (64 KiB on Linux): a server started by a harness that reads its
 * output only at the end (Python's `Popen(stdout=PIPE, stderr=PIPE)` then
 * `communicate()`) would stop serving everyone after ~3 000 chat messages.
 * So, unless the stream is a terminal, lines are queued and written by an
 * asynchronous writer ({@linkcode EventLines}), one per destination:
 *
 * - **Streams apart, unless they are one.** Stdout and stderr have a queue
 *   each, so one that nobody reads never holds up the other. When both are
 *   the same file or pipe (`>log 2>&1`; told by `fstat` of descriptors 1
 *   and 2), they share one queue and keep the order in which lines were
 *   printed, as synchronous writes did.
 * - **Whole lines, packed.** Lines are encoded straight into 4 KiB segments
 *   (`PIPE_BUF`: a write of at most that much to a pipe is all or nothing).
 *   So output cut off at exit ends at a line's end, and a queued line costs
 *   its bytes, not an object.
 * - **Bounded.** At most {@linkcode DEFAULT_MAX_QUEUED_BYTES} of segments
 *   are held per queue, counted until written. Lines that arrive while it is
 *   full are dropped and counted, and where they would have been the stream
 *   gets one line `(<n> lines dropped: output was not being read)`. A line
 *   printed as a result ({@linkcode printResultLine}: the repeat server's
 *   summary) is never dropped, and neither is one line alone however long.
 * - **Never fatal.** A stream that fails (closed, `/dev/full`) is given up:
 *   its later lines are dropped quietly. A non-blocking pipe that is full
 *   (`EAGAIN`) is retried, not given up.
 *
 * Before exiting, a role calls {@linkcode flushEventLines}, which waits at
 * most {@linkcode EXIT_FLUSH_MS}. A run that ends by itself with results to
 * print (the repeat server) first waits with {@linkcode flushResultLines}
 * until its stdout lines are written, or a stop signal comes.
 *
 * @module
 */

import { fstatSync } from "node:fs";
import { writeLineSync } from "./cli.ts";

/** Bytes of lines waiting to be written before further lines are dropped (8 MiB). */
export const DEFAULT_MAX_QUEUED_BYTES = 8 * 1024 * 1024;

/** How long a server stopped by a signal waits at exit for its queued lines. */
export const EXIT_FLUSH_MS = 2_000;

/** Bytes per segment: `PIPE_BUF` on Linux, the most a pipe takes at once. */
const SEGMENT_BYTES = 4096;

/** Where lines go (Deno's `write(p)` shape, as `Deno.stdout` has). */
export interface LineSink {
  /**
   * Writes some of `p`.
   *
   * @param p The bytes.
   * @returns How many bytes were written.
   */
  write(p: Uint8Array): Promise<number>;
}

/** Whole lines; bytes `done` to `fill` are still to be written. */
interface Segment {
  bytes: Uint8Array;
  fill: number;
  done: number;
}

const encoder = new TextEncoder();

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Lines for one destination, written in order by one asynchronous writer (see the module documentation). */
export class EventLines {
  readonly #sink: LineSink;
  readonly #maxQueuedBytes: number;
  #segments: Segment[] = [];
  /** Bytes of the segments held (their size, not their fill). */
  #heldBytes = 0;
  #dropped = 0;
  /** Lines dropped since the last note about them. */
  #pendingDrops = 0;
  #broken = false;
  #writing = false;
  #idle: (() => void)[] = [];

  /**
   * Creates the writer.
   *
   * @example
   * ```ts
   * import { EventLines } from "./event_lines.ts";
   * const lines = new EventLines(Deno.stdout);
   * lines.write("join: alice");
   * await lines.flush(1_000);
   * ```
   *
   * @param sink Where the lines go.
   * @param maxQueuedBytes Bytes of segments held before lines are dropped.
   */
  constructor(
    sink: LineSink,
    maxQueuedBytes: number = DEFAULT_MAX_QUEUED_BYTES,
  ) {
    this.#sink = sink;
    this.#maxQueuedBytes = maxQueuedBytes;
  }

  /** Lines dropped so far because too much was waiting. */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * Queues `line` and a newline; never blocks and never throws.
   *
   * @param line The line, without its newline.
   * @param keep Never drop it (a result line), whatever is waiting.
   */
  write(line: string, keep = false): void {
    if (this.#broken) return;
    if (!this.#appendWithin(line + "\n", keep)) {
      this.#dropped++;
      this.#pendingDrops++;
      return;
    }
    if (!this.#writing) void this.#pump();
  }

  /**
   * Waits until every queued line was written, or `timeoutMs` passed.
   *
   * @param timeoutMs The bound (`Infinity`: as long as it takes).
   * @returns Whether everything was written.
   */
  async flush(timeoutMs: number): Promise<boolean> {
    if (this.#pendingDrops > 0 && !this.#broken) {
      this.#appendWithin("", true); // just the note
    }
    if (!this.#writing && this.#segments.length > 0) void this.#pump();
    if (!this.#writing) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const drained = new Promise<boolean>((resolve) => {
      this.#idle.push(() => resolve(true));
      if (Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }
    });
    try {
      return await drained;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Appends `text` (whole lines, or nothing), after the note about lines
   * dropped before it; returns false when it had to be dropped.
   */
  #appendWithin(text: string, keep: boolean): boolean {
    const note = this.#pendingDrops > 0
      ? `(${this.#pendingDrops} lines dropped: output was not being read)\n`
      : "";
    const all = note + text;
    const last = this.#segments.at(-1);
    if (last) {
      // Bytes past `fill` are not being written: the text may go there.
      const { read, written } = encoder.encodeInto(
        all,
        last.bytes.subarray(last.fill),
      );
      if (read === all.length) {
        last.fill += written;
        this.#pendingDrops = 0;
        return true;
      }
    }
    // A new segment: 4 KiB, or exactly the text's bytes when that is more.
    // One line alone is taken whatever its size.
    const big = 3 * all.length > SEGMENT_BYTES
      ? encoder.encode(all)
      : undefined;
    if (
      !keep && this.#segments.length > 0 &&
      this.#heldBytes + (big?.length ?? SEGMENT_BYTES) > this.#maxQueuedBytes
    ) {
      return false;
    }
    const bytes = big ?? new Uint8Array(SEGMENT_BYTES);
    const fill = big ? big.length : encoder.encodeInto(all, bytes).written;
    this.#segments.push({ bytes, fill, done: 0 });
    this.#heldBytes += bytes.length;
    this.#pendingDrops = 0;
    return true;
  }

  async #pump(): Promise<void> {
    this.#writing = true;
    let backoffMs = 5;
    try {
      while (this.#segments.length > 0 && !this.#broken) {
        const segment = this.#segments[0];
        const start = segment.done;
        let n: number;
        try {
          n = await this.#sink.write(
            segment.bytes.subarray(start, segment.fill),
          );
        } catch (error) {
          if (error instanceof Deno.errors.WouldBlock) {
            // A non-blocking pipe that is full: wait for the reader.
            await delay(backoffMs);
            backoffMs = Math.min(2 * backoffMs, 250);
          } else {
            this.#broken = true; // gone: keep serving without it
          }
          continue;
        }
        backoffMs = 5;
        segment.done = start + n;
        if (segment.done >= segment.fill) {
          this.#segments.shift();
          this.#heldBytes -= segment.bytes.length;
        }
      }
      if (this.#broken) {
        this.#segments = [];
        this.#heldBytes = 0;
      }
    } finally {
      this.#writing = false;
      for (const resolve of this.#idle.splice(0)) resolve();
    }
  }
}

/** Where this process's lines for one stream go. */
type Output = EventLines | typeof Deno.stdout;

let outputs: { stdout: Output; stderr: Output } | undefined;

/** The file or pipe behind a file descriptor (`dev:ino`), if it can be told. */
function destination(fd: 1 | 2): string | undefined {
  try {
    const info = fstatSync(fd);
    return `${info.dev}:${info.ino}`;
  } catch {
    return undefined;
  }
}

function isTerminal(stream: typeof Deno.stdout): boolean {
  try {
    return stream.isTerminal();
  } catch {
    return false;
  }
}

/** Made on first use: terminals written synchronously, one queue for a shared destination. */
function processOutputs(): { stdout: Output; stderr: Output } {
  if (outputs) return outputs;
  const stdout: Output = isTerminal(Deno.stdout)
    ? Deno.stdout
    : new EventLines(Deno.stdout);
  let stderr: Output = isTerminal(Deno.stderr)
    ? Deno.stderr
    : new EventLines(Deno.stderr);
  if (stdout instanceof EventLines && stderr instanceof EventLines) {
    const out = destination(1);
    if (out !== undefined && out === destination(2)) stderr = stdout;
  }
  outputs = { stdout, stderr };
  return outputs;
}

function print(name: "stdout" | "stderr", line: string, keep = false): void {
  const output = processOutputs()[name];
  if (output instanceof EventLines) output.write(line, keep);
  else writeLineSync(output, line); // a terminal: nothing waits long
}

/**
 * Writes one event line to this process's stdout without ever blocking the
 * server (see the module documentation).
 *
 * @example
 * ```ts ignore
 * printEventLine("join: alice");
 * ```
 *
 * @param line The line, without its newline.
 */
export function printEventLine(line: string): void {
  print("stdout", line);
}

/**
 * Writes a line of a run's result to stdout like {@linkcode printEventLine},
 * except that it is never dropped, however much is waiting.
 *
 * @example
 * ```ts ignore
 * printResultLine("I am done");
 * ```
 *
 * @param line The line, without its newline.
 */
export function printResultLine(line: string): void {
  print("stdout", line, true);
}

/**
 * Writes one line about a problem to this process's stderr, like
 * {@linkcode printEventLine}: a flood of bad clients cannot stop a server
 * whose stderr is not being read.
 *
 * @example
 * ```ts ignore
 * printEventProblem("chat server: 127.0.0.1:5555 sent an invalid message: …");
 * ```
 *
 * @param line The line, without its newline.
 */
export function printEventProblem(line: string): void {
  print("stderr", line);
}

/**
 * Waits, however long it takes, until the lines queued for stdout (where
 * {@linkcode printResultLine} writes) are written; stderr's queue is left
 * to the exit's bounded {@linkcode flushEventLines}.
 *
 * @example
 * ```ts ignore
 * printResultLine("I am done");
 * await flushResultLines();
 * ```
 *
 * @returns Whether they were written (false: stdout failed).
 */
export async function flushResultLines(): Promise<boolean> {
  const stdout = outputs?.stdout;
  return stdout instanceof EventLines ? await stdout.flush(Infinity) : true;
}

/**
 * Waits (at most `timeoutMs`) for this process's queued lines to be written;
 * a role's `main` calls it before `Deno.exit`.
 *
 * @example
 * ```ts ignore
 * const code = await serverMain(Deno.args);
 * await flushEventLines();
 * Deno.exit(code);
 * ```
 *
 * @param timeoutMs The bound (default {@linkcode EXIT_FLUSH_MS}).
 * @returns Whether everything was written.
 */
export async function flushEventLines(
  timeoutMs: number = EXIT_FLUSH_MS,
): Promise<boolean> {
  if (!outputs) return true;
  const queues = new Set(
    [outputs.stdout, outputs.stderr].filter((output) =>
      output instanceof EventLines
    ),
  );
  const flushed = await Promise.all(
    [...queues].map((queue) => queue.flush(timeoutMs)),
  );
  return flushed.every(Boolean);
}

/**
 * Ends a role's process with `code`, after at most `timeoutMs` for the
 * event lines a slow reader has not taken yet ({@linkcode flushEventLines}).
 *
 * @example
 * ```ts ignore
 * if (import.meta.main) await exitAfterEventLines(await serverMain(Deno.args));
 * ```
 *
 * @param code The exit code.
 * @param timeoutMs The bound (default {@linkcode EXIT_FLUSH_MS}).
 * @returns Never: the process exits.
 */
export async function exitAfterEventLines(
  code: number,
  timeoutMs: number = EXIT_FLUSH_MS,
): Promise<never> {
  await flushEventLines(timeoutMs);
  Deno.exit(code);
}
