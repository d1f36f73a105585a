/**
 * The file-service origin server (placeholder until its issue lands).
 *
 * @module
 */

import { NotImplementedError } from "../cli.ts";

/**
 * Runs the file-service origin server.
 *
 * @param _args The service's command-line arguments.
 * @returns The exit code.
 */
export function runOriginServer(_args: string[]): Promise<number> {
  return Promise.reject(
    new NotImplementedError("the file-service origin server"),
  );
}
