/**
 * Looks transports up by the name users type (`tcp`, `snw`).
 *
 * The `snw` transport found here takes its tuning from the environment, so
 * every role can be tuned without a flag of its own:
 * `SOCKKIT_SNW_TIMEOUT_MS` (give-up timeout, default 1000) and
 * `SOCKKIT_SNW_CHUNK_SIZE` (bytes per DATA packet, default 1000).
 *
 * @module
 */

import { createSnwTransport } from "./snw.ts";
import { tcpTransport } from "./tcp.ts";
import type { Transport, TransportName } from "./types.ts";

function envNumber(name: string): number | undefined {
  try {
    const text = Deno.env.get(name);
    return text ? Number(text) : undefined;
  } catch {
    return undefined; // no --allow-env: defaults
  }
}

const TRANSPORTS = new Map<TransportName, Transport>([
  ["tcp", tcpTransport],
  [
    "snw",
    createSnwTransport({
      timeoutMs: envNumber("SOCKKIT_SNW_TIMEOUT_MS"),
      chunkSize: envNumber("SOCKKIT_SNW_CHUNK_SIZE"),
    }),
  ],
]);

/** The names accepted by {@linkcode transportByName}. */
export const TRANSPORT_NAMES: readonly TransportName[] = ["tcp", "snw"];

/**
 * Returns the transport called `name`.
 *
 * @param name `tcp` or `snw`.
 * @returns The transport.
 * @throws {RangeError} When no such transport is known.
 */
export function transportByName(name: string): Transport {
  const transport = TRANSPORTS.get(name as TransportName);
  if (!transport) throw new RangeError(`unknown transport "${name}" (tcp|snw)`);
  return transport;
}
