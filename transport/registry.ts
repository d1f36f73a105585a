/**
 * Looks transports up by the name users type (`tcp`, `snw`).
 *
 * @module
 */

import { tcpTransport } from "./tcp.ts";
import type { Transport, TransportName } from "./types.ts";

// snw joins here when transport/snw.ts lands.
const TRANSPORTS = new Map<TransportName, Transport>([["tcp", tcpTransport]]);

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
