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

/**
 * A positive number from the environment, `undefined` when unset (or when
 * the environment may not be read).
 */
function envNumber(name: string): number | undefined {
  let text: string | undefined;
  try {
    text = Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: defaults
  }
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!(value > 0)) {
    throw new RangeError(`${name} must be a positive number, not "${text}"`);
  }
  return value;
}

/** What a role may set on the transport it looks up, beyond the environment. */
export interface TransportSettings {
  /**
   * Prints an SNW give-up line (default: a synchronous write to stderr, as
   * SPEC §6 asks). A server passes a writer that cannot block it.
   */
  reportGiveUp?: (line: string) => void;
}

// Built on first use, so a bad tuning variable is an ordinary error of the
// command that asked for snw, not a crash while loading the module.
const FACTORIES: Record<
  TransportName,
  (settings: TransportSettings) => Transport
> = {
  tcp: () => tcpTransport,
  snw: (settings) =>
    createSnwTransport({
      timeoutMs: envNumber("SOCKKIT_SNW_TIMEOUT_MS"),
      chunkSize: envNumber("SOCKKIT_SNW_CHUNK_SIZE"),
      reportGiveUp: settings.reportGiveUp,
    }),
};
const built = new Map<TransportName, Transport>();

/**
 * Returns the transport called `name`.
 *
 * @param name `tcp` or `snw`.
 * @param settings What the role sets (a transport with settings is built
 *   anew; without, one per name is shared).
 * @returns The transport.
 * @throws {RangeError} When no such transport is known, or the snw tuning
 *   from the environment is invalid.
 */
export function transportByName(
  name: string,
  settings?: TransportSettings,
): Transport {
  if (!Object.hasOwn(FACTORIES, name)) {
    throw new RangeError(`unknown transport "${name}" (tcp|snw)`);
  }
  const key = name as TransportName;
  if (settings) return FACTORIES[key](settings);
  let transport = built.get(key);
  if (!transport) {
    transport = FACTORIES[key]({});
    built.set(key, transport);
  }
  return transport;
}
