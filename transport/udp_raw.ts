/**
 * Raw UDP for the repeat transfer's `udp` baseline (SPEC §2, §6): one
 * transfer is its chunks sent back to back, with **no recovery at all** —
 * nothing is acknowledged or retransmitted, so loss, corruption and
 * reordering show up as incorrect copies. The only message back is one
 * `REPLY` datagram after the transfer (the repeat receipt), which may be
 * lost like any other.
 *
 * Every datagram is self-describing, so the receiver can place any datagram
 * that arrives and tell transfers apart even when datagrams of transfer *k*
 * arrive late during transfer *k + 1*. All integers are big-endian:
 *
 * ```
 *  0      2     3      4            8         12          20          24          26          28          32
 *  +------+-----+------+------------+---------+-----------+-----------+-----------+-----------+-----------+------+---------+
 *  | "RU" | ver | type | stream u32 | seq u32 | size u64  | index u32 | chunk u16 | mlen u16  | CRC-32    | meta | payload |
 *  +------+-----+------+------------+---------+-----------+-----------+-----------+-----------+-----------+------+---------+
 * ```
 *
 * - `ver` is 1; `type` is DATA (1), END (2) or REPLY (3).
 * - `stream` is chosen at random by the sender for a whole run; `seq`
 *   numbers its transfers from 1. A receiver drops datagrams of a transfer
 *   older than one it has already started (`late`).
 * - `size` is the transfer's size in bytes and `chunk` the sender's chunk
 *   size (at least {@linkcode MIN_RAW_CHUNK}); DATA number `index` carries bytes `index × chunk` up to
 *   `min(size, (index + 1) × chunk)`. END (after the last DATA) carries the
 *   number of chunks in `index` and no payload. REPLY goes back to the
 *   address a transfer came from, with the same `stream` and `seq`.
 * - `meta` (at most {@linkcode MAX_RAW_META} bytes) is repeated in every
 *   DATA and END datagram (the repeat transfer puts its copy header there).
 * - The CRC-32 (IEEE) covers the datagram with the CRC field zeroed: the
 *   UDP checksum already drops corrupt datagrams on a real network, the CRC
 *   does the same for impairments injected after it (the test relay).
 *
 * The receiver ends a transfer when all its bytes arrived, when a datagram
 * of a later transfer of the same stream arrives, after an idle timeout
 * without any datagram of it, or — once its END arrived with chunks still
 * missing — after a short grace period (default 100 ms, at most the idle
 * timeout) for chunks that were reordered behind END; whichever comes
 * first. It never waits longer than the idle timeout for a lost datagram.
 *
 * @module
 */

import { crc32 } from "./crc32.ts";
import { sizedChunks } from "./transfer_source.ts";
import type { TransferSource } from "./types.ts";

/** Datagram types. */
export const RawType = {
  /** A chunk of the transfer's bytes. */
  DATA: 1,
  /** The sender has sent every chunk. */
  END: 2,
  /** The receiver's answer to a transfer. */
  REPLY: 3,
} as const;

/** One of the values of {@linkcode RawType}. */
export type RawTypeCode = typeof RawType[keyof typeof RawType];

/** Size of the fixed datagram header. */
export const RAW_HEADER_SIZE = 32;
/** Largest `meta` in bytes. */
export const MAX_RAW_META = 512;
/** Default bytes per DATA datagram (fits a 1500-byte MTU with the header). */
export const DEFAULT_RAW_CHUNK = 1024;
/**
 * Smallest chunk size: a transfer of tiny chunks would let few small
 * datagrams reach far into a file (and its receiver's bookkeeping).
 */
export const MIN_RAW_CHUNK = 256;
/** Largest UDP payload over IPv4. */
const MAX_DATAGRAM = 65507;
const VERSION = 1;
const MAGIC_0 = 0x52; // "R"
const MAGIC_1 = 0x55; // "U"
const ZERO_CRC_FIELD = new Uint8Array(4);
/** Default grace period after an END with chunks missing, in ms. */
export const DEFAULT_END_GRACE_MS = 100;
/** Streams whose last transfer number the receiver remembers. */
const MAX_REMEMBERED_STREAMS = 256;

