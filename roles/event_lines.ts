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
 * So, unless the stream is a terminal, lines are queued and written by one
 * asynchronous writer:
 *
 * - **One order for both streams.** Lines for stdout and stderr wait in one
 *   queue and are written in the order they were printed, as synchronous
 *   writes would have been: `>log 2>&1` keeps a reply after its request.
 * - **Whole lines, packed.** Lines are encoded straight into 4 KiB segments
 *   (`PIPE_BUF`: a write of at most that much to a pipe is all or nothing),
 *   each holding whole lines of one stream. So output cut off at exit ends
 *   at a line's end, and a queued line costs its bytes, not an object.
 * - **Bounded.** At most {@linkcode DEFAULT_MAX_QUEUED_BYTES} wait, counting
 *   bytes until they are written. Lines that arrive while it is full are
 *   dropped and counted, and where they would have been the stream gets one
 *   line `(<n> lines dropped: output was not being read)`.
 * - **Never fatal.** A stream that fails (closed, `/dev/full`) is given up:
 *   its later lines are dropped quietly, the other stream goes on. A
 *   non-blocking pipe that is full (`EAGAIN`) is retried, not given up.
 *
 * Before exiting, a role calls {@linkcode flushEventLines}: a server
 * stopped by a signal waits at most {@linkcode EXIT_FLUSH_MS}; a run that
 * ends by itself with results to print (the repeat server) waits as long as
 * it takes.
 *
 * @module
 */

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

/** Whole lines for one sink; bytes `done` to `fill` are still to be written. */
interface Segment {
  sink: LineSink;
  bytes: Uint8Array;
  fill: number;
  done: number;
}

const encoder = new TextEncoder();

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Lines for several sinks, written in one order by one asynchronous writer (see the module documentation). */
export class EventLines {
  readonly #maxQueuedBytes: number;
  #segments: Segment[] = [];
  /** Bytes printed and not yet written. */
  #queuedBytes = 0;
  #dropped = 0;
  /** Lines dropped per sink since the last note about them. */
  readonly #pendingDrops = new Map<LineSink, number>();
  readonly #broken = new Set<LineSink>();
  #writing = false;
  #idle: (() => void)[] = [];

  /**
   * Creates the writer.
   *
   * @example
   * ```ts
   * import { EventLines } from "./event_lines.ts";
   * const lines = new EventLines();
   * lines.write(Deno.stdout, "join: alice");
   * await lines.flush(1_000);
   * ```
   *
   * @param maxQueuedBytes Bytes waiting before lines are dropped.
   */
  constructor(maxQueuedBytes: number = DEFAULT_MAX_QUEUED_BYTES) {
    this.#maxQueuedBytes = maxQueuedBytes;
  }

