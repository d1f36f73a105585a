/**
 * The `server` executable: origin of the file service, upload receiver,
 * streaming GET/PUT/DEL server and repeat-transfer receiver. Forms are
 * resolved in {@link ../invocation.ts}.
 *
 * @module
 */

import { runMain } from "../cli.ts";
import { resolveServer, type ServerService } from "../invocation.ts";
import { runOriginServer } from "./origin_server.ts";
import { runRepeatServer } from "./repeat_server.ts";
import { runStreamServer } from "./stream_server.ts";
import { runUploadServer } from "./upload_server.ts";

/** Usage text of the `server` executable. */
export const SERVER_USAGE = `usage:
  server <port> tcp|snw [--dir DIR]           file-service origin (alias: server origin ...)
  server <port> <dir> [--timeout SEC]         upload receiver (alias: server upload ...)
  server <port> [-v] [--dir DIR]              streaming GET/PUT/DEL server (alias: server stream ...)
  server repeat <port> <reference-file> [--times N] [--transport tcp|udp|snw] [--dir DIR]
  server -h|--help | -V|--version`;

const SERVICES: Record<ServerService, (args: string[]) => Promise<number>> = {
  origin: runOriginServer,
  upload: runUploadServer,
  stream: runStreamServer,
  repeat: runRepeatServer,
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

if (import.meta.main) Deno.exit(await serverMain(Deno.args));
