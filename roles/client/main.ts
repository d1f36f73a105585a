/**
 * The `client` executable: interactive file-service client, upload client,
 * streaming GET/PUT/DEL client and repeat-transfer sender. Forms are resolved
 * in {@link ../invocation.ts}.
 *
 * @module
 */

import { runMain } from "../cli.ts";
import { type ClientService, resolveClient } from "../invocation.ts";

/** Usage text of the `client` executable. */
export const CLIENT_USAGE = `usage:
  client <srvHost> <srvPort> <cacheHost> <cachePort> tcp|snw [--dir DIR]
      [--timeout SEC] [--connect-timeout SEC]
      file service (alias: client files ...)
  client <host> <port> <file> [--timeout SEC | --timeout-ms MS] [-v]
      upload (alias: client upload ...)
  client <host> <port> GET|PUT|DEL <file> [--dir DIR] [--block-size N]
      [--idle-timeout SEC] [--connect-timeout SEC] [--ready-timeout SEC]
      streaming (alias: client stream ...)
  client repeat <host> <port> <file> [--times N] [--transport tcp|udp|snw]
      [--idle-timeout MS] [--json]
      repeat-transfer sender
  client -h|--help | -V|--version`;

// Services load on dispatch, so each form starts only what it needs.
const SERVICES: Record<ClientService, (args: string[]) => Promise<number>> = {
  files: async (args) => (await import("./file_client.ts")).runFileClient(args),
  upload: async (args) =>
    (await import("./upload_client.ts")).runUploadClient(args),
  stream: async (args) =>
    (await import("./stream_client.ts")).runStreamClient(args),
  repeat: async (args) =>
    (await import("./repeat_client.ts")).runRepeatClient(args),
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
