/**
 * The `snw` transport: stop-and-wait reliability over UDP.
 *
 * As the seed describes it, a transfer is a `LEN:<bytes>` message, then
 * chunks of {@linkcode SnwOptions.chunkSize} bytes (1000 by default), each
 * acknowledged by a message containing `ACK` before the next is sent; the
 * receiver answers the last chunk with `FIN` instead. Unlike the toy
 * versions it is really reliable:
 *
 * - every packet carries a session id, a 64-bit sequence number (no wrap at
 *   65 535 blocks) and a CRC-32 (see `snw_packet.ts`); corrupt datagrams are
 *   dropped as if lost;
 * - the sender retransmits on a timeout estimated after RFC 6298 (Karn's
 *   algorithm, exponential backoff, see `rto.ts`);
 * - the receiver delivers each seq once, re-answers duplicates and ignores
 *   anything out of order, so duplication and reordering are harmless;
 * - many sessions share one UDP port, told apart by peer address and
 *   session id;
 * - a slow reader is not overrun: payloads that arrive between its reads
 *   wait in one reused buffer, and while more than
 *   {@linkcode SnwOptions.receiveBufferBytes} wait unread, the receiver holds
 *   its ACK back (flow control by stop-and-wait itself).
 *
 * It gives up only when the peer makes no progress for
 * {@linkcode SnwOptions.timeoutMs} (default 1 s), failing the operation with
 * a {@linkcode TransferTimeoutError} whose message is exactly one of
 * {@linkcode SNW_GIVE_UP} (for an unanswered `OPEN`, followed by where it
 * went).
 *
 * @module
 */

import { abortable } from "./abortable.ts";
import {
  BATCHED_STREAM_CHUNK_BYTES,
  ByteStreamBatcher,
} from "./byte_stream_batcher.ts";
import { ConnectionLostError, TransferTimeoutError } from "./errors.ts";
import { RtoEstimator, type RtoOptions } from "./rto.ts";
import {
  decodeLenPayload,
  decodeSnwPacket,
  encodeLenPayload,
  encodeSnwPacket,
  HEADER_SIZE,
  isSnwDataPacket,
  MAX_PAYLOAD,
  MAX_TAG_BYTES,
  SNW_WORDS,
  type SnwPacket,
  SnwType,
} from "./snw_packet.ts";
import { SnwSender, type SnwSenderInit, type Transmit } from "./snw_sender.ts";
import { sizedChunks } from "./transfer_source.ts";
import type {
  ChannelAcceptor,
  ConnectOptions,
  IncomingTransfer,
  ListenOptions,
  ReceiveOptions,
  SendOptions,
  TransferSource,
  Transport,
  TransportConn,
  TransportListener,
} from "./types.ts";

/** The exact lines of SPEC §6 with which SNW gives up. */
export const SNW_GIVE_UP = {
  /** Receiver: nothing arrived after `LEN`. */
  noData: "Did not receive data. Terminating.",
  /** Sender: no `ACK` (or `FIN`) for the timeout. */
  noAck: "Did not receive ACK. Terminating.",
  /** Receiver: nothing more arrived after an `ACK`. */
  premature: "Data transmission terminated prematurely.",
} as const;

/** Tuning of the `snw` transport. */
export interface SnwOptions {
  /** Bytes of file data per DATA packet (default 1000, at most 65485). */
  chunkSize?: number;
  /** Give up after this long without progress, in ms (default 1000). */
  timeoutMs?: number;
  /** Unread bytes buffered per transfer before ACKs are held (default 1 MiB). */
  receiveBufferBytes?: number;
  /** Retransmission timeout bounds. */
  rto?: RtoOptions;
  /**
   * Prints a give-up line (one of {@linkcode SNW_GIVE_UP}); by default it
   * goes to stderr, as SPEC §6 asks.
   */
  reportGiveUp?: (line: string) => void;
}

interface ResolvedOptions {
  chunkSize: number;
  timeoutMs: number;
  receiveBufferBytes: number;
  rto: RtoOptions;
  reportGiveUp: (line: string) => void;
}

/**
 * Writes a give-up line to stderr (the default reporter).
 *
 * @param line The line, without newline.
 */
export function giveUpToStderr(line: string): void {
  try {
    Deno.stderr.writeSync(new TextEncoder().encode(`${line}\n`));
  } catch {
    // stderr closed: the typed error still tells the caller.
  }
}

/** Bytes of file data per DATA packet when no chunk size is given. */
export const SNW_DEFAULT_CHUNK_SIZE = 1000;

function resolveOptions(options: SnwOptions): ResolvedOptions {
  const chunkSize = options.chunkSize ?? SNW_DEFAULT_CHUNK_SIZE;
  if (
    !Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > MAX_PAYLOAD
  ) {
    throw new RangeError(`SNW chunk size must be 1..${MAX_PAYLOAD}`);
  }
  const timeoutMs = options.timeoutMs ?? 1000;
  if (!(timeoutMs > 0)) throw new RangeError("SNW timeout must be positive");
  return {
    chunkSize,
    timeoutMs,
    receiveBufferBytes: options.receiveBufferBytes ?? 1024 * 1024,
    rto: options.rto ?? {},
    reportGiveUp: options.reportGiveUp ?? giveUpToStderr,
  };
}

