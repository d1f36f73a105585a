/**
 * Graceful stop of the file service's servers (origin and cache): SIGINT
 * and SIGTERM end the process with exit code 0 after the server closed.
 *
 * @module
 */

const STOP_SIGNALS: Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT"]
  : ["SIGINT", "SIGTERM"];

/**
 * Resolves on the first SIGINT or SIGTERM, then removes its listeners.
 *
 * @returns The signal's name.
 */
export function stopSignal(): Promise<Deno.Signal> {
  return new Promise((resolve) => {
    const handlers = STOP_SIGNALS.map((signal) => {
      const handler = () => {
        for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
        resolve(signal);
      };
      return [signal, handler] as const;
    });
    for (const [signal, handler] of handlers) {
      Deno.addSignalListener(signal, handler);
    }
  });
}
