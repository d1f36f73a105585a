/**
 * The repeat-transfer codec (SPEC §2): pure encoders and decoders of the two
 * messages the sender and the receiver exchange for every copy. No sockets.
 *
 * **Copy header** (sender → receiver), the first bytes of every copy. Over
 * `tcp` and `snw` one transport transfer carries the header immediately
 * followed by the file bytes (transfer size = header length + file size);
 * over raw `udp` every datagram of the copy repeats the header as its
 * metadata, so any datagram that arrives names the copy. All integers are
 * big-endian:
 *
 * ```
 *  0      2     3          7          11                 19         21
 *  +------+-----+----------+----------+------------------+----------+-----------------+
 *  | "RP" | ver | copy u32 | total u32| size u64         | nlen u16 | name (UTF-8)    |
 *  +------+-----+----------+----------+------------------+----------+-----------------+
 * ```
 *
 * - `ver` is 1; `copy` counts the copies of one run from 1; `total` is the
 *   number of copies the sender will send; `size` is the file size in bytes
 *   (at most 2^53 - 1); `name` is the file's base name, 1 to 255 bytes of
 *   valid UTF-8 (whether it is a *safe* name is the receiver's decision).
 *
 * **Receipt** (receiver → sender), once the copy is stored and compared:
 *
 * ```
 *  0      2     3          7                  15
 *  +------+-----+----------+------------------+---------+
 *  | "RR" | ver | copy u32 | received u64     | verdict |
 *  +------+-----+----------+------------------+---------+
 * ```
 *
 * - `received` is the number of file bytes the receiver got; `verdict` is
 *   1 when the stored copy equals the reference file, 0 otherwise.
 *
 * @module
 */

/** Version byte of both messages. */
export const REPEAT_VERSION = 1;
/** Length of the copy header without its name. */
export const REPEAT_HEADER_FIXED = 21;
/** Largest file name in a copy header, in bytes of UTF-8. */
export const MAX_REPEAT_NAME_BYTES = 255;
/** Length of a receipt. */
export const REPEAT_RECEIPT_LENGTH = 16;

const HEADER_MAGIC = [0x52, 0x50] as const; // "RP"
const RECEIPT_MAGIC = [0x52, 0x52] as const; // "RR"
const MAX_U32 = 0xffff_ffff;

/** What the sender says about one copy. */
export interface RepeatHeader {
  /** Which copy this is, from 1. */
  copy: number;
  /** How many copies the sender sends in this run. */
  total: number;
  /** The file size in bytes. */
  size: number;
  /** The file's base name. */
  name: string;
}

/** What the receiver answers for one copy. */
export interface RepeatReceipt {
  /** The copy this receipt is for. */
  copy: number;
  /** File bytes the receiver got. */
  received: number;
  /** Whether the stored copy equals the reference file. */
  correct: boolean;
}

/** Bytes that are not a valid copy header or receipt. */
export class RepeatProtocolError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong with the bytes.
   */
  constructor(message: string) {
    super(message);
    this.name = "RepeatProtocolError";
  }
}

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

function checkU32(what: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > MAX_U32) {
    throw new RangeError(`${what} ${value} is out of range`);
  }
}

