/**
 * Reads an incoming transfer without allocating per chunk where the
 * transport allows it.
 *
 * @module
 */

/** Default size of the reused buffer of {@linkcode transferChunks}. */
export const TRANSFER_CHUNK_BYTES = 1024 * 1024;

/** Reads some of a transfer's bytes into `buffer`: how many, or `null` at its end. */
export type DirectRead = (buffer: Uint8Array) => Promise<number | null>;

const directReaders = new WeakMap<ReadableStream<Uint8Array>, DirectRead>();

/**
 * Lets {@linkcode transferChunks} read a transport's byte stream without
 * the stream machinery (a BYOB read costs a few promise hops more than the
 * socket read it wraps: about 6% of a loopback TCP transfer). `read` must
 * share its state with the stream's own pull, and the stream must hold no
 * queued bytes (a byte stream with the default high-water mark of 0).
 *
 * @param readable The transfer's stream.
 * @param read Reads its next bytes directly.
 */
export function registerDirectReader(
  readable: ReadableStream<Uint8Array>,
  read: DirectRead,
): void {
  directReaders.set(readable, read);
}

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
  const direct = directReaders.get(readable);
  if (direct && !readable.locked) {
    const buffer = new Uint8Array(bufferBytes);
    let finished = false;
    try {
      while (true) {
        const n = await direct(buffer);
        if (n === null) {
          finished = true;
          return;
        }
        yield buffer.subarray(0, n);
      }
    } finally {
      if (!finished) await readable.cancel().catch(() => {});
    }
  }
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