  /** Lines dropped so far because too much was waiting. */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * Queues `line` and a newline for `sink`; never blocks and never throws.
   *
   * @param sink Where the line goes.
   * @param line The line, without its newline.
   */
  write(sink: LineSink, line: string): void {
    if (this.#broken.has(sink)) return;
    // A UTF-16 unit is at most 3 bytes of UTF-8: a cheap upper bound.
    if (this.#queuedBytes + 3 * line.length + 1 > this.#maxQueuedBytes) {
      this.#dropped++;
      this.#pendingDrops.set(sink, (this.#pendingDrops.get(sink) ?? 0) + 1);
      return;
    }
    this.#noteDrops(sink);
    this.#append(sink, line + "\n");
    if (!this.#writing) void this.#pump();
  }

  /**
   * Waits until every queued line was written, or `timeoutMs` passed.
   *
   * @param timeoutMs The bound (`Infinity`: as long as it takes).
   * @returns Whether everything was written.
   */
  async flush(timeoutMs: number): Promise<boolean> {
    for (const sink of [...this.#pendingDrops.keys()]) this.#noteDrops(sink);
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

  /** Puts the note about `sink`'s dropped lines where they would have been. */
  #noteDrops(sink: LineSink): void {
    const count = this.#pendingDrops.get(sink);
    if (count === undefined) return;
    this.#pendingDrops.delete(sink);
    this.#append(
      sink,
      `(${count} lines dropped: output was not being read)\n`,
    );
  }

  /** Encodes `text` (whole lines) onto the last segment, or a new one. */
  #append(sink: LineSink, text: string): void {
    const last = this.#segments.at(-1);
    if (last && last.sink === sink) {
      // Bytes past `fill` are not being written: the text may go there.
      const { read, written } = encoder.encodeInto(
        text,
        last.bytes.subarray(last.fill),
      );
      if (read === text.length) {
        last.fill += written;
        this.#queuedBytes += written;
        return;
      }
    }
    const bytes = new Uint8Array(Math.max(SEGMENT_BYTES, 3 * text.length));
    const { written } = encoder.encodeInto(text, bytes);
    this.#segments.push({ sink, bytes, fill: written, done: 0 });
    this.#queuedBytes += written;
  }

  async #pump(): Promise<void> {
    this.#writing = true;
    let backoffMs = 5;
    try {
      while (this.#segments.length > 0) {
        const segment = this.#segments[0];
        if (this.#broken.has(segment.sink)) {
          this.#segments.shift();
          this.#queuedBytes -= segment.fill - segment.done;
          continue;
        }
        const start = segment.done;
        let n: number;
        try {
          n = await segment.sink.write(
            segment.bytes.subarray(start, segment.fill),
          );
        } catch (error) {
          if (error instanceof Deno.errors.WouldBlock) {
            // A non-blocking pipe that is full: wait for the reader.
            await delay(backoffMs);
            backoffMs = Math.min(2 * backoffMs, 250);
          } else {
            this.#broken.add(segment.sink); // gone: keep serving without it
          }
          continue;
        }
        backoffMs = 5;
        segment.done = start + n;
        this.#queuedBytes -= n;
        if (segment.done >= segment.fill) this.#segments.shift();
      }
    } finally {
      this.#writing = false;
      for (const resolve of this.#idle.splice(0)) resolve();
    }
  }
}

/** Writes a line synchronously: for a terminal, where nothing waits long. */
function writeLineSync(stream: typeof Deno.stdout, line: string): void {
  try {
    const bytes = encoder.encode(line + "\n");
    let offset = 0;
    while (offset < bytes.length) {
      offset += stream.writeSync(bytes.subarray(offset));
    }
  } catch {
    // closed: keep serving
  }
}

/** This process's queue, made on first use. */
let processLines: EventLines | undefined;
/** Whether each stream is a terminal, checked on first use. */
const terminal = new Map<typeof Deno.stdout, boolean>();

function print(stream: typeof Deno.stdout, line: string): void {
  let isTerminal = terminal.get(stream);
  if (isTerminal === undefined) {
    try {
      isTerminal = stream.isTerminal();
    } catch {
      isTerminal = false;
    }
    terminal.set(stream, isTerminal);
  }
  if (isTerminal) writeLineSync(stream, line);
  else (processLines ??= new EventLines()).write(stream, line);
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
  print(Deno.stdout, line);
}

/**
 * Writes one line about a problem to this process's stderr, in order with
 * {@linkcode printEventLine}'s lines and in the same way: a flood of bad
 * clients cannot stop a server whose stderr is not being read.
 *
 * @example
 * ```ts ignore
 * printEventProblem("chat server: 127.0.0.1:5555 sent an invalid message: …");
 * ```
 *
 * @param line The line, without its newline.
 */
export function printEventProblem(line: string): void {
  print(Deno.stderr, line);
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
 * @param timeoutMs The bound (default {@linkcode EXIT_FLUSH_MS}; `Infinity`
 *   for a run whose results are its output).
 * @returns Whether everything was written.
 */
export function flushEventLines(
  timeoutMs: number = EXIT_FLUSH_MS,
): Promise<boolean> {
  return processLines?.flush(timeoutMs) ?? Promise.resolve(true);
}
