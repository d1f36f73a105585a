/**
 * The `cache <port> <srvHost> <srvPort> tcp|snw` service (SPEC §1).
 *
 * ```
 * cache <port> <srvHost> <srvPort> tcp|snw [--dir DIR] [--max-bytes N]
 *       [--timeout SEC] [--connect-timeout SEC] [--host ADDR] [--log]
 * cache serve <port> <srvHost> <srvPort> tcp|snw [...]
 * ```
 *
 * - `--dir DIR`: the cache directory (default `./cache`, created); its
 *   contents and index survive a restart.
 * - `--max-bytes N`: byte bound of the cached files, least recently used
 *   evicted first (default 1 GiB; suffixes `K`, `M`, `G` = KiB, MiB, GiB).
 * - `--timeout SEC`: idle timeout of a connection or transfer (default 30).
 * - `--connect-timeout SEC`: bound on connecting to the origin (default 5).
 * - `--host ADDR`: the interface to listen on (default 0.0.0.0).
 * - `--log`: one line per event on stdout (hits, misses, origin fetches,
 *   evictions).
 *
 * Prints `cache listening on <host>:<port> (<transport>), origin
 * <srvHost>:<srvPort>, files in "<dir>"` once ready; SIGINT/SIGTERM/SIGHUP/SIGQUIT stop it
 * with exit code 0.
 *
 * @module
 */

import { parsePort, printable, UsageError } from "../cli.ts";
import {
  DEFAULT_CONNECT_TIMEOUT_SEC,
  DEFAULT_TIMEOUT_SEC,
  parsePeerPort,
  parseRoleArgs,
  parseSeconds,
  parseTransport,
  roleDirectory,
} from "../file_service/file_options.ts";
import { stopSignal } from "../file_service/file_shutdown.ts";
import { CacheServer } from "./cache_service.ts";
import { printEventLine, printEventProblem } from "../event_lines.ts";

/** Default byte bound of the cache. */
export const DEFAULT_MAX_BYTES = 1024 ** 3;

const UNITS: Record<string, number> = {
  "": 1,
  K: 1024,
  M: 1024 ** 2,
  G: 1024 ** 3,
};

/**
 * Parses a `--max-bytes` value.
 *
 * @example
 * ```ts
 * import { parseByteSize } from "./cache_server.ts";
 * console.log(parseByteSize("64M")); // 67108864
 * ```
 *
 * @param text Digits with an optional `K`, `M` or `G` (binary units).
 * @returns The byte count.
 * @throws {UsageError} When malformed.
 */
export function parseByteSize(text: string): number {
  const match = /^(\d+)([KMG]?)(i?B)?$/i.exec(text.trim());
  const value = match ? Number(match[1]) * UNITS[match[2].toUpperCase()] : NaN;
  if (!Number.isSafeInteger(value)) {
    throw new UsageError(
      `invalid --max-bytes "${text}" (e.g. 1048576, 512M, 2G)`,
    );
  }
  return value;
}

/**
 * Runs the cache until SIGINT, SIGTERM, SIGHUP or SIGQUIT.
 *
 * @param args `<port> <srvHost> <srvPort> tcp|snw` and options.
 * @returns The exit code.
 */
export async function runCacheServer(args: string[]): Promise<number> {
  const { positionals, values } = parseRoleArgs(
    args,
    ["<port>", "<srvHost>", "<srvPort>", "tcp|snw"],
    {
      "max-bytes": { type: "string" },
      host: { type: "string" },
      log: { type: "boolean" },
    },
  );
  const port = parsePort(positionals[0]);
  const originHost = positionals[1];
  const originPort = parsePeerPort(positionals[2], "<srvPort>");
  const transport = parseTransport(positionals[3], {
    reportGiveUp: printEventProblem,
  });
  const maxBytes = typeof values["max-bytes"] === "string"
    ? parseByteSize(values["max-bytes"])
    : DEFAULT_MAX_BYTES;
  const hostname = typeof values.host === "string" ? values.host : "0.0.0.0";
  const dir = await roleDirectory(values.dir, "cache");
  const cache = await CacheServer.start({
    transport,
    port,
    hostname,
    originHost,
    originPort,
    dir,
    maxBytes,
    idleMs: parseSeconds(values.timeout, "timeout", DEFAULT_TIMEOUT_SEC),
    connectTimeoutMs: parseSeconds(
      values["connect-timeout"],
      "connect-timeout",
      DEFAULT_CONNECT_TIMEOUT_SEC,
    ),
    log: values.log
      ? (line) => printEventLine(`cache: ${printable(line)}`)
      : undefined,
    problem: (line) => printEventProblem(`cache: ${line}`),
  });
  const { files, bytes } = cache.contents;
  printEventLine(
    `cache listening on ${hostname}:${cache.port} (${transport.name}), origin ${originHost}:${originPort}, files in "${dir}" (${files} cached, ${bytes} bytes)`,
  );
  await Promise.race([stopSignal(), cache.finished]);
  await cache.close();
  return 0;
}
