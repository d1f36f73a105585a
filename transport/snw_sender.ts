/**
 * The sending side of SNW: sends a session's OPEN, or a transfer's LEN and
 * then its source cut into DATA packets, one packet at a time, each until
 * answered.
 *
 * It is a synchronous state machine driven by the session's packet
 * dispatch, so the per-packet path holds no promise, generator or timer
 * operation: when the outstanding packet's `ACK` (or `FIN`) is dispatched,
 * {@linkcode SnwSender.answer} transmits the packet prepared while it
 * waited and prepares the one after it (cut from the current source chunk,
 * encoded into the other of two datagram buffers). The source is read
 * asynchronously only when a chunk is used up.
 *
 * Retransmission uses one timer per transfer, armed for the outstanding
 * packet's deadline (`RTO` after it was sent, doubled per retransmission up
 * to a 32nd of the give-up timeout, so that a lossy path gets many tries)
 * and moved only forward: a timer that fires before the current deadline
 * (the packet it was armed for was answered) re-arms itself for the rest.
 * Loopback round trips are ~0.1 ms and the RTO is at least 1 ms, so this
 * costs one timer per RTO instead of two timer operations per packet.
 *
 * @module
 */

import {
  encodeSnwPacketInto,
  HEADER_SIZE,
  SNW_WORDS,
  SnwType,
} from "./snw_packet.ts";
import type { RtoEstimator } from "./rto.ts";
import { ConnectionLostError } from "./errors.ts";

/**
 * A timer that fires less than this many ms before the outstanding packet's
 * deadline retransmits it rather than waiting again: Deno's timers fire
 * about a millisecond late, so a re-armed wait for a fraction of one would
 * retransmit 1-2 ms after the deadline instead of at it.
 */
const TIMER_SLACK_MS = 0.5;

/** Sends one datagram to the session's peer; failures count as loss. */
export type Transmit = (datagram: Uint8Array) => Promise<void>;

/** One encoded packet. */
export interface SnwOutgoingPacket {
  /** The datagram. */
  datagram: Uint8Array;
  /** Its seq. */
  seq: number;
}

/** What {@linkcode SnwSender} needs from its session. */
export interface SnwSenderInit {
  /** The session id written into each packet. */
  session: number;
  /** A packet sent before any DATA (OPEN, or the transfer's LEN). */
  first: SnwOutgoingPacket;
  /** The seq of the first DATA packet. */
  firstSeq: number;
  /** Bytes of file data per packet. */
  chunkSize: number;
  /** The announced size (sizes the datagram buffers; 0 without data). */
  size: number;
  /** The source, already checked against the announced size; none for OPEN. */
  chunks?: AsyncIterator<Uint8Array>;
  /** Give up after this long without an answer, in ms. */
  timeoutMs: number;
  /** The session's RTO estimator (sampled by answers, read for timeouts). */
  rto: RtoEstimator;
  /** Sends a datagram. */
  transmit: Transmit;
  /** Called once when an outstanding packet went unanswered for the timeout; returns the error to fail with. */
  giveUp: () => Error;
  /** Called when a packet was answered (the peer took its bytes). */
  onProgress?: () => void;
}

/** The packet waiting for its answer. */
interface Outstanding {
  datagram: Uint8Array;
  seq: number;
  /** When it was last transmitted. */
  sentAt: number;
  /** When it was first transmitted, or last said to be held (for the give-up timeout). */
  firstSentAt: number;
  /** The wait before its next retransmission. */
  wait: number;
  retransmitted: boolean;
  /** The last packet of a transfer: the receiver answers it with `FIN`. */
  final: boolean;
  /** The receiver said it holds this packet (`WAIT`). */
  held: boolean;
}

/** A packet encoded ahead, waiting to be sent. */
interface Prepared extends SnwOutgoingPacket {
  /** The last packet of a transfer. */
  final: boolean;
}

/**
 * Sends OPEN, or one transfer's LEN and DATA packets (see the module
 * documentation).
 *
 * @example
 * ```ts ignore
 * const sender = new SnwSender({ session, first, firstSeq, chunkSize, size,
 *   chunks, timeoutMs, rto, transmit, giveUp });
 * sender.start(); // the session calls sender.answer(seq, isFin) on ACK/FIN, sender.wait(seq) on WAIT
 * await sender.done;
 * ```
 */
export class SnwSender {
  /** Resolves when every packet was answered; rejects on failure. */
  readonly done: Promise<void>;
  #resolve!: () => void;
  #reject!: (error: Error) => void;
  readonly #init: SnwSenderInit;
  #nextSeq: number;
  #current?: Outstanding;
  #prepared?: Prepared;
  readonly #buffers: [Uint8Array, Uint8Array];
  #turn = 0;
  // The source: the chunk being cut and a payload's worth of leftovers.
  #chunk?: Uint8Array;
  #offset = 0;
  readonly #partial: Uint8Array;
  #fill = 0;
  /** Bytes of the source cut into packets so far. */
  #cut = 0;
  #fetching = false;
  #sourceDone = false;
  #timer?: ReturnType<typeof setTimeout>;
  #timerAt = Infinity;
  #finished = false;
  /**
   * The ACK (or FIN) that answers the outstanding packet, byte for byte
   * (encoded whenever a packet becomes the outstanding one).
   */
  readonly #expectedAck = new Uint8Array(HEADER_SIZE + SNW_WORDS.ACK.length);

