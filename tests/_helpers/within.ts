/**
 * A bounded wait for tests: a peer or process that never comes fails the
 * test with what was awaited, instead of hanging it.
 *
 * @module
 */

/**
 * Waits for `promise`, at most `timeoutMs`.
 *
 * @param promise What to wait for.
 * @param timeoutMs How long to wait.
 * @param what Named in the timeout error.
 * @param onTimeout Called at the timeout to end what `promise` waits for
 *   (close a listener, kill a process); `promise` is then waited for before
 *   the error is thrown, so that nothing is left running.
 * @returns What `promise` resolved to.
 * @throws {Error} When `promise` did not settle in time.
 */
export async function within<T>(
  promise: Promise<T>,
  timeoutMs: number,
  what: string,
  onTimeout?: () => void,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      timedOut = true;
      resolve();
    }, timeoutMs);
  });
  try {
    await Promise.race([promise.then(() => {}, () => {}), timeout]);
  } finally {
    clearTimeout(timer);
  }
  if (timedOut) {
    if (onTimeout) {
      onTimeout();
      await promise.catch(() => {});
    }
    throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
  }
  return await promise;
}