/** A decoded raw datagram. */
export interface RawDatagram {
  /** The datagram type. */
  type: RawTypeCode;
  /** The sender's stream id. */
  stream: number;
  /** The transfer number within the stream. */
  seq: number;
  /** The transfer size in bytes (0 for REPLY). */
  size: number;
  /** DATA: chunk number; END: number of chunks. */
  index: number;
  /** The sender's chunk size (0 for REPLY). */
  chunk: number;
  /** The metadata (a view into the datagram). */
  meta: Uint8Array;
  /** The payload (a view into the datagram). */
  payload: Uint8Array;
}

/** A datagram that is not a valid raw datagram (wrong magic, length, CRC…). */
export class RawDatagramError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong with the datagram.
   */
  constructor(message: string) {
    super(message);
    this.name = "RawDatagramError";
  }
}

/**
 * Number of DATA datagrams of a transfer.
 *
 * @param size The transfer size.
 * @param chunk The chunk size (at least 1).
 * @returns `ceil(size / chunk)`.
 */
export function rawChunkCount(size: number, chunk: number): number {
  return Math.ceil(size / chunk);
}

/**
 * Encodes one datagram.
 *
 * @example
 * ```ts
 * import { decodeRawDatagram, encodeRawDatagram, RawType } from "./udp_raw.ts";
 * import { equal } from "node:assert/strict";
 * const bytes = encodeRawDatagram({
 *   type: RawType.DATA, stream: 9, seq: 1, size: 3, index: 0, chunk: 1024,
 *   meta: new Uint8Array(0), payload: new Uint8Array([1, 2, 3]),
 * });
 * equal(decodeRawDatagram(bytes).payload.length, 3);
 * ```
 *
 * @param datagram The fields.
 * @returns The datagram bytes.
 * @throws {RangeError} When a field is out of range or the datagram would
 *   not fit one UDP datagram.
 */
export function encodeRawDatagram(datagram: RawDatagram): Uint8Array {
  const { meta, payload } = datagram;
  if (meta.length > MAX_RAW_META) {
    throw new RangeError(`raw meta of ${meta.length} bytes is too large`);
  }
  const length = RAW_HEADER_SIZE + meta.length + payload.length;
  if (length > MAX_DATAGRAM) {
    throw new RangeError(`raw datagram of ${length} bytes is too large`);
  }
  if (!Number.isSafeInteger(datagram.size) || datagram.size < 0) {
    throw new RangeError(`raw transfer size ${datagram.size} is out of range`);
  }
  const bytes = new Uint8Array(length);
  const view = new DataView(bytes.buffer);
  bytes[0] = MAGIC_0;
  bytes[1] = MAGIC_1;
  bytes[2] = VERSION;
  bytes[3] = datagram.type;
  view.setUint32(4, datagram.stream >>> 0);
  view.setUint32(8, datagram.seq >>> 0);
  view.setBigUint64(12, BigInt(datagram.size));
  view.setUint32(20, datagram.index >>> 0);
  view.setUint16(24, datagram.chunk);
  view.setUint16(26, meta.length);
  bytes.set(meta, RAW_HEADER_SIZE);
  bytes.set(payload, RAW_HEADER_SIZE + meta.length);
  view.setUint32(28, crc32(bytes));
  return bytes;
}

/**
 * Decodes one datagram and checks that it is self-consistent (CRC, lengths,
 * DATA payload size matching its index).
 *
 * @param bytes The datagram.
 * @returns The datagram; `meta` and `payload` are views into `bytes`.
 * @throws {RawDatagramError} When the datagram is not valid.
 */
