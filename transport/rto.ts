/**
 * Retransmission timeout estimation after RFC 6298, with Karn's algorithm
 * (the caller samples only packets that were not retransmitted) and
 * exponential backoff, scaled down for stop-and-wait on fast paths. Unlike
 * RFC 6298 §5.5, the backoff is not kept for the next packet: SNW runs one
 * packet at a time, so there is no congestion to back away from, and random
 * loss would otherwise keep the timeout inflated.
 *
 * @module
 */

/** Bounds of the estimator, in milliseconds. */
export interface RtoOptions {
  /** RTO before the first sample (default 100). */
  initialMs?: number;
  /** Lower bound (default 1). */
  minMs?: number;
  /** Upper bound, also of backoff (default 250). */
  maxMs?: number;
}

/** A smoothed RTT / RTO estimator (RFC 6298 §2). */
export class RtoEstimator {
  #srtt: number | undefined;
  #rttvar = 0;
  #rto: number;
  readonly #min: number;
  readonly #max: number;

  /**
   * Creates an estimator.
   *
   * @param options Bounds in milliseconds.
   */
  constructor(options: RtoOptions = {}) {
    this.#min = options.minMs ?? 1;
    this.#max = options.maxMs ?? 250;
    this.#rto = this.#clamp(options.initialMs ?? 100);
  }

  /** The current retransmission timeout in milliseconds. */
  get rto(): number {
    return this.#rto;
  }

  /** The smoothed round-trip time, once sampled. */
  get srtt(): number | undefined {
    return this.#srtt;
  }

  /**
   * Feeds one round-trip sample of a packet that was sent only once.
   *
   * @param rttMs The measured round-trip time.
   */
  sample(rttMs: number): void {
    if (this.#srtt === undefined) {
      this.#srtt = rttMs;
      this.#rttvar = rttMs / 2;
    } else {
      this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - rttMs);
      this.#srtt = 0.875 * this.#srtt + 0.125 * rttMs;
    }
    this.#rto = this.#clamp(this.#srtt + Math.max(1, 4 * this.#rttvar));
  }

  /**
   * The wait before the next retransmission of a packet that already waited
   * `wait` ms: doubled, bounded by the maximum.
   *
   * @param wait The wait that just expired.
   * @returns The next wait.
   */
  backedOff(wait: number): number {
    return this.#clamp(wait * 2);
  }

  #clamp(ms: number): number {
    return Math.min(this.#max, Math.max(this.#min, ms));
  }
}
