/**
 * One TCP connection speaking the streaming GET/PUT/DEL protocol, shared by
 * the stream server and the stream client: lock-step text messages, 8-byte
 * sizes and file data, read through one buffer (so bytes that arrive
 * coalesced with the previous message are never lost) and guarded by an
 * idle timeout (a peer that makes no progress for that long is dropped).
 *
 * @module
 */

import {
  decodeSize,
  encodeSize,
  encodeText,
  scanText,
  SIZE_BYTES,
} from "../../protocol/stream_protocol.ts";
import {
  ConnectionLostError,
  TransferTimeoutError,
} from "../../transport/errors.ts";

/** How long an open text message may wait for more bytes, by default. */
export const DEFAULT_SETTLE_MS = 10;

/** Bytes read from the socket at once. */
const READ_CHUNK = 256 * 1024;

/** Bytes read from a file at once when sending (cut into blocks in memory). */
const FILE_CHUNK = 256 * 1024;

/** Options of {@linkcode StreamConnection}. */
export interface StreamConnectionOptions {
  /** Drop the peer after this long without progress while waiting on it. */
  idleTimeoutMs: number;
  /**
   * How long a text message of unknown length (a request, an `ERROR: …`)
   * waits for more bytes after the last ones before it counts as complete.
   */
  settleMs?: number;
}

type ReadOutcome = { bytes: Uint8Array | null } | { error: unknown };

/** A streaming-protocol connection with one read buffer and an idle timeout. */
export class StreamConnection implements Disposable {
  /** The underlying TCP connection. */
  readonly conn: Deno.Conn;
  readonly #idleTimeoutMs: number;
  readonly #settleMs: number;
  #buffer = new Uint8Array(0);
  #scratch = new Uint8Array(READ_CHUNK);
  /** The other half of the data phase's double buffer, made on first use. */
  #spare?: Uint8Array<ArrayBuffer>;
  #pendingRead?: Promise<ReadOutcome>;
  #waiting = 0;
  /** Counts started and finished socket operations: any change is progress. */
  #progress = 0;
  #seenProgress = -1;
  #quietSince = performance.now();
  #stalled = false;
  #closed = false;
  /** The idle timeout is suspended ({@linkcode suspendIdleTimeout}). */
  #idleSuspended = false;
  #watchdog: ReturnType<typeof setInterval>;

  /**
   * Wraps an open connection; {@linkcode close} (or `using`) releases it.
   *
   * @param conn The TCP connection.
   * @param options Idle timeout and settle time.
   */
  constructor(conn: Deno.Conn, options: StreamConnectionOptions) {
    this.conn = conn;
    this.#idleTimeoutMs = options.idleTimeoutMs;
    this.#settleMs = options.settleMs ?? DEFAULT_SETTLE_MS;
    const period = Math.max(5, Math.min(250, this.#idleTimeoutMs / 4));
    this.#watchdog = setInterval(() => this.#checkIdle(), period);
  }

  /** Whether the idle timeout closed the connection. */
  get stalled(): boolean {
    return this.#stalled;
  }

  /**
   * Suspends the idle timeout until {@linkcode resumeIdleTimeout}: for a
   * wait that may rightly last, such as a client's wait for `READY` from a
   * server that serves one client at a time and is busy with another.
   */
  suspendIdleTimeout(): void {
    this.#idleSuspended = true;
  }

  /**
   * Sends what the kernel still holds back at once, and every later write
   * as it comes (`TCP_NODELAY`): Nagle's algorithm otherwise keeps a short
   * last block until the peer's delayed ACK, ~40 ms on Linux.
   */
  pushPending(): void {
    try {
      (this.conn as Deno.TcpConn).setNoDelay?.(true);
    } catch {
      // closed, or not TCP: nothing is held back
    }
  }

  /** Resumes the idle timeout; the quiet time counts from now. */
  resumeIdleTimeout(): void {
    this.#idleSuspended = false;
    this.#quietSince = performance.now();
  }

  #checkIdle(): void {
    const now = performance.now();
    if (
      this.#idleSuspended || this.#waiting === 0 ||
      this.#progress !== this.#seenProgress
    ) {
      this.#seenProgress = this.#progress;
      this.#quietSince = now;
      return;
    }
    if (this.#closed || now - this.#quietSince < this.#idleTimeoutMs) return;
    this.#stalled = true;
    this.close();
  }

  #begin(): void {
    this.#waiting++;
    this.#progress++;
  }

  #end(): void {
    this.#waiting--;
    this.#progress++;
  }

