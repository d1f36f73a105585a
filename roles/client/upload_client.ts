/**
 * The upload client (placeholder until its issue lands).
 *
 * @module
 */

import { NotImplementedError } from "../cli.ts";

/**
 * Runs the upload client.
 *
 * @param _args The service's command-line arguments.
 * @returns The exit code.
 */
export function runUploadClient(_args: string[]): Promise<number> {
  return Promise.reject(new NotImplementedError("the upload client"));
}
