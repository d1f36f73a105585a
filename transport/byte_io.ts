/**
 * Exact reads and full writes on a `Deno.Conn`, never reading past what was
 * asked for, so a protocol can hand the same connection from one framing to
 * the next (control messages, then a transfer, then control again).
 *
 * @module
 */

import { ConnectionLostError } from "./errors.ts";

/** Anything with Deno's `read(p)` shape (a `Deno.Conn`, a `Deno.FsFile`). */
export interface ByteReader {
  /** Reads up to `p.length` bytes; `null` at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
}

/** Anything with Deno's `write(p)` shape. */
export interface ByteWriter {
  /** Writes some of `p`; resolves to the number of bytes written. */
  write(p: Uint8Array): Promise<number>;
}

/**
 * Fills `buffer` completely from `reader`.
 *
 * @param reader The source.
 * @param buffer The bytes to fill.
 * @returns `buffer`, or `null` when the stream ended before its first byte.
 * @throws {ConnectionLostError} When the stream ended part-way through.
 */
export async function readExact(
  reader: ByteReader,
  buffer: Uint8Array,
): Promise<Uint8Array | null> {
  let filled = 0;
  while (filled < buffer.length) {
    const n = await reader.read(buffer.subarray(filled));
    if (n === null) {
      if (filled === 0) return null;
      throw new ConnectionLostError(
        `Connection closed after ${filled} of ${buffer.length} bytes`,
      );
    }
    filled += n;
  }
  return buffer;
}

/**
 * Writes all of `bytes` to `writer`.
 *
 * @param writer The destination.
 * @param bytes The bytes to write.
 * @param onWrite Called after each write (some of the bytes).
 */
export async function writeAll(
  writer: ByteWriter,
  bytes: Uint8Array,
  onWrite?: () => void,
): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    written += await writer.write(bytes.subarray(written));
    onWrite?.();
  }
}
