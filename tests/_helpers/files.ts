/**
 * Test files: deterministic content, SHA-256 of files, temporary folders.
 *
 * @module
 */

/**
 * Writes `size` bytes of deterministic pseudo-random content, streamed.
 *
 * @param path Where to write.
 * @param size How many bytes.
 * @param seed Varies the content.
 */
export async function writeTestFile(
  path: string,
  size: number,
  seed = 1,
): Promise<void> {
  using file = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
  });
  const block = new Uint8Array(Math.min(size, 1 << 20));
  let state = (seed * 2654435761) >>> 0 || 1;
  let written = 0;
  while (written < size) {
    const n = Math.min(block.length, size - written);
    for (let i = 0; i < n; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      block[i] = state & 0xff;
    }
    let off = 0;
    while (off < n) off += await file.write(block.subarray(off, n));
    written += n;
  }
}

/**
 * SHA-256 of a file as hex, computed with a streaming hash (node:crypto).
 *
 * @param path The file.
 * @returns Lower-case hex digest.
 */
export async function sha256File(path: string): Promise<string> {
  const { createHash } = await import("node:crypto");
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const buffer = new Uint8Array(1 << 20);
  while (true) {
    const n = await file.read(buffer);
    if (n === null) break;
    hash.update(buffer.subarray(0, n));
  }
  return hash.digest("hex");
}

/** A temporary directory removed on dispose. */
export interface TempDir extends AsyncDisposable {
  /** Its path. */
  path: string;
}

/**
 * Creates a temporary directory that `await using` removes.
 *
 * @param prefix Name prefix.
 * @returns The directory.
 */
export async function tempDir(prefix = "sockkit-test-"): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}
