/**
 * Command line of the upload client, `client [upload] <HOSTNAME-OR-IP>
 * <PORT> <FILENAME>` (SPEC §3). The scanning rules are shared with the
 * receiver in `roles/upload/upload_args.ts`.
 *
 * @module
 */

import {
  parseTimeoutOptions,
  parseUploadPort,
  scanArgs,
  UPLOAD_FLAGS,
  UploadArgsError,
} from "../upload/upload_args.ts";

/** Settings of the upload client. */
export interface UploadClientOptions {
  /** The server's host name or IP address. */
  host: string;
  /** The server's port. */
  port: number;
  /** The file to send. */
  file: string;
  /** Connect timeout and send-progress timeout, in milliseconds. */
  timeoutMs: number;
  /** Print a summary line on stdout after the upload. */
  verbose: boolean;
  /** Print the usage text and exit. */
  help: boolean;
}

/** Usage text of the upload client. */
export const UPLOAD_CLIENT_USAGE =
  `usage: client [upload] <HOSTNAME-OR-IP> <PORT> <FILENAME> [--timeout SEC | --timeout-ms MS] [-v]
  --timeout SEC   connect timeout and send-progress timeout (default 10)
  --timeout-ms MS the same in milliseconds
  -v, --verbose   print a summary line after the upload`;

/**
 * Parses the upload client's arguments (after `client [upload]`).
 *
 * @example
 * ```ts
 * import { parseUploadClientArgs } from "./upload_client_args.ts";
 * import { equal } from "node:assert/strict";
 * const options = parseUploadClientArgs(["localhost", "5000", "a.bin"]);
 * equal(options.timeoutMs, 10_000);
 * ```
 *
 * @param args The arguments.
 * @returns The settings.
 * @throws {UploadArgsError} On a bad command line.
 */
export function parseUploadClientArgs(
  args: readonly string[],
): UploadClientOptions {
  const scanned = scanArgs(args, {
    valued: ["--timeout", "--timeout-ms"],
    flags: UPLOAD_FLAGS,
  });
  const help = scanned.flags.has("--help");
  if (help) {
    return { host: "", port: 0, file: "", timeoutMs: 0, verbose: false, help };
  }
  const [host, port, file, ...extra] = scanned.positional;
  if (host === undefined) throw new UploadArgsError("missing <HOSTNAME-OR-IP>");
  if (host === "") throw new UploadArgsError("empty <HOSTNAME-OR-IP>");
  if (port === undefined) throw new UploadArgsError("missing <PORT>");
  const portNumber = parseUploadPort(port);
  if (file === undefined) throw new UploadArgsError("missing <FILENAME>");
  if (extra.length > 0) {
    throw new UploadArgsError(`unexpected argument "${extra[0]}"`);
  }
  return {
    host,
    port: portNumber,
    file,
    timeoutMs: parseTimeoutOptions(args, scanned.options),
    verbose: scanned.flags.has("--verbose"),
    help,
  };
}
