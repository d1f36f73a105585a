/**
 * Command lines of the upload receiver (`server <PORT> <FILE-DIR>`) and the
 * upload client (`client <HOST> <PORT> <FILE>`), SPEC §3.
 *
 * Both print every failure as one stderr line starting `ERROR:` (the
 * assignment's rule), so their arguments are parsed here rather than with
 * the shared usage machinery of `roles/cli.ts`, whose messages look
 * different. Options may come before, between or after the positional
 * arguments; a word that looks like a negative number (`-1`) is a positional
 * argument, so `server -1 files` reports an invalid port rather than an
 * unknown option.
 *
 * @module
 */

import {
  MAX_TIMEOUT_MS,
  MAX_TIMEOUT_SEC,
  parseDurationMs,
  parsePort,
  UsageError,
} from "../cli.ts";

/** The assignment's timeout for both the receiver and the client: 10 s. */
export const DEFAULT_UPLOAD_TIMEOUT_MS = 10_000;

/**
 * A bad command line of the upload receiver or client (exit code 2): printed
 * as one `ERROR:` line (the assignment's form) followed by the usage text
 * (SPEC §0).
 */
export class UploadArgsError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong, for example `invalid port "abc"`.
   * @param options Standard error options.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UploadArgsError";
  }
}

/** A command line split into positional arguments, options and flags. */
export interface ScannedArgs {
  /** Arguments that are not options, in order. */
  positional: string[];
  /** Options with a value, by name (`--timeout`), last one wins. */
  options: Map<string, string>;
  /** Options without a value that were given (`--verbose`). */
  flags: Set<string>;
}

/** Which options a command line accepts. */
export interface ArgsSpec {
  /** Options that take a value (`--timeout 5` or `--timeout=5`). */
  valued: readonly string[];
  /** Options without a value; aliases map a short name to a long one. */
  flags: Readonly<Record<string, string>>;
}

/**
 * Splits a command line into positional arguments, options and flags.
 *
 * @example
 * ```ts
 * import { scanArgs } from "./upload_args.ts";
 * import { deepEqual } from "node:assert/strict";
 * const scanned = scanArgs(["-1", "dir", "--timeout=2", "-v"], {
 *   valued: ["--timeout"],
 *   flags: { "-v": "--verbose", "--verbose": "--verbose" },
 * });
 * deepEqual(scanned.positional, ["-1", "dir"]);
 * deepEqual(scanned.options.get("--timeout"), "2");
 * deepEqual([...scanned.flags], ["--verbose"]);
 * ```
 *
 * @param args The arguments.
 * @param spec The accepted options.
 * @returns The split arguments.
 * @throws {UploadArgsError} On an unknown option or a missing option value.
 */
export function scanArgs(args: readonly string[], spec: ArgsSpec): ScannedArgs {
  const scanned: ScannedArgs = {
    positional: [],
    options: new Map(),
    flags: new Set(),
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      scanned.positional.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-" || /^-\d/.test(arg)) {
      scanned.positional.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    if (spec.valued.includes(name)) {
      const value = eq >= 0 ? arg.slice(eq + 1) : args[++i];
      if (value === undefined) {
        throw new UploadArgsError(`option ${name} needs a value`);
      }
      scanned.options.set(name, value);
    } else if (eq < 0 && spec.flags[name] !== undefined) {
      scanned.flags.add(spec.flags[name]);
    } else {
      throw new UploadArgsError(`unknown option "${arg}"`);
    }
  }
  return scanned;
}

/**
 * Parses a port for the upload services: an integer from 1 to 65535 (0 is
 * refused: the assignment gives no way to learn an ephemeral port).
 *
 * @example
 * ```ts
 * import { parseUploadPort } from "./upload_args.ts";
 * import { equal, throws } from "node:assert/strict";
 * equal(parseUploadPort("5000"), 5000);
 * throws(() => parseUploadPort("0"));
 * ```
 *
 * @param text The argument as typed.
 * @returns The port.
 * @throws {UploadArgsError} When it is not a port number.
 */
export function parseUploadPort(text: string): number {
  try {
    return parsePort(text, false);
  } catch (error) {
    if (error instanceof UsageError) {
      throw new UploadArgsError(
        `invalid port "${text}": must be an integer from 1 to 65535`,
      );
    }
    throw error;
  }
}

