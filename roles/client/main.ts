/**
 * The `client` executable: interactive file-service client, upload client,
 * streaming GET/PUT/DEL client and repeat-transfer sender. Forms are resolved
 * in {@link ../invocation.ts}.
 *
 * @module
 */

import { runMain } from "../cli.ts";
import { type ClientService, resolveClient } from "../invocation.ts";
import { runFileClient } from "./file_client.ts";
import { runRepeatClient } from "./repeat_client.ts";
import { runStreamClient } from "./stream_client.ts";
import { runUploadClient } from "./upload_client.ts";

/** Usage text of the `client` executable. */
export const CLIENT_USAGE = `usage:
  client <srvHost> <srvPort> <cacheHost> <cachePort> tcp|snw [--dir DIR]   file service (alias: client files ...)
  client <host> <port> <file> [--timeout SEC]                             upload (alias: client upload ...)
  client <host> <port> GET|PUT|DEL <file> [--dir DIR]                     streaming (alias: client stream ...)
  client repeat <host> <port> <file> [--times N] [--transport tcp|udp|snw] [--json]
  client -h|--help | -V|--version`;

const SERVICES: Record<ClientService, (args: string[]) => Promise<number>> = {
  files: runFileClient,
  upload: runUploadClient,
  stream: runStreamClient,
  repeat: runRepeatClient,
};

/**
 * Runs the `client` executable.
 *
 * @param args The command-line arguments.
 * @returns The exit code.
 */
export function clientMain(args: string[]): Promise<number> {
  return runMain("client", CLIENT_USAGE, args, (all) => {
    const { service, args: rest } = resolveClient(all);
    return SERVICES[service](rest);
  });
}

if (import.meta.main) Deno.exit(await clientMain(Deno.args));
