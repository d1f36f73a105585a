/**
 * Writes a file under a temporary name in its final directory and renames
 * it into place only when complete, so a failed transfer never leaves a
 * partial file under the final name (and an old file stays intact).
 *
 * A partial file holds an exclusive advisory lock (`flock`) while it is
 * being written. A process killed mid-transfer (`SIGKILL`, a crash) leaves
 * its temporary file behind, unlocked; the roles that keep a directory call
 * {@linkcode removeAbandonedPartials} at startup, which removes such files
 * and leaves alone those that another process (a second server on the same
 * folder) is still writing.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";

/** Most bytes in one file name on common file systems (ext4, XFS, btrfs). */
const MAX_NAME_BYTES = 255;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** `text` cut to at most `bytes` UTF-8 bytes, never inside a character. */
function truncateUtf8(text: string, bytes: number): string {
  const encoded = encoder.encode(text);
  if (encoded.length <= bytes) return text;
  let end = bytes;
  while (end > 0 && (encoded[end] & 0xc0) === 0x80) end--; // continuation
  return decoder.decode(encoded.subarray(0, end));
}

const TEMP_NAME = /^\..+\.part-[0-9a-f]{8}$/;

/**
 * Whether `name` is the name of a temporary file of {@linkcode PartialFile}.
 *
 * @example
 * ```ts
 * import { isTempName } from "./partial_file.ts";
 * import { equal } from "node:assert/strict";
 * equal(isTempName(".a.txt.part-0123abcd"), true);
 * equal(isTempName("a.txt"), false);
 * ```
 *
 * @param name A bare file name.
 * @returns `true` for `.<name>.part-<8 hex>`.
 */
export function isTempName(name: string): boolean {
  return TEMP_NAME.test(name);
}

/**
 * Removes the temporary files that writers killed mid-transfer left in
 * `dir`: those nobody holds locked. Files another process is writing stay.
 *
 * @example
 * ```ts
 * import { removeAbandonedPartials } from "./partial_file.ts";
 * const dir = await Deno.makeTempDir();
 * console.log(await removeAbandonedPartials(dir)); // []
 * await Deno.remove(dir);
 * ```
 *
 * @param dir The directory (not searched recursively).
 * @returns The names removed.
 */
export async function removeAbandonedPartials(dir: string): Promise<string[]> {
  const removed: string[] = [];
  const entries: Deno.DirEntry[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) entries.push(entry);
  } catch {
    return removed; // unreadable: whatever then fails reports the directory
  }
  for (const entry of entries) {
    if (!entry.isFile || !isTempName(entry.name)) continue;
    const path = join(dir, entry.name);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch {
      continue; // gone meanwhile, or not ours to read
    }
    try {
      if (!file.tryLockSync(true)) continue; // being written
      await Deno.remove(path);
      removed.push(entry.name);
    } catch {
      // removed by someone else, or the lock is unsupported here: keep it
    } finally {
      file.close();
    }
  }
  return removed;
}

/**
 * Takes `file`'s exclusive lock, held until it is closed; `false` when a
 * sweep holds it or has unlinked the file. Where advisory locks are not
 * supported the sweep cannot take the file either: `true`.
 */
function lockedAndLinked(file: Deno.FsFile): boolean {
  try {
    if (!file.tryLockSync(true)) return false;
  } catch {
    return true;
  }
  return (file.statSync().nlink ?? 1) > 0;
}

/**
 * `.<name>.part-<8 hex>` next to `finalPath`, with `<name>` shortened when
 * needed so that the temporary name fits where the final name fits.
 */
function tempPathFor(finalPath: string): string {
  const suffix = `.part-${crypto.randomUUID().slice(0, 8)}`;
  const room = MAX_NAME_BYTES - 1 - suffix.length;
  const name = truncateUtf8(basename(finalPath), room);
  return join(dirname(finalPath), `.${name}${suffix}`);
}

/** A file being written to a temporary name, committed by rename. */
export class PartialFile implements AsyncDisposable {
  #done = false;
  #replaced: Promise<void> = Promise.resolve();

  private constructor(
    /** The name the file gets when committed. */
    readonly finalPath: string,
    /** The temporary name it is written under (same directory). */
    readonly tempPath: string,
    /** The open temporary file. */
    readonly file: Deno.FsFile,
  ) {}

