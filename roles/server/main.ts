/**
 * The `server` executable: origin of the file service, upload receiver,
 * streaming GET/PUT/DEL server and repeat-transfer receiver. Forms are
 * resolved in {@link ../invocation.ts}.
 *
 * @module
 */

import { runMain } from "../cli.ts";
import { resolveServer, type ServerService } from "../invocation.ts";
import { exitAfterEventLines } from "../event_lines.ts";

/** Usage text of the `server` executable. */
export const SERVER_USAGE = `usage:
  server <port> tcp|snw [--dir DIR] [--timeout SEC] [--host ADDR] [--log]
      file-service origin (alias: server origin ...)
  server <port> <dir> [--timeout SEC | --timeout-ms MS] [-v]
      upload receiver (alias: server upload ...)
  server <port> [-v] [--dir DIR] [--block-size N] [--idle-timeout SEC] [--host ADDR]
      streaming GET/PUT/DEL (alias: server stream ...)
  server repeat <port> <reference-file> [--times N] [--transport tcp|udp|snw]
      [--dir DIR] [--idle-timeout MS] [--json]
      repeat-transfer receiver
  server -h|--help | -V|--version`;

// Services load on dispatch, so each form starts only what it needs.
const SERVICES: Record<ServerService, (args: string[]) => Promise<number>> = {
  origin: async (args) =>
    (await import("./origin_server.ts")).runOriginServer(args),
  upload: async (args) =>
    (await import("./upload_server.ts")).runUploadServer(args),
  stream: async (args) =>
    (await import("./stream_server.ts")).runStreamServer(args),
  repeat: async (args) =>
    (await import("./repeat_server.ts")).runRepeatServer(args),
};

/**
 * Runs the `server` executable.
 *
 * @param args The command-line arguments.
 * @returns The exit code.
 */
export function serverMain(args: string[]): Promise<number> {
  return runMain("server", SERVER_USAGE, args, (all) => {
    const { service, args: rest } = resolveServer(all);
    return SERVICES[service](rest);
  });
}

if (import.meta.main) await exitAfterEventLines(await serverMain(Deno.args));
