/**
 * CRC-32 (IEEE 802.3, the one of zlib and Ethernet), used by the SNW packet
 * codec to detect corrupted datagrams. Uses the native `zlib.crc32` of
 * `node:zlib` where the runtime has it (about 20x faster), else a table.
 *
 * @module
 */

import * as zlib from "node:zlib";

type Crc32 = (bytes: Uint8Array, previous?: number) => number;
const nativeCrc32 = (zlib as unknown as { crc32?: Crc32 }).crc32;

const TABLE = /* @__PURE__ */ (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * Computes the CRC-32 of `bytes`, optionally continuing a previous value.
 *
 * @example
 * ```ts
 * import { crc32 } from "./crc32.ts";
 * import { equal } from "node:assert/strict";
 * equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
 * ```
 *
 * @param bytes The data.
 * @param previous The CRC of the bytes before `bytes` (default: none).
 * @returns The CRC-32 as an unsigned 32-bit number.
 */
export function crc32(bytes: Uint8Array, previous = 0): number {
  if (nativeCrc32) return nativeCrc32(bytes, previous) >>> 0;
  return tableCrc32(bytes, previous);
}

/**
 * The table-driven CRC-32, the fallback of {@linkcode crc32}.
 *
 * @param bytes The data.
 * @param previous The CRC of the bytes before `bytes`.
 * @returns The CRC-32 as an unsigned 32-bit number.
 */
export function tableCrc32(bytes: Uint8Array, previous = 0): number {
  let crc = ~previous;
  for (let i = 0; i < bytes.length; i++) {
    crc = TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  }
  return ~crc >>> 0;
}
