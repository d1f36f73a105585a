/**
 * Where the repeat-transfer receiver keeps its copies: every copy is written
 * under its own name (`<n>_<file name>`, `n` zero-padded to the width of the
 * copy count, for example `007_xyz.txt`) in one directory, streamed to disk
 * with its SHA-256 computed on the way, and compared with the reference
 * file's SHA-256 and size. No file is ever held whole in memory.
 *
 * A copy is written under a temporary name and renamed when it ends; a copy
 * whose connection broke is discarded, a raw-UDP copy with holes is kept
 * (zero bytes where datagrams were lost) because it *is* the incorrect copy
 * the measurement counts.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { confinedPath, UnsafeNameError } from "../file_names.ts";
import { copyName } from "../repeat/copy_names.ts";
import { PartialFile, removeAbandonedPartials } from "../partial_file.ts";

/** Bytes read per call when hashing a file. */
const HASH_READ = 1 << 20;
/** Bytes of consecutive chunks gathered before one write to disk. */
const WRITE_BUFFER = 256 * 1024;

/** The reference file every copy is compared with. */
export interface ReferenceFile {
  /** Its path. */
  path: string;
  /** Its size in bytes. */
  size: number;
  /** Its SHA-256 as lower-case hex. */
  sha256: string;
}

/**
 * Computes size and SHA-256 of a file by streaming it.
 *
 * @param path The file.
 * @returns The file's size and digest.
 */
export async function hashFile(path: string): Promise<ReferenceFile> {
  const hash = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  const buffer = new Uint8Array(HASH_READ);
  let size = 0;
  while (true) {
    const n = await file.read(buffer);
    if (n === null) break;
    hash.update(buffer.subarray(0, n));
    size += n;
  }
  return { path, size, sha256: hash.digest("hex") };
}

/** What became of one stored copy. */
export interface StoredCopy {
  /** File bytes received. */
  bytes: number;
  /** SHA-256 of the copy, when it could be computed (undefined for holes). */
  sha256?: string;
  /** The copy's file name in the store, when it was stored. */
  storedAs?: string;
}

/**
 * Writes one copy: sequentially ({@linkcode CopyWriter.write}) or at
 * offsets ({@linkcode CopyWriter.writeAt}, for raw UDP chunks arriving in
 * any order).
 */
export class CopyWriter {
  #partial?: PartialFile;
  #storedAs?: string;
  #hash: Hash = createHash("sha256");
  #hashedUpTo = 0;
  #outOfOrder = false;
  #bytes = 0;
  #filePos = 0;
  #buffer = new Uint8Array(0);
  #bufferStart = 0;
  #bufferFill = 0;
  readonly #onEnd?: () => void;

