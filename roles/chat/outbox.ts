/**
 * The chat server's per-client outgoing queue. Every message to a client is
 * queued here and written by that client's own writer loop, so a slow or
 * stalled client only ever delays itself. The queue is bounded; a client
 * that falls too far behind is reported through `onFailure` and the server
 * disconnects it.
 *
 * @module
 */

import { writeAll } from "../../transport/byte_io.ts";
import type { FileSpool } from "./file_spool.ts";

/** Bounds of one client's queue. */
export interface OutboxLimits {
  /**
   * Most bytes of queued messages, each counted with
   * {@linkcode FRAME_OVERHEAD_BYTES} more (file contents not counted).
   */
  maxQueuedBytes: number;
  /** Most queued file sends. */
  maxQueuedFiles: number;
  /**
   * Most bytes of queued files, the one being written included: what a
   * stalled client can keep in the server's spool.
   */
  maxQueuedFileBytes: number;
}

/** Default bounds: 8 MiB of messages, 32 files, 1 GiB of files. */
export const DEFAULT_OUTBOX_LIMITS: OutboxLimits = {
  maxQueuedBytes: 8 * 1024 * 1024,
  maxQueuedFiles: 32,
  maxQueuedFileBytes: 1024 * 1024 * 1024,
};

/**
 * What each queued frame costs beyond its bytes, counted against
 * {@linkcode OutboxLimits.maxQueuedBytes}: the queue entry and the frame's
 * objects take about 200 bytes, so a flood of 1-byte messages to a client
 * that never reads would otherwise take the bound eight times over.
 */
export const FRAME_OVERHEAD_BYTES = 256;

/** Consecutive queued frames are merged into writes of up to this size. */
const BATCH_BYTES = 256 * 1024;
/** Bytes read from a spool file per write. */
const FILE_CHUNK = 256 * 1024;

type Item =
  | { kind: "frame"; bytes: Uint8Array }
  | { kind: "file"; header: Uint8Array; spool: FileSpool };

/** A client's outgoing queue and its writer loop. */
export class Outbox {
  readonly #conn: Deno.Conn;
  readonly #limits: OutboxLimits;
  readonly #onFailure: (reason: string) => void;
  #queue: Item[] = [];
  #head = 0;
  #queuedBytes = 0;
  #queuedFiles = 0;
  #queuedFileBytes = 0;
  #writing = false;
  #closed = false;
  #idle: Array<() => void> = [];

  /**
   * Creates the queue for one connection.
   *
   * @param conn The client's connection (owned: `close()` closes it).
   * @param limits The queue's bounds.
   * @param onFailure Called once when a write fails or the queue
   *   overflows; the outbox is closed by then.
   */
  constructor(
    conn: Deno.Conn,
    limits: OutboxLimits,
    onFailure: (reason: string) => void,
  ) {
    this.#conn = conn;
    this.#limits = limits;
    this.#onFailure = onFailure;
  }

  /** Whether the outbox (and its connection) is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Queues one encoded frame (the same bytes may be queued to many
   * clients).
   *
   * @param bytes The frame.
   * @returns `false` when the outbox is closed or just overflowed.
   */
  sendFrame(bytes: Uint8Array): boolean {
    if (this.#closed) return false;
    const cost = bytes.length + FRAME_OVERHEAD_BYTES;
    if (this.#queuedBytes + cost > this.#limits.maxQueuedBytes) {
      this.#fail(
        `outgoing queue over ${this.#limits.maxQueuedBytes} bytes (client too slow)`,
      );
      return false;
    }
    this.#queuedBytes += cost;
    this.#queue.push({ kind: "frame", bytes });
    this.#kick();
    return true;
  }

