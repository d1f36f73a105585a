/**
 * Graceful stop of the file service's servers (origin and cache): SIGINT,
 * SIGTERM, SIGHUP and SIGQUIT end the process with exit code 0 after the server
 * closed.
 *
 * @module
 */

import { onStopSignal } from "../stop_signals.ts";

/**
 * Resolves on the first stop signal (SIGINT, SIGTERM, SIGHUP or SIGQUIT), then
 * removes its listeners.
 *
 * @returns The signal's name.
 */
export function stopSignal(): Promise<Deno.Signal> {
  return new Promise((resolve) => {
    const forget = onStopSignal((signal) => {
      forget();
      resolve(signal);
    });
  });
}