const tagEncoder = new TextEncoder();
const tagDecoder = new TextDecoder();

interface TransferWaiter {
  resolve: (transfer: IncomingTransfer) => void;
  reject: (error: Error) => void;
}

interface IncomingState {
  remaining: number;
  dataPackets: number;
  lastProgress: number;
  batcher: ByteStreamBatcher;
}

/**
 * One SNW session: a {@linkcode TransportConn} over UDP.
 *
 * @example
 * ```ts ignore
 * const conn = await snwTransport.connect({ hostname: "127.0.0.1", port });
 * await conn.send(5, new TextEncoder().encode("hello"));
 * await conn[Symbol.asyncDispose]();
 * ```
 */
export class SnwConn implements TransportConn {
  /** The local UDP address. */
  readonly localAddr: Deno.NetAddr;
  /** The peer's UDP address. */
  readonly remoteAddr: Deno.NetAddr;
  /** The session id. */
  readonly session: number;
  readonly #options: ResolvedOptions;
  readonly #transmit: Transmit;
  readonly #onClosed: (
    conn: SnwConn,
    closing: Promise<void>,
  ) => Promise<void>;
  readonly #rto: RtoEstimator;

  // Sender side.
  #nextSeq = 1;
  #sendChain: Promise<void> = Promise.resolve();
  /** Sends the OPEN, or the transfer being sent. */
  #sender?: SnwSender;

  // Receiver side.
  #expected = 1;
  #lastFinSeq = -1;
  #heldSeq = -1;
  #incoming?: IncomingState;
  /** The ACK of seq `#nextAckSeq`, encoded ahead for the fast path. */
  #nextAck?: Uint8Array;
  #nextAckSeq = -1;
  #watchdog?: ReturnType<typeof setInterval>;
  /**
   * A `LEN` that may not start yet: answered `WAIT` until it may (see
   * {@linkcode SnwConn.#mayStart}), so a peer cannot queue transfers nobody
   * reads.
   */
  #heldLen?: { size: number; seq: number };
  /** A transfer that started before a `receive()` asked for it (one at most). */
  #ahead?: IncomingTransfer;
  #receivers: TransferWaiter[] = [];
  /** Handed to the application (an accepted or claimed session). */
  #claimed: boolean;

  #closed = false;
  #peerClosed = false;
  #closing: Promise<void> = Promise.resolve();

  /**
   * Creates a session; use {@linkcode createSnwTransport} instead.
   *
   * @param init Addresses, session id, options and the endpoint's hooks.
   */
  constructor(init: {
    localAddr: Deno.NetAddr;
    remoteAddr: Deno.NetAddr;
    session: number;
    options: ResolvedOptions;
    transmit: Transmit;
    onClosed: (conn: SnwConn, closing: Promise<void>) => Promise<void>;
    /** Not yet handed to the application (a listener's session). */
    unclaimed?: boolean;
  }) {
    this.#claimed = !init.unclaimed;
    this.localAddr = init.localAddr;
    this.remoteAddr = init.remoteAddr;
    this.session = init.session;
    this.#options = init.options;
    this.#transmit = init.transmit;
    this.#onClosed = init.onClosed;
    this.#rto = new RtoEstimator(init.options.rto);
  }

  /** The highest seq of the peer's packets delivered here. */
  get deliveredSeq(): number {
    return this.#expected - 1;
  }

  /** The current retransmission timeout in ms (for diagnostics). */
  get rto(): number {
    return this.#rto.rto;
  }

  /**
   * Sends one transfer: LEN, then DATA chunks, each acknowledged.
   *
   * @param size The announced size.
   * @param source The bytes.
   * @param options Cancellation, progress.
   * @returns Resolves when the receiver's FIN arrived.
   */
  send(
    size: number,
    source: TransferSource,
    options: SendOptions = {},
  ): Promise<void> {
    const run = this.#sendChain.then(() =>
      this.#sendTransfer(size, source, options)
    );
    this.#sendChain = run.catch(() => {});
    return run;
  }

  async #sendTransfer(
    size: number,
    source: TransferSource,
    options: SendOptions,
  ): Promise<void> {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new RangeError(`invalid transfer size ${size}`);
    }
    const seq = this.#nextSeq++;
    await this.#run({
      first: {
        datagram: encodeSnwPacket(
          SnwType.LEN,
          this.session,
          seq,
          encodeLenPayload(size),
        ),
        seq,
      },
      firstSeq: this.#nextSeq,
      size,
      chunks: sizedChunks(source, size),
      onProgress: options.onProgress,
    }, options.signal);
  }

  /**
   * Opens the session (connector side): OPEN with the tag until its ACK.
   *
   * @param tag The channel tag ("" for standalone sessions).
   * @param signal Cancellation.
   */
  async open(tag: string, signal?: AbortSignal): Promise<void> {
    const payload = tagEncoder.encode(tag);
    if (payload.length > MAX_TAG_BYTES) {
      throw new RangeError(`SNW tag longer than ${MAX_TAG_BYTES} bytes`);
    }
    await this.#run({
      first: {
        datagram: encodeSnwPacket(SnwType.OPEN, this.session, 0, payload),
        seq: 0,
      },
      firstSeq: this.#nextSeq,
      size: 0,
    }, signal);
  }

  /**
   * Sends `first` (and the data, if any) until all is answered; on failure
   * the session ends (the peer's view of the stream is then undefined).
   */
  async #run(
    init: Pick<
      SnwSenderInit,
      "first" | "firstSeq" | "size" | "chunks" | "onProgress"
    >,
    signal?: AbortSignal,
  ): Promise<void> {
    try {
      signal?.throwIfAborted();
      this.#assertUsable();
      const sender = new SnwSender({
        ...init,
        session: this.session,
        chunkSize: this.#options.chunkSize,
        timeoutMs: this.#options.timeoutMs,
        rto: this.#rto,
        transmit: this.#transmit,
        giveUp: () => {
          this.#options.reportGiveUp(SNW_GIVE_UP.noAck);
          return new TransferTimeoutError(SNW_GIVE_UP.noAck);
        },
      });
      const onAbort = () => {
        const reason: unknown = signal?.reason;
        sender.fail(
          reason instanceof Error ? reason : new Error(String(reason)),
        );
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#sender = sender;
      try {
        sender.start();
        await sender.done;
      } finally {
        this.#nextSeq = sender.nextSeq;
        this.#sender = undefined;
        signal?.removeEventListener("abort", onAbort);
      }
    } catch (error) {
      this.#fail(error instanceof Error ? error : new Error(String(error)));
      throw error;
    }
  }

  /**
   * Waits for the peer's next transfer (without a timeout: the peer may
   * start one whenever it likes; cancel with the signal).
   *
   * @param options Cancellation.
   * @returns The announced size and the byte stream.
   */
  receive(options: ReceiveOptions = {}): Promise<IncomingTransfer> {
    if (options.signal?.aborted) {
      // before anything is taken: no transfer may go to a waiter already gone
      return Promise.reject(options.signal.reason);
    }
    const ready = this.#ahead;
    this.#ahead = undefined;
    if (ready) {
      this.#takeHeldLen(); // the next one may start now
      return Promise.resolve(ready);
    }
    if (this.#closed || this.#peerClosed) {
      return Promise.reject(
        new ConnectionLostError("the SNW session is closed"),
      );
    }
    let entry!: TransferWaiter;
    const pending = new Promise<IncomingTransfer>((resolve, reject) => {
      entry = { resolve, reject };
      this.#receivers.push(entry);
    });
    this.#takeHeldLen();
    return abortable(pending, options.signal).catch((error) => {
      this.#receivers = this.#receivers.filter((r) => r !== entry);
      throw error;
    });
  }

  /**
   * Handles one packet of this session (called by the endpoint).
   *
   * @param packet The decoded packet.
   */
  deliver(packet: SnwPacket): void {
    if (this.#closed) return;
    switch (packet.type) {
      case SnwType.ACK:
      case SnwType.FIN: {
        this.#sender?.answer(packet.seq, packet.type === SnwType.FIN);
        return;
      }
      case SnwType.WAIT:
        this.#sender?.wait(packet.seq);
        return;
      case SnwType.LEN:
      case SnwType.DATA:
        return this.#onDataPacket(packet);
      case SnwType.OPEN:
        // A retransmitted OPEN: our ACK was lost.
        if (packet.seq === 0) this.#answer(SnwType.ACK, 0);
        return;
      case SnwType.CLOSE:
        return this.#onPeerClose(packet.seq);
    }
  }

  /**
   * The fast path for the datagram a running transfer waits for (called by
   * the endpoint before decoding): the `ACK` of the packet we sent, or the
   * next `DATA` packet of the transfer we receive, which is answered before
   * anything else is done with it. Stop-and-wait moves one packet per round
   * trip, so the time from a datagram's arrival to the answer's departure
   * is what bounds goodput.
   *
   * @param datagram A datagram from the session's peer.
   * @returns Whether it was handled; if not, decode it and {@linkcode deliver} it.
   */
  deliverExpected(datagram: Uint8Array): boolean {
    if (this.#sender?.answerDatagram(datagram)) return true;
    const incoming = this.#incoming;
    const length = datagram.length - HEADER_SIZE;
    const seq = this.#expected;
    if (
      incoming === undefined || this.#heldSeq >= 0 ||
      length >= incoming.remaining || // the last one is answered with FIN
      !incoming.batcher.takes(length) || // its ACK is held for the reader
      !isSnwDataPacket(datagram, this.session, seq)
    ) return false;
    void this.#transmit(
      this.#nextAckSeq === seq
        ? this.#nextAck!
        : encodeSnwPacket(SnwType.ACK, this.session, seq, SNW_WORDS.ACK),
    );
    this.#count(incoming, length);
    incoming.batcher.push(datagram.subarray(HEADER_SIZE));
    // A new datagram for each answer: a send still pending keeps its own.
    this.#nextAck = encodeSnwPacket(
      SnwType.ACK,
      this.session,
      seq + 1,
      SNW_WORDS.ACK,
    );
    this.#nextAckSeq = seq + 1;
    return true;
  }

  /** Counts the in-order DATA packet of `length` bytes as received. */
  #count(incoming: IncomingState, length: number): void {
    this.#expected++;
    incoming.remaining -= length;
    incoming.dataPackets++;
    incoming.lastProgress = performance.now();
  }

  #onDataPacket(packet: SnwPacket): void {
    const seq = packet.seq;
    if (seq < this.#expected) {
      // A duplicate: our answer was lost; or we hold it on purpose, and say
      // so, so that the sender does not give up on a slow reader.
      if (seq === this.#heldSeq) this.#answer(SnwType.WAIT, seq);
      else {
        this.#answer(seq === this.#lastFinSeq ? SnwType.FIN : SnwType.ACK, seq);
      }
      return;
    }
    if (seq > this.#expected) return; // impossible in stop-and-wait: ignore
    if (packet.type === SnwType.LEN) {
      let size: number;
      try {
        size = decodeLenPayload(packet.payload);
      } catch {
        return; // treat as corrupt: the sender retransmits
      }
      if (this.#incoming) return; // a LEN inside a transfer: not ours
      if (!this.#mayStart()) {
        this.#holdLen(size, seq);
        return;
      }
      this.#expected++;
      this.#startIncoming(size, seq);
      return;
    }
    const incoming = this.#incoming;
    if (!incoming) return; // DATA without LEN: ignore
    // Our ACK of the previous packet is held until the reader takes data:
    // a peer that sends on regardless is not answered (it sends again once
    // we answer), so the buffer bound holds against it too.
    if (this.#heldSeq >= 0) return;
    if (packet.payload.length > incoming.remaining) {
      this.#fail(
        new ConnectionLostError("the SNW peer sent more bytes than announced"),
      );
      return;
    }
    const length = packet.payload.length;
    this.#count(incoming, length);
    // The answer goes out before the payload is copied and queued: the
    // sender's next packet is then on its way while this one is handled.
    if (incoming.remaining === 0) {
      this.#finishIncoming(seq, packet.payload);
    } else if (incoming.batcher.takes(length)) {
      this.#answer(SnwType.ACK, seq);
      incoming.batcher.push(packet.payload);
    } else {
      // Held before the push: a read that the push completes can make the
      // stream call pull() for the next read at once, inside the push.
      this.#heldSeq = seq; // released by the stream's pull()
      incoming.batcher.push(packet.payload);
    }
  }

  #startIncoming(size: number, seq: number): void {
    let batcher!: ByteStreamBatcher;
    // A byte stream: a reader's buffer takes payloads straight from the
    // datagram, and payloads that arrive between reads wait in the
    // batcher's one reused buffer (no allocation per packet).
    const readable = new ReadableStream({
      type: "bytes",
      // A default reader's reads get a buffer of this size (no bigger than
      // the transfer: a 1 KiB copy must not cost 64 KiB per read).
      autoAllocateChunkSize: Math.max(
        1,
        Math.min(BATCHED_STREAM_CHUNK_BYTES, size),
      ),
      start: (controller) => {
        batcher = new ByteStreamBatcher(controller, {
          stageBytes: Math.min(this.#options.receiveBufferBytes, size),
        });
      },
      pull: () => {
        batcher.pull();
        this.#releaseHeld();
      },
      cancel: () => {
        this.#fail(new ConnectionLostError("the transfer was cancelled"));
      },
    }, { highWaterMark: 0 });
    const transfer: IncomingTransfer = { size, readable };
    const receiver = this.#receivers.shift();
    if (receiver) receiver.resolve(transfer);
    else this.#ahead = transfer; // one at most: see #mayStart
    if (size === 0) {
      batcher.close();
      this.#lastFinSeq = seq;
      this.#answer(SnwType.FIN, seq);
      return;
    }
    this.#incoming = {
      remaining: size,
      dataPackets: 0,
      lastProgress: performance.now(),
      batcher,
    };
    this.#answer(SnwType.ACK, seq);
    this.#watchdog = setInterval(
      () => this.#checkProgress(),
      this.#waitPeriod(),
    );
  }

  /** How often a receiver that holds an answer says `WAIT` on its own, ms. */
  #waitPeriod(): number {
    return Math.max(5, Math.min(125, this.#options.timeoutMs / 8));
  }

  /**
   * Answers a `LEN` that may not start yet with `WAIT`, now and every
   * {@linkcode SnwConn.#waitPeriod} (the sender keeps waiting, as for a held
   * `ACK`), until {@linkcode SnwConn.#takeHeldLen} starts it.
   */
  #holdLen(size: number, seq: number): void {
    this.#answer(SnwType.WAIT, seq);
    if (this.#heldLen) return;
    this.#heldLen = { size, seq };
    this.#watchdog = setInterval(
      () => this.#answer(SnwType.WAIT, seq),
      this.#waitPeriod(),
    );
  }

  /**
   * Whether a transfer may start now: a `receive()` waits for it, or the
   * application has the session and no earlier transfer waits unasked (so
   * that a side may send and then receive while its peer does the same).
   */
  #mayStart(): boolean {
    return this.#receivers.length > 0 ||
      (this.#claimed && this.#ahead === undefined);
  }

  /**
   * Marks the session as handed to the application: a transfer may then
   * start before its `receive()` (one at most). Called by the listener and
   * the channel acceptor.
   */
  claim(): void {
    if (this.#claimed) return;
    this.#claimed = true;
    this.#takeHeldLen();
  }

  /** Starts the held `LEN`'s transfer once it may. */
  #takeHeldLen(): void {
    const held = this.#heldLen;
    if (!held || this.#closed || !this.#mayStart()) return;
    this.#heldLen = undefined;
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    this.#expected++;
    this.#startIncoming(held.size, held.seq);
  }

  #finishIncoming(seq: number, last: Uint8Array): void {
    const incoming = this.#incoming!;
    this.#incoming = undefined;
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    this.#lastFinSeq = seq;
    this.#answer(SnwType.FIN, seq);
    incoming.batcher.push(last);
    incoming.batcher.close();
  }

  /**
   * Sends the held ACK once the reader has made room: a read smaller than
   * a packet that leaves the buffer full keeps it held, so reads of any
   * size cannot take the buffer past its bound.
   */
  #releaseHeld(): void {
    if (this.#heldSeq < 0 || this.#closed) return;
    if (this.#incoming && this.#incoming.batcher.room <= 0) return;
    const seq = this.#heldSeq;
    this.#heldSeq = -1;
    if (this.#incoming) this.#incoming.lastProgress = performance.now();
    this.#answer(SnwType.ACK, seq);
  }

  #checkProgress(): void {
    const incoming = this.#incoming;
    if (!incoming) return;
    if (this.#heldSeq >= 0) {
      // Waiting for our reader: say so on our own too. The sender's
      // retransmissions (each answered with WAIT) back off to one per
      // 250 ms, and on a lossy path all of a timeout's few could be lost.
      this.#answer(SnwType.WAIT, this.#heldSeq);
      return;
    }
    if (performance.now() - incoming.lastProgress < this.#options.timeoutMs) {
      return;
    }
    const line = incoming.dataPackets === 0
      ? SNW_GIVE_UP.noData
      : SNW_GIVE_UP.premature;
    this.#options.reportGiveUp(line);
    this.#fail(new TransferTimeoutError(line));
  }

  #answer(type: keyof typeof ANSWER_WORDS, seq: number): void {
    void this.#transmit(
      encodeSnwPacket(type, this.session, seq, ANSWER_WORDS[type]),
    );
  }

  /**
   * The peer closed; `delivered` is the highest of our seqs it received, so
   * a packet whose FIN was lost just before the CLOSE still counts as
   * delivered.
   */
  #onPeerClose(delivered: number): void {
    this.#peerClosed = true;
    const lost = new ConnectionLostError("the SNW peer closed the session");
    this.#sender?.peerClosed(delivered, lost);
    this.#incoming?.batcher.error(lost);
    this.#incoming = undefined;
    this.#heldLen = undefined;
    // the watchdog of the transfer arriving, or the held LEN's WAITs
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    for (const receiver of this.#receivers.splice(0)) receiver.reject(lost);
  }

  #assertUsable(): void {
    if (this.#closed) {
      throw new ConnectionLostError("the SNW session is closed");
    }
    if (this.#peerClosed) {
      throw new ConnectionLostError("the SNW peer closed the session");
    }
  }

  #fail(error: Error): void {
    if (this.#closed) return;
    if (this.#incoming) {
      this.#incoming.batcher.error(error);
      this.#incoming = undefined;
    }
    this.#sender?.fail(error);
    for (const receiver of this.#receivers.splice(0)) receiver.reject(error);
    this.#shutdown();
  }

  #shutdown(): void {
    this.#closed = true;
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    this.#heldLen = undefined;
    this.#ahead?.readable.cancel().catch(() => {});
    this.#ahead = undefined;
    // CLOSE is not retransmitted; three copies make its loss unlikely, and
    // a listening endpoint answers late packets of the session with it.
    const close = closePacket(this.session, this.deliveredSeq);
    const closing = this.#peerClosed ? Promise.resolve() : Promise.all(
      [1, 2, 3].map(() => this.#transmit(close)),
    ).then(() => {});
    this.#closing = this.#onClosed(this, closing);
  }

  /**
   * Ends the session without a CLOSE to the peer (an OPEN nobody claimed:
   * answering a forged source three times would make this port a
   * reflector).
   */
  drop(): void {
    this.#peerClosed = true;
    this.close();
  }

  /** Closes the session (idempotent): tells the peer, fails pending work. */
  close(): void {
    this.#fail(new ConnectionLostError("the SNW session was closed"));
  }

  /** Closes the session and waits until its socket work has finished. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#closing;
  }
}

/** The payload of each answer a receiver sends. */
const ANSWER_WORDS = {
  [SnwType.ACK]: SNW_WORDS.ACK,
  [SnwType.FIN]: SNW_WORDS.FIN,
  [SnwType.WAIT]: SNW_WORDS.WAIT,
} as const;

