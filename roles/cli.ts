/**
 * Shared command-line plumbing for the four executables: usage errors, the
 * mapping of errors to one stderr line and an exit code, and version output.
 *
 * Exit codes (documented in README.md):
 * - 0: success
 * - 1: runtime failure (the operation failed; the reason is on stderr)
 * - 2: usage error (one-line reason plus usage on stderr)
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { VERSION } from "../version.ts";

/** Exit status for a usage error (bad arguments). */
export const EXIT_USAGE = 2;
/** Exit status for a runtime failure. */
export const EXIT_FAILURE = 1;

/** Thrown for bad command-line arguments; printed with the usage text. */
export class UsageError extends Error {
  /**
   * Creates the instance.
   *
   * @param message One-line reason, for example `missing <port>`.
   * @param options Standard error options.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UsageError";
  }
}

/** Thrown by a service that a later release will implement. */
export class NotImplementedError extends Error {
  /**
   * Creates the instance.
   *
   * @param what The service that is not available yet.
   */
  constructor(what: string) {
    super(`${what} is not implemented yet`);
    this.name = "NotImplementedError";
  }
}

/** One service of an executable: what it is and how to run it. */
export interface Service {
  /** Runs the service with its own arguments and resolves to the exit code. */
  run(args: string[]): Promise<number>;
}

/** Writes one line to stdout without buffering surprises. */
export function printLine(line: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
}

/**
 * `text` with control characters (C0, DEL, C1) shown as `\xNN`, and bidi
 * controls and line separators as `\u{NNNN}`, for lines that quote what a
 * peer sent: it cannot then move the cursor, recolour or clear the
 * operator's terminal, reorder the line or forge another. Other text (also
 * zero-width joiners in emoji and scripts) is left as it is.
 *
 * @example
 * ```ts
 * import { printable } from "./cli.ts";
 * import { equal } from "node:assert/strict";
 * equal(printable("GET a\x1b[2J.txt"), "GET a\\x1b[2J.txt");
 * equal(printable("a\u202eb"), "a\\u{202e}b");
 * equal(printable("👩\u200d💻 zoë"), "👩\u200d💻 zoë");
 * ```
 *
 * @param text Any text.
 * @returns The text, safe to print as one line.
 */
export function printable(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex -- matching them is the point
    /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g,
    (c) => {
      const code = c.charCodeAt(0);
      return code <= 0xff
        ? `\\x${code.toString(16).padStart(2, "0")}`
        : `\\u{${code.toString(16)}}`;
    },
  );
}

/**
 * Writes `line` and a newline to `stream` synchronously, all of it; a stream
 * that cannot be written (closed, `/dev/full`) is ignored, so output never
 * turns into a crash.
 *
 * @example
 * ```ts
 * import { writeLineSync } from "./cli.ts";
 * writeLineSync(Deno.stderr, "a line on stderr");
 * ```
 *
 * @param stream Where to write (`Deno.stdout`, `Deno.stderr`).
 * @param line The line, without its newline.
 * @returns Whether the whole line was written.
 */
export function writeLineSync(
  stream: { writeSync(p: Uint8Array): number },
  line: string,
): boolean {
  try {
    const bytes = new TextEncoder().encode(line + "\n");
    let offset = 0;
    while (offset < bytes.length) {
      offset += stream.writeSync(bytes.subarray(offset));
    }
    return true;
  } catch {
    return false; // nowhere to say it
  }
}

/** Writes one line to stderr (see {@linkcode writeLineSync}): never throws. */
export function printError(line: string): void {
  writeLineSync(Deno.stderr, line);
}

/**
 * Parses a TCP/UDP port argument.
 *
 * @param text The argument as typed.
 * @param allowZero Whether 0 (an ephemeral port) is accepted.
 * @returns The port number.
 * @throws {UsageError} When the text is not an integer in range.
 */
export function parsePort(text: string | undefined, allowZero = true): number {
  if (text === undefined) throw new UsageError("missing <port>");
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port <= 65535) || (!allowZero && port === 0)) {
    throw new UsageError(
      `invalid port "${text}": must be ${
        allowZero ? "0-65535 (0: any free port)" : "1-65535"
      }`,
    );
  }
  return port;
}