/**
 * Reads the timeout options: `--timeout SEC` (decimals allowed, so
 * `--timeout 0.5` is 500 ms) and `--timeout-ms MS`; the later one on the
 * command line wins when both are given.
 *
 * @example
 * ```ts
 * import { parseTimeoutOptions } from "./upload_args.ts";
 * import { equal } from "node:assert/strict";
 * equal(parseTimeoutOptions(["--timeout", "1.5"], new Map([["--timeout", "1.5"]])), 1500);
 * equal(parseTimeoutOptions([], new Map()), 10_000);
 * ```
 *
 * @param args The raw arguments (to find which option came last).
 * @param options The scanned option values.
 * @returns The timeout in milliseconds.
 * @throws {UploadArgsError} When a value is not a positive number.
 */
export function parseTimeoutOptions(
  args: readonly string[],
  options: ReadonlyMap<string, string>,
): number {
  const seconds = options.get("--timeout");
  const millis = options.get("--timeout-ms");
  const lastIndex = (name: string) =>
    args.findLastIndex((arg) => arg === name || arg.startsWith(`${name}=`));
  const useMillis = millis !== undefined &&
    (seconds === undefined ||
      lastIndex("--timeout-ms") > lastIndex("--timeout"));
  if (useMillis) {
    const ms = parseDurationMs(millis, "ms");
    if (!ms) {
      throw new UploadArgsError(
        `invalid --timeout-ms "${millis}": must be a whole number of milliseconds from 1 to ${MAX_TIMEOUT_MS}`,
      );
    }
    return ms;
  }
  if (seconds !== undefined) {
    const ms = parseDurationMs(seconds, "s");
    if (!ms) {
      throw new UploadArgsError(
        `invalid --timeout "${seconds}": must be a number of seconds from 0.001 to ${MAX_TIMEOUT_SEC}`,
      );
    }
    return ms;
  }
  return DEFAULT_UPLOAD_TIMEOUT_MS;
}

/** Settings of the upload receiver. */
export interface UploadServerOptions {
  /** The TCP port to listen on (all interfaces). */
  port: number;
  /** The directory the `<n>.file` files go to. */
  dir: string;
  /** Abort a connection after this long without data, in milliseconds. */
  idleTimeoutMs: number;
  /** Print one line per connection event on stdout. */
  verbose: boolean;
  /** Print the usage text and exit. */
  help: boolean;
}

/** Usage text of the upload receiver. */
export const UPLOAD_SERVER_USAGE =
  `usage: server [upload] <PORT> <FILE-DIR> [--timeout SEC | --timeout-ms MS] [-v]
  <PORT>          TCP port 1-65535, listened on at all interfaces (0.0.0.0)
  <FILE-DIR>      where connection n is saved as <n>.file (created if missing)
  --timeout SEC   abort a connection after SEC seconds without data (default 10)
  --timeout-ms MS the same in milliseconds
  -v, --verbose   one stdout line per connection event`;

/** Flags both upload commands accept: `-v/--verbose`, `-h/--help`. */
export const UPLOAD_FLAGS = {
  "-v": "--verbose",
  "--verbose": "--verbose",
  "-h": "--help",
  "--help": "--help",
} as const;

/**
 * Parses the upload receiver's arguments (after `server [upload]`).
 *
 * @example
 * ```ts
 * import { parseUploadServerArgs } from "./upload_args.ts";
 * import { equal } from "node:assert/strict";
 * const options = parseUploadServerArgs(["5000", "save", "--timeout-ms", "800"]);
 * equal(options.port, 5000);
 * equal(options.idleTimeoutMs, 800);
 * ```
 *
 * @param args The arguments.
 * @returns The settings.
 * @throws {UploadArgsError} On a bad command line.
 */
export function parseUploadServerArgs(
  args: readonly string[],
): UploadServerOptions {
  const scanned = scanArgs(args, {
    valued: ["--timeout", "--timeout-ms"],
    flags: UPLOAD_FLAGS,
  });
  const help = scanned.flags.has("--help");
  if (help) {
    return { port: 0, dir: "", idleTimeoutMs: 0, verbose: false, help };
  }
  const [port, dir, ...extra] = scanned.positional;
  if (port === undefined) throw new UploadArgsError("missing <PORT>");
  const portNumber = parseUploadPort(port);
  if (dir === undefined) throw new UploadArgsError("missing <FILE-DIR>");
  if (dir === "") throw new UploadArgsError("empty <FILE-DIR>");
  if (extra.length > 0) {
    throw new UploadArgsError(`unexpected argument "${extra[0]}"`);
  }
  return {
    port: portNumber,
    dir,
    idleTimeoutMs: parseTimeoutOptions(args, scanned.options),
    verbose: scanned.flags.has("--verbose"),
    help,
  };
}
