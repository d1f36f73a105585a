/**
 * Receives repeat-transfer copies through the {@linkcode Transport}
 * interface (`tcp`, `snw`): one connection (session) per copy, carrying one
 * transfer of the copy header followed by the file bytes; the receiver
 * answers with a receipt transfer and closes.
 *
 * Connections are read up to their copy header concurrently; the copy
 * number is given in the order headers arrive (the number of copies
 * received so far plus one), and copies are then received one at a time.
 * A connection that breaks or stalls before its copy header is complete is
 * not a copy (a warning, the number is not used) and holds up no other
 * connection; one that breaks after it is an incorrect copy and its partial
 * file is discarded. A copy that makes no progress for the idle timeout is
 * aborted.
 *
 * @module
 */

import {
  decodeRepeatHeader,
  encodeRepeatReceipt,
  REPEAT_RECEIPT_LENGTH,
  type RepeatHeader,
  repeatHeaderLength,
  RepeatProtocolError,
} from "../../protocol/repeat_protocol.ts";
import type {
  Transport,
  TransportConn,
  TransportListener,
} from "../../transport/types.ts";
import type {
  CopyEvent,
  CopyProgress,
  CopyReceiver,
  ReceivedCopy,
} from "./repeat_copy_receiver.ts";
import type { CopyStore, ReferenceFile } from "./repeat_copy_store.ts";
import { isLostBeforeAccept } from "../../transport/accept_errors.ts";
import {
  TRANSFER_CHUNK_BYTES,
  transferChunks,
} from "../../transport/transfer_chunks.ts";

/** Options of {@linkcode SessionCopyReceiver}. */
export interface SessionCopyReceiverOptions {
  /** The transport. */
  transport: Transport;
  /** Interface to bind (default `0.0.0.0`). */
  hostname?: string;
  /** Port (0 picks one). */
  port: number;
  /** Where copies go. */
  store: CopyStore;
  /** What copies are compared with. */
  reference: ReferenceFile;
  /** A copy without progress for this long is aborted. */
  idleTimeoutMs: number;
}

/** Calls `onIdle` when not kicked for `ms`; aborts its signal then. */
class IdleWatchdog implements Disposable {
  readonly #controller = new AbortController();
  readonly #ms: number;
  readonly #onIdle: () => void;
  #timer?: ReturnType<typeof setTimeout>;