/**
 * Runs an executable's main function: prints the version for `-V` or
 * `--version` anywhere among the options (before a `--`), maps
 * {@linkcode UsageError} to the usage text and exit code 2 (unless the
 * options ask for `-h/--help`, which a subcommand without its own help then
 * gets from here, exit 0), maps
 * `Deno.errors.NotCapable` to a permission hint, and any other error to one
 * stderr line and exit code 1.
 *
 * @param name The executable name, for messages.
 * @param usage The usage text printed for `--help` and usage errors.
 * @param args The command-line arguments.
 * @param main The dispatcher; resolves to the exit code.
 * @returns The exit code.
 */
export async function runMain(
  name: string,
  usage: string,
  args: string[],
  main: (args: string[]) => Promise<number>,
): Promise<number> {
  const { options } = splitArguments(args);
  if (options.includes("-V") || options.includes("--version")) {
    printLine(`${name} ${VERSION}`);
    return 0;
  }
  if (args.length === 0) {
    printError(`${name}: missing arguments`);
    printError(usage);
    return EXIT_USAGE;
  }
  if (args.length === 1 && (args[0] === "-h" || args[0] === "--help")) {
    printLine(usage);
    return 0;
  }
  try {
    return await main(args);
  } catch (error) {
    if (error instanceof UsageError) {
      // A subcommand without its own help (`server repeat -h`): answer
      // with the executable's usage instead of an error.
      if (options.includes("-h") || options.includes("--help")) {
        printLine(usage);
        return 0;
      }
      printError(`${name}: ${error.message}`);
      printError(usage);
      return EXIT_USAGE;
    }
    if (error instanceof NotImplementedError) {
      printError(`${name}: ${error.message}`);
      return EXIT_USAGE;
    }
    if (error instanceof Deno.errors.NotCapable) {
      printError(
        `${name}: missing permission: ${error.message} (run with the flags in dist/ or deno.json tasks)`,
      );
      return EXIT_FAILURE;
    }
    printError(
      `${name}: ${error instanceof Error ? error.message : String(error)}`,
    );
    return EXIT_FAILURE;
  }
}

/**
 * The longest timeout a timer can wait, in ms (2^31 − 1, ~24.8 days): a
 * longer one fires at once (`TimeoutOverflowWarning`), so timeout options
 * refuse more.
 */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * Reads a timeout option's value: a plain decimal number of seconds
 * (fractions allowed) or of whole milliseconds, with no sign, exponent or
 * hexadecimal, so that every role accepts the same forms.
 *
 * @example
 * ```ts
 * import { parseDurationMs } from "./cli.ts";
 * import { equal } from "node:assert/strict";
 * equal(parseDurationMs("1.5", "s"), 1500);
 * equal(parseDurationMs("250", "ms"), 250);
 * equal(parseDurationMs("1e3", "s"), undefined);
 * ```
 *
 * @param text The option's value.
 * @param unit What the number counts.
 * @returns Whole milliseconds (0 only for a zero), or `undefined` when `text`
 * is not such a number, is above zero but under 1 ms, or is longer than
 * {@linkcode MAX_TIMEOUT_MS}.
 */
export function parseDurationMs(
  text: string,
  unit: "s" | "ms",
): number | undefined {
  const pattern = unit === "s" ? /^\d+(\.\d+)?$/ : /^\d+$/;
  if (!pattern.test(text)) return undefined;
  const value = Number(text);
  const ms = Math.round(unit === "s" ? value * 1000 : value);
  if (ms > MAX_TIMEOUT_MS || (ms === 0 && value > 0)) return undefined;
  return ms;
}

/** The longest timeout in whole seconds, for the options' messages. */
export const MAX_TIMEOUT_SEC: number = Math.floor(MAX_TIMEOUT_MS / 1000);

/**
 * Every option of the executables that takes a value, for the scans made
 * before a service parses its own arguments (help and version here, the
 * positional forms in invocation.ts): the word after one is its value.
 */
export const VALUED_OPTIONS: ReadonlySet<string> = new Set([
  "--address",
  "-a",
  "--block-size",
  "--connect-timeout",
  "--dir",
  "--host",
  "--idle-timeout",
  "--max-bytes",
  "--max-clients",
  "--port",
  "-p",
  "--ready-timeout",
  "--timeout",
  "--timeout-ms",
  "--times",
  "--transport",
  "--user",
  "-u",
]);

