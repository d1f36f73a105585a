/**
 * The `cache` executable: the caching proxy of the file service.
 *
 * @module
 */

import { runMain } from "../cli.ts";
import { runCacheServer } from "./cache_server.ts";
import { exitAfterEventLines } from "../event_lines.ts";

/** Usage text of the `cache` executable. */
export const CACHE_USAGE = `usage:
  cache <port> <srvHost> <srvPort> tcp|snw [--dir DIR] [--max-bytes N]
      [--timeout SEC] [--connect-timeout SEC] [--host ADDR] [--log]
      (alias: cache serve ...)
  cache -h|--help | -V|--version`;

/**
 * Runs the `cache` executable.
 *
 * @param args The command-line arguments.
 * @returns The exit code.
 */
export function cacheMain(args: string[]): Promise<number> {
  return runMain("cache", CACHE_USAGE, args, (all) => {
    return runCacheServer(all[0] === "serve" ? all.slice(1) : all);
  });
}

if (import.meta.main) await exitAfterEventLines(await cacheMain(Deno.args));
