/**
 * The file-service client (placeholder until its issue lands).
 *
 * @module
 */

import { NotImplementedError } from "../cli.ts";

/**
 * Runs the file-service client.
 *
 * @param _args The service's command-line arguments.
 * @returns The exit code.
 */
export function runFileClient(_args: string[]): Promise<number> {
  return Promise.reject(new NotImplementedError("the file-service client"));
}
