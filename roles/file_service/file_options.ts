/**
 * Command-line options shared by the three roles of the file service
 * (origin `server`, `cache`, `client`): parsing with node:util `parseArgs`,
 * every mistake reported as a {@linkcode UsageError}.
 *
 * | option                  | default          | meaning                                   |
 * | ----------------------- | ---------------- | ----------------------------------------- |
 * | `--dir DIR`             | `./<role>`       | the role's directory (created if missing) |
 * | `--timeout SEC`         | 30               | idle timeout of a connection or transfer  |
 * | `--connect-timeout SEC` | 5                | bound on connecting to a server           |
 *
 * @module
 */

import {
  MAX_TIMEOUT_SEC,
  parseCommandLine,
  parseDurationMs,
  parsePort,
  UsageError,
} from "../cli.ts";
import {
  transportByName,
  type TransportSettings,
} from "../../transport/registry.ts";
import type { Transport } from "../../transport/types.ts";

/** Default idle timeout, in seconds. */
export const DEFAULT_TIMEOUT_SEC = 30;
/** Default bound on connecting, in seconds. */
export const DEFAULT_CONNECT_TIMEOUT_SEC = 5;

/** The option table of node:util `parseArgs`. */
export type OptionTable = Record<
  string,
  { type: "string" | "boolean"; short?: string }
>;

/** Options every file-service role accepts. */
export const COMMON_OPTIONS: OptionTable = {
  dir: { type: "string" },
  timeout: { type: "string" },
  "connect-timeout": { type: "string" },
};

/** Parsed arguments: positionals and option values. */
export interface ParsedRoleArgs {
  /** The positional arguments. */
  positionals: string[];
  /** Option values by name. */
  values: Record<string, string | boolean | undefined>;
}

/**
 * Parses a role's arguments.
 *
 * @param args The arguments.
 * @param names The positional names, for the usage error.
 * @param extra Options beyond {@linkcode COMMON_OPTIONS}.
 * @returns The positionals (exactly `names.length`) and options.
 * @throws {UsageError} On an unknown option or a wrong number of positionals.
 */
export function parseRoleArgs(
  args: string[],
  names: string[],
  extra: OptionTable = {},
): ParsedRoleArgs {
  const parsed = parseCommandLine({
    args,
    options: { ...COMMON_OPTIONS, ...extra },
    allowPositionals: true,
    strict: true,
  });
  const positionals = parsed.positionals;
  if (positionals.length < names.length) {
    throw new UsageError(
      `missing ${names.slice(positionals.length).join(" ")}`,
    );
  }
  if (positionals.length > names.length) {
    throw new UsageError(
      `unexpected argument "${positionals[names.length]}"`,
    );
  }
  const empty = positionals.findIndex((value) => value.trim() === "");
  if (empty >= 0) throw new UsageError(`empty ${names[empty]}`);
  return { positionals, values: parsed.values };
}

/**
 * Parses a duration in seconds (fractions allowed) into milliseconds, in
 * the forms of {@linkcode parseDurationMs}.
 *
 * @param text The value, or `undefined` for the default.
 * @param flag The option name, for the message.
 * @param fallbackSec The default, in seconds.
 * @returns Milliseconds.
 * @throws {UsageError} When not a positive number of at least 1 ms, or
 * longer than a timer can wait (about 24.8 days).
 */
export function parseSeconds(
  text: string | boolean | undefined,
  flag: string,
  fallbackSec: number,
): number {
  if (text === undefined) return fallbackSec * 1000;
  const ms = typeof text === "string" ? parseDurationMs(text, "s") : undefined;
  if (!ms) {
    throw new UsageError(
      `invalid --${flag} "${text}": seconds from 0.001 to ${MAX_TIMEOUT_SEC}`,
    );
  }
  return ms;
}

/**
 * Parses a port that must be set (1-65535).
 *
 * @param text The value.
 * @param what Its name in messages.
 * @returns The port.
 * @throws {UsageError} When invalid.
 */
export function parsePeerPort(text: string, what: string): number {
  try {
    return parsePort(text, false);
  } catch (error) {
    throw new UsageError(`${what}: ${(error as Error).message}`);
  }
}

/**
 * Looks up the transport named on the command line.
 *
 * @param text `tcp` or `snw`.
 * @param settings What the role sets on it (a server's give-up writer).
 * @returns The transport.
 * @throws {UsageError} For another name, or bad `SOCKKIT_SNW_*` tuning.
 */
export function parseTransport(
  text: string,
  settings?: TransportSettings,
): Transport {
  try {
    return transportByName(text, settings);
  } catch (error) {
    // An unknown name, or bad SNW tuning in the environment: say which.
    throw new UsageError(
      error instanceof Error ? error.message : String(error),
      { cause: error },
    );
  }
}

/**
 * Returns the role's directory, creating it if needed.
 *
 * @param value The `--dir` value, if any.
 * @param role The role's default folder name.
 * @returns The directory path.
 */
export async function roleDirectory(
  value: string | boolean | undefined,
  role: string,
): Promise<string> {
  const dir = typeof value === "string" && value !== "" ? value : role;
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}
