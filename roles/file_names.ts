/**
 * Confines file names that arrive from the network or the command line to
 * one directory.
 *
 * sockkit's services serve and store *bare file names* only: a name is
 * refused when it is empty, `.` or `..`, contains a path separator (`/` or
 * `\`), a NUL or another control character, or is longer than 255 bytes of
 * UTF-8. So absolute paths and `..` escapes can never be served or written.
 * Names of temporary files being written (`.<name>.part-<8 hex>`) are
 * refused too: they are never served half-written, and a user's file of such
 * a name would be taken for an abandoned one and removed.
 *
 * @module
 */

import { join } from "node:path";
import { isTempName } from "./partial_file.ts";

/** A file name that would escape (or cannot name a file in) the served directory. */
export class UnsafeNameError extends Error {
  /**
   * Creates the error.
   *
   * @param fileName The refused name.
   * @param reason Why it was refused.
   */
  constructor(readonly fileName: string, reason: string) {
    super(`refused file name "${fileName}": ${reason}`);
    this.name = "UnsafeNameError";
  }
}

const MAX_NAME_BYTES = 255;
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Explains why `name` is not a safe bare file name, or returns `undefined`
 * when it is.
 *
 * @param name The candidate name.
 * @returns The reason, or `undefined` when safe.
 */
export function unsafeNameReason(name: string): string | undefined {
  if (name.length === 0) return "empty name";
  if (name === "." || name === "..") return "not a file name";
  if (name.includes("/") || name.includes("\\")) {
    return "path separators are not allowed";
  }
  if (CONTROL.test(name)) return "control characters are not allowed";
  if (new TextEncoder().encode(name).length > MAX_NAME_BYTES) {
    return "longer than 255 bytes";
  }
  if (isTempName(name)) return "the name of a temporary file";
  return undefined;
}

/**
 * Returns the path of `name` inside `dir`.
 *
 * @example
 * ```ts
 * import { confinedPath } from "./file_names.ts";
 * import { equal } from "node:assert/strict";
 * equal(confinedPath("store", "a.txt"), "store/a.txt");
 * ```
 *
 * @param dir The directory the name must stay in.
 * @param name A bare file name.
 * @returns `dir/name`.
 * @throws {UnsafeNameError} When the name is not a safe bare file name.
 */
export function confinedPath(dir: string, name: string): string {
  const reason = unsafeNameReason(name);
  if (reason) throw new UnsafeNameError(name, reason);
  return join(dir, name);
}
