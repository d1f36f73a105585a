/**
 * Command-line options of `chat server` and `chat client`, and their help
 * texts (the option lines of the assignment, plus `--max-clients`).
 *
 * @module
 */

import type { ParseArgsConfig } from "node:util";
import { parseCommandLine, parsePort, UsageError } from "../cli.ts";
import { MAX_LIST_USERS } from "../../protocol/chat_protocol.ts";

/** Port both roles use when `-p` is not given. */
export const DEFAULT_CHAT_PORT = 15000;
/** Address both roles use when `-a` is not given. */
export const DEFAULT_CHAT_ADDRESS = "localhost";
/** `MAX_NUM_CLIENTS` of the assignment; `--max-clients` changes it. */
export const DEFAULT_MAX_CLIENTS = 10;
/** Highest `--max-clients` (a users list must fit in one message). */
export const MAX_MAX_CLIENTS: number = MAX_LIST_USERS;

/** Printed by `chat server -h`. */
export const SERVER_HELP: string = [
  "Server",
  "-p PORT | --port=PORT The server port, defaults to 15000",
  "-a ADDRESS | --address=ADDRESS The server ip or hostname, defaults to localhost",
  "--max-clients=N The most users joined at a time (MAX_NUM_CLIENTS), defaults to 10",
  "-h | --help Print this help",
].join("\n");

/** Printed by `chat client -h`, and after `Missing Username.`. */
export const CLIENT_HELP: string = [
  "Client",
  "-u username | --user=username The username of Client",
  "-p PORT | --port=PORT The server port, defaults to 15000",
  "-a ADDRESS | --address=ADDRESS The server ip or hostname, defaults to localhost",
  "-h | --help Print this help",
].join("\n");

/** Options of `chat server`. */
export interface ChatServerArgs {
  /** `-h` was given. */
  help: boolean;
  /** Address to listen on. */
  address: string;
  /** Port to listen on (0: any free port). */
  port: number;
  /** Most clients joined at a time. */
  maxClients: number;
}

/** Options of `chat client`. */
export interface ChatClientArgs {
  /** `-h` was given. */
  help: boolean;
  /** The username, when given. */
  user?: string;
  /** Server address. */
  address: string;
  /** Server port. */
  port: number;
}

function parse(
  args: string[],
  options: NonNullable<ParseArgsConfig["options"]>,
): Record<string, string | boolean | undefined> {
  const { values, positionals } = parseCommandLine({
    args,
    options,
    strict: true,
    allowPositionals: true,
  });
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument "${positionals[0]}"`);
  }
  return values as Record<string, string | boolean | undefined>;
}

function text(value: string | boolean | undefined): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/**
 * Parses the arguments of `chat server`.
 *
 * @example
 * ```ts
 * import { parseServerArgs } from "./chat_options.ts";
 * console.log(parseServerArgs(["-p", "0", "--max-clients", "1000"]).maxClients); // 1000
 * ```
 *
 * @param args The arguments after `server`.
 * @returns The options, with defaults.
 * @throws {UsageError} On unknown options, a bad port or a bad count.
 */
export function parseServerArgs(args: string[]): ChatServerArgs {
  const values = parse(args, {
    port: { type: "string", short: "p" },
    address: { type: "string", short: "a" },
    "max-clients": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  const maxText = text(values["max-clients"]);
  let maxClients = DEFAULT_MAX_CLIENTS;
  if (maxText !== undefined) {
    maxClients = Number(maxText);
    if (
      !/^[0-9]{1,6}$/.test(maxText) || maxClients < 1 ||
      maxClients > MAX_MAX_CLIENTS
    ) {
      throw new UsageError(
        `invalid --max-clients "${maxText}": must be 1-${MAX_MAX_CLIENTS}`,
      );
    }
  }
  const portText = text(values.port);
  return {
    help: values.help === true,
    address: text(values.address) ?? DEFAULT_CHAT_ADDRESS,
    port: portText === undefined ? DEFAULT_CHAT_PORT : parsePort(portText),
    maxClients,
  };
}

/**
 * Parses the arguments of `chat client` (a missing `-u` is left to the
 * caller, which prints `Missing Username.`).
 *
 * @param args The arguments after `client`.
 * @returns The options, with defaults.
 * @throws {UsageError} On unknown options or a bad port.
 */
export function parseClientArgs(args: string[]): ChatClientArgs {
  const values = parse(args, {
    user: { type: "string", short: "u" },
    port: { type: "string", short: "p" },
    address: { type: "string", short: "a" },
    help: { type: "boolean", short: "h" },
  });
  const portText = text(values.port);
  return {
    help: values.help === true,
    user: text(values.user),
    address: text(values.address) ?? DEFAULT_CHAT_ADDRESS,
    port: portText === undefined
      ? DEFAULT_CHAT_PORT
      : parsePort(portText, false),
  };
}
