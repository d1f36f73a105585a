/**
 * Feeds small payloads into a byte `ReadableStream` in batches, and holds
 * what arrives between reads in one reused buffer.
 *
 * A transport that receives many small datagrams (SNW's 1000-byte chunks)
 * would otherwise complete its reader's `read()` once per datagram: each a
 * promise, a buffer transfer and a turn of the reader's loop: ~25 µs per
 * datagram for SNW's receiver, measured on a 2-core VM. The batcher copies
 * each payload straight into the pending read's buffer and completes the
 * read only once it holds `batchBytes` (or the buffer is full), when the
 * stream ends, or `flushMs` after the first byte went in — so a reader sees
 * data at most that late. Large payloads (at least `batchBytes`) complete a
 * read each: a reader that works on each batch (hashing, writing) then
 * overlaps that work with the next datagram's round trip instead of doing a
 * long batch's worth at once.
 *
 * Payloads that arrive while no read is pending (the reader is busy) are
 * copied into the **stage**, one ring buffer per stream (grown by doubling,
 * as far as the bound), and the next read takes them from there. The
 * stream's own queue is never used: it would keep a fresh copy of every such
 * payload, and at 64000-byte payloads those copies (one in five while a
 * reader hashes) made the receiving process's memory peak 62–75 MiB instead
 * of staying flat. The stream is created with an `autoAllocateChunkSize`
 * (at most {@linkcode BATCHED_STREAM_CHUNK_BYTES}), so that every read, a
 * default reader's too, comes with a buffer to fill. The transport bounds
 * what is staged with {@linkcode ByteStreamBatcher.takes} and
 * {@linkcode ByteStreamBatcher.room}; the stage grows only if a payload
 * arrives past that bound.
 *
 * @module
 */

/**
 * The `autoAllocateChunkSize` a stream fed by {@linkcode ByteStreamBatcher}
 * is created with (a default reader's reads then get a buffer of this size
 * to be filled, like a BYOB reader's); a smaller one suits a stream known to
 * be short, any size works.
 */
export const BATCHED_STREAM_CHUNK_BYTES = 64 * 1024;

/**
 * Writes payloads into a byte stream's pending reads, committing them in
 * batches, and stages what arrives between reads (see the module
 * documentation). The stream's `pull` must call
 * {@linkcode ByteStreamBatcher.pull}.
 *
 * @example
 * ```ts
 * import {
 *   BATCHED_STREAM_CHUNK_BYTES,
 *   ByteStreamBatcher,
 * } from "./byte_stream_batcher.ts";
 * import { equal } from "node:assert/strict";
 * let batcher!: ByteStreamBatcher;
 * const readable = new ReadableStream({
 *   type: "bytes",
 *   autoAllocateChunkSize: BATCHED_STREAM_CHUNK_BYTES,
 *   start: (controller) => {
 *     batcher = new ByteStreamBatcher(controller);
 *   },
 *   pull: () => batcher.pull(),
 * }, { highWaterMark: 0 });
 * const reader = readable.getReader({ mode: "byob" });
 * const read = reader.read(new Uint8Array(8));
 * batcher.push(new Uint8Array([1, 2, 3]));
 * batcher.push(new Uint8Array([4, 5]));
 * batcher.close();
 * equal((await read).value?.length, 5);
 * ```
 */
export class ByteStreamBatcher {
  readonly #controller: ReadableByteStreamController;
  readonly #flushMs: number;
  readonly #batchBytes: number;
  readonly #capacity: number;
  /** Bytes written into the pending read's buffer but not yet committed. */
  #filled = 0;
  #timer?: ReturnType<typeof setTimeout>;
  /** The ring buffer of bytes that arrived while no read was pending. */
  #stage?: Uint8Array;
  /** Where the oldest staged byte is. */
  #stageStart = 0;
  /** How many bytes are staged. */
  #staged = 0;
  /** `close()` was called while bytes were staged. */
  #closing = false;
  #ended = false;

  /**
   * Wraps a byte stream's controller.
   *
   * @param controller The controller of a `type: "bytes"` stream created
   * with an `autoAllocateChunkSize` (such as
   * {@linkcode BATCHED_STREAM_CHUNK_BYTES}) and a `pull` that calls
   * {@linkcode ByteStreamBatcher.pull}.
   * @param options `flushMs`: longest a written byte waits before its read
   * completes (default 1); `batchBytes`: bytes that complete a read at once
   * (default 16 KiB); `stageBytes`: how many bytes may wait between reads
   * before {@linkcode ByteStreamBatcher.room} says there is none (default
   * 1 MiB).
   */
  constructor(
    controller: ReadableByteStreamController,
    options: { flushMs?: number; batchBytes?: number; stageBytes?: number } =
      {},
  ) {
    this.#controller = controller;
    this.#flushMs = options.flushMs ?? 1;
    this.#batchBytes = options.batchBytes ?? 16 * 1024;
    this.#capacity = options.stageBytes ?? 1024 * 1024;
  }

