/**
 * Ends the file-service operations of a client in progress at once: each
 * operation registers its control connection and data channel, and
 * {@linkcode Interrupter.interrupt} closes them, so the operation fails as
 * on a lost connection (its temporary file is removed on the way out).
 * Used by the interactive client on a stop signal and by the cache's
 * origin client when the cache stops.
 *
 * @module
 */

/** Something an interrupt closes. */
export interface Closable {
  /** Closes it (may throw when already closed). */
  close(): void;
}

/** Closes the connections of operations in progress when interrupted. */
export class Interrupter {
  readonly #controller = new AbortController();

  /** Whether {@linkcode Interrupter.interrupt} was called. */
  get interrupted(): boolean {
    return this.#controller.signal.aborted;
  }

  /** Closes every registered resource, and any registered later. */
  interrupt(): void {
    this.#controller.abort();
  }

  /**
   * A signal for opening a data channel: aborts after `idleMs` or on an
   * interrupt.
   *
   * @param idleMs The bound, in ms.
   * @returns The signal.
   */
  signal(idleMs: number): AbortSignal {
    return AbortSignal.any([
      AbortSignal.timeout(idleMs),
      this.#controller.signal,
    ]);
  }

  /**
   * Closes `resource` on an interrupt (at once if there was one) until the
   * returned registration is disposed.
   *
   * @example
   * ```ts
   * import { Interrupter } from "./interrupter.ts";
   * const interrupter = new Interrupter();
   * let closed = false;
   * using _ = interrupter.closeOnInterrupt({ close: () => closed = true });
   * interrupter.interrupt();
   * console.log(closed); // true
   * ```
   *
   * @param resource A connection or channel.
   * @returns The registration.
   */
  closeOnInterrupt(resource: Closable): Disposable {
    const signal = this.#controller.signal;
    const close = () => {
      try {
        resource.close();
      } catch { /* already closed */ }
    };
    if (signal.aborted) close();
    else signal.addEventListener("abort", close, { once: true });
    return {
      [Symbol.dispose]: () => signal.removeEventListener("abort", close),
    };
  }
}