  /**
   * Creates the sender; nothing is sent before {@linkcode start}.
   *
   * @param init The session's side of the transfer.
   */
  constructor(init: SnwSenderInit) {
    this.#init = init;
    this.#nextSeq = init.firstSeq;
    // A transfer's LEN is its last packet when it announces 0 bytes (an
    // OPEN has no source and is answered with ACK).
    this.#prepared = {
      ...init.first,
      final: init.chunks !== undefined && init.size === 0,
    };
    this.#sourceDone = init.chunks === undefined;
    const payloadBytes = Math.min(init.chunkSize, Math.max(init.size, 1));
    this.#buffers = [
      new Uint8Array(HEADER_SIZE + payloadBytes),
      new Uint8Array(HEADER_SIZE + payloadBytes),
    ];
    this.#partial = new Uint8Array(payloadBytes);
    this.done = new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  /** The seq after the last packet this sender used. */
  get nextSeq(): number {
    return this.#nextSeq;
  }

  /** Sends the first packet and prepares the one after it. */
  start(): void {
    this.#advance(performance.now());
  }

  /**
   * An `ACK` or `FIN` arrived.
   *
   * A transfer's last packet must be answered with `FIN` and every other
   * one with `ACK`: the other word means the receiver's idea of the size
   * differs from ours, and the transfer fails rather than end as if all
   * had arrived.
   *
   * @param seq The seq it answers.
   * @param fin Whether it is a `FIN` (unchecked when omitted).
   * @returns Whether it answered this sender's outstanding packet.
   */
  answer(seq: number, fin?: boolean): boolean {
    const current = this.#current;
    if (this.#finished || current?.seq !== seq) return false;
    if (fin !== undefined && fin !== current.final) {
      this.fail(
        new ConnectionLostError(
          fin
            ? "the SNW receiver answered FIN before the last packet: it expects fewer bytes than are sent"
            : "the SNW receiver answered the last packet with ACK, not FIN: it expects more bytes than were sent",
        ),
      );
      return true;
    }
    const now = performance.now();
    if (!current.retransmitted) this.#init.rto.sample(now - current.sentAt);
    this.#current = undefined;
    this.#advance(now);
    this.#init.onProgress?.();
    return true;
  }

  /**
   * A `WAIT` arrived: the receiver has the packet with this seq but holds
   * its `ACK` until its reader takes data. The peer is alive, so the
   * give-up timeout starts again; retransmissions go on (with their
   * backoff), each answered by another `WAIT` until the `ACK` comes.
   *
   * @param seq The seq it answers.
   */
  wait(seq: number): void {
    const current = this.#current;
    if (this.#finished || current?.seq !== seq) return;
    current.firstSentAt = performance.now();
    current.held = true;
  }

  /**
   * The fast path for the datagram a running transfer waits for: if
   * `datagram` is, byte for byte, the answer the outstanding packet expects
   * (`ACK`, or `FIN` for a transfer's last packet), it is taken without
   * being decoded (an intact answer has exactly these bytes, so its CRC
   * needs no check).
   *
   * @param datagram A datagram from the session's peer.
   * @returns Whether it was that answer (else decode it and call `answer`).
   */
  answerDatagram(datagram: Uint8Array): boolean {
    const current = this.#current;
    const expected = this.#expectedAck;
    if (current === undefined || datagram.length !== expected.length) {
      return false;
    }
    for (let i = datagram.length - 1; i >= 0; i--) {
      if (datagram[i] !== expected[i]) return false;
    }
    return this.answer(current.seq);
  }

  /**
   * The peer closed the session having received our packets up to
   * `delivered`: the transfer succeeded if that covers all of it.
   *
   * @param delivered The highest of our seqs the peer received.
   * @param error The failure otherwise.
   */
  peerClosed(delivered: number, error: Error): void {
    if (this.#finished) return;
    if (this.#current && this.#current.seq <= delivered) {
      this.#current = undefined;
    }
    if (this.#current === undefined && this.#allSent()) this.#finish();
    else this.fail(error);
  }

  /**
   * Ends the transfer with `error` (idempotent); closes the source.
   *
   * @param error Why.
   */
  fail(error: Error): void {
    if (this.#finished) return;
    this.#finish(error);
    this.#init.chunks?.return?.().catch(() => {});
  }

  /** Nothing is prepared and nothing is left in the source. */
  #allSent(): boolean {
    return this.#prepared === undefined && this.#sourceDone &&
      this.#fill === 0 && !this.#fetching;
  }

  /** Sends the prepared packet if none is outstanding; finishes at the end. */
  #advance(now: number): void {
    if (this.#current || this.#finished) return;
    const prepared = this.#prepared;
    if (prepared) {
      this.#prepared = undefined;
      const wait = this.#init.rto.rto;
      this.#current = {
        datagram: prepared.datagram,
        seq: prepared.seq,
        sentAt: now,
        firstSentAt: now,
        wait,
        retransmitted: false,
        final: prepared.final,
        held: false,
      };
      void this.#init.transmit(prepared.datagram);
      this.#armTimer(now + wait, now);
      encodeSnwPacketInto(
        this.#expectedAck,
        prepared.final ? SnwType.FIN : SnwType.ACK,
        this.#init.session,
        prepared.seq,
        prepared.final ? SNW_WORDS.FIN : SNW_WORDS.ACK,
      );
      this.#prepare();
    } else if (this.#allSent()) {
      this.#finish();
    }
    // else: the source is being read; its arrival continues here
  }

  /** Cuts and encodes the next packet, if the source has its bytes yet. */
  #prepare(): void {
    if (this.#prepared || this.#finished) return;
    const size = this.#init.chunkSize;
    let payload: Uint8Array | undefined;
    while (payload === undefined) {
      const chunk = this.#chunk;
      if (chunk && this.#offset < chunk.length) {
        const left = chunk.length - this.#offset;
        if (this.#fill === 0 && left >= size) {
          payload = chunk.subarray(this.#offset, this.#offset + size);
          this.#offset += size;
        } else {
          const n = Math.min(size - this.#fill, left);
          this.#partial.set(
            chunk.subarray(this.#offset, this.#offset + n),
            this.#fill,
          );
          this.#fill += n;
          this.#offset += n;
          if (this.#fill === size) payload = this.#partial;
        }
      } else if (this.#sourceDone) {
        if (this.#fill === 0) return; // everything is prepared
        payload = this.#partial.subarray(0, this.#fill);
      } else {
        this.#fetch();
        return;
      }
    }
    this.#fill = 0; // a payload from the chunk itself left it at 0
    this.#cut += payload.length;
    const seq = this.#nextSeq++;
    const datagram = encodeSnwPacketInto(
      this.#buffers[this.#turn ^= 1],
      SnwType.DATA,
      this.#init.session,
      seq,
      payload,
    );
    this.#prepared = { datagram, seq, final: this.#cut === this.#init.size };
    // Every byte of the chunk is copied: the source may reuse its memory.
    if (this.#chunk && this.#offset >= this.#chunk.length) this.#fetch();
  }

  /** Reads the next chunk of the source (one read at a time). */
  #fetch(): void {
    const chunks = this.#init.chunks;
    if (!chunks || this.#fetching || this.#sourceDone || this.#finished) {
      return;
    }
    this.#fetching = true;
    this.#chunk = undefined;
    chunks.next().then((result) => {
      this.#fetching = false;
      if (this.#finished) return;
      if (result.done) this.#sourceDone = true;
      else {
        this.#chunk = result.value;
        this.#offset = 0;
      }
      this.#prepare();
      this.#advance(performance.now());
    }, (error) => {
      this.#fetching = false;
      this.fail(error instanceof Error ? error : new Error(String(error)));
    });
  }

  /** Makes sure a timer fires no later than `at`. */
  #armTimer(at: number, now: number): void {
    if (this.#timer !== undefined) {
      if (this.#timerAt <= at) return; // it fires first and re-arms
      clearTimeout(this.#timer);
    }
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#onTimer(), at - now);
  }

  #onTimer(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const current = this.#current;
    if (this.#finished || !current) return;
    const now = performance.now();
    const deadline = current.sentAt + current.wait;
    if (deadline - now > TIMER_SLACK_MS) {
      this.#armTimer(deadline, now);
      return;
    }
    if (now - current.firstSentAt >= this.#init.timeoutMs) {
      this.fail(this.#init.giveUp());
      return;
    }
    current.retransmitted = true;
    current.wait = Math.min(
      this.#init.rto.backedOff(current.wait),
      current.held ? Infinity : this.#lossCeiling(),
    );
    current.sentAt = now;
    void this.#init.transmit(current.datagram);
    this.#armTimer(now + current.wait, now);
  }

  /**
   * The longest wait between retransmissions of a packet that is not held:
   * a 32nd of the give-up timeout (31 ms for 1 s), or the RTO when that is
   * longer. Backing off up to the RTO's 250 ms ceiling left about ten tries
   * in a timeout, and at 30% loss each way (half of all round trips lost)
   * one packet in 1 600 used them all: a 2 MiB transfer failed 5 times in
   * 6. A held packet (the receiver says `WAIT`) backs off to 250 ms: its
   * receiver is alive, and says so on its own.
   */
  #lossCeiling(): number {
    return Math.max(this.#init.rto.rto, this.#init.timeoutMs / 32);
  }

  #finish(error?: Error): void {
    this.#finished = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (error) this.#reject(error);
    else this.#resolve();
  }
}