/** How many closed sessions an endpoint remembers. */
const MAX_RETIRED = 4096;

/**
 * One UDP socket and the sessions on it: reads datagrams, drops invalid
 * ones, hands each packet to its session and new OPENs to `onOpen`.
 */
class SnwEndpoint {
  readonly socket: Deno.DatagramConn;
  readonly addr: Deno.NetAddr;
  readonly #sessions = new Map<string, SnwConn>();
  readonly #keyOf: (remote: Deno.NetAddr, session: number) => string;
  #onOpen?: (remote: Deno.NetAddr, packet: SnwPacket) => void;
  #pendingCloses = new Set<Promise<void>>();
  #retired = new Map<string, Uint8Array>();
  /** One receive buffer for every datagram; DATA payloads are copied out. */
  readonly #buffer = new Uint8Array(65536);
  /** The session of the last datagram dispatched, while it is open. */
  #last?: { conn: SnwConn; session: number; hostname: string; port: number };
  #socketClosed = false;
  /** Resolves when the read loop has ended. */
  readonly done: Promise<void>;

  constructor(
    socket: Deno.DatagramConn,
    keyOf: (remote: Deno.NetAddr, session: number) => string,
    onOpen?: (remote: Deno.NetAddr, packet: SnwPacket) => void,
  ) {
    this.socket = socket;
    this.addr = socket.addr as Deno.NetAddr;
    this.#keyOf = keyOf;
    this.#onOpen = onOpen;
    this.done = this.#readLoop();
  }

