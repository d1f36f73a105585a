/**
 * The `chat` executable: `chat server` and `chat client`.
 *
 * @module
 */

import { runMain, UsageError } from "../cli.ts";
import { runChatClient } from "./chat_client.ts";
import { runChatServer } from "./chat_server.ts";
import { exitAfterEventLines } from "../event_lines.ts";

/** Usage text of the `chat` executable. */
export const CHAT_USAGE = `usage:
  chat server [-p|--port PORT] [-a|--address ADDRESS] [--max-clients N]
  chat client -u|--user NAME [-p|--port PORT] [-a|--address ADDRESS]
  chat -h|--help | -V|--version`;

/**
 * Runs the `chat` executable.
 *
 * @param args The command-line arguments.
 * @returns The exit code.
 */
export function chatMain(args: string[]): Promise<number> {
  return runMain("chat", CHAT_USAGE, args, (all) => {
    const [sub, ...rest] = all;
    if (sub === "server") return runChatServer(rest);
    if (sub === "client") return runChatClient(rest);
    throw new UsageError(`unknown subcommand "${sub}"`);
  });
}

if (import.meta.main) await exitAfterEventLines(await chatMain(Deno.args));
