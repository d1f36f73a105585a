/**
 * Moves whole files through a data channel of the selected transport,
 * streamed (never a whole file in memory), hashed on the way (SHA-256), and
 * watched: a transfer that makes no progress for the idle timeout is
 * aborted. Shared by the client, the cache and the origin server.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { FileServiceProtocolError } from "../../protocol/file_service.ts";
import {
  ConnectionLostError,
  TransferTimeoutError,
} from "../../transport/errors.ts";
import type { TransportConn } from "../../transport/types.ts";
import { writeAll } from "../../transport/byte_io.ts";
import { transferChunks } from "../../transport/transfer_chunks.ts";

/**
 * Bytes read from a file per chunk handed to the transport. 256 KiB reads
 * are large enough for Deno's async file reads (their cost is per call) and
 * kept the 1 GiB file-service runs 2–4 MiB lower in peak RSS than 1 MiB did,
 * at the same speed.
 */
export const FILE_CHUNK_BYTES = 256 * 1024;

/** Bytes gathered before one write to a file (see {@linkcode FILE_CHUNK_BYTES}). */
export const FILE_WRITE_BYTES = 256 * 1024;

/** A file's identity for the cache: its size and SHA-256. */
export interface FileVersion {
  /** Size in bytes. */
  size: number;
  /** SHA-256 of the content, lower-case hex. */
  sha256: string;
}

/** Restartable timer that fires when a transfer stops making progress. */
class ProgressWatch {
  #timer: ReturnType<typeof setInterval> | undefined;
  #progress = 0;
  #seen = 0;
  #since = 0;
  stalled = false;

  constructor(readonly ms: number, readonly onStall: () => void) {}

  /**
   * Counts progress (cheap: the SNW sender calls it per packet); the first
   * call starts watching. A stall is found within a quarter of `ms` after
   * `ms` without a call.
   */
  touch(): void {
    this.#progress++;
    if (this.#timer !== undefined || this.stalled) return;
    this.#seen = this.#progress;
    this.#since = performance.now();
    this.#timer = setInterval(() => this.#check(), Math.max(this.ms / 4, 5));
  }

  #check(): void {
    const now = performance.now();
    if (this.#progress !== this.#seen) {
      this.#seen = this.#progress;
      this.#since = now;
    } else if (now - this.#since >= this.ms) {
      this.stop();
      this.stalled = true;
      this.onStall();
    }
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  error(): TransferTimeoutError {
    return new TransferTimeoutError(
      `Transfer made no progress for ${this.ms / 1000} s`,
    );
  }
}

/** Options of {@linkcode sendFile} and {@linkcode receiveFile}. */
export interface FileTransferOptions {
  /** Abort when no progress is made for this long, in ms. */
  idleMs: number;
  /** Called on a stall, before the transfer fails (close the control connection). */
  onStall?: () => void;
  /**
   * The size agreed on the control connection ({@linkcode receiveFile}): a
   * transfer announcing another fails at once.
   */
  expectedSize?: number;
}

/** Options of {@linkcode sendFile}. */
export interface SendFileOptions extends FileTransferOptions {
  /** Whether to compute the SHA-256 of the bytes sent (default true). */
  hash?: boolean;
}

/**
 * Sends `size` bytes of `file`, from its current position, as one transfer.
 *
 * @param channel The data channel.
 * @param file The open file.
 * @param size The number of bytes to send (the file must have them).
 * @param options Idle timeout, stall hook, whether to hash.
 * @returns The SHA-256 of the bytes sent (`""` when not hashing).
 * @throws {TransferTimeoutError} On a stall.
 */
export async function sendFile(
  channel: TransportConn,
  file: Deno.FsFile,
  size: number,
  options: SendFileOptions,
): Promise<string> {
  const hash = options.hash === false ? undefined : createHash("sha256");
  const controller = new AbortController();
  const watch = new ProgressWatch(options.idleMs, () => {
    controller.abort(watch.error());
    channel.close();
    options.onStall?.();
  });
  async function* chunks(): AsyncGenerator<Uint8Array> {
    // One read ahead, into the other of two buffers: both transports are
    // done with a chunk when they ask for the next one (and the receiver's
    // SHA-256 check would catch it if one were not).
    const buffers = [
      new Uint8Array(Math.min(FILE_CHUNK_BYTES, size)),
      new Uint8Array(Math.min(FILE_CHUNK_BYTES, size)),
    ];
    let left = size;
    let turn = 0;
    const readNext = () => {
      const buffer = buffers[turn++ % 2];
      const part = buffer.subarray(0, Math.min(buffer.length, left));
      return readChunk(file, part, left);
    };
    let next = left > 0 ? readNext() : undefined;
    while (next) {
      const chunk = await next;
      left -= chunk.length;
      next = left > 0 ? readNext() : undefined;
      next?.catch(() => {}); // surfaced when awaited
      hash?.update(chunk);
      watch.touch();
      yield chunk;
    }
  }
  watch.touch();
  try {
    await channel.send(size, chunks(), {
      signal: controller.signal,
      // The peer taking bytes is progress (a chunk read is not enough: on a
      // slow link one 1 MiB chunk can take longer than the idle timeout).
      onProgress: () => watch.touch(),
    });
  } catch (error) {
    if (watch.stalled) throw watch.error();
    throw error;
  } finally {
    watch.stop();
  }
  return hash?.digest("hex") ?? "";
}

/** Largest chunk that {@linkcode readChunk} reads synchronously. */
const SYNC_READ_BYTES = 64 * 1024;

/**
 * Fills `buffer` from `file`; `expected` is how many bytes the file should
 * still have from here (named in the error when it has fewer).
 */
async function readChunk(
  file: Deno.FsFile,
  buffer: Uint8Array,
  expected: number,
): Promise<Uint8Array> {
  let filled = 0;
  // A small file is read at once: the async call's trip through Deno's
  // blocking pool costs more than reading a few KiB from the page cache.
  const sync = buffer.length <= SYNC_READ_BYTES;
  while (filled < buffer.length) {
    const rest = buffer.subarray(filled);
    const n = sync ? file.readSync(rest) : await file.read(rest);
    if (n === null) {
      throw new RangeError(
        `The file ended ${
          expected - filled
        } bytes early (changed while being sent)`,
      );
    }
    filled += n;
  }
  return buffer;
}

/** Largest write that {@linkcode FileWriteBehind} makes synchronously. */
const SYNC_WRITE_BYTES = 64 * 1024;

/** Gathers small chunks into large writes, one write in flight at a time. */
class FileWriteBehind {
  #buffer: Uint8Array;
  #spare: Uint8Array;
  #filled = 0;
  #writing: Promise<void> = Promise.resolve();

