/**
 * The origin server's version book: the SHA-256 of each served file,
 * remembered per file identity (inode, size, modification time) so that a
 * `STAT` from the cache costs a `stat`, not a read of the whole file.
 *
 * Uploads record the digest they computed while receiving (keyed by the
 * temporary file's identity, which the rename keeps). A file that changed
 * behind the server's back (another identity) is hashed again on its next
 * request; concurrent requests for the same identity share one hashing.
 *
 * @module
 */

import {
  type FileVersion,
  hashOpenFile,
} from "../file_service/file_transfer.ts";

/**
 * The identity of a file's content as `stat` sees it.
 *
 * @param info The file's `stat`.
 * @returns A key that changes when the file is replaced or rewritten.
 */
export function fileIdentity(info: Deno.FileInfo): string {
  return `${info.dev}:${info.ino}:${info.size}:${info.mtime?.getTime()}`;
}

/** Digests of the served files, by name and identity. */
export class VersionBook {
  readonly #known = new Map<string, { identity: string; sha256: string }>();
  readonly #hashing = new Map<string, Promise<string>>();

  /**
   * Records the digest of a file just written.
   *
   * @param name The file's bare name.
   * @param info The `stat` of the file (or of its temporary name).
   * @param sha256 Its digest.
   */
  record(name: string, info: Deno.FileInfo, sha256: string): void {
    this.#known.set(name, { identity: fileIdentity(info), sha256 });
  }

  /**
   * Returns the version of an open file, hashing it when unknown (the file
   * is rewound afterwards).
   *
   * @param name The file's bare name.
   * @param file The open file.
   * @returns Its size and SHA-256.
   */
  async versionOf(name: string, file: Deno.FsFile): Promise<FileVersion> {
    const info = file.statSync(); // microseconds; see origin_service.ts
    const identity = fileIdentity(info);
    const known = this.#known.get(name);
    if (known?.identity === identity) {
      return { size: info.size, sha256: known.sha256 };
    }
    const key = `${name}\u0000${identity}`;
    let hashing = this.#hashing.get(key);
    if (!hashing) {
      hashing = hashOpenFile(file).finally(() => this.#hashing.delete(key));
      this.#hashing.set(key, hashing);
    }
    const sha256 = await hashing;
    this.#known.set(name, { identity, sha256 });
    return { size: info.size, sha256 };
  }
}
