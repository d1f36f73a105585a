/**
 * File names of the file service's directories (client, cache, origin):
 * bare names confined to the role's directory (roles/file_names.ts, which
 * also refuses the names of temporary files being written), minus the name
 * the service reserves for itself: the cache's index file.
 *
 * @module
 */

import { confinedPath, UnsafeNameError } from "../file_names.ts";

/** The cache's index file, kept in the cache directory. */
export const CACHE_INDEX_NAME = ".sockkit-cache-index.json";

/**
 * Returns the path of a user-visible file `name` in `dir`.
 *
 * @example
 * ```ts
 * import { storePath } from "./file_store_names.ts";
 * console.log(storePath("server", "test.txt")); // "server/test.txt"
 * ```
 *
 * @param dir The role's directory.
 * @param name The name as the user or the peer gave it.
 * @returns `dir/name`.
 * @throws {UnsafeNameError} When the name is not a safe bare name, or is
 *   reserved by the service.
 */
export function storePath(dir: string, name: string): string {
  const path = confinedPath(dir, name); // temporary files' names included
  if (name === CACHE_INDEX_NAME) {
    throw new UnsafeNameError(name, "reserved by sockkit");
  }
  return path;
}