  constructor(ms: number, onIdle: () => void) {
    this.#ms = ms;
    this.#onIdle = onIdle;
    this.kick();
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  kick(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#controller.abort(
        new Error(`no progress for ${this.#ms} ms`),
      );
      this.#onIdle();
    }, this.#ms);
  }

  /** Stops counting until the next {@linkcode IdleWatchdog.kick}. */
  pause(): void {
    clearTimeout(this.#timer);
  }

  [Symbol.dispose](): void {
    clearTimeout(this.#timer);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * File descriptors kept free for the copy under way (its file, the
 * reference's hash) when accepting has run out of them: the connections
 * waiting for their header are then held to fewer than the peak.
 */
const RESERVED_DESCRIPTORS = 16;

/**
 * Most connections held at once before their copy's turn: read for their
 * header, or waiting with it. More wait in the listen queue (tcp) or the
 * listener's backlog (snw), so that a flood of peers that send nothing (an
 * SNW session costs no descriptor) cannot grow memory without bound.
 */
export const MAX_PENDING_COPIES = 256;

/** A connection whose copy header arrived, waiting for its copy number. */
interface HeaderedCopy {
  conn: TransportConn;
  /** From the accepted connection to its complete header, in ms. */
  headerMs: number;
  watchdog: IdleWatchdog;
  /** The transfer's bytes, locked by the reader of the header. */
  readable: ReadableStream<Uint8Array>;
  reader: ReadableStreamDefaultReader<Uint8Array>;
  header: RepeatHeader;
  /** File bytes that arrived with the header. */
  rest: Uint8Array;
}

/**
 * Receives copies over a {@linkcode Transport}.
 *
 * Connections are accepted and read up to their copy header concurrently,
 * so a peer that connects and sends nothing (or half a header) costs the
 * run nothing: the copies behind it are neither held up nor timed with its
 * wait. A connection whose header arrived takes the next copy number, and
 * copies are received one at a time in that order.
 */
export class SessionCopyReceiver implements CopyReceiver {
  readonly #listener: TransportListener;
  readonly #options: SessionCopyReceiverOptions;

  /**
   * Starts listening.
   *
   * @param options Transport, address, store, reference and idle timeout.
   */
  constructor(options: SessionCopyReceiverOptions) {
    this.#options = options;
    this.#listener = options.transport.listen({
      hostname: options.hostname,
      port: options.port,
    });
  }

  /** The bound address. */
  get addr(): Deno.NetAddr {
    return this.#listener.addr;
  }

  /**
   * Receives copies 1 to `total`, one connection each.
   *
   * @param total How many copies.
   * @param progress Line printing and warnings.
   * @returns The copies in order.
   */
  async *copies(
    total: number,
    progress: CopyProgress,
  ): AsyncGenerator<CopyEvent> {
    const waiting: HeaderedCopy[] = [];
    /** Connections being read for their header. */
    const reading = new Map<TransportConn, Promise<void>>();
    let wake: (() => void) | undefined;
    let acceptError: { error: unknown } | undefined;
    let running = true;
    let slotFreed: (() => void) | undefined;
    let failing = false;
    // Connections held before their turn: at most MAX_PENDING_COPIES, and
    // once accepting ran out of descriptors (tcp), fewer than that peak.
    let limit = MAX_PENDING_COPIES;
    const accepting = (async () => {
      while (running) {
        // More of a flood waits in the listen queue.
        while (reading.size + waiting.length >= limit && running) {
          await new Promise<void>((resolve) => slotFreed = resolve);
        }
        if (!running) return;
        let conn: TransportConn;
        try {
          conn = await this.#listener.accept();
        } catch (error) {
          if (!running) return;
          if (isLostBeforeAccept(error)) continue;
          if (error instanceof Deno.errors.BadResource) {
            acceptError = { error };
            wake?.();
            return;
          }
          // E.g. out of file descriptors: wait and try again (said once
          // per streak of failures).
          if (!failing) progress.warn(`accept failed: ${reason(error)}`);
          failing = true;
          limit = Math.max(
            1,
            Math.min(limit, reading.size + waiting.length) -
              RESERVED_DESCRIPTORS,
          );
          await new Promise((resolve) => setTimeout(resolve, 100));
          continue;
        }
        failing = false;
        const read = this.#readHeader(conn, progress, () => running).then(
          (copy) => {
            reading.delete(conn);
            if (copy) waiting.push(copy);
            wake?.();
            slotFreed?.();
          },
        );
        reading.set(conn, read);
      }
    })();
    try {
      let n = 1;
      while (n <= total) {
        while (waiting.length === 0) {
          if (acceptError) throw acceptError.error;
          await new Promise<void>((resolve) => wake = resolve);
        }
        const copy = waiting.shift()!;
        slotFreed?.();
        const received = await this.#receiveBody(copy, n, progress);
        yield { kind: "received", copy: received };
        n++;
      }
    } finally {
      running = false;
      slotFreed?.();
      // Connections still without a header, or whose copy was not wanted.
      for (const conn of reading.keys()) conn.close();
      for (const copy of waiting) {
        copy.watchdog[Symbol.dispose]();
        copy.conn.close();
      }
      this.#listener.close();
      await accepting;
      await Promise.all(reading.values());
    }
  }

  /**
   * Reads a connection's copy header; `undefined` (and a warning while the
   * run is on) when it broke or stalled first.
   */
  async #readHeader(
    conn: TransportConn,
    progress: CopyProgress,
    running: () => boolean,
  ): Promise<HeaderedCopy | undefined> {
    const startedAt = performance.now();
    const peer = `${conn.remoteAddr.hostname}:${conn.remoteAddr.port}`;
    const watchdog = new IdleWatchdog(
      this.#options.idleTimeoutMs,
      () => conn.close(),
    );
    try {
      const transfer = await conn.receive({ signal: watchdog.signal });
      watchdog.kick();
      const reader = transfer.readable.getReader();
      let prefix: Uint8Array = new Uint8Array(0);
      let length: number | undefined;
      while (length === undefined || prefix.length < length) {
        const { value, done } = await reader.read();
        if (done) {
          throw new RepeatProtocolError(
            "the transfer ended inside the copy header",
          );
        }
        watchdog.kick();
        prefix = concat(prefix, value);
        length = repeatHeaderLength(prefix);
      }
      const decoded = decodeRepeatHeader(prefix);
      if (transfer.size !== decoded.length + decoded.header.size) {
        throw new RepeatProtocolError(
          `the transfer of ${transfer.size} bytes does not hold a copy of ${decoded.header.size} bytes`,
        );
      }
      watchdog.pause(); // its turn may come after another copy's
      return {
        conn,
        headerMs: performance.now() - startedAt,
        watchdog,
        readable: transfer.readable,
        reader,
        header: decoded.header,
        rest: prefix.subarray(decoded.length),
      };
    } catch (error) {
      const why = watchdog.signal.aborted
        ? reason(watchdog.signal.reason)
        : reason(error);
      if (running()) progress.warn(`ignored a connection from ${peer}: ${why}`);
      watchdog[Symbol.dispose]();
      try {
        await conn[Symbol.asyncDispose]();
      } catch {
        // already closed
      }
      return undefined;
    }
  }

  /** Receives the file bytes of a copy whose header arrived, as copy `n`. */
  async #receiveBody(
    copy: HeaderedCopy,
    n: number,
    progress: CopyProgress,
  ): Promise<ReceivedCopy> {
    const { conn, watchdog, readable, reader, header } = copy;
    const { store, reference } = this.#options;
    // Timed from accept, less any wait for its turn behind other copies.
    const turnAt = performance.now();
    let received = 0;
    let result: Omit<ReceivedCopy, "ms"> | undefined;
    watchdog.kick();
    try {
      progress.started(n, header.name);
      const { writer, refused } = await store.open(n, header.name);
      if (refused) progress.warn(`copy ${n}: not stored: ${refused}`);
      try {
        await writer.write(copy.rest);
        // The body into one reused buffer (a default reader's reads are a
        // fresh 64 KiB buffer each); the writer is done with each chunk
        // once its write resolves.
        reader.releaseLock();
        const body = Math.max(0, header.size - copy.rest.length);
        const bufferBytes = Math.max(1, Math.min(TRANSFER_CHUNK_BYTES, body));
        for await (const chunk of transferChunks(readable, bufferBytes)) {
          watchdog.kick();
          await writer.write(chunk);
        }
        received = writer.bytes;
        const stored = await writer.finish();
        result = {
          number: n,
          name: header.name,
          announced: header.size,
          received,
          correct: !refused && stored.bytes === reference.size &&
            stored.sha256 === reference.sha256,
          storedAs: stored.storedAs,
          problem: refused ? `not stored: ${refused}` : undefined,
        };
      } catch (error) {
        received = writer.bytes;
        await writer.discard();
        throw error;
      }
      progress.finished(n, header.name);
      watchdog.kick();
      await conn.send(
        REPEAT_RECEIPT_LENGTH,
        encodeRepeatReceipt({ copy: n, received, correct: result.correct }),
        { signal: watchdog.signal },
      );
    } catch (error) {
      const why = watchdog.signal.aborted
        ? reason(watchdog.signal.reason)
        : reason(error);
      if (result) {
        progress.warn(`copy ${n}: receipt not delivered: ${why}`);
      } else {
        progress.warn(
          `copy ${n}: broken after ${received} of ${header.size} bytes: ${why}`,
        );
        progress.finished(n, header.name);
        result = {
          number: n,
          name: header.name,
          announced: header.size,
          received,
          correct: false,
          problem: why,
        };
      }
    } finally {
      watchdog[Symbol.dispose]();
      try {
        await conn[Symbol.asyncDispose]();
      } catch {
        // already closed
      }
    }
    return { ...result, ms: copy.headerMs + performance.now() - turnAt };
  }

  /** Stops listening. */
  [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    return Promise.resolve();
  }
}
