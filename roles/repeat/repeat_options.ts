/**
 * Options shared by both sides of the repeat transfer (`server repeat`,
 * `client repeat`): transport names, copy count and idle timeout, with
 * their defaults and parsers.
 *
 * @module
 */

import { MAX_TIMEOUT_MS, parseDurationMs, UsageError } from "../cli.ts";

/** Transports of the repeat transfer. */
export const REPEAT_TRANSPORTS = ["tcp", "udp", "snw"] as const;
/** A transport of the repeat transfer. */
export type RepeatTransportName = typeof REPEAT_TRANSPORTS[number];

/** Default number of copies. */
export const DEFAULT_TIMES = 100;
/** Default idle timeout of a raw-UDP copy, in ms. */
export const DEFAULT_UDP_IDLE_MS = 1000;
/** Default stall timeout of a tcp/snw copy, in ms. */
export const DEFAULT_SESSION_IDLE_MS = 10_000;
/** Default directory of received copies. */
export const DEFAULT_COPY_DIR = "repeat_copies";

/**
 * Parses `--times N`.
 *
 * @param text The argument.
 * @returns N (1 to 1 000 000).
 * @throws {UsageError} When it is not such an integer.
 */
export function parseTimes(text: string | undefined): number {
  if (text === undefined) return DEFAULT_TIMES;
  if (!/^\d{1,7}$/.test(text) || Number(text) < 1 || Number(text) > 1e6) {
    throw new UsageError(`invalid --times "${text}": must be 1-1000000`);
  }
  return Number(text);
}

/**
 * Parses `--transport`.
 *
 * @param text The argument.
 * @returns The transport name (default `tcp`).
 * @throws {UsageError} When it is not tcp, udp or snw.
 */
export function parseRepeatTransport(
  text: string | undefined,
): RepeatTransportName {
  if (text === undefined) return "tcp";
  if (!(REPEAT_TRANSPORTS as readonly string[]).includes(text)) {
    throw new UsageError(`invalid --transport "${text}": must be tcp|udp|snw`);
  }
  return text as RepeatTransportName;
}

/**
 * Parses `--idle-timeout MS`.
 *
 * @param text The argument.
 * @param transport Picks the default.
 * @returns The timeout in ms.
 * @throws {UsageError} When it is not a positive integer.
 */
export function parseIdleTimeout(
  text: string | undefined,
  transport: RepeatTransportName,
): number {
  if (text === undefined) {
    return transport === "udp" ? DEFAULT_UDP_IDLE_MS : DEFAULT_SESSION_IDLE_MS;
  }
  const ms = parseDurationMs(text, "ms");
  if (!ms) {
    throw new UsageError(
      `invalid --idle-timeout "${text}": must be whole ms from 1 to ${MAX_TIMEOUT_MS}`,
    );
  }
  return ms;
}