  /**
   * Creates the temporary file `.<name>.part-<random>` next to `finalPath`.
   *
   * @param finalPath Where the file goes when complete.
   * @returns The partial file, open for writing.
   * @throws {Deno.errors.IsADirectory} When a directory has the final name
   *   (checked first: the commit's rename could never replace it).
   */
  // deno-lint-ignore require-await -- async so that failures are rejections
  static async create(finalPath: string): Promise<PartialFile> {
    let existing: Deno.FileInfo | undefined;
    try {
      existing = Deno.lstatSync(finalPath);
    } catch { /* none yet, or the open below reports the problem */ }
    if (existing?.isDirectory) {
      throw new Deno.errors.IsADirectory(
        "a directory of that name is in the way",
      );
    }
    // A sweep of abandoned files may catch a new file before its writer
    // locks it: the writer then finds it locked or already unlinked, and
    // starts over under another name.
    for (let attempt = 1;; attempt++) {
      const tempPath = tempPathFor(finalPath);
      // synchronous: creating an empty file takes microseconds, less than an
      // async call's trip through Deno's blocking pool
      const file = Deno.openSync(tempPath, { write: true, createNew: true });
      if (lockedAndLinked(file)) {
        return new PartialFile(finalPath, tempPath, file);
      }
      file.close();
      if (attempt === 3) {
        throw new Error(`cannot hold a temporary file next to "${finalPath}"`);
      }
    }
  }

  /** A writable stream into the temporary file; it does not close the file. */
  get writable(): WritableStream<Uint8Array> {
    const file = this.file;
    return new WritableStream<Uint8Array>({
      async write(chunk) {
        let offset = 0;
        while (offset < chunk.length) {
          offset += await file.write(chunk.subarray(offset));
        }
      },
    });
  }

  /**
   * Renames the temporary file to the final name and closes it.
   *
   * @param options `sync: true` works synchronously (for a program doing one
   *   thing at a time, like the interactive client: it saves the async
   *   calls' trips through Deno's blocking pool). `atomic: false` moves an
   *   existing file of the final name aside (to a temporary name) instead of
   *   renaming over it, and removes it in the background (await
   *   {@linkcode PartialFile.replaced}): on ext4 a rename that replaces a
   *   file first writes the new file's data out to disk (`auto_da_alloc`),
   *   and removing a large file takes as long; both cost about a second per
   *   GiB here. The name is then absent only between two renames. Servers
   *   keep the default (their readers see the old or the new file, never
   *   neither).
   * @throws {Error} When already committed or discarded, or when the rename
   *   fails (the temporary file is then removed, an old file stays).
   */
  async commit(
    options: { sync?: boolean; atomic?: boolean } = {},
  ): Promise<void> {
    if (this.#done) throw new Error("partial file already finished");
    this.#done = true;
    let aside: string | undefined;
    try {
      if (options.atomic === false) aside = this.#moveFinalAside();
      // Renamed while still open, so still locked: a sweep of abandoned
      // temporary files cannot take it in between.
      if (options.sync) Deno.renameSync(this.tempPath, this.finalPath);
      else await Deno.rename(this.tempPath, this.finalPath);
    } catch (error) {
      this.file.close();
      if (aside) {
        try {
          Deno.renameSync(aside, this.finalPath); // the old file back
        } catch { /* it stays under its temporary name */ }
      }
      await Deno.remove(this.tempPath).catch(() => {});
      throw error;
    }
    this.file.close();
    if (aside) this.#replaced = Deno.remove(aside).catch(() => {});
  }

  /**
   * Settles when the file that a non-atomic commit replaced is removed
   * (at once when there was none).
   */
  get replaced(): Promise<void> {
    return this.#replaced;
  }

  /** Renames a file of the final name to a temporary name; returns that. */
  #moveFinalAside(): string | undefined {
    let existing: Deno.FileInfo;
    try {
      existing = Deno.lstatSync(this.finalPath);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    // A directory stays: the rename then fails as it would have.
    if (existing.isDirectory) return undefined;
    const aside = tempPathFor(this.finalPath);
    Deno.renameSync(this.finalPath, aside);
    return aside;
  }

  /** Closes and removes the temporary file (idempotent; no-op after commit). */
  async discard(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    try {
      this.file.close();
    } catch { /* already closed */ }
    await Deno.remove(this.tempPath).catch(() => {});
  }

  /** Discards the file unless it was committed. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.discard();
  }
}
