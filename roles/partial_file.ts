/**
 * Writes a file under a temporary name in its final directory and renames
 * it into place only when complete, so a failed transfer never leaves a
 * partial file under the final name (and an old file stays intact).
 *
 * @module
 */

import { basename, dirname, join } from "node:path";

/** A file being written to a temporary name, committed by rename. */
export class PartialFile implements AsyncDisposable {
  #done = false;

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
   */
  // deno-lint-ignore require-await -- async so that failures are rejections
  static async create(finalPath: string): Promise<PartialFile> {
    const random = crypto.randomUUID().slice(0, 8);
    const tempPath = join(
      dirname(finalPath),
      `.${basename(finalPath)}.part-${random}`,
    );
    // synchronous: creating an empty file takes microseconds, less than an
    // async call's trip through Deno's blocking pool
    const file = Deno.openSync(tempPath, { write: true, createNew: true });
    return new PartialFile(finalPath, tempPath, file);
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
   * Closes the temporary file and renames it to the final name.
   *
   * @param options `sync: true` works synchronously (for a program doing one
   *   thing at a time, like the interactive client: it saves the async
   *   calls' trips through Deno's blocking pool). `atomic: false` removes an
   *   existing file of the final name first instead of renaming over it:
   *   on ext4 a rename that replaces a file first writes the new file's data
   *   out to disk (`auto_da_alloc`), seconds per GiB on a slow disk, while
   *   the file is absent only between the two calls. Servers keep the
   *   default (their readers see the old or the new file, never neither).
   * @throws {Error} When already committed or discarded, or when the rename
   *   fails (the temporary file is then removed).
   */
  async commit(
    options: { sync?: boolean; atomic?: boolean } = {},
  ): Promise<void> {
    if (this.#done) throw new Error("partial file already finished");
    this.#done = true;
    this.file.close();
    try {
      if (options.atomic === false) await this.#removeFinal(options.sync);
      if (options.sync) Deno.renameSync(this.tempPath, this.finalPath);
      else await Deno.rename(this.tempPath, this.finalPath);
    } catch (error) {
      await Deno.remove(this.tempPath).catch(() => {});
      throw error;
    }
  }

  async #removeFinal(sync = false): Promise<void> {
    let existing: Deno.FileInfo;
    try {
      existing = Deno.lstatSync(this.finalPath);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    // A directory stays: the rename then fails as it would have.
    if (existing.isDirectory) return;
    if (sync) Deno.removeSync(this.finalPath);
    else await Deno.remove(this.finalPath);
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
