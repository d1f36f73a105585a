/**
 * Receives repeat-transfer copies through the {@linkcode Transport}
 * interface (`tcp`, `snw`): one connection (session) per copy, carrying one
 * transfer of the copy header followed by the file bytes; the receiver
 * answers with a receipt transfer and closes.
 *
 * The copy number is the number of copies received so far plus one. A
 * connection that breaks before its copy header is complete is not a copy
 * (a warning, the number is not used); one that breaks after it is an
 * incorrect copy and its partial file is discarded. A copy that makes no
 * progress for the idle timeout is aborted.
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

/** Receives copies over a {@linkcode Transport}. */
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
    let n = 1;
    while (n <= total) {
      let conn: TransportConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (isLostBeforeAccept(error)) continue;
        throw error;
      }
      const copy = await this.#receiveOne(conn, n, progress);
      if (copy) {
        yield { kind: "received", copy };
        n++;
      }
    }
  }

  async #receiveOne(
    conn: TransportConn,
    n: number,
    progress: CopyProgress,
  ): Promise<ReceivedCopy | undefined> {
    const startedAt = performance.now();
    const peer = `${conn.remoteAddr.hostname}:${conn.remoteAddr.port}`;
    const { store, reference, idleTimeoutMs } = this.#options;
    let header: RepeatHeader | undefined;
    let received = 0;
    let result: Omit<ReceivedCopy, "ms"> | undefined;
    const watchdog = new IdleWatchdog(idleTimeoutMs, () => conn.close());
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
      header = decoded.header;
      progress.started(n, header.name);
      const { writer, refused } = await store.open(n, header.name);
      if (refused) progress.warn(`copy ${n}: not stored: ${refused}`);
      try {
        await writer.write(prefix.subarray(decoded.length));
        while (true) {
          const { value, done } = await reader.read();
          if (done) break;
          watchdog.kick();
          await writer.write(value);
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
      if (!header) {
        progress.warn(`ignored a connection from ${peer}: ${why}`);
      } else if (result) {
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
    if (!result) return undefined;
    return { ...result, ms: performance.now() - startedAt };
  }

  /** Stops listening. */
  [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    return Promise.resolve();
  }
}
