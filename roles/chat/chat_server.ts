/**
 * The chat server (placeholder until its issue lands).
 *
 * @module
 */

import { NotImplementedError } from "../cli.ts";

/**
 * Runs the chat server.
 *
 * @param _args The service's command-line arguments.
 * @returns The exit code.
 */
export function runChatServer(_args: string[]): Promise<number> {
  return Promise.reject(new NotImplementedError("the chat server"));
}
