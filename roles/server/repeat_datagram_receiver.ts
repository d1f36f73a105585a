/**
 * Receives repeat-transfer copies over raw UDP (`transport/udp_raw.ts`), the
 * baseline without any recovery.
 *
 * Every datagram repeats the copy header, whose copy number is the raw
 * transfer's `seq`, so copies are told apart even when datagrams of copy
 * *k* arrive during copy *k + 1* (they are dropped as late). A copy ends
 * when all its bytes arrived, when a datagram of a later copy arrived,
 * shortly after its END (a grace period for reordered chunks), or after the
 * idle timeout; it is then stored (with
 * zero bytes where datagrams were lost), compared and answered with a
 * receipt datagram. A copy of which no datagram arrived at all is reported
 * as lost when a later copy shows up or when the run times out.
 *
 * The run locks onto the sender stream of its first valid datagram;
 * datagrams of other senders are ignored. Once the run has begun, the
 * receiver gives up waiting after the run timeout without any new copy and
 * reports the copies still missing as lost, so it never hangs.
 *
 * @module
 */

import {
  decodeRepeatHeader,
  encodeRepeatReceipt,
  type RepeatHeader,
  RepeatProtocolError,
} from "../../protocol/repeat_protocol.ts";
import { UdpRawReceiver } from "../../transport/udp_raw.ts";
import type {
  CopyEvent,
  CopyProgress,
  CopyReceiver,
} from "./repeat_copy_receiver.ts";
import type {
  CopyStore,
  ReferenceFile,
  StoredCopy,
} from "./repeat_copy_store.ts";

/** Options of {@linkcode DatagramCopyReceiver}. */
export interface DatagramCopyReceiverOptions {
  /** Interface to bind (default `0.0.0.0`). */
  hostname?: string;
  /** UDP port (0 picks one). */
  port: number;
  /** Where copies go. */
  store: CopyStore;
  /** What copies are compared with. */
  reference: ReferenceFile;
  /** A copy ends after this long without a datagram of it. */
  idleTimeoutMs: number;
  /** The run ends after this long without a new copy (once it has begun). */
  runTimeoutMs: number;
  /** The name printed for copies lost before any header was seen. */
  fallbackName: string;
}

/** Receives copies over raw UDP. */
export class DatagramCopyReceiver implements CopyReceiver {
  readonly #receiver: UdpRawReceiver;
  readonly #options: DatagramCopyReceiverOptions;

  /**
   * Binds the UDP port.
   *
   * @param options Address, store, reference and timeouts.
   */
  constructor(options: DatagramCopyReceiverOptions) {
    this.#options = options;
    this.#receiver = new UdpRawReceiver({
      hostname: options.hostname,
      port: options.port,
      idleTimeoutMs: options.idleTimeoutMs,
    });
  }

  /** The bound address. */
  get addr(): Deno.NetAddr {
    return this.#receiver.addr;
  }

  /** Datagram counters of the underlying receiver. */
  get stats(): UdpRawReceiver["stats"] {
    return this.#receiver.stats;
  }

  /**
   * Receives copies 1 to `total`.
   *
   * @param total How many copies.
   * @param progress Line printing and warnings.
   * @returns The copies in order, lost ones included.
   */
  async *copies(
    total: number,
    progress: CopyProgress,
  ): AsyncGenerator<CopyEvent> {
    const { store, reference, runTimeoutMs } = this.#options;
    let next = 1;
    let stream: number | undefined;
    let lastName = this.#options.fallbackName;
    while (next <= total) {
      const transfer = await this.#receiver.receive({
        stream,
        timeoutMs: stream === undefined ? undefined : runTimeoutMs,
      });
      if (!transfer) {
        progress.warn(
          `no datagram for ${runTimeoutMs} ms: copies ${next}-${total} count as lost`,
        );
        for (; next <= total; next++) {
          yield { kind: "lost", number: next, name: lastName };
        }
        return;
      }
      let header: RepeatHeader;
      try {
        header = decodeRepeatHeader(transfer.meta).header;
        if (header.size !== transfer.size || header.copy !== transfer.seq) {
          throw new RepeatProtocolError("header does not match the datagram");
        }
      } catch (error) {
        if (!(error instanceof RepeatProtocolError)) throw error;
        progress.warn(
          `ignored datagrams from ${transfer.from.hostname}:${transfer.from.port}: ${error.message}`,
        );
        continue;
      }
      const n = header.copy;
      if (n < next || n > total) {
        progress.warn(
          `ignored copy ${n}: the run expects copies ${next}-${total}`,
        );
        continue;
      }
      stream ??= transfer.stream;
      for (; next < n; next++) {
        yield { kind: "lost", number: next, name: header.name };
      }
      lastName = header.name;
      progress.started(n, header.name);
      const { writer, refused } = await store.open(n, header.name);
      if (refused) progress.warn(`copy ${n}: not stored: ${refused}`);
      let failed: string | undefined;
      for await (const chunk of transfer.chunks()) {
        if (failed) continue; // drain the copy
        try {
          await writer.writeAt(chunk.offset, chunk.bytes);
        } catch (error) {
          failed = error instanceof Error ? error.message : String(error);
          progress.warn(`copy ${n}: cannot store: ${failed}`);
          await writer.discard();
        }
      }
      const stored: StoredCopy = failed
        ? { bytes: transfer.received }
        : await writer.finish(transfer.complete);
      const correct = !refused && !failed && transfer.complete &&
        stored.bytes === reference.size && stored.sha256 === reference.sha256;
      progress.finished(n, header.name);
      await this.#receiver.reply(
        transfer,
        encodeRepeatReceipt({ copy: n, received: stored.bytes, correct }),
      );
      const ms = performance.now() - transfer.startedAt;
      let problem: string | undefined;
      if (failed) problem = `cannot store: ${failed}`;
      else if (refused) problem = `not stored: ${refused}`;
      else if (!transfer.complete) {
        problem =
          `${stored.bytes} of ${header.size} bytes arrived (${transfer.endReason})`;
        progress.warn(`copy ${n}: ${problem}`);
      }
      yield {
        kind: "received",
        copy: {
          number: n,
          name: header.name,
          announced: header.size,
          received: stored.bytes,
          ms,
          correct,
          storedAs: stored.storedAs,
          problem,
        },
      };
      next = n + 1;
    }
  }

  /** Closes the socket. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#receiver[Symbol.asyncDispose]();
  }
}