export function decodeRawDatagram(bytes: Uint8Array): RawDatagram {
  if (bytes.length < RAW_HEADER_SIZE) {
    throw new RawDatagramError(
      `datagram of ${bytes.length} bytes is too short`,
    );
  }
  if (bytes[0] !== MAGIC_0 || bytes[1] !== MAGIC_1) {
    throw new RawDatagramError("bad magic");
  }
  if (bytes[2] !== VERSION) {
    throw new RawDatagramError(`unsupported version ${bytes[2]}`);
  }
  const type = bytes[3];
  if (type < RawType.DATA || type > RawType.REPLY) {
    throw new RawDatagramError(`unknown datagram type ${type}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const metaLength = view.getUint16(26);
  if (
    metaLength > MAX_RAW_META || RAW_HEADER_SIZE + metaLength > bytes.length
  ) {
    throw new RawDatagramError(`bad meta length ${metaLength}`);
  }
  let actual = crc32(bytes.subarray(0, 28));
  actual = crc32(ZERO_CRC_FIELD, actual);
  actual = crc32(bytes.subarray(RAW_HEADER_SIZE), actual);
  if (actual !== view.getUint32(28)) {
    throw new RawDatagramError("checksum mismatch");
  }
  const bigSize = view.getBigUint64(12);
  if (bigSize > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new RawDatagramError("size out of range");
  }
  const size = Number(bigSize);
  const index = view.getUint32(20);
  const chunk = view.getUint16(24);
  const payload = bytes.subarray(RAW_HEADER_SIZE + metaLength);
  if (type === RawType.DATA) {
    if (chunk < MIN_RAW_CHUNK) {
      throw new RawDatagramError(
        `chunk size ${chunk} is under ${MIN_RAW_CHUNK}`,
      );
    }
    const offset = index * chunk;
    if (offset >= size) throw new RawDatagramError("chunk index out of range");
    if (payload.length !== Math.min(chunk, size - offset)) {
      throw new RawDatagramError("chunk length does not match its index");
    }
  } else if (type === RawType.END && payload.length !== 0) {
    throw new RawDatagramError("END with a payload");
  }
  return {
    type: type as RawTypeCode,
    stream: view.getUint32(4),
    seq: view.getUint32(8),
    size,
    index,
    chunk,
    meta: bytes.subarray(RAW_HEADER_SIZE, RAW_HEADER_SIZE + metaLength),
    payload,
  };
}

/**
 * A fresh random stream id for a sender's run.
 *
 * @returns A random u32.
 */
export function randomStreamId(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * A set of chunk numbers, allocated in pages as chunks arrive: small pages,
 * so that a datagram far from the others costs about its own size.
 */
class ChunkSet {
  static readonly #PAGE_BITS = 1 << 10;
  readonly #pages = new Map<number, Uint8Array>();
  size = 0;

  /** Adds `index`; returns false when it was there already. */
  add(index: number): boolean {
    const pageNo = Math.floor(index / ChunkSet.#PAGE_BITS);
    let page = this.#pages.get(pageNo);
    if (!page) {
      page = new Uint8Array(ChunkSet.#PAGE_BITS / 8);
      this.#pages.set(pageNo, page);
    }
    const bit = index % ChunkSet.#PAGE_BITS;
    const mask = 1 << (bit & 7);
    if (page[bit >> 3] & mask) return false;
    page[bit >> 3] |= mask;
    this.size++;
    return true;
  }
}

/** Why a raw transfer ended. */
export type RawEndReason =
  | "complete"
  | "end"
  | "idle"
  | "superseded"
  | "closed";

/** One chunk of an incoming raw transfer. */
export interface RawChunk {
  /** Where the bytes belong in the transfer. */
  offset: number;
  /** The bytes (a copy owned by the caller). */
  bytes: Uint8Array;
}

/** Counters of a {@linkcode UdpRawReceiver}. */
export interface RawReceiverStats {
  /** Datagrams read from the socket. */
  datagrams: number;
  /** Datagrams that failed to decode or did not fit their transfer. */
  invalid: number;
  /** Datagrams of transfers that had already ended. */
  late: number;
  /** Datagrams of other streams than the one asked for. */
  foreign: number;
  /** DATA datagrams received twice. */
  duplicates: number;
}

/** A valid datagram as read from the socket. */
export interface RawArrival {
  /** The decoded datagram. */
  datagram: RawDatagram;
  /** Where it came from. */
  from: Deno.NetAddr;
  /** `performance.now()` when it was read. */
  at: number;
}

/**
 * An incoming raw transfer: iterate {@linkcode RawIncomingTransfer.chunks}
 * once to receive its chunks as they arrive (in arrival order, each once);
 * the iteration ends when the transfer ends, for the reason then given in
 * {@linkcode RawIncomingTransfer.endReason}.
 */
export class RawIncomingTransfer {
  /** The sender's stream id. */
  readonly stream: number;
  /** The transfer number within the stream. */
  readonly seq: number;
  /** The announced size. */
  readonly size: number;
  /** The sender's chunk size. */
  readonly chunk: number;
  /** The sender's metadata. */
  readonly meta: Uint8Array;
  /** Where the first datagram came from (replies go there). */
  readonly from: Deno.NetAddr;
  /** `performance.now()` when the first datagram was read. */
  readonly startedAt: number;
  #receiver: UdpRawReceiver;
  #first?: RawDatagram;
  #chunks = new ChunkSet();
  #chunkCount: number;
  #received = 0;
  #endReason?: RawEndReason;
  #endSeen = false;
  #iterated = false;

  /**
   * Creates the transfer; {@linkcode UdpRawReceiver.receive} does this.
   *
   * @param receiver The receiver that reads the datagrams.
   * @param first The first datagram seen of the transfer.
   */
  constructor(receiver: UdpRawReceiver, first: RawArrival) {
    const datagram = first.datagram;
    this.stream = datagram.stream;
    this.seq = datagram.seq;
    this.size = datagram.size;
    this.chunk = datagram.chunk;
    this.meta = datagram.meta.slice();
    this.from = first.from;
    this.startedAt = first.at;
    this.#receiver = receiver;
    this.#first = datagram;
    this.#chunkCount = datagram.chunk === 0
      ? (datagram.size === 0 ? 0 : Infinity)
      : rawChunkCount(datagram.size, datagram.chunk);
  }

  /** File bytes received so far (each chunk counted once). */
  get received(): number {
    return this.#received;
  }

  /** Whether every byte arrived. */
  get complete(): boolean {
    return this.#received === this.size;
  }

  /** Why the transfer ended (`undefined` while it runs). */
  get endReason(): RawEndReason | undefined {
    return this.#endReason;
  }

  /**
   * Yields the chunks as they arrive until the transfer ends.
   *
   * @returns The chunks.
   * @throws {Error} When called a second time.
   */
  async *chunks(): AsyncGenerator<RawChunk> {
    if (this.#iterated) throw new Error("Cannot iterate a raw transfer twice");
    this.#iterated = true;
    const receiver = this.#receiver;
    const wait = () =>
      this.#endSeen ? receiver.endGraceMs : receiver.idleTimeoutMs;
    if (this.#chunkCount === 0) this.#endReason = "complete";
    const first = this.#first;
    this.#first = undefined;
    if (first && !this.#endReason) {
      const chunk = this.#accept(first);
      if (chunk) yield chunk;
    }
    let deadline = performance.now() + wait();
    while (!this.#endReason) {
      let arrival: RawArrival | undefined;
      try {
        arrival = await receiver.nextArrival(deadline - performance.now());
      } catch (error) {
        if (receiver.closed) {
          this.#endReason = "closed";
          return;
        }
        throw error;
      }
      if (!arrival) {
        this.#endReason = this.#endSeen ? "end" : "idle";
        return;
      }
      const { datagram } = arrival;
      if (datagram.type === RawType.REPLY) {
        receiver.stats.invalid++;
        continue;
      }
      if (datagram.stream !== this.stream) {
        receiver.stats.foreign++;
        continue;
      }
      if (datagram.seq < this.seq) {
        receiver.stats.late++;
        continue;
      }
      if (datagram.seq > this.seq) {
        receiver.putBack(arrival);
        this.#endReason = "superseded";
        return;
      }
      if (
        datagram.size !== this.size || datagram.chunk !== this.chunk ||
        !sameBytes(datagram.meta, this.meta)
      ) {
        receiver.stats.invalid++;
        continue;
      }
      const wasEnd = this.#endSeen;
      const chunk = this.#accept(datagram);
      if (chunk) yield chunk;
      if (chunk || this.#endSeen !== wasEnd) {
        deadline = performance.now() + wait();
      }
    }
  }

  /** Takes one datagram of this transfer; returns a new chunk, if any. */
  #accept(datagram: RawDatagram): RawChunk | undefined {
    if (datagram.type === RawType.END) {
      // Chunks may be reordered behind END: wait the grace period for them.
      if (this.complete) this.#endReason = "complete";
      else if (this.#endSeen) this.#receiver.stats.duplicates++;
      this.#endSeen = true;
      return undefined;
    }
    if (!this.#chunks.add(datagram.index)) {
      this.#receiver.stats.duplicates++;
      return undefined;
    }
    this.#received += datagram.payload.length;
    if (this.#chunks.size === this.#chunkCount) this.#endReason = "complete";
    return {
      offset: datagram.index * datagram.chunk,
      bytes: datagram.payload,
    };
  }
}

/** Options of {@linkcode UdpRawReceiver}. */
export interface UdpRawReceiverOptions {
  /** The interface to bind; default `0.0.0.0`. */
  hostname?: string;
  /** The UDP port; 0 picks a free one. */
  port: number;
  /** A transfer ends after this long without a datagram of it (default 1000). */
  idleTimeoutMs?: number;
  /**
   * After END, with chunks missing, a transfer ends after this long without
   * a datagram of it (default {@linkcode DEFAULT_END_GRACE_MS}, at most the
   * idle timeout).
   */
  endGraceMs?: number;
}

/** Options of {@linkcode UdpRawReceiver.receive}. */
export interface RawReceiveOptions {
  /** Only accept transfers of this stream (others are counted `foreign`). */
  stream?: number;
  /** Give up after this long without a new transfer (default: wait forever). */
  timeoutMs?: number;
  /** Stops waiting. */
  signal?: AbortSignal;
}

/**
 * Receives raw transfers on one UDP port, one at a time.
 *
 * @example
 * ```ts
 * import { sendRawTransfer, UdpRawReceiver } from "./udp_raw.ts";
 * import { equal } from "node:assert/strict";
 *
 * await using receiver = new UdpRawReceiver({ hostname: "127.0.0.1", port: 0 });
 * const sending = sendRawTransfer({
 *   hostname: "127.0.0.1", port: receiver.addr.port, stream: 1, seq: 1,
 *   size: 5, source: new TextEncoder().encode("hello"), replyTimeoutMs: 0,
 * });
 * const transfer = await receiver.receive({ timeoutMs: 5000 });
 * let bytes = 0;
 * for await (const chunk of transfer!.chunks()) bytes += chunk.bytes.length;
 * await sending;
 * equal(bytes, 5);
 * ```
 */
export class UdpRawReceiver implements AsyncDisposable {
  /** Counters, for diagnostics and tests. */
  readonly stats: RawReceiverStats = {
    datagrams: 0,
    invalid: 0,
    late: 0,
    foreign: 0,
    duplicates: 0,
  };
  /** The idle timeout of a transfer in ms. */
  readonly idleTimeoutMs: number;
  /** The grace period after END with chunks missing, in ms. */
  readonly endGraceMs: number;
  #socket: Deno.DatagramConn;
  #buffer = new Uint8Array(MAX_DATAGRAM + 1);
  #inflight?: Promise<{ bytes: Uint8Array; from: Deno.NetAddr }>;
  #pending?: RawArrival;
  #lastSeq = new Map<number, number>();
  #closed = false;

  /**
   * Binds the UDP port.
   *
   * @param options Where to listen and the idle timeout.
   */
  constructor(options: UdpRawReceiverOptions) {
    this.idleTimeoutMs = options.idleTimeoutMs ?? 1000;
    if (!(this.idleTimeoutMs > 0)) {
      throw new RangeError("idle timeout must be positive");
    }
    this.endGraceMs = Math.min(
      this.idleTimeoutMs,
      options.endGraceMs ?? DEFAULT_END_GRACE_MS,
    );
    this.#socket = Deno.listenDatagram({
      transport: "udp",
      hostname: options.hostname ?? "0.0.0.0",
      port: options.port,
    });
  }

  /** The bound address. */
  get addr(): Deno.NetAddr {
    return this.#socket.addr as Deno.NetAddr;
  }

  /** Whether {@linkcode UdpRawReceiver.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Waits for the first datagram of a new transfer. Datagrams of transfers
   * that already started are dropped as `late`.
   *
   * @param options Stream filter, timeout, cancellation.
   * @returns The transfer, or `undefined` when the timeout passed first.
   */
  async receive(
    options: RawReceiveOptions = {},
  ): Promise<RawIncomingTransfer | undefined> {
    const deadline = options.timeoutMs === undefined
      ? undefined
      : performance.now() + options.timeoutMs;
    while (true) {
      let arrival = this.#pending;
      this.#pending = undefined;
      if (!arrival) {
        arrival = await this.nextArrival(
          deadline === undefined ? undefined : deadline - performance.now(),
          options.signal,
        );
        if (!arrival) return undefined;
      }
      const { datagram } = arrival;
      if (datagram.type === RawType.REPLY) {
        this.stats.invalid++;
        continue;
      }
      if (options.stream !== undefined && datagram.stream !== options.stream) {
        this.stats.foreign++;
        continue;
      }
      const last = this.#lastSeq.get(datagram.stream);
      if (last !== undefined && datagram.seq <= last) {
        this.stats.late++;
        continue;
      }
      this.#lastSeq.delete(datagram.stream);
      this.#lastSeq.set(datagram.stream, datagram.seq);
      if (this.#lastSeq.size > MAX_REMEMBERED_STREAMS) {
        const oldest = this.#lastSeq.keys().next().value;
        if (oldest !== undefined) this.#lastSeq.delete(oldest);
      }
      return new RawIncomingTransfer(this, arrival);
    }
  }

  /**
   * Sends a REPLY for `transfer` to the address it came from. Failures
   * behave like loss (raw UDP promises nothing).
   *
   * @param transfer The transfer answered.
   * @param payload The reply bytes.
   */
  async reply(
    transfer: RawIncomingTransfer,
    payload: Uint8Array,
  ): Promise<void> {
    if (this.#closed) return;
    const bytes = encodeRawDatagram({
      type: RawType.REPLY,
      stream: transfer.stream,
      seq: transfer.seq,
      size: 0,
      index: 0,
      chunk: 0,
      meta: new Uint8Array(0),
      payload,
    });
    try {
      await this.#socket.send(bytes, transfer.from);
    } catch {
      // An unreachable sender is the same as a lost reply.
    }
  }

  /**
   * Reads the next valid datagram (invalid ones are counted and skipped).
   * Used by {@linkcode RawIncomingTransfer}.
   *
   * @param timeoutMs How long to wait; `undefined` waits forever.
   * @param signal Stops waiting.
   * @returns The datagram, or `undefined` on timeout.
   */
  async nextArrival(
    timeoutMs?: number,
    signal?: AbortSignal,
  ): Promise<RawArrival | undefined> {
    const deadline = timeoutMs === undefined
      ? undefined
      : performance.now() + timeoutMs;
    while (true) {
      const raw = await this.#nextDatagram(
        deadline === undefined ? undefined : deadline - performance.now(),
        signal,
      );
      if (!raw) return undefined;
      this.stats.datagrams++;
      try {
        const datagram = decodeRawDatagram(raw.bytes);
        return { datagram, from: raw.from, at: performance.now() };
      } catch (error) {
        if (!(error instanceof RawDatagramError)) throw error;
        this.stats.invalid++;
      }
    }
  }

  /**
   * Keeps `arrival` for the next {@linkcode UdpRawReceiver.receive} (a
   * datagram that began a later transfer).
   *
   * @param arrival The datagram.
   */
  putBack(arrival: RawArrival): void {
    this.#pending = arrival;
  }

  async #nextDatagram(
    timeoutMs: number | undefined,
    signal?: AbortSignal,
  ): Promise<{ bytes: Uint8Array; from: Deno.NetAddr } | undefined> {
    if (this.#closed) throw new Deno.errors.BadResource("receiver closed");
    signal?.throwIfAborted();
    if (!this.#inflight) {
      const inflight = this.#socket.receive(this.#buffer).then((
        [view, from],
      ) => ({ bytes: view.slice(), from: from as Deno.NetAddr }));
      inflight.catch(() => {}); // settled by close(); awaited below
      this.#inflight = inflight;
    }
    const inflight = this.#inflight;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    const stop = new Promise<undefined>((resolve, reject) => {
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => resolve(undefined), Math.max(0, timeoutMs));
      }
      if (signal) {
        onAbort = () => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
      }
    });
    try {
      const result = await Promise.race([inflight, stop]);
      if (result) this.#inflight = undefined;
      return result;
    } catch (error) {
      if (this.#inflight === inflight && !signal?.aborted) {
        this.#inflight = undefined;
      }
      throw error;
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Closes the socket (idempotent); a pending wait rejects. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#socket.close();
    } catch {
      // already closed
    }
  }

  /** Closes the socket and waits for the pending read to settle. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#inflight?.catch(() => {});
  }
}

/** Options of {@linkcode sendRawTransfer}. */
export interface RawSendOptions {
  /** The receiver's address (an IP address). */
  hostname: string;
  /** The receiver's port. */
  port: number;
  /** The sender's stream id (see {@linkcode randomStreamId}). */
  stream: number;
  /** The transfer number within the stream (from 1). */
  seq: number;
  /** Metadata repeated in every datagram (at most {@linkcode MAX_RAW_META}). */
  meta?: Uint8Array;
  /** The transfer size. */
  size: number;
  /** The bytes. */
  source: TransferSource;
  /** Bytes per DATA datagram (default {@linkcode DEFAULT_RAW_CHUNK}). */
  chunk?: number;
  /** How long to wait for the REPLY after END; 0 does not wait. */
  replyTimeoutMs: number;
  /** Aborts sending or waiting. */
  signal?: AbortSignal;
  /** Called once END is sent, before waiting for the reply. */
  onSent?: () => void;
}

/** What {@linkcode sendRawTransfer} did. */
export interface RawSendResult {
  /** The REPLY payload, or `undefined` when none arrived in time. */
  reply?: Uint8Array;
  /** Datagrams sent (DATA and END). */
  datagrams: number;
  /** Datagrams the socket refused to send (these count as lost). */
  sendErrors: number;
}

/**
 * Sends one raw transfer from a new UDP socket (a new "session"): DATA
 * datagrams back to back, then END, then waits up to
 * {@linkcode RawSendOptions.replyTimeoutMs} for the REPLY, then closes the
 * socket. Nothing is retransmitted.
 *
 * @param options Where to, what, and how long to wait for the reply.
 * @returns The reply (if any) and counters.
 * @throws {TransferSizeError} When the source does not yield exactly `size`
 *   bytes.
 */
export async function sendRawTransfer(
  options: RawSendOptions,
): Promise<RawSendResult> {
  const chunk = options.chunk ?? DEFAULT_RAW_CHUNK;
  const meta = options.meta ?? new Uint8Array(0);
  if (!Number.isInteger(chunk) || chunk < MIN_RAW_CHUNK || chunk > 0xffff) {
    throw new RangeError(`raw chunk size ${chunk} is out of range`);
  }
  if (RAW_HEADER_SIZE + meta.length + chunk > MAX_DATAGRAM) {
    throw new RangeError(`raw chunk size ${chunk} does not fit a datagram`);
  }
  const socket = Deno.listenDatagram({
    transport: "udp",
    hostname: options.hostname.includes(":") ? "::" : "0.0.0.0",
    port: 0,
  });
  const to: Deno.NetAddr = {
    transport: "udp",
    hostname: options.hostname,
    port: options.port,
  };
  const result: RawSendResult = { datagrams: 0, sendErrors: 0 };
  const emit = async (
    type: RawTypeCode,
    index: number,
    payload: Uint8Array,
  ) => {
    options.signal?.throwIfAborted();
    const bytes = encodeRawDatagram({
      type,
      stream: options.stream,
      seq: options.seq,
      size: options.size,
      index,
      chunk,
      meta,
      payload,
    });
    result.datagrams++;
    try {
      await socket.send(bytes, to);
    } catch {
      result.sendErrors++;
    }
  };
  let inflight: Promise<unknown> | undefined;
  try {
    let index = 0;
    const carry = new Uint8Array(chunk);
    let fill = 0;
    for await (const piece of sizedChunks(options.source, options.size)) {
      let offset = 0;
      while (offset < piece.length) {
        if (fill === 0 && piece.length - offset >= chunk) {
          await emit(
            RawType.DATA,
            index++,
            piece.subarray(offset, offset + chunk),
          );
          offset += chunk;
          continue;
        }
        const n = Math.min(chunk - fill, piece.length - offset);
        carry.set(piece.subarray(offset, offset + n), fill);
        fill += n;
        offset += n;
        if (fill === chunk) {
          await emit(RawType.DATA, index++, carry);
          fill = 0;
        }
      }
    }
    if (fill > 0) await emit(RawType.DATA, index++, carry.subarray(0, fill));
    await emit(RawType.END, index, new Uint8Array(0));
    options.onSent?.();
    if (options.replyTimeoutMs > 0) {
      const deadline = performance.now() + options.replyTimeoutMs;
      const buffer = new Uint8Array(MAX_DATAGRAM + 1);
      while (result.reply === undefined) {
        const left = deadline - performance.now();
        if (left <= 0) break;
        let timer: ReturnType<typeof setTimeout> | undefined;
        let onAbort: (() => void) | undefined;
        inflight ??= socket.receive(buffer);
        const current = inflight;
        current.catch(() => {});
        const stop = new Promise<undefined>((resolve, reject) => {
          timer = setTimeout(() => resolve(undefined), left);
          if (options.signal) {
            onAbort = () => reject(options.signal?.reason);
            options.signal.addEventListener("abort", onAbort, { once: true });
          }
        });
        let got: [Uint8Array, Deno.Addr] | undefined;
        try {
          got = await Promise.race([
            current as Promise<[Uint8Array, Deno.Addr]>,
            stop,
          ]);
        } finally {
          clearTimeout(timer);
          if (onAbort) options.signal?.removeEventListener("abort", onAbort);
        }
        if (!got) break;
        inflight = undefined;
        try {
          const reply = decodeRawDatagram(got[0]);
          if (
            reply.type === RawType.REPLY && reply.stream === options.stream &&
            reply.seq === options.seq
          ) {
            result.reply = reply.payload.slice();
          }
        } catch (error) {
          if (!(error instanceof RawDatagramError)) throw error;
        }
      }
    }
    return result;
  } finally {
    try {
      socket.close();
    } catch {
      // already closed
    }
    await inflight?.catch(() => {});
  }
}