/**
 * Splits arguments into options and positional words, before a service
 * parses them: the word after one of {@linkcode VALUED_OPTIONS} is its
 * value (so `--dir -V` or `-u -h` are a directory and a name, not requests
 * for the version or the help), a negative number is a word, and all after
 * `--` are words.
 *
 * @example
 * ```ts
 * import { splitArguments } from "./cli.ts";
 * import { deepEqual } from "node:assert/strict";
 * deepEqual(splitArguments(["h", "5000", "del", "--dir", "-V", "-v"]), {
 *   options: ["-v"],
 *   positionals: ["h", "5000", "del"],
 * });
 * ```
 *
 * @param args Command-line arguments.
 * @returns The options (without their values) and the positional words.
 */
export function splitArguments(
  args: string[],
): { options: string[]; positionals: string[] } {
  const options: string[] = [];
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (arg.length > 1 && arg.startsWith("-") && !/^-\d/.test(arg)) {
      if (VALUED_OPTIONS.has(arg)) i++; // its value follows
      else options.push(arg);
    } else positionals.push(arg);
  }
  return { options, positionals };
}

/**
 * `parseArgs` of `node:util` whose failures (unknown option, missing value)
 * become a {@linkcode UsageError} with the first line of its message.
 *
 * An option that takes a value takes the next argument even when that
 * starts with `-`, as getopt does (`--times -1`, `-u -x`): `parseArgs`
 * alone calls that ambiguous, so the value's own check can say what is
 * wrong with it (`invalid --times "-1"`), or a name like `-x` can be given.
 *
 * @example
 * ```ts
 * import { parseCommandLine } from "./cli.ts";
 * import { equal } from "node:assert/strict";
 * const { values } = parseCommandLine({
 *   args: ["--times", "-1"],
 *   options: { times: { type: "string" } },
 * });
 * equal(values.times, "-1");
 * ```
 *
 * @param config The `parseArgs` configuration.
 * @returns What `parseArgs` returns.
 * @throws {UsageError} When the arguments do not fit `config`.
 */
export function parseCommandLine<T extends ParseArgsConfig>(
  config: T,
): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(
      config.args ? { ...config, args: attachDashValues(config) } : config,
    );
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    throw new UsageError(parseArgsReason(error), { cause: error });
  }
}

/**
 * The one-line reason for a failure of `parseArgs`, in the executables' own
 * words where Node's are long or malformed (its unknown-option advice ends
 * in an unbalanced quote).
 */
function parseArgsReason(error: TypeError): string {
  const code = (error as TypeError & { code?: string }).code;
  const quoted = /'([^']+)'/.exec(error.message)?.[1];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && quoted !== undefined) {
    return `unknown option "${quoted}" (a word starting with "-" that is no option goes after "--")`;
  }
  if (
    code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && quoted !== undefined &&
    error.message.endsWith("argument missing")
  ) {
    return `option ${quoted} needs a value`;
  }
  if (
    code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && quoted !== undefined &&
    error.message.includes("does not take an argument")
  ) {
    return `option ${quoted} takes no value`;
  }
  if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL" && quoted !== undefined) {
    return `unexpected argument "${quoted}"`;
  }
  return error.message.split("\n")[0];
}

/**
 * The arguments as `parseArgs` can take them: `--name value` as
 * `--name=value` where the value starts with `-`, and, when a positional
 * word is a negative number (`server -1 tcp`), every positional word after a
 * `--` (in order), so that the number reaches the port check instead of
 * being refused as an unknown option `-1`.
 */
function attachDashValues(config: ParseArgsConfig): string[] {
  const args = config.args ?? [];
  const takesValue = new Map<string, string>();
  for (const [name, option] of Object.entries(config.options ?? {})) {
    if (option.type !== "string") continue;
    takesValue.set(`--${name}`, name);
    if (option.short) takesValue.set(`-${option.short}`, name);
  }
  const out: string[] = [];
  const options: string[] = [];
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      out.push(...args.slice(i));
      positionals.push(...args.slice(i + 1));
      break;
    }
    const name = takesValue.get(arg);
    const value = args[i + 1];
    if (name !== undefined && value?.startsWith("-")) {
      out.push(`--${name}=${value}`);
      options.push(`--${name}=${value}`);
      i++;
    } else if (name !== undefined && value !== undefined) {
      out.push(arg, value);
      options.push(arg, value);
      i++;
    } else {
      out.push(arg);
      if (arg.length > 1 && arg.startsWith("-") && !/^-\d/.test(arg)) {
        options.push(arg);
      } else positionals.push(arg);
    }
  }
  return positionals.some((word) => /^-\d/.test(word))
    ? [...options, "--", ...positionals]
    : out;
}
