/**
 * Reads an incoming transfer without allocating per chunk where the
 * transport allows it.
 *
 * @module
 */

/** Default size of the reused buffer of {@linkcode transferChunks}. */
export const TRANSFER_CHUNK_BYTES = 1024 * 1024;

/**
 * Yields the chunks of a transfer's readable. Each chunk is only valid until
 * the next one is asked for: with a byte stream (the `tcp` transport) the
 * bytes are read straight into one reused buffer (BYOB), so memory stays
 * flat however large the file; other streams (`snw`) are read normally.
 * Copy a chunk (or finish with it) before continuing the loop. Leaving the
 * loop early cancels the stream.
 *
 * @example
 * ```ts ignore
 * const transfer = await conn.receive();
 * for await (const chunk of transferChunks(transfer.readable)) {
 *   hash.update(chunk); // done with it before the next iteration
 * }
 * ```
 *
 * @param readable The transfer's bytes.
 * @param bufferBytes Size of the reused buffer (BYOB only).
 * @returns The chunks.
 */
export async function* transferChunks(
  readable: ReadableStream<Uint8Array>,
  bufferBytes: number = TRANSFER_CHUNK_BYTES,
): AsyncGenerator<Uint8Array> {
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = readable.getReader({ mode: "byob" });
  } catch {
    // Not a byte stream.
  }
  if (!byob) {
    const reader = readable.getReader();
    let finished = false;
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) {
          finished = true;
          return;
        }
        yield value;
      }
    } finally {
      if (!finished) await reader.cancel().catch(() => {});
      reader.releaseLock();
    }
  }
  let buffer = new ArrayBuffer(bufferBytes);
  let finished = false;
  try {
    while (true) {
      const { done, value } = await byob.read(new Uint8Array(buffer));
      if (done) {
        finished = true;
        return;
      }
      yield value;
      buffer = value.buffer as ArrayBuffer; // the same memory, handed back
    }
  } finally {
    if (!finished) await byob.cancel().catch(() => {});
    byob.releaseLock();
  }
}