  async #readLoop(): Promise<void> {
    while (!this.#socketClosed) {
      let datagram: Uint8Array;
      let remote: Deno.NetAddr;
      try {
        const [bytes, addr] = await this.socket.receive(this.#buffer);
        datagram = bytes;
        remote = addr as Deno.NetAddr;
      } catch (error) {
        if (this.#socketClosed || error instanceof Deno.errors.BadResource) {
          return;
        }
        continue; // e.g. an ICMP error reported on this socket
      }
      try {
        const last = this.#last;
        if (
          last !== undefined && last.port === remote.port &&
          last.hostname === remote.hostname &&
          last.conn.deliverExpected(datagram)
        ) continue;
        this.#dispatch(decodeSnwPacket(datagram), remote);
      } catch {
        // A bad datagram (SnwPacketError: dropped as if lost) or a session's
        // failure to take one must never end the loop that serves every
        // other session on this socket.
      }
    }
  }

  #dispatch(packet: SnwPacket, remote: Deno.NetAddr): void {
    // Stop-and-wait traffic comes in runs from one session: remember the
    // last one instead of building its key for every datagram.
    const last = this.#last;
    if (
      last && last.session === packet.session && last.port === remote.port &&
      last.hostname === remote.hostname
    ) {
      last.conn.deliver(packet);
      return;
    }
    const key = this.#keyOf(remote, packet.session);
    const session = this.#sessions.get(key);
    if (session) {
      this.#last = {
        conn: session,
        session: packet.session,
        hostname: remote.hostname,
        port: remote.port,
      };
    }
    const retired = this.#retired.get(key);
    if (session) session.deliver(packet);
    else if (retired) {
      // A late packet of a closed session: tell the peer it is over.
      if (packet.type !== SnwType.OPEN && packet.type !== SnwType.CLOSE) {
        void this.transmitter(remote)(retired);
      }
    } else if (packet.type === SnwType.OPEN && packet.seq === 0) {
      this.#onOpen?.(remote, packet);
    }
  }

  transmitter(remote: Deno.NetAddr): Transmit {
    return async (datagram) => {
      if (this.#socketClosed) return;
      try {
        await this.socket.send(datagram, remote);
      } catch {
        // Unreachable peers and full buffers behave like loss.
      }
    };
  }

  add(conn: SnwConn, remote: Deno.NetAddr): void {
    this.#sessions.set(this.#keyOf(remote, conn.session), conn);
  }

  /** Forgets a closed session; resolves when its socket work is over. */
  async remove(conn: SnwConn, closing: Promise<void>): Promise<void> {
    const key = this.#keyOf(conn.remoteAddr, conn.session);
    this.#sessions.delete(key);
    if (this.#last?.conn === conn) this.#last = undefined;
    this.#retire(key, closePacket(conn.session, conn.deliveredSeq));
    this.#pendingCloses.add(closing);
    await closing;
    this.#pendingCloses.delete(closing);
    this.#closeIfIdle();
    if (this.#socketClosed) await this.done;
  }

  /**
   * Remembers closed sessions (and their CLOSE packet) so a late duplicate
   * OPEN cannot revive one and late DATA is answered.
   */
  #retire(key: string, close: Uint8Array): void {
    this.#retired.set(key, close);
    if (this.#retired.size > MAX_RETIRED) {
      const oldest = this.#retired.keys().next().value;
      if (oldest !== undefined) this.#retired.delete(oldest);
    }
  }

  /** Stops taking new sessions; the socket closes once none is left. */
  stopAccepting(): void {
    this.#onOpen = undefined;
    this.#closeIfIdle();
  }

  get accepting(): boolean {
    return this.#onOpen !== undefined;
  }

  #closeIfIdle(): void {
    if (
      this.#socketClosed || this.#onOpen || this.#sessions.size > 0 ||
      this.#pendingCloses.size > 0
    ) return;
    this.#socketClosed = true;
    try {
      this.socket.close();
    } catch { /* already closed */ }
  }
}