  /**
   * Creates the writer; {@linkcode CopyStore.open} does this.
   *
   * @param partial The temporary file, or `undefined` to only hash.
   * @param storedAs The final file name.
   * @param onEnd Called once the copy was stored or discarded.
   */
  constructor(
    partial: PartialFile | undefined,
    storedAs: string | undefined,
    onEnd?: () => void,
  ) {
    this.#partial = partial;
    this.#storedAs = storedAs;
    this.#onEnd = onEnd;
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Appends bytes after everything written so far.
   *
   * @param bytes The bytes.
   */
  write(bytes: Uint8Array): Promise<void> {
    return this.writeAt(this.#bytes, bytes);
  }

  /**
   * Writes bytes at `offset` (each region should be written once).
   *
   * @param offset Where the bytes go.
   * @param bytes The bytes.
   */
  async writeAt(offset: number, bytes: Uint8Array): Promise<void> {
    if (bytes.length === 0) return;
    this.#bytes += bytes.length;
    if (!this.#outOfOrder && offset === this.#hashedUpTo) {
      this.#hash.update(bytes);
      this.#hashedUpTo += bytes.length;
    } else {
      this.#outOfOrder = true;
    }
    if (!this.#partial) return;
    const contiguous = offset === this.#bufferStart + this.#bufferFill;
    if (!contiguous || this.#bufferFill + bytes.length > WRITE_BUFFER) {
      await this.#flush();
    }
    if (bytes.length >= WRITE_BUFFER) {
      await this.#writeOut(offset, bytes);
      return;
    }
    if (this.#bufferFill === 0) {
      this.#bufferStart = offset;
      if (this.#buffer.length === 0) {
        this.#buffer = new Uint8Array(WRITE_BUFFER);
      }
    }
    this.#buffer.set(bytes, this.#bufferFill);
    this.#bufferFill += bytes.length;
  }

  /**
   * Ends the copy: flushes, computes the SHA-256 (re-reading the file when
   * chunks came out of order and none is missing) and renames the file to
   * its final name.
   *
   * @param complete Whether every byte of the copy arrived; an incomplete
   *   copy is stored but not hashed.
   * @returns What was stored.
   */
  async finish(complete = true): Promise<StoredCopy> {
    await this.#flush();
    const partial = this.#partial;
    let sha256: string | undefined;
    if (!this.#outOfOrder) sha256 = this.#hash.digest("hex");
    if (partial) {
      try {
        await partial.commit();
      } finally {
        this.#onEnd?.();
      }
      if (this.#outOfOrder && complete) {
        sha256 = (await hashFile(partial.finalPath)).sha256;
      }
    }
    return { bytes: this.#bytes, sha256, storedAs: this.#storedAs };
  }

  /** Removes the temporary file (a broken copy). */
  async discard(): Promise<void> {
    try {
      await this.#partial?.discard();
    } finally {
      this.#onEnd?.();
    }
  }

  async #flush(): Promise<void> {
    if (this.#bufferFill === 0) return;
    const fill = this.#bufferFill;
    this.#bufferFill = 0;
    await this.#writeOut(this.#bufferStart, this.#buffer.subarray(0, fill));
  }

  async #writeOut(offset: number, bytes: Uint8Array): Promise<void> {
    const file = this.#partial!.file;
    if (offset !== this.#filePos) {
      await file.seek(offset, Deno.SeekMode.Start);
    }
    let written = 0;
    while (written < bytes.length) {
      written += await file.write(bytes.subarray(written));
    }
    this.#filePos = offset + bytes.length;
  }
}

/** The directory of copies of one run. */
export class CopyStore {
  /** The directory. */
  readonly dir: string;
  readonly #total: number;
  /** The temporary files of copies under way. */
  readonly #partials = new Set<PartialFile>();
  /** Opens under way (a stop waits for them: they may create a file). */
  readonly #opening = new Set<Promise<unknown>>();
  #closed = false;

  /**
   * Creates the store (the directory must exist; see
   * {@linkcode CopyStore.create}).
   *
   * @param dir The directory.
   * @param total The number of copies (sets the width of the numbers).
   */
  constructor(dir: string, total: number) {
    this.dir = dir;
    this.#total = total;
  }

  /**
   * Creates the directory when needed and returns the store.
   *
   * @param dir The directory.
   * @param total The number of copies.
   * @returns The store.
   */
  static async create(dir: string, total: number): Promise<CopyStore> {
    await Deno.mkdir(dir, { recursive: true });
    await removeAbandonedPartials(dir);
    return new CopyStore(dir, total);
  }

  /**
   * The name copy `n` of `name` is stored under.
   *
   * @example
   * ```ts
   * import { CopyStore } from "./repeat_copy_store.ts";
   * import { equal } from "node:assert/strict";
   * equal(new CopyStore("copies", 100).copyName(7, "xyz.txt"), "007_xyz.txt");
   * ```
   *
   * @param n The copy number.
   * @param name The sender's file name.
   * @returns `<n>_<name>` with `n` zero-padded.
   */
  copyName(n: number, name: string): string {
    return copyName(n, this.#total, name);
  }

  /**
   * Opens the writer of copy `n`.
   *
   * @param n The copy number.
   * @param name The sender's file name.
   * @returns The writer and, when the copy cannot be stored (an unsafe
   *   name, a file that cannot be created), why (the writer then only
   *   hashes).
   */
  open(
    n: number,
    name: string,
  ): Promise<{ writer: CopyWriter; refused?: string }> {
    const opening = this.#open(n, name);
    this.#opening.add(opening);
    opening.catch(() => {}).finally(() => this.#opening.delete(opening));
    return opening;
  }

  async #open(
    n: number,
    name: string,
  ): Promise<{ writer: CopyWriter; refused?: string }> {
    const storedAs = this.copyName(n, name);
    if (this.#closed) {
      return {
        writer: new CopyWriter(undefined, undefined),
        refused: "the server is stopping",
      };
    }
    let path: string;
    try {
      path = confinedPath(this.dir, storedAs);
    } catch (error) {
      if (!(error instanceof UnsafeNameError)) throw error;
      return {
        writer: new CopyWriter(undefined, undefined),
        refused: error.message,
      };
    }
    let partial: PartialFile;
    try {
      partial = await PartialFile.create(path);
    } catch (error) {
      // Not stored, like a refused name: the run goes on, this copy counts
      // as incorrect.
      return {
        writer: new CopyWriter(undefined, undefined),
        refused: `cannot create "${storedAs}": ${
          error instanceof Error ? error.message : String(error)
        }`,
      };
    }
    if (this.#closed) { // closed while the file was being created
      await partial.discard();
      return {
        writer: new CopyWriter(undefined, undefined),
        refused: "the server is stopping",
      };
    }
    this.#partials.add(partial);
    return {
      writer: new CopyWriter(
        partial,
        storedAs,
        () => this.#partials.delete(partial),
      ),
    };
  }

  /**
   * Stops storing (a stop signal): removes the temporary files of the
   * copies under way; copies opened from now on are not stored.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#opening]);
    const partials = [...this.#partials];
    this.#partials.clear();
    await Promise.all(partials.map((partial) => partial.discard()));
  }
}
