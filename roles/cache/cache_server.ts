/**
 * The cache (placeholder until its issue lands).
 *
 * @module
 */

import { NotImplementedError } from "../cli.ts";

/**
 * Runs the cache.
 *
 * @param _args The service's command-line arguments.
 * @returns The exit code.
 */
export function runCacheServer(_args: string[]): Promise<number> {
  return Promise.reject(new NotImplementedError("the cache"));
}
