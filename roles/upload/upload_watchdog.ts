/**
 * A progress watchdog for the upload receiver and client: it fires when one
 * wait for progress (a socket read on the receiver, a socket write on the
 * client) has lasted longer than the timeout.
 *
 * Only the time spent *waiting on the peer* counts: the owner calls
 * {@linkcode IdleWatchdog.begin} right before the wait and
 * {@linkcode IdleWatchdog.end} right after it, so time spent writing to disk
 * or reading the local file never makes a healthy peer look idle. At most one
 * timer is pending at any time and it is not re-created per chunk: when it
 * comes due early (because a newer wait started since it was set) it is
 * re-armed for the remainder.
 *
 * @module
 */

/** Fires a callback when one wait for progress lasts longer than a timeout. */
export class IdleWatchdog implements Disposable {
  readonly #timeoutMs: number;
  readonly #onIdle: () => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #waitingSince = 0;
  #waiting = false;
  #fired = false;
  #disposed = false;

  /**
   * Creates a watchdog; nothing is timed until {@linkcode IdleWatchdog.begin}.
   *
   * @example
   * ```ts
   * import { IdleWatchdog } from "./upload_watchdog.ts";
   * using watchdog = new IdleWatchdog(10_000, () => console.log("idle"));
   * watchdog.begin(); // waiting for the peer
   * watchdog.end(); // it made progress
   * ```
   *
   * @param timeoutMs How long one wait may last, in milliseconds.
   * @param onIdle Called once, when a wait lasted longer than `timeoutMs`.
   */
  constructor(timeoutMs: number, onIdle: () => void) {
    this.#timeoutMs = timeoutMs;
    this.#onIdle = onIdle;
  }

  /** Whether the watchdog has fired. */
  get fired(): boolean {
    return this.#fired;
  }

  /** Marks the start of a wait for the peer. */
  begin(): void {
    if (this.#fired || this.#disposed) return;
    this.#waitingSince = performance.now();
    this.#waiting = true;
    this.#arm(this.#timeoutMs);
  }

  /** Marks the end of the current wait (the peer made progress). */
  end(): void {
    this.#waiting = false;
  }

  /** Stops the watchdog and clears its timer (idempotent). */
  [Symbol.dispose](): void {
    this.#disposed = true;
    this.#waiting = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(delayMs: number): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => this.#check(), Math.max(0, delayMs));
  }

  #check(): void {
    this.#timer = undefined;
    if (!this.#waiting || this.#disposed) return;
    const left = this.#waitingSince + this.#timeoutMs - performance.now();
    if (left > 0) {
      this.#arm(left);
      return;
    }
    this.#fired = true;
    this.#waiting = false;
    this.#onIdle();
  }
}
