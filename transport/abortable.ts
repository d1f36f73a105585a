/**
 * Makes any promise abortable by an {@linkcode AbortSignal}.
 *
 * @module
 */

/**
 * Settles like `promise`, or rejects with the signal's reason as soon as
 * `signal` aborts (the underlying operation is not cancelled by this).
 *
 * @param promise The operation.
 * @param signal Optional cancellation.
 * @returns The operation's result.
 */
export function abortable<T>(
  promise: Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  if (!signal) return promise;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() =>
      signal.removeEventListener("abort", onAbort)
    );
  });
}