function closePacket(session: number, delivered: number): Uint8Array {
  return encodeSnwPacket(SnwType.CLOSE, session, delivered, SNW_WORDS.CLOSE);
}

function netAddr(hostname: string, port: number): Deno.NetAddr {
  return { transport: "udp", hostname, port };
}

function peerKey(remote: Deno.NetAddr, session: number): string {
  return `${remote.hostname}:${remote.port}/${session}`;
}

function udpHost(hostname: string): string {
  return hostname === "localhost" ? "127.0.0.1" : hostname;
}

function randomSession(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

/**
 * Most sessions an SNW listener keeps opened but not yet accepted (its
 * listen backlog); beyond, the oldest is dropped without a CLOSE, so that
 * an OPEN flood costs bounded memory.
 */
const MAX_QUEUED_SESSIONS = 256;

/** Listens for standalone SNW sessions on one UDP port. */
export class SnwListener implements TransportListener {
  readonly #endpoint: SnwEndpoint;
  readonly #queue: SnwConn[] = [];
  readonly #waiters: {
    resolve: (conn: SnwConn) => void;
    reject: (error: Error) => void;
  }[] = [];
  #closed = false;

  /**
   * Binds the UDP port; use {@linkcode createSnwTransport} instead.
   *
   * @param options Where to listen.
   * @param snw Transport options.
   */
  constructor(options: ListenOptions, snw: ResolvedOptions) {
    const socket = Deno.listenDatagram({
      transport: "udp",
      hostname: options.hostname ?? "0.0.0.0",
      port: options.port,
    });
    this.#endpoint = new SnwEndpoint(socket, peerKey, (remote, packet) => {
      const conn = acceptSession(this.#endpoint, remote, packet, snw);
      const waiter = this.#waiters.shift();
      if (waiter) {
        conn.claim();
        return waiter.resolve(conn);
      }
      if (this.#queue.length >= MAX_QUEUED_SESSIONS) {
        this.#queue.shift()!.drop();
      }
      this.#queue.push(conn);
    });
  }

  /** How many opened sessions wait for {@linkcode SnwListener.accept}. */
  get queued(): number {
    return this.#queue.length;
  }

  /** The bound UDP address. */
  get addr(): Deno.NetAddr {
    return this.#endpoint.addr;
  }

  /**
   * Waits for the next session.
   *
   * @returns The session.
   */
  accept(): Promise<TransportConn> {
    const queued = this.#queue.shift();
    if (queued) {
      queued.claim();
      return Promise.resolve(queued);
    }
    if (this.#closed) {
      return Promise.reject(new Deno.errors.BadResource("listener closed"));
    }
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
    });
  }

  /** Stops listening; accepted sessions stay open. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const conn of this.#queue.splice(0)) conn.close();
    const error = new Deno.errors.BadResource("listener closed");
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
    this.#endpoint.stopAccepting();
  }

  /** Same as {@linkcode SnwListener.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Yields sessions until the listener is closed. */
  async *[Symbol.asyncIterator](): AsyncIterator<TransportConn> {
    while (true) {
      try {
        yield await this.accept();
      } catch (error) {
        if (this.#closed) return;
        throw error;
      }
    }
  }
}

