/**
 * The repeat-transfer receiver (placeholder until its issue lands).
 *
 * @module
 */

import { NotImplementedError } from "../cli.ts";

/**
 * Runs the repeat-transfer receiver.
 *
 * @param _args The service's command-line arguments.
 * @returns The exit code.
 */
export function runRepeatServer(_args: string[]): Promise<number> {
  return Promise.reject(
    new NotImplementedError("the repeat-transfer receiver"),
  );
}
