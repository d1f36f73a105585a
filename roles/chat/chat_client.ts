/**
 * The chat client (placeholder until its issue lands).
 *
 * @module
 */

import { NotImplementedError } from "../cli.ts";

/**
 * Runs the chat client.
 *
 * @param _args The service's command-line arguments.
 * @returns The exit code.
 */
export function runChatClient(_args: string[]): Promise<number> {
  return Promise.reject(new NotImplementedError("the chat client"));
}