function acceptSession(
  endpoint: SnwEndpoint,
  remote: Deno.NetAddr,
  packet: SnwPacket,
  options: ResolvedOptions,
): SnwConn {
  const conn = new SnwConn({
    localAddr: endpoint.addr,
    remoteAddr: remote,
    session: packet.session,
    options,
    transmit: endpoint.transmitter(remote),
    onClosed: (c, closing) => endpoint.remove(c, closing),
    unclaimed: true,
  });
  endpoint.add(conn, remote);
  conn.deliver(packet); // answers the OPEN with ACK 0
  return conn;
}

/** How long an OPEN with a tag nobody asked for yet is kept, in ms. */
const UNCLAIMED_CHANNEL_MS = 30_000;

/**
 * Most OPENs kept unclaimed at once; beyond, the oldest is dropped (an OPEN
 * flood costs bounded memory, and real channels are claimed within a round
 * trip of their control request).
 */
const MAX_UNCLAIMED_CHANNELS = 256;

/** Accepts SNW data channels by tag next to a TCP control listener. */
export class SnwChannelAcceptor implements ChannelAcceptor {
  readonly #endpoint: SnwEndpoint;
  readonly #unclaimed = new Map<
    string,
    { conn: SnwConn; timer: ReturnType<typeof setTimeout> }
  >();
  readonly #waiting = new Map<
    string,
    { resolve: (conn: SnwConn) => void; reject: (error: Error) => void }
  >();

