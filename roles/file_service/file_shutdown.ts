/**
 * Graceful stop of the file service's servers (origin and cache): SIGINT,
 * SIGTERM and SIGHUP end the process with exit code 0 after the server
 * closed.
 *
 * @module
 */

import { onStopSignal } from "../stop_signals.ts";

/**
 * Resolves on the first stop signal (SIGINT, SIGTERM or SIGHUP), then
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
