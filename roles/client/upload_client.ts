/**
 * The upload client, `client [upload] <HOSTNAME-OR-IP> <PORT> <FILENAME>`
 * (SPEC §3; seed 002): sends the file's bytes over one TCP connection and
 * closes it gracefully.
 *
 * - Success: nothing printed (one summary line with `-v`), exit code 0 once
 *   the server has closed its side after the last byte.
 * - Every failure is one stderr line starting `ERROR:`: exit code 2 for a bad
 *   command line (including an invalid port), 1 for a missing or unreadable
 *   file, a host that does not resolve, a refused connection, the connect
 *   timeout, no send progress for the timeout, or a lost connection.
 * - SIGINT, SIGTERM, SIGHUP and SIGQUIT end a connect under way, or reset
 *   the connection, and end the client with `ERROR: interrupted by
 *   <signal> before the server confirmed the upload`, exit code 1.
 * - Every failure after the connection was made resets it (`RST`) rather
 *   than closing it: the seed's protocol has no length, so a graceful close
 *   would make the bytes sent so far look like the whole file to the
 *   server (ours then writes `ERROR` instead).
 * - The connect timeout and the send-progress timeout are both 10 s by
 *   default (`--timeout SEC` / `--timeout-ms MS` sets both).
 *
 * @module
 */

import { EXIT_FAILURE, EXIT_USAGE, printError, printLine } from "../cli.ts";
import { UploadArgsError } from "../upload/upload_args.ts";
import {
  parseUploadClientArgs,
  UPLOAD_CLIENT_USAGE,
  type UploadClientOptions,
} from "./upload_client_args.ts";
import { connectWithin, UploadError } from "./upload_connect.ts";
import { sendUpload } from "./upload_sender.ts";
import type { UploadSocket } from "./upload_socket.ts";
import { watchStopSignals } from "../stop_signals.ts";

async function openSource(path: string): Promise<Deno.FsFile> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    const reason = error instanceof Deno.errors.NotFound
      ? "no such file"
      : error instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : error instanceof Error
      ? error.message
      : String(error);
    throw new UploadError(`cannot open "${path}": ${reason}`, {
      cause: error,
    });
  }
  if ((await file.stat()).isDirectory) {
    file.close();
    throw new UploadError(`cannot send "${path}": it is a directory`);
  }
  return file;
}

/**
 * Runs the upload client.
 *
 * @param args The service's arguments: `<HOST> <PORT> <FILE> [options]`.
 * @returns The exit code: 0 after a complete upload, 2 for a bad command
 *   line, 1 for any other failure.
 */
export async function runUploadClient(args: string[]): Promise<number> {
  let options: UploadClientOptions;
  try {
    options = parseUploadClientArgs(args);
  } catch (error) {
    if (!(error instanceof UploadArgsError)) throw error;
    printError(`ERROR: ${error.message}`);
    printError(UPLOAD_CLIENT_USAGE);
    return EXIT_USAGE;
  }
  if (options.help) {
    printLine(UPLOAD_CLIENT_USAGE);
    return 0;
  }
  const started = performance.now();
  // A stop signal ends the upload: the connection is reset and the run
  // fails with an `ERROR:` line (before: death by the signal, silently).
  let conn: UploadSocket | undefined;
  using stop = watchStopSignals(() => conn?.reset());
  try {
    // Opening a FIFO waits for its writer: a stop ends that wait too.
    const opening = openSource(options.file);
    opening.then((late) => stop.signal && late.close(), () => {});
    using file = await Promise.race([opening, stop.stopped]);
    if (!file) throw new UploadError("interrupted");
    const connecting = connectWithin(
      options.host,
      options.port,
      options.timeoutMs,
    );
    // A connection made after the stop is reset as soon as it exists.
    connecting.then((late) => stop.signal && late.reset(), () => {});
    conn = await Promise.race([connecting, stop.stopped]); // ends a connect
    if (!conn) throw new UploadError("interrupted");
    // A stop also ends a wait on the file (a FIFO or a slow disk).
    const sending = sendUpload(conn, file, options.timeoutMs);
    sending.catch(() => {});
    const bytes = await Promise.race([sending, stop.stopped]);
    if (bytes === undefined) throw new UploadError("interrupted");
    if (options.verbose) {
      const ms = Math.round(performance.now() - started);
      printLine(
        `sent ${bytes} bytes of "${options.file}" to ${options.host}:${options.port} in ${ms} ms`,
      );
    }
    return 0;
  } catch (error) {
    printError(
      stop.signal
        ? `ERROR: interrupted by ${stop.signal} before the server confirmed the upload`
        : `ERROR: ${describeFailure(error)}`,
    );
    return EXIT_FAILURE;
  }
}

/** The `ERROR:` line's text for any failure (unexpected ones included). */
function describeFailure(error: unknown): string {
  if (error instanceof Deno.errors.NotCapable) {
    return `missing permission: ${error.message} (run with --allow-net --allow-read)`;
  }
  return error instanceof Error ? error.message : String(error);
}
