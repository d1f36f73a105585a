/**
 * The names the repeat server stores copies under (SPEC §2): copy n of
 * `xyz.txt` is `<n>_xyz.txt`, with n zero-padded to the width of the number
 * of copies, at least 3 digits (`001_xyz.txt` … `100_xyz.txt`). The sender
 * checks the longest of them against the file-name limit before it sends.
 *
 * @module
 */

/**
 * The name copy `n` of `total` of `name` is stored under.
 *
 * @example
 * ```ts
 * import { copyName } from "./copy_names.ts";
 * import { equal } from "node:assert/strict";
 * equal(copyName(7, 100, "xyz.txt"), "007_xyz.txt");
 * equal(copyName(7, 1000, "xyz.txt"), "0007_xyz.txt");
 * ```
 *
 * @param n The copy number.
 * @param total The number of copies.
 * @param name The sender's file name.
 * @returns `<n>_<name>`.
 */
export function copyName(n: number, total: number, name: string): string {
  const width = Math.max(3, String(total).length);
  return `${String(n).padStart(width, "0")}_${name}`;
}