  /**
   * Adds a payload to the stream (copied: it may be reused afterwards).
   *
   * @param payload The bytes.
   */
  push(payload: Uint8Array): void {
    if (this.#ended) return;
    const view = this.#staged === 0
      ? this.#controller.byobRequest?.view
      : undefined;
    if (view) {
      if (payload.length <= view.byteLength - this.#filled) {
        new Uint8Array(
          view.buffer,
          view.byteOffset + this.#filled,
          payload.length,
        ).set(payload);
        this.#filled += payload.length;
        if (
          this.#filled >= this.#batchBytes || this.#filled === view.byteLength
        ) this.flush();
        else {
          this.#timer ??= setTimeout(() => {
            this.#timer = undefined;
            this.flush();
          }, this.#flushMs);
        }
        return;
      }
      this.flush(); // what the read holds goes first
    }
    this.#stagePayload(payload);
    // A read still pending (one too small for the payload, or a second
    // one) takes what it can now: its pull() has come and gone.
    this.pull();
  }

  /**
   * Bytes that may still arrive before the reader takes some: the stage's
   * bound minus what is staged (bytes in a pending read are the reader's).
   */
  get room(): number {
    return this.#capacity - this.#staged;
  }

  /**
   * Whether a payload of `length` bytes would be taken without the stage
   * reaching its bound: straight into a pending read with room for it, or
   * into the stage with room left after it.
   *
   * @param length The payload's size.
   * @returns Whether its sender may go on at once.
   */
  takes(length: number): boolean {
    if (this.#staged === 0) {
      const view = this.#controller.byobRequest?.view;
      if (view && length <= view.byteLength - this.#filled) return true;
    }
    return this.#capacity - this.#staged - length > 0;
  }

  /**
   * The stream's `pull`: fills the pending read from the stage. Does
   * nothing when nothing is staged or no read is pending.
   */
  pull(): void {
    if (this.#staged === 0) return;
    const view = this.#controller.byobRequest?.view;
    if (!view) return;
    const into = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    const n = Math.min(this.#staged, into.length);
    this.#copyStaged(into, n);
    this.#stageStart = (this.#stageStart + n) % this.#stage!.length;
    this.#staged -= n;
    this.#filled = n;
    this.flush();
    if (this.#staged === 0 && this.#closing) this.#closeNow();
  }

  /** Completes the pending read with what it holds, if anything. */
  flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#filled === 0) return;
    const filled = this.#filled;
    this.#filled = 0;
    try {
      this.#controller.byobRequest?.respond(filled);
    } catch {
      // the stream was errored or its reader released: nobody will read
    }
  }

  /**
   * Flushes and closes the stream once the reader has taken every staged
   * byte. A read still pending with no bytes then ends as done: closing
   * alone would leave it pending forever.
   */
  close(): void {
    if (this.#ended) return;
    this.flush();
    this.#ended = true;
    if (this.#staged > 0) this.#closing = true;
    else this.#closeNow();
  }

  /**
   * Errors the stream (what was not yet read is dropped).
   *
   * @param error The reason.
   */
  error(error: Error): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#filled = 0;
    this.#ended = true;
    this.#closing = false;
    this.#staged = 0;
    this.#stage = undefined;
    try {
      this.#controller.error(error);
    } catch {
      // already errored or closed
    }
  }

  #closeNow(): void {
    this.#closing = false;
    this.#stage = undefined;
    try {
      this.#controller.close();
      this.#controller.byobRequest?.respond(0);
    } catch {
      // already errored or cancelled
    }
  }

  /** Copies the `n` oldest staged bytes to the start of `into`. */
  #copyStaged(into: Uint8Array, n: number): void {
    const stage = this.#stage!;
    const first = Math.min(n, stage.length - this.#stageStart);
    into.set(stage.subarray(this.#stageStart, this.#stageStart + first));
    if (first < n) into.set(stage.subarray(0, n - first), first);
  }

  #stagePayload(payload: Uint8Array): void {
    const needed = this.#staged + payload.length;
    let stage = this.#stage;
    if (stage === undefined || needed > stage.length) {
      // First use, or full: a ring twice as big, up to the bound plus one
      // largest payload (more only if the transport lets more arrive), the
      // staged bytes moved to its start. Small transfers and readers that
      // keep up stage little, and so allocate little.
      const limit = this.#capacity + BATCHED_STREAM_CHUNK_BYTES;
      const doubled = stage
        ? 2 * stage.length
        : Math.min(BATCHED_STREAM_CHUNK_BYTES, this.#capacity);
      const grown = new Uint8Array(
        Math.max(needed, needed > limit ? doubled : Math.min(limit, doubled)),
      );
      if (stage) this.#copyStaged(grown, this.#staged);
      this.#stage = stage = grown;
      this.#stageStart = 0;
    }
    const end = (this.#stageStart + this.#staged) % stage.length;
    const first = Math.min(payload.length, stage.length - end);
    stage.set(payload.subarray(0, first), end);
    if (first < payload.length) stage.set(payload.subarray(first), 0);
    this.#staged += payload.length;
  }
}
