/**
 * The streaming GET/PUT/DEL client (placeholder until its issue lands).
 *
 * @module
 */

import { NotImplementedError } from "../cli.ts";

/**
 * Runs the streaming GET/PUT/DEL client.
 *
 * @param _args The service's command-line arguments.
 * @returns The exit code.
 */
export function runStreamClient(_args: string[]): Promise<number> {
  return Promise.reject(
    new NotImplementedError("the streaming GET/PUT/DEL client"),
  );
}
