/**
 * The upload receiver, `server [upload] <PORT> <FILE-DIR>` (SPEC §3; seed
 * 002). Wire protocol: none — every byte a client sends over one TCP
 * connection, until it closes its side, is one file. Any plain TCP sender
 * (`nc`, a Python one-liner, `client <host> <port> <file>`) is a client.
 *
 * - Listens on all interfaces (`0.0.0.0`) and prints one line
 *   `upload receiver listening on 0.0.0.0:<port>, saving to <dir>`.
 * - Connection n (from 1, in accept order) is saved as `<FILE-DIR>/<n>.file`,
 *   streamed through a temporary name; no data for longer than the idle
 *   timeout (default 10 s) → that file holds exactly `ERROR`.
 * - SIGTERM, SIGQUIT, SIGINT and SIGHUP stop the server with exit code 0;
 *   in-flight uploads get the `ERROR` marker first.
 * - Every failure is one stderr line starting `ERROR:`; exit code 2 for a bad
 *   command line (including an invalid port), 1 when the port cannot be
 *   listened on (in use, not permitted) or the directory cannot be created.
 *
 * @module
 */

import { EXIT_FAILURE, EXIT_USAGE, printError, printLine } from "../cli.ts";
import {
  parseUploadServerArgs,
  UPLOAD_SERVER_USAGE,
  UploadArgsError,
  type UploadServerOptions,
} from "../upload/upload_args.ts";
import { UploadReceiver } from "./upload_receiver.ts";
import { onStopSignal } from "../stop_signals.ts";
import { printEventLine } from "../event_lines.ts";
import { removeAbandonedPartials } from "../partial_file.ts";

/** Where the receiver listens: every IPv4 interface. */
const ALL_INTERFACES = "0.0.0.0";

function describeListenError(error: unknown): string {
  if (error instanceof Deno.errors.AddrInUse) return "address already in use";
  if (error instanceof Deno.errors.PermissionDenied) {
    return "permission denied (ports below 1024 need privileges)";
  }
  if (error instanceof Deno.errors.NotCapable) {
    return `missing permission: ${error.message} (run with --allow-net)`;
  }
  return error instanceof Error ? error.message : String(error);
}

async function prepareDir(dir: string): Promise<string | undefined> {
  try {
    await Deno.mkdir(dir, { recursive: true });
    const info = await Deno.stat(dir);
    if (!info.isDirectory) return `"${dir}" is not a directory`;
    await removeAbandonedPartials(dir);
    return undefined;
  } catch (error) {
    return `cannot use directory "${dir}": ${
      error instanceof Error ? error.message : error
    }`;
  }
}

/**
 * Runs the upload receiver until a stop signal.
 *
 * @param args The service's arguments: `<PORT> <FILE-DIR> [options]`.
 * @returns The exit code: 0 after a stop signal, 2 for a bad command line,
 *   1 when listening or the directory fails.
 */
export async function runUploadServer(args: string[]): Promise<number> {
  let options: UploadServerOptions;
  try {
    options = parseUploadServerArgs(args);
  } catch (error) {
    if (!(error instanceof UploadArgsError)) throw error;
    printError(`ERROR: ${error.message}`);
    printError(UPLOAD_SERVER_USAGE);
    return EXIT_USAGE;
  }
  if (options.help) {
    printLine(UPLOAD_SERVER_USAGE);
    return 0;
  }
  let listener: Deno.Listener;
  try {
    listener = Deno.listen({ hostname: ALL_INTERFACES, port: options.port });
  } catch (error) {
    printError(
      `ERROR: cannot listen on port ${options.port}: ${
        describeListenError(error)
      }`,
    );
    return EXIT_FAILURE;
  }
  const dirProblem = await prepareDir(options.dir);
  if (dirProblem) {
    listener.close();
    printError(`ERROR: ${dirProblem}`);
    return EXIT_FAILURE;
  }
  const receiver = new UploadReceiver(listener, {
    dir: options.dir,
    idleTimeoutMs: options.idleTimeoutMs,
    log: options.verbose ? printEventLine : undefined,
  });
  // The seed's SIGQUIT and SIGTERM are among every role's stop signals.
  const forgetSignals = onStopSignal(() => receiver.shutdown());
  try {
    printEventLine(
      `upload receiver listening on ${ALL_INTERFACES}:${options.port}, saving to ${options.dir}`,
    );
    await receiver.finished;
  } finally {
    forgetSignals();
  }
  return 0;
}