  /**
   * Queues a file: `header` then the spool's content. Takes a reference on
   * the spool, released when the send ends.
   *
   * @param header The encoded frame prefix and header.
   * @param spool The complete spooled file.
   * @returns `false` when the outbox is closed or just overflowed.
   */
  sendFile(header: Uint8Array, spool: FileSpool): boolean {
    if (this.#closed) return false;
    if (this.#queuedFiles + 1 > this.#limits.maxQueuedFiles) {
      this.#fail(
        `more than ${this.#limits.maxQueuedFiles} files queued (client too slow)`,
      );
      return false;
    }
    if (
      this.#queuedFileBytes + spool.size > this.#limits.maxQueuedFileBytes
    ) {
      this.#fail(
        `files queued over ${this.#limits.maxQueuedFileBytes} bytes (client too slow)`,
      );
      return false;
    }
    spool.acquire();
    this.#queuedFiles++;
    this.#queuedFileBytes += spool.size;
    this.#queue.push({ kind: "file", header, spool });
    this.#kick();
    return true;
  }

  /**
   * Resolves when everything queued so far is written, or the outbox closed.
   */
  flushed(): Promise<void> {
    if (this.#closed || (!this.#writing && this.#pending() === 0)) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Drops the queue (releasing spools) and closes the connection. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (let i = this.#head; i < this.#queue.length; i++) {
      const item = this.#queue[i];
      if (item.kind === "file") item.spool.release();
    }
    this.#queue = [];
    this.#head = 0;
    this.#queuedBytes = 0;
    this.#queuedFiles = 0;
    this.#queuedFileBytes = 0;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    this.#wakeIdle();
  }

  #pending(): number {
    return this.#queue.length - this.#head;
  }

  #fail(reason: string): void {
    if (this.#closed) return;
    this.close();
    this.#onFailure(reason);
  }

  #wakeIdle(): void {
    const idle = this.#idle;
    this.#idle = [];
    for (const resolve of idle) resolve();
  }

  #shift(): Item {
    const item = this.#queue[this.#head++];
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  #kick(): void {
    if (this.#writing) return;
    this.#writing = true;
    this.#drain().catch((error) => {
      this.#fail(
        `write failed: ${error instanceof Error ? error.message : error}`,
      );
    }).finally(() => {
      this.#writing = false;
      if (this.#closed || this.#pending() === 0) this.#wakeIdle();
      else this.#kick();
    });
  }

  async #drain(): Promise<void> {
    while (!this.#closed && this.#pending() > 0) {
      const item = this.#shift();
      if (item.kind === "file") {
        try {
          await this.#writeFile(item.header, item.spool);
        } finally {
          this.#queuedFiles--;
          this.#queuedFileBytes -= item.spool.size;
          item.spool.release();
        }
        continue;
      }
      const batch = [item.bytes];
      let size = item.bytes.length;
      while (this.#pending() > 0) {
        const next = this.#queue[this.#head];
        if (next.kind !== "frame" || size + next.bytes.length > BATCH_BYTES) {
          break;
        }
        this.#shift();
        batch.push(next.bytes);
        size += next.bytes.length;
      }
      let bytes = batch[0];
      if (batch.length > 1) {
        bytes = new Uint8Array(size);
        let offset = 0;
        for (const part of batch) {
          bytes.set(part, offset);
          offset += part.length;
        }
      }
      try {
        await writeAll(this.#conn, bytes);
      } finally {
        this.#queuedBytes -= size + batch.length * FRAME_OVERHEAD_BYTES;
      }
    }
  }

  async #writeFile(header: Uint8Array, spool: FileSpool): Promise<void> {
    await writeAll(this.#conn, header);
    using file = await spool.open();
    const buffer = new Uint8Array(FILE_CHUNK);
    let left = spool.size;
    while (left > 0 && !this.#closed) {
      const n = await file.read(buffer.subarray(0, Math.min(left, FILE_CHUNK)));
      if (n === null) throw new Error("the spooled file ended early");
      await writeAll(this.#conn, buffer.subarray(0, n));
      left -= n;
    }
  }
}
