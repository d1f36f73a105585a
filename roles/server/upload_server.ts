/**
 * The upload receiver (placeholder until its issue lands).
 *
 * @module
 */

import { NotImplementedError } from "../cli.ts";

/**
 * Runs the upload receiver.
 *
 * @param _args The service's command-line arguments.
 * @returns The exit code.
 */
export function runUploadServer(_args: string[]): Promise<number> {
  return Promise.reject(new NotImplementedError("the upload receiver"));
}