  /**
   * Binds the UDP port; use {@linkcode createSnwTransport} instead.
   *
   * @param options The control listener's address and port.
   * @param snw Transport options.
   */
  constructor(options: ListenOptions, snw: ResolvedOptions) {
    const socket = Deno.listenDatagram({
      transport: "udp",
      hostname: options.hostname ?? "0.0.0.0",
      port: options.port,
    });
    this.#endpoint = new SnwEndpoint(socket, peerKey, (remote, packet) => {
      if (packet.payload.length > MAX_TAG_BYTES) return; // not a channel tag
      const tag = tagDecoder.decode(packet.payload);
      const conn = acceptSession(this.#endpoint, remote, packet, snw);
      const waiter = this.#waiting.get(tag);
      if (waiter) {
        this.#waiting.delete(tag);
        conn.claim();
        waiter.resolve(conn);
        return;
      }
      this.#dropUnclaimed(tag);
      if (this.#unclaimed.size >= MAX_UNCLAIMED_CHANNELS) {
        this.#dropUnclaimed(this.#unclaimed.keys().next().value!);
      }
      const timer = setTimeout(() => {
        this.#unclaimed.delete(tag);
        conn.drop();
      }, UNCLAIMED_CHANNEL_MS);
      this.#unclaimed.set(tag, { conn, timer });
    });
  }

  /** The bound UDP address. */
  get addr(): Deno.NetAddr {
    return this.#endpoint.addr;
  }

  /** How many OPENs wait for their control request (at most 256). */
  get unclaimed(): number {
    return this.#unclaimed.size;
  }

  #dropUnclaimed(tag: string): void {
    const unclaimed = this.#unclaimed.get(tag);
    if (!unclaimed) return;
    this.#unclaimed.delete(tag);
    clearTimeout(unclaimed.timer);
    unclaimed.conn.drop();
  }

  /**
   * Returns the session the peer opened with `tag`.
   *
   * @param _control The TCP control connection (its peer opens the session).
   * @param tag The agreed tag.
   * @param options Cancellation.
   * @returns The session.
   */
  accept(
    _control: Deno.Conn,
    tag: string,
    options: ReceiveOptions = {},
  ): Promise<TransportConn> {
    const unclaimed = this.#unclaimed.get(tag);
    if (unclaimed) {
      this.#unclaimed.delete(tag);
      clearTimeout(unclaimed.timer);
      unclaimed.conn.claim();
      return Promise.resolve(unclaimed.conn);
    }
    if (!this.#endpoint.accepting) {
      return Promise.reject(new Deno.errors.BadResource("acceptor closed"));
    }
    const pending = new Promise<SnwConn>((resolve, reject) => {
      this.#waiting.set(tag, { resolve, reject });
    });
    return abortable(pending, options.signal).catch((error) => {
      this.#waiting.delete(tag);
      throw error;
    });
  }

  /** Releases the UDP port once the accepted channels are closed. */
  close(): void {
    if (!this.#endpoint.accepting) return;
    for (const { conn, timer } of this.#unclaimed.values()) {
      clearTimeout(timer);
      conn.close();
    }
    this.#unclaimed.clear();
    const error = new Deno.errors.BadResource("acceptor closed");
    for (const waiter of this.#waiting.values()) waiter.reject(error);
    this.#waiting.clear();
    this.#endpoint.stopAccepting();
  }

  /** Same as {@linkcode SnwChannelAcceptor.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

async function connectSession(
  hostname: string,
  port: number,
  tag: string,
  options: ResolvedOptions,
  signal?: AbortSignal,
): Promise<SnwConn> {
  const socket = Deno.listenDatagram({
    transport: "udp",
    hostname: "0.0.0.0",
    port: 0,
  });
  const session = randomSession();
  const endpoint = new SnwEndpoint(socket, (_remote, id) => String(id));
  const remote = netAddr(udpHost(hostname), port);
  const conn = new SnwConn({
    localAddr: endpoint.addr,
    remoteAddr: remote,
    session,
    options,
    transmit: endpoint.transmitter(remote),
    onClosed: (c, closing) => endpoint.remove(c, closing),
  });
  endpoint.add(conn, remote);
  endpoint.stopAccepting(); // the socket closes with the session
  try {
    await conn.open(tag, signal);
  } catch (error) {
    await conn[Symbol.asyncDispose]();
    await endpoint.done;
    if (error instanceof TransferTimeoutError) {
      // Nobody answered the OPEN: say where it went (the usual cause is a
      // peer on tcp, which has no UDP port open there).
      throw new TransferTimeoutError(
        `${error.message} (no answer to the session's OPEN from ${hostname} UDP port ${port}: is an snw peer there?)`,
        { cause: error },
      );
    }
    throw error;
  }
  return conn;
}

/**
 * Creates an `snw` transport with the given tuning.
 *
 * @example
 * ```ts ignore
 * const snw = createSnwTransport({ timeoutMs: 5000 });
 * using listener = snw.listen({ hostname: "127.0.0.1", port: 0 });
 * ```
 *
 * @param options Chunk size, give-up timeout, buffering, RTO bounds.
 * @returns The transport.
 */
export function createSnwTransport(options: SnwOptions = {}): Transport {
  const resolved = resolveOptions(options);
  return {
    name: "snw",
    listen: (listen) => new SnwListener(listen, resolved),
    connect: (connect: ConnectOptions) =>
      connectSession(
        connect.hostname,
        connect.port,
        "",
        resolved,
        connect.signal,
      ),
    openChannel: (control, tag, openOptions) => {
      const peer = control.remoteAddr as Deno.NetAddr;
      return connectSession(
        peer.hostname,
        peer.port,
        tag,
        resolved,
        openOptions?.signal,
      );
    },
    channels: (listen) => new SnwChannelAcceptor(listen, resolved),
  };
}

/** The `snw` transport with the default tuning (1000-byte chunks, 1 s). */
export const snwTransport: Transport = createSnwTransport();
