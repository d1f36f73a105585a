/**
 * Turns a {@linkcode TransferSource} into chunks and enforces the announced
 * size, shared by both transports.
 *
 * @module
 */

import { TransferSizeError } from "./errors.ts";
import type { TransferSource } from "./types.ts";

/**
 * Yields the chunks of `source`, checking that they add up to exactly `size`
 * bytes. Empty chunks are skipped.
 *
 * @param source The bytes to send.
 * @param size The announced size.
 * @returns The chunks, in order.
 * @throws {TransferSizeError} Before yielding a chunk that would exceed
 *   `size`, or at the end when the source fell short.
 */
export async function* sizedChunks(
  source: TransferSource,
  size: number,
): AsyncGenerator<Uint8Array> {
  let sent = 0;
  const iterable: AsyncIterable<Uint8Array> | Iterable<Uint8Array> =
    source instanceof Uint8Array ? [source] : source;
  for await (const chunk of iterable) {
    if (chunk.length === 0) continue;
    if (sent + chunk.length > size) {
      throw new TransferSizeError(size, sent + chunk.length);
    }
    sent += chunk.length;
    yield chunk;
  }
  if (sent !== size) throw new TransferSizeError(size, sent);
}