function checkSize(what: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${what} ${value} is out of range`);
  }
}

/**
 * Encodes a copy header.
 *
 * @example
 * ```ts
 * import { decodeRepeatHeader, encodeRepeatHeader } from "./repeat_protocol.ts";
 * import { deepEqual } from "node:assert/strict";
 * const header = { copy: 3, total: 100, size: 1024, name: "xyz.txt" };
 * deepEqual(decodeRepeatHeader(encodeRepeatHeader(header)).header, header);
 * ```
 *
 * @param header The header.
 * @returns Its bytes (21 + name length).
 * @throws {RangeError} When a field is out of range or the name is empty or
 *   longer than {@linkcode MAX_REPEAT_NAME_BYTES} bytes.
 */
export function encodeRepeatHeader(header: RepeatHeader): Uint8Array {
  checkU32("copy", header.copy);
  checkU32("total", header.total);
  checkSize("size", header.size);
  const name = encoder.encode(header.name);
  if (name.length === 0 || name.length > MAX_REPEAT_NAME_BYTES) {
    throw new RangeError(
      `file name of ${name.length} bytes is not 1-${MAX_REPEAT_NAME_BYTES}`,
    );
  }
  const bytes = new Uint8Array(REPEAT_HEADER_FIXED + name.length);
  const view = new DataView(bytes.buffer);
  bytes[0] = HEADER_MAGIC[0];
  bytes[1] = HEADER_MAGIC[1];
  bytes[2] = REPEAT_VERSION;
  view.setUint32(3, header.copy);
  view.setUint32(7, header.total);
  view.setBigUint64(11, BigInt(header.size));
  view.setUint16(19, name.length);
  bytes.set(name, REPEAT_HEADER_FIXED);
  return bytes;
}

/**
 * Tells how long the copy header at the start of `prefix` is, as soon as
 * enough bytes are there to know, so a stream reader knows how much to wait
 * for.
 *
 * @example
 * ```ts
 * import { encodeRepeatHeader, repeatHeaderLength } from "./repeat_protocol.ts";
 * import { equal } from "node:assert/strict";
 * const bytes = encodeRepeatHeader({ copy: 1, total: 1, size: 0, name: "a" });
 * equal(repeatHeaderLength(bytes.subarray(0, 5)), undefined);
 * equal(repeatHeaderLength(bytes), 22);
 * ```
 *
 * @param prefix The first bytes received so far.
 * @returns The header length, or `undefined` when more bytes are needed.
 * @throws {RepeatProtocolError} When the bytes already seen cannot start a
 *   header (wrong magic, version or name length).
 */
export function repeatHeaderLength(prefix: Uint8Array): number | undefined {
  if (prefix.length >= 1 && prefix[0] !== HEADER_MAGIC[0]) {
    throw new RepeatProtocolError("not a repeat copy header (bad magic)");
  }
  if (prefix.length >= 2 && prefix[1] !== HEADER_MAGIC[1]) {
    throw new RepeatProtocolError("not a repeat copy header (bad magic)");
  }
  if (prefix.length >= 3 && prefix[2] !== REPEAT_VERSION) {
    throw new RepeatProtocolError(
      `unsupported repeat protocol version ${prefix[2]}`,
    );
  }
  if (prefix.length < REPEAT_HEADER_FIXED) return undefined;
  const nameLength = (prefix[19] << 8) | prefix[20];
  if (nameLength === 0 || nameLength > MAX_REPEAT_NAME_BYTES) {
    throw new RepeatProtocolError(
      `file name length ${nameLength} is not 1-${MAX_REPEAT_NAME_BYTES}`,
    );
  }
  return REPEAT_HEADER_FIXED + nameLength;
}

/**
 * Decodes the copy header at the start of `bytes`.
 *
 * @param bytes At least the whole header; bytes after it are not read.
 * @returns The header and its length in bytes.
 * @throws {RepeatProtocolError} When the bytes are not a complete, valid
 *   header.
 */
export function decodeRepeatHeader(
  bytes: Uint8Array,
): { header: RepeatHeader; length: number } {
  const length = repeatHeaderLength(bytes);
  if (length === undefined || bytes.length < length) {
    throw new RepeatProtocolError(
      `truncated repeat copy header (${bytes.length} bytes)`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, length);
  const size = view.getBigUint64(11);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new RepeatProtocolError(`file size ${size} is too large`);
  }
  let name: string;
  try {
    name = strictDecoder.decode(bytes.subarray(REPEAT_HEADER_FIXED, length));
  } catch {
    throw new RepeatProtocolError("file name is not valid UTF-8");
  }
  const header: RepeatHeader = {
    copy: view.getUint32(3),
    total: view.getUint32(7),
    size: Number(size),
    name,
  };
  return { header, length };
}

/**
 * Encodes a receipt.
 *
 * @example
 * ```ts
 * import { decodeRepeatReceipt, encodeRepeatReceipt } from "./repeat_protocol.ts";
 * import { deepEqual } from "node:assert/strict";
 * const receipt = { copy: 7, received: 1000, correct: true };
 * deepEqual(decodeRepeatReceipt(encodeRepeatReceipt(receipt)), receipt);
 * ```
 *
 * @param receipt The receipt.
 * @returns Its {@linkcode REPEAT_RECEIPT_LENGTH} bytes.
 * @throws {RangeError} When a field is out of range.
 */
export function encodeRepeatReceipt(receipt: RepeatReceipt): Uint8Array {
  checkU32("copy", receipt.copy);
  checkSize("received", receipt.received);
  const bytes = new Uint8Array(REPEAT_RECEIPT_LENGTH);
  const view = new DataView(bytes.buffer);
  bytes[0] = RECEIPT_MAGIC[0];
  bytes[1] = RECEIPT_MAGIC[1];
  bytes[2] = REPEAT_VERSION;
  view.setUint32(3, receipt.copy);
  view.setBigUint64(7, BigInt(receipt.received));
  bytes[15] = receipt.correct ? 1 : 0;
  return bytes;
}

/**
 * Decodes a receipt.
 *
 * @param bytes Exactly one receipt.
 * @returns The receipt.
 * @throws {RepeatProtocolError} When the bytes are not a valid receipt.
 */
export function decodeRepeatReceipt(bytes: Uint8Array): RepeatReceipt {
  if (bytes.length !== REPEAT_RECEIPT_LENGTH) {
    throw new RepeatProtocolError(
      `a receipt has ${REPEAT_RECEIPT_LENGTH} bytes, not ${bytes.length}`,
    );
  }
  if (bytes[0] !== RECEIPT_MAGIC[0] || bytes[1] !== RECEIPT_MAGIC[1]) {
    throw new RepeatProtocolError("not a repeat receipt (bad magic)");
  }
  if (bytes[2] !== REPEAT_VERSION) {
    throw new RepeatProtocolError(
      `unsupported repeat protocol version ${bytes[2]}`,
    );
  }
  if (bytes[15] > 1) {
    throw new RepeatProtocolError(`unknown verdict ${bytes[15]}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const received = view.getBigUint64(7);
  if (received > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new RepeatProtocolError(`received size ${received} is too large`);
  }
  return {
    copy: view.getUint32(3),
    received: Number(received),
    correct: bytes[15] === 1,
  };
}
