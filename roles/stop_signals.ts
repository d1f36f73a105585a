/**
 * The signals that stop a role gracefully, in one place: SIGINT (Ctrl-C),
 * SIGTERM (`kill`), SIGHUP (the terminal went away) and SIGQUIT (Ctrl-\;
 * the upload seed's stop signal). A role stopped by one of them removes its
 * temporary files instead of dying with a `.part-` file left behind; a
 * server exits 0. Windows has only SIGINT.
 *
 * @module
 */

/** SIGINT, SIGTERM, SIGHUP and SIGQUIT (only SIGINT on Windows). */
export const STOP_SIGNALS: readonly Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT"]
  : ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"];

/**
 * Calls `handler` on each of `signals` until the returned function is
 * called.
 *
 * @example
 * ```ts ignore
 * import { onStopSignal } from "./stop_signals.ts";
 * const stop = new AbortController();
 * const forget = onStopSignal(() => stop.abort());
 * try {
 *   // serve until stop.signal aborts
 * } finally {
 *   forget();
 * }
 * ```
 *
 * @param handler Called with the signal's name.
 * @param signals The signals (default {@linkcode STOP_SIGNALS}).
 * @returns Removes the listeners (idempotent).
 */
export function onStopSignal(
  handler: (signal: Deno.Signal) => void,
  signals: readonly Deno.Signal[] = STOP_SIGNALS,
): () => void {
  const listeners = signals.map((signal) => {
    const listener = () => handler(signal);
    Deno.addSignalListener(signal, listener);
    return [signal, listener] as const;
  });
  let removed = false;
  return () => {
    if (removed) return;
    removed = true;
    for (const [signal, listener] of listeners) {
      Deno.removeSignalListener(signal, listener);
    }
  };
}

/** The stop signals watched for one run (see {@linkcode watchStopSignals}). */
export interface StopWatch extends Disposable {
  /** The first stop signal received, if one was. */
  readonly signal: Deno.Signal | undefined;
  /** Resolves (to `undefined`) on the first stop signal; never rejects. */
  readonly stopped: Promise<undefined>;
}

/**
 * Watches the stop signals until disposed: what came first, and a promise
 * to race a long wait against (a connect, a hash, the next copy).
 *
 * @example
 * ```ts ignore
 * import { watchStopSignals } from "./stop_signals.ts";
 * using stop = watchStopSignals();
 * const hashed = await Promise.race([hashing, stop.stopped]);
 * if (hashed === undefined) console.error(`interrupted by ${stop.signal}`);
 * ```
 *
 * @param onStop Also called on each stop signal (e.g. to close a socket).
 * @returns The watch; dispose it to stop listening.
 */
export function watchStopSignals(
  onStop?: (signal: Deno.Signal) => void,
): StopWatch {
  const { promise, resolve } = Promise.withResolvers<undefined>();
  let first: Deno.Signal | undefined;
  const forget = onStopSignal((signal) => {
    first ??= signal;
    resolve(undefined);
    onStop?.(signal);
  });
  return {
    get signal() {
      return first;
    },
    stopped: promise,
    [Symbol.dispose]: forget,
  };
}
