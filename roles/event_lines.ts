/**
 * Servers' event lines on stdout (the chat server's `join: alice`, the stream
 * server's `-v` lines, the origin's and cache's `--log`, the upload and
 * repeat servers' lines) and their per-peer problems on stderr, written so
 * that a reader who does not keep up can never stop a server.
 *
 * A synchronous write to a pipe blocks the whole process once the pipe is
 * full (64 KiB on Linux): a server started by a harness that reads its
 * stdout only at the end (Python's `Popen(stdout=PIPE)` then
 * `communicate()`) would stop serving everyone after ~3 000 chat messages.
 * So, unless stdout is a terminal, lines are queued and written by one
 * asynchronous writer, in order, several per write.
 *
 * The queue is bounded ({@linkcode DEFAULT_MAX_QUEUED_BYTES}): lines that
 * arrive while it is full are dropped and counted, and where they would have
 * been the output gets one line `(<n> lines dropped: stdout was not being
 * read)`. A stdout that fails (closed pipe) drops everything after, quietly:
 * a server never fails for its log. Before exiting, a role calls
 * {@linkcode flushEventLines}, which waits (bounded) for the queue to drain.
 *
 * @module
 */

/** Bytes of lines queued before further lines are dropped (8 MiB). */
export const DEFAULT_MAX_QUEUED_BYTES = 8 * 1024 * 1024;

/** How long a role waits at exit for its queued lines to be written. */
export const EXIT_FLUSH_MS = 2_000;

/** Where the lines go (Deno's `write(p)` shape, as `Deno.stdout` has). */
export interface LineSink {
  /**
   * Writes some of `p`.
   *
   * @param p The bytes.
   * @returns How many bytes were written.
   */
  write(p: Uint8Array): Promise<number>;
}

const encoder = new TextEncoder();

/** Event lines written in order by one asynchronous writer (see the module documentation). */
export class EventLines {
  readonly #sink: LineSink;
  readonly #maxQueuedBytes: number;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #dropped = 0;
  /** Lines dropped since the last note about them. */
  #pendingDrops = 0;
  #writing = false;
  #broken = false;
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
   * @param maxQueuedBytes Bytes queued before lines are dropped.
   */
  constructor(
    sink: LineSink,
    maxQueuedBytes: number = DEFAULT_MAX_QUEUED_BYTES,
  ) {
    this.#sink = sink;
    this.#maxQueuedBytes = maxQueuedBytes;
  }

  /** Lines dropped so far because the queue was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * Queues `line` and a newline; never blocks and never throws.
   *
   * @param line The line, without its newline.
   */
  write(line: string): void {
    if (this.#broken) return;
    const bytes = encoder.encode(line + "\n");
    if (this.#queuedBytes + bytes.length > this.#maxQueuedBytes) {
      this.#dropped++;
      this.#pendingDrops++;
      return;
    }
    this.#noteDrops();
    this.#queue.push(bytes);
    this.#queuedBytes += bytes.length;
    if (!this.#writing) void this.#pump();
  }

  /**
   * Waits until every queued line was written, or `timeoutMs` passed.
   *
   * @param timeoutMs The bound.
   * @returns Whether the queue drained.
   */
  async flush(timeoutMs: number): Promise<boolean> {
    this.#noteDrops();
    if (!this.#writing && this.#queue.length > 0) void this.#pump();
    if (!this.#writing) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const drained = new Promise<boolean>((resolve) => {
      this.#idle.push(() => resolve(true));
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      return await drained;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Puts the note about dropped lines where they would have been. */
  #noteDrops(): void {
    if (this.#pendingDrops === 0) return;
    const note = encoder.encode(
      `(${this.#pendingDrops} lines dropped: output was not being read)\n`,
    );
    this.#pendingDrops = 0;
    this.#queue.push(note);
    this.#queuedBytes += note.length;
  }

  async #pump(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#takeBatch();
        let offset = 0;
        while (offset < batch.length) {
          offset += await this.#sink.write(batch.subarray(offset));
        }
      }
    } catch {
      // stdout is gone: drop everything from now on, keep serving
      this.#broken = true;
      this.#queue = [];
      this.#queuedBytes = 0;
    } finally {
      this.#writing = false;
      for (const resolve of this.#idle.splice(0)) resolve();
    }
  }

  /** Everything queued, as one buffer (one write for many lines). */
  #takeBatch(): Uint8Array {
    const parts = this.#queue;
    this.#queue = [];
    const total = this.#queuedBytes;
    this.#queuedBytes = 0;
    if (parts.length === 1) return parts[0];
    const batch = new Uint8Array(total);
    let offset = 0;
    for (const part of parts) {
      batch.set(part, offset);
      offset += part.length;
    }
    return batch;
  }
}

/** Writes synchronously: for a terminal, where the order against the other stream shows. */
class TerminalLines {
  readonly #stream: typeof Deno.stdout;

  constructor(stream: typeof Deno.stdout) {
    this.#stream = stream;
  }

  write(line: string): void {
    try {
      const bytes = encoder.encode(line + "\n");
      let offset = 0;
      while (offset < bytes.length) {
        offset += this.#stream.writeSync(bytes.subarray(offset));
      }
    } catch {
      // closed: keep serving
    }
  }
}

/** This process's writers for its stdout and stderr, made on first use. */
const outputs = new Map<"stdout" | "stderr", EventLines | TerminalLines>();

function output(name: "stdout" | "stderr"): EventLines | TerminalLines {
  let lines = outputs.get(name);
  if (!lines) {
    const stream = Deno[name];
    lines = stream.isTerminal()
      ? new TerminalLines(stream)
      : new EventLines(stream);
    outputs.set(name, lines);
  }
  return lines;
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
  output("stdout").write(line);
}

/**
 * Writes one line about a problem with a peer to this process's stderr, in
 * the same way as {@linkcode printEventLine}: a flood of bad clients cannot
 * stop a server whose stderr is not being read.
 *
 * @example
 * ```ts ignore
 * printEventProblem("chat server: 127.0.0.1:5555 sent an invalid message: …");
 * ```
 *
 * @param line The line, without its newline.
 */
export function printEventProblem(line: string): void {
  output("stderr").write(line);
}

/**
 * Waits (at most `timeoutMs`) for this process's queued event lines to be
 * written; a role's `main` calls it before `Deno.exit`.
 *
 * @example
 * ```ts ignore
 * const code = await serverMain(Deno.args);
 * await flushEventLines();
 * Deno.exit(code);
 * ```
 *
 * @param timeoutMs The bound (default {@linkcode EXIT_FLUSH_MS}).
 */
export async function flushEventLines(
  timeoutMs: number = EXIT_FLUSH_MS,
): Promise<void> {
  await Promise.all(
    [...outputs.values()].map((lines) =>
      lines instanceof EventLines ? lines.flush(timeoutMs) : true
    ),
  );
}
