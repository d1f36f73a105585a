/**
 * A file the chat server received, spooled to a temporary file so that it
 * can be relayed to any number of recipients at each one's own pace without
 * holding it in memory. Reference-counted: the temporary file is removed
 * when the upload and every recipient's send are done with it.
 *
 * @module
 */

import { writeAll } from "../../transport/byte_io.ts";

/** A spooled file: written once, then read by each recipient. */
export class FileSpool {
  #writer?: Deno.FsFile;
  #refs = 1;
  #size = 0;
  #removed = false;

  private constructor(
    /** The temporary file. */
    readonly path: string,
    writer: Deno.FsFile,
  ) {
    this.#writer = writer;
  }

  /**
   * Creates an empty spool file in `dir` (default: the system's temporary
   * directory). The caller holds the first reference.
   *
   * @param dir The directory.
   * @returns The spool, open for writing.
   */
  static async create(dir?: string): Promise<FileSpool> {
    const path = await Deno.makeTempFile({
      dir,
      prefix: "sockkit-chat-spool-",
    });
    try {
      const writer = await Deno.open(path, { write: true, truncate: true });
      return new FileSpool(path, writer);
    } catch (error) {
      await Deno.remove(path).catch(() => {});
      throw error;
    }
  }

  /** Bytes written so far. */
  get size(): number {
    return this.#size;
  }

  /**
   * Appends content.
   *
   * @param bytes The next bytes of the file.
   */
  async write(bytes: Uint8Array): Promise<void> {
    if (!this.#writer) throw new Error("FileSpool: already finished");
    await writeAll(this.#writer, bytes);
    this.#size += bytes.length;
  }

  /** Closes the writing side; the content is complete. */
  finish(): void {
    this.#writer?.close();
    this.#writer = undefined;
  }

  /** Takes one more reference (one per recipient send). */
  acquire(): void {
    this.#refs++;
  }

  /** Drops one reference; the last one removes the temporary file. */
  release(): void {
    this.#refs--;
    if (this.#refs <= 0) this.#remove();
  }

  /**
   * Opens the content for reading (one handle per recipient send).
   *
   * @returns The open file.
   */
  open(): Promise<Deno.FsFile> {
    return Deno.open(this.path, { read: true });
  }

  #remove(): void {
    if (this.#removed) return;
    this.#removed = true;
    try {
      this.#writer?.close();
    } catch { /* already closed */ }
    this.#writer = undefined;
    // Synchronous: an unlink is quick, and a server that closes must not
    // leave a removal running behind it.
    try {
      Deno.removeSync(this.path);
    } catch {
      // already gone (the server's stop removes the whole folder)
    }
  }

  /** Drops the caller's reference after a failed upload (nobody else holds one). */
  discard(): void {
    this.#remove();
  }
}