  #failure(error: unknown, what: string): Error {
    if (this.#stalled) {
      return new TransferTimeoutError(
        `No progress from the peer for ${this.#idleTimeoutMs} ms while ${what}`,
        { cause: error },
      );
    }
    if (
      error instanceof Deno.errors.ConnectionReset ||
      error instanceof Deno.errors.BrokenPipe ||
      error instanceof Deno.errors.ConnectionAborted ||
      error instanceof Deno.errors.BadResource ||
      error instanceof Deno.errors.Interrupted
    ) {
      return new ConnectionLostError(`Connection lost while ${what}`, {
        cause: error,
      });
    }
    return error instanceof Error ? error : new Error(String(error));
  }

  /** Starts (or keeps) the one outstanding socket read. */
  #startRead(): Promise<ReadOutcome> {
    if (!this.#pendingRead) {
      this.#begin();
      const scratch = this.#scratch;
      this.#pendingRead = this.conn.read(scratch).then(
        (n): ReadOutcome => ({
          bytes: n === null ? null : scratch.subarray(0, n),
        }),
        (error: unknown): ReadOutcome => ({ error }),
      ).finally(() => this.#end());
    }
    return this.#pendingRead;
  }

  /**
   * Reads the next bytes: the outstanding read's result if there is one,
   * else a fresh read. The returned bytes live in the scratch buffer: use or
   * copy them before the next read.
   */
  async #takeRead(what: string): Promise<Uint8Array | null> {
    if (this.#pendingRead) {
      const outcome = await this.#pendingRead;
      this.#pendingRead = undefined;
      if ("error" in outcome) throw this.#failure(outcome.error, what);
      return outcome.bytes;
    }
    // fast path: no read outstanding, read directly
    const n = await this.#readInto(this.#scratch, what);
    return n === null ? null : this.#scratch.subarray(0, n);
  }

  #append(bytes: Uint8Array): void {
    const joined = new Uint8Array(this.#buffer.length + bytes.length);
    joined.set(this.#buffer);
    joined.set(bytes, this.#buffer.length);
    this.#buffer = joined;
  }

  /** Waits up to `ms` for the outstanding read; false on timeout. */
  async #readArrives(ms: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    try {
      return await Promise.race([this.#startRead().then(() => true), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Reads one text message.
   *
   * @param words Fixed words that may come now; they complete at once. Any
   *   other text completes at a line end, at end of stream, or after the
   *   settle time without new bytes.
   * @param what What the caller is waiting for, for error messages.
   * @returns The message without CR/LF, or `null` when the peer closed the
   *   connection before sending anything.
   * @throws {TransferTimeoutError} When the peer stalls.
   * @throws {ConnectionLostError} When the connection breaks.
   * @throws {StreamProtocolError} For a malformed message.
   */
  async readText(
    words: readonly string[],
    what = "waiting for a message",
  ): Promise<string | null> {
    let ended = false;
    while (true) {
      const result = scanText(this.#buffer, words, ended);
      if (result.kind === "message") {
        this.#buffer = this.#buffer.subarray(result.consumed);
        return result.text;
      }
      if (result.kind === "end") {
        this.#buffer = this.#buffer.subarray(result.consumed);
        return null;
      }
      if (ended) return null;
      if (result.open && !(await this.#readArrives(this.#settleMs))) {
        ended = true;
        continue;
      }
      const bytes = await this.#takeRead(what);
      if (bytes === null) ended = true;
      else this.#append(bytes);
    }
  }

  /**
   * Reads an 8-byte size.
   *
   * @returns The size.
   * @throws {ConnectionLostError} When the stream ends before 8 bytes.
   * @throws {StreamProtocolError} When the size is above 2^53 − 1.
   * @throws {TransferTimeoutError} When the peer stalls.
   */
  async readSize(): Promise<number> {
    while (this.#buffer.length < SIZE_BYTES) {
      const bytes = await this.#takeRead("waiting for a size");
      if (bytes === null) {
        throw new ConnectionLostError(
          `Connection closed after ${this.#buffer.length} of ${SIZE_BYTES} size bytes`,
        );
      }
      this.#append(bytes);
    }
    const size = decodeSize(this.#buffer.slice(0, SIZE_BYTES));
    this.#buffer = this.#buffer.subarray(SIZE_BYTES);
    return size;
  }

  /**
   * Reads exactly `size` bytes of file data, passing them on in chunks.
   * Bytes after the data stay buffered for the next message.
   *
   * @param size How many bytes.
   * @param sink Takes each chunk; the chunk is only valid until it resolves.
   * @throws {ConnectionLostError} When the stream ends early.
   * @throws {TransferTimeoutError} When the peer stalls.
   */
  async readData(
    size: number,
    sink: (chunk: Uint8Array) => Promise<void>,
  ): Promise<void> {
    let left = size;
    if (this.#buffer.length > 0 && left > 0) {
      const n = Math.min(left, this.#buffer.length);
      const head = this.#buffer.slice(0, n);
      this.#buffer = this.#buffer.subarray(n);
      left -= n;
      await sink(head);
    }
    // Double buffering: socket reads fill one scratch buffer while the sink
    // writes the other. Reads go on filling the buffer while the sink is
    // busy, so the sink gets fewer, larger chunks when it is the slower
    // side (each file write is a trip through Deno's blocking pool).
    let sinking: Promise<void> | undefined;
    let sinkBusy = false;
    let filled = 0;
    try {
      if (this.#pendingRead && left > 0) {
        // a read started while waiting for a message: its bytes come first
        const bytes = await this.#takeRead("receiving file data");
        if (bytes === null) {
          throw new ConnectionLostError(
            `Connection closed after ${size - left} of ${size} bytes`,
          );
        }
        filled = Math.min(left, bytes.length);
        if (filled < bytes.length) this.#append(bytes.subarray(filled));
        left -= filled;
      }
      while (filled > 0 || left > 0) {
        const full = filled === this.#scratch.length || left === 0;
        if (filled > 0 && (!sinkBusy || full)) {
          await sinking;
          sinkBusy = true;
          sinking = sink(this.#scratch.subarray(0, filled));
          sinking.then(() => sinkBusy = false, () => sinkBusy = false);
          // surfaced by the next await; the socket read in between must not
          // leave its failure unhandled
          sinking.catch(() => {});
          const spare = this.#spare ?? new Uint8Array(READ_CHUNK);
          this.#spare = this.#scratch;
          this.#scratch = spare;
          filled = 0;
          continue;
        }
        const room = this.#scratch.subarray(
          filled,
          filled + Math.min(this.#scratch.length - filled, left),
        );
        const n = await this.#readInto(room, "receiving file data");
        if (n === null) {
          throw new ConnectionLostError(
            `Connection closed after ${size - left} of ${size} bytes`,
          );
        }
        filled += n;
        left -= n;
      }
      await sinking;
    } catch (error) {
      // the sink's last chunk settles first (it counts as received), and
      // its own failure, if any, gives way to the one being thrown
      await sinking?.catch(() => {});
      throw error;
    }
  }

  /** One socket read into `view`, counted as progress. */
  async #readInto(view: Uint8Array, what: string): Promise<number | null> {
    this.#begin();
    try {
      return await this.conn.read(view);
    } catch (error) {
      throw this.#failure(error, what);
    } finally {
      this.#end();
    }
  }

  async #write(bytes: Uint8Array, what: string): Promise<void> {
    let written = 0;
    while (written < bytes.length) {
      this.#begin();
      try {
        written += await this.conn.write(bytes.subarray(written));
      } catch (error) {
        throw this.#failure(error, what);
      } finally {
        this.#end();
      }
    }
  }

  /**
   * Sends one text message in one write, with no terminator.
   *
   * @param text The message.
   */
  writeText(text: string): Promise<void> {
    return this.#write(encodeText(text), `sending "${text}"`);
  }

  /**
   * Sends an 8-byte size in one write.
   *
   * @param size The size.
   */
  writeSize(size: number): Promise<void> {
    return this.#write(encodeSize(size), "sending a size");
  }

  /**
   * Sends exactly `size` bytes from `file` in blocks of `blockSize` bytes
   * (one socket write per block), reading the file in large chunks.
   *
   * @param file The source, positioned at its start.
   * @param size How many bytes to send.
   * @param blockSize Bytes per block.
   * @throws {RangeError} When the file ends before `size` bytes.
   */
  async writeData(
    file: { read(p: Uint8Array): Promise<number | null> },
    size: number,
    blockSize: number,
  ): Promise<void> {
    const chunkSize = Math.min(
      Math.max(blockSize, Math.floor(FILE_CHUNK / blockSize) * blockSize),
      Math.max(size, 1),
    );
    // Read-ahead: the next file chunk is read while this one is sent.
    const chunks = [new Uint8Array(chunkSize), new Uint8Array(chunkSize)];
    let turn = 0;
    const readAhead = (done: number): Promise<number> | undefined => {
      if (done >= size) return undefined;
      const reading = fillChunk(
        file,
        chunks[turn],
        Math.min(chunkSize, size - done),
        done,
        size,
      );
      // surfaced when awaited; until then the blocks of the chunk before
      // are being sent, and its failure must not count as unhandled
      reading.catch(() => {});
      return reading;
    };
    let sent = 0;
    let next = readAhead(0);
    try {
      while (next) {
        const filled = await next;
        const chunk = chunks[turn];
        turn ^= 1;
        sent += filled;
        next = readAhead(sent);
        for (let offset = 0; offset < filled; offset += blockSize) {
          let block = chunk.subarray(
            offset,
            Math.min(offset + blockSize, filled),
          );
          this.#begin();
          try {
            while (block.length > 0) {
              block = block.subarray(await this.conn.write(block));
            }
          } catch (error) {
            throw this.#failure(error, "sending file data");
          } finally {
            this.#end();
          }
        }
      }
    } catch (error) {
      // the read-ahead settles before the caller may close the file, and
      // its own failure, if any, gives way to the one being thrown
      await next?.catch(() => {});
      throw error;
    }
  }

  /** Closes the connection (idempotent) and stops the idle watchdog. */
  close(): void {
    clearInterval(this.#watchdog);
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Reads exactly `want` bytes of `file` into the start of `chunk`.
 *
 * @param done Bytes of the transfer before this chunk, for the error.
 * @param size The transfer's size, for the error.
 * @throws {RangeError} When the file ends early.
 */
async function fillChunk(
  file: { read(p: Uint8Array): Promise<number | null> },
  chunk: Uint8Array,
  want: number,
  done: number,
  size: number,
): Promise<number> {
  let filled = 0;
  while (filled < want) {
    const n = await file.read(chunk.subarray(filled, want));
    if (n === null) {
      throw new RangeError(
        `File ended after ${done + filled} of ${size} bytes`,
      );
    }
    filled += n;
  }
  return filled;
}
