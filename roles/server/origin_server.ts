/**
 * The `server <port> tcp|snw` service: the file-service origin (SPEC §1).
 *
 * ```
 * server <port> tcp|snw [--dir DIR] [--timeout SEC] [--host ADDR] [--log]
 * server origin <port> tcp|snw [...]
 * ```
 *
 * - `--dir DIR`: where files are stored (default `./server`, created).
 * - `--timeout SEC`: idle timeout of a connection or transfer (default 30).
 * - `--host ADDR`: the interface to listen on (default 0.0.0.0).
 * - `--log`: one line per request on stdout.
 *
 * Prints `origin server listening on <host>:<port> (<transport>), files in
 * "<dir>"` once ready; SIGINT/SIGTERM/SIGHUP/SIGQUIT stop it with exit code 0.
 *
 * @module
 */

import { parsePort, printable } from "../cli.ts";
import {
  DEFAULT_TIMEOUT_SEC,
  parseRoleArgs,
  parseSeconds,
  parseTransport,
  roleDirectory,
} from "../file_service/file_options.ts";
import { stopSignal } from "../file_service/file_shutdown.ts";
import { OriginServer } from "./origin_service.ts";
import { printEventLine, printEventProblem } from "../event_lines.ts";

/**
 * Runs the file-service origin server until SIGINT, SIGTERM, SIGHUP or SIGQUIT.
 *
 * @param args `<port> tcp|snw` and options.
 * @returns The exit code.
 */
export async function runOriginServer(args: string[]): Promise<number> {
  const { positionals, values } = parseRoleArgs(args, [
    "<port>",
    "tcp|snw",
  ], { host: { type: "string" }, log: { type: "boolean" } });
  const port = parsePort(positionals[0]);
  const transport = parseTransport(positionals[1], {
    reportGiveUp: printEventProblem,
  });
  const idleMs = parseSeconds(values.timeout, "timeout", DEFAULT_TIMEOUT_SEC);
  const hostname = typeof values.host === "string" ? values.host : "0.0.0.0";
  const dir = await roleDirectory(values.dir, "server");
  const server = await OriginServer.start({
    transport,
    port,
    hostname,
    dir,
    idleMs,
    log: values.log
      ? (line) => printEventLine(`origin: ${printable(line)}`)
      : undefined,
    problem: (line) => printEventProblem(`server: ${line}`),
  });
  printEventLine(
    `origin server listening on ${hostname}:${server.port} (${transport.name}), files in "${dir}"`,
  );
  await Promise.race([stopSignal(), server.finished]);
  server.close();
  await server.finished;
  return 0;
}