  /**
   * @param file Where the bytes go.
   * @param size Bytes expected: small transfers get small buffers (fresh
   *   megabytes cost page faults on every small get).
   */
  constructor(readonly file: Deno.FsFile, size: number) {
    const bytes = Math.max(1, Math.min(FILE_WRITE_BYTES, size));
    this.#buffer = new Uint8Array(bytes);
    this.#spare = new Uint8Array(bytes);
  }

  /** The unfilled rest of the current buffer, to read into (BYOB). */
  space(): Uint8Array {
    return this.#buffer.subarray(this.#filled);
  }

  /**
   * Counts bytes read into {@linkcode FileWriteBehind.space} as filled.
   *
   * @param filled What the BYOB read returned: a view of the same memory,
   *   now owned by a new `ArrayBuffer` (the old one was transferred).
   */
  async adopt(filled: Uint8Array): Promise<void> {
    this.#buffer = new Uint8Array(filled.buffer as ArrayBuffer);
    this.#filled += filled.length;
    if (this.#filled === this.#buffer.length) await this.#startWrite();
  }

  async push(chunk: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      const n = Math.min(
        chunk.length - offset,
        this.#buffer.length - this.#filled,
      );
      this.#buffer.set(chunk.subarray(offset, offset + n), this.#filled);
      this.#filled += n;
      offset += n;
      if (this.#filled === this.#buffer.length) await this.#startWrite();
    }
  }

  async flush(): Promise<void> {
    if (this.#filled > 0) await this.#startWrite();
    await this.#writing;
  }

  async #startWrite(): Promise<void> {
    await this.#writing;
    const full = this.#buffer.subarray(0, this.#filled);
    // Two buffers in turn: the other one's write has completed.
    [this.#buffer, this.#spare] = [this.#spare, this.#buffer];
    this.#filled = 0;
    if (full.length <= SYNC_WRITE_BYTES) {
      // A small write at once: the async call's trip through Deno's
      // blocking pool costs more than copying a few KiB to the page cache.
      let offset = 0;
      while (offset < full.length) {
        offset += this.file.writeSync(full.subarray(offset));
      }
      return;
    }
    this.#writing = writeAll(this.file, full);
    this.#writing.catch(() => {}); // surfaced by the next await
  }
}

/**
 * Receives the channel's next transfer into `file`.
 *
 * @param channel The data channel.
 * @param file Where the bytes go (a temporary file).
 * @param options Idle timeout and stall hook.
 * @returns The size and SHA-256 of what arrived.
 * @throws {TransferTimeoutError} On a stall.
 * @throws {ConnectionLostError} When the transfer ended early.
 * @throws {FileServiceProtocolError} When it announced another size than
 *   `options.expectedSize`.
 */
export async function receiveFile(
  channel: TransportConn,
  file: Deno.FsFile,
  options: FileTransferOptions,
): Promise<FileVersion> {
  const hash = createHash("sha256");
  const controller = new AbortController();
  const watch = new ProgressWatch(options.idleMs, () => {
    controller.abort(watch.error());
    channel.close(); // errors the transfer's stream, ending the loop below
    options.onStall?.();
  });
  watch.touch();
  try {
    const transfer = await channel.receive({ signal: controller.signal });
    const expected = options.expectedSize;
    if (expected !== undefined && transfer.size !== expected) {
      // Over tcp the usual cause is a peer on snw: what was read as the
      // size is the start of its ERROR message.
      await transfer.readable.cancel().catch(() => {});
      throw new FileServiceProtocolError(
        `the data channel announced ${transfer.size} bytes, not the ${expected} agreed on the control connection (do both ends use the same transport?)`,
      );
    }
    const sink = new FileWriteBehind(file, transfer.size);
    let received = 0;
    const take = (chunk: Uint8Array) => {
      watch.touch();
      received += chunk.length;
      hash.update(chunk);
    };
    let byob: ReadableStreamBYOBReader | undefined;
    try {
      byob = transfer.readable.getReader({ mode: "byob" });
    } catch {
      // not a byte stream
    }
    if (byob) {
      // A byte stream (both transports' transfers are): read straight into
      // the sink's buffer, no copy per chunk.
      let finished = false;
      try {
        while (true) {
          const { done, value } = await byob.read(sink.space());
          if (done) {
            // The read took the buffer even so: hand it back.
            if (value) await sink.adopt(value);
            finished = true;
            break;
          }
          take(value);
          await sink.adopt(value);
        }
      } finally {
        if (!finished) await byob.cancel().catch(() => {});
        byob.releaseLock();
      }
    } else {
      // Each chunk is copied by the sink before the next read reuses it.
      const chunks = transferChunks(
        transfer.readable,
        Math.max(1, Math.min(FILE_WRITE_BYTES, transfer.size)),
      );
      for await (const chunk of chunks) {
        take(chunk);
        await sink.push(chunk);
      }
    }
    await sink.flush();
    if (received !== transfer.size) {
      if (watch.stalled) throw watch.error();
      throw new ConnectionLostError(
        `Transfer ended after ${received} of ${transfer.size} bytes`,
      );
    }
    return { size: received, sha256: hash.digest("hex") };
  } catch (error) {
    if (watch.stalled) throw watch.error();
    throw error;
  } finally {
    watch.stop();
  }
}

/**
 * Hashes an open file from its start and rewinds it.
 *
 * @param file The open file.
 * @returns Its SHA-256, lower-case hex.
 */
export async function hashOpenFile(file: Deno.FsFile): Promise<string> {
  const hash = createHash("sha256");
  await file.seek(0, Deno.SeekMode.Start);
  const buffer = new Uint8Array(1024 * 1024);
  while (true) {
    const n = await file.read(buffer);
    if (n === null) break;
    hash.update(buffer.subarray(0, n));
  }
  await file.seek(0, Deno.SeekMode.Start);
  return hash.digest("hex");
}

/**
 * Random tag for a data channel (16 hex digits).
 *
 * @returns The tag.
 */
export function newChannelTag(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
