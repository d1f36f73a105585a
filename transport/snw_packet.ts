/**
 * The SNW packet codec: pure bytes in, packets out.
 *
 * Every datagram carries one packet: a 22-byte header, then the payload.
 * All integers are big-endian.
 *
 * ```
 *  0      2      3      4             8                     16        18             22
 *  +------+------+------+-------------+---------------------+---------+--------------+---------
 *  | "SW" | ver  | type | session u32 | seq u64             | len u16 | CRC-32 u32   | payload
 *  +------+------+------+-------------+---------------------+---------+--------------+---------
 * ```
 *
 * - `ver` is 1. `session` is chosen at random by the side that opens the
 *   session; together with the peer's address it names the session.
 * - `seq` numbers the packets of one direction (LEN and DATA), from 1, and
 *   never wraps (up to 2^53). ACK and FIN repeat the `seq` they answer; OPEN
 *   is seq 0 and is answered by an ACK with seq 0.
 * - `CRC-32` (IEEE) covers the header with the CRC field zeroed, then the
 *   payload; a packet that fails it is dropped as if lost.
 * - Payloads are ASCII-visible where the seed asks for "a message
 *   containing" something: LEN carries `LEN:<bytes>`, ACK `ACK`, FIN `FIN`,
 *   OPEN the channel tag (UTF-8, at most 64 bytes), CLOSE `CLOSE`, DATA the
 *   file bytes (at most {@linkcode MAX_PAYLOAD}).
 *
 * @module
 */

import { crc32 } from "./crc32.ts";

/** Packet types. */
export const SnwType = {
  /** Opens a session; payload: the channel tag. */
  OPEN: 1,
  /** Starts a transfer; payload `LEN:<bytes>`. */
  LEN: 2,
  /** A chunk of file bytes. */
  DATA: 3,
  /** Acknowledges the packet with the same seq; payload `ACK`. */
  ACK: 4,
  /** Acknowledges the last packet of a transfer; payload `FIN`. */
  FIN: 5,
  /** The peer closed the session; payload `CLOSE`. */
  CLOSE: 6,
  /**
   * The packet with the same seq arrived, but its `ACK` is held until the
   * receiver's reader takes data (flow control); payload `WAIT`.
   */
  WAIT: 7,
} as const;

/** One of the values of {@linkcode SnwType}. */
export type SnwTypeCode = typeof SnwType[keyof typeof SnwType];

/** A decoded packet. */
export interface SnwPacket {
  /** The packet type. */
  type: SnwTypeCode;
  /** The session id (u32). */
  session: number;
  /** The sequence number. */
  seq: number;
  /** The payload bytes (a view into the datagram for DATA). */
  payload: Uint8Array;
}

/** Size of the header in bytes. */
export const HEADER_SIZE = 22;
/** Largest payload: what fits one UDP datagram over IPv4 with the header. */
export const MAX_PAYLOAD = 65507 - HEADER_SIZE;
/** Largest channel tag in bytes. */
export const MAX_TAG_BYTES = 64;
const VERSION = 1;
const MAGIC_0 = 0x53; // "S"
const MAGIC_1 = 0x57; // "W"

/** A datagram that is not a valid SNW packet (wrong magic, length or CRC). */
export class SnwPacketError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong with the datagram.
   */
  constructor(message: string) {
    super(message);
    this.name = "SnwPacketError";
  }
}

/**
 * Encodes one packet into a new datagram.
 *
 * @example
 * ```ts
 * import { decodeSnwPacket, encodeSnwPacket, SnwType } from "./snw_packet.ts";
 * import { equal } from "node:assert/strict";
 * const bytes = encodeSnwPacket(SnwType.ACK, 7, 42, new TextEncoder().encode("ACK"));
 * equal(decodeSnwPacket(bytes).seq, 42);
 * ```
 *
 * @param type The packet type.
 * @param session The session id (u32).
 * @param seq The sequence number (0 to 2^53 - 1).
 * @param payload The payload (at most {@linkcode MAX_PAYLOAD} bytes).
 * @returns The datagram.
 * @throws {RangeError} When a field is out of range.
 */
export function encodeSnwPacket(
  type: SnwTypeCode,
  session: number,
  seq: number,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  return encodeSnwPacketInto(
    new Uint8Array(HEADER_SIZE + payload.length),
    type,
    session,
    seq,
    payload,
  );
}

/**
 * Encodes one packet into the start of `target` (a buffer the caller
 * reuses), like {@linkcode encodeSnwPacket}.
 *
 * @example
 * ```ts
 * import { encodeSnwPacketInto, HEADER_SIZE, SnwType } from "./snw_packet.ts";
 * import { equal } from "node:assert/strict";
 * const buffer = new Uint8Array(HEADER_SIZE + 1000);
 * const bytes = encodeSnwPacketInto(buffer, SnwType.DATA, 7, 3, new Uint8Array(10));
 * equal(bytes.length, HEADER_SIZE + 10);
 * ```
 *
 * @param target Where to write; at least `HEADER_SIZE + payload.length` long.
 * @param type The packet type.
 * @param session The session id (u32).
 * @param seq The sequence number (0 to 2^53 - 1).
 * @param payload The payload (at most {@linkcode MAX_PAYLOAD} bytes).
 * @returns The datagram: a view of the start of `target`.
 * @throws {RangeError} When a field is out of range or `target` too short.
 */
export function encodeSnwPacketInto(
  target: Uint8Array,
  type: SnwTypeCode,
  session: number,
  seq: number,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  if (payload.length > MAX_PAYLOAD) {
    throw new RangeError(`SNW payload of ${payload.length} bytes is too large`);
  }
  if (!Number.isSafeInteger(seq) || seq < 0) {
    throw new RangeError(`SNW seq ${seq} is out of range`);
  }
  if (target.length < HEADER_SIZE + payload.length) {
    throw new RangeError(
      `a buffer of ${target.length} bytes cannot hold a packet of ${
        HEADER_SIZE + payload.length
      }`,
    );
  }
  const bytes = target.subarray(0, HEADER_SIZE + payload.length);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  bytes[0] = MAGIC_0;
  bytes[1] = MAGIC_1;
  bytes[2] = VERSION;
  bytes[3] = type;
  view.setUint32(4, session >>> 0);
  view.setUint32(8, Math.floor(seq / 2 ** 32));
  view.setUint32(12, seq >>> 0);
  view.setUint16(16, payload.length);
  view.setUint32(18, 0);
  bytes.set(payload, HEADER_SIZE);
  view.setUint32(18, crc32(bytes));
  return bytes;
}

/**
 * Decodes one datagram.
 *
 * @param bytes The datagram.
 * @returns The packet; its payload is a view into `bytes`.
 * @throws {SnwPacketError} When the datagram is not a valid SNW packet.
 */
export function decodeSnwPacket(bytes: Uint8Array): SnwPacket {
  if (bytes.length < HEADER_SIZE) {
    throw new SnwPacketError(`datagram of ${bytes.length} bytes is too short`);
  }
  if (bytes[0] !== MAGIC_0 || bytes[1] !== MAGIC_1) {
    throw new SnwPacketError("bad magic");
  }
  if (bytes[2] !== VERSION) {
    throw new SnwPacketError(`unsupported version ${bytes[2]}`);
  }
  const type = bytes[3];
  if (type < SnwType.OPEN || type > SnwType.WAIT) {
    throw new SnwPacketError(`unknown packet type ${type}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const length = view.getUint16(16);
  if (HEADER_SIZE + length !== bytes.length) {
    throw new SnwPacketError(
      `payload length ${length} does not match datagram of ${bytes.length} bytes`,
    );
  }
  if (!checksumMatches(bytes)) throw new SnwPacketError("checksum mismatch");
  const seqHigh = view.getUint32(8);
  if (seqHigh >= 2 ** 21) throw new SnwPacketError("seq out of range");
  return {
    type: type as SnwTypeCode,
    session: view.getUint32(4),
    seq: seqHigh * 2 ** 32 + view.getUint32(12),
    payload: bytes.subarray(HEADER_SIZE),
  };
}

/**
 * Whether the CRC field of a datagram matches its bytes.
 *
 * The CRC covers the datagram with its CRC field zeroed: the field is zeroed
 * in place for one pass over the bytes (one native call, not three), then
 * put back, so the caller's bytes are unchanged.
 */
function checksumMatches(bytes: Uint8Array): boolean {
  const b18 = bytes[18], b19 = bytes[19], b20 = bytes[20], b21 = bytes[21];
  bytes[18] =
    bytes[19] =
    bytes[20] =
    bytes[21] =
      0;
  const actual = crc32(bytes);
  bytes[18] = b18;
  bytes[19] = b19;
  bytes[20] = b20;
  bytes[21] = b21;
  return actual === ((b18 << 24) | (b19 << 16) | (b20 << 8) | b21) >>> 0;
}

function readUint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) |
    bytes[at + 3]) >>> 0;
}

/**
 * Whether `bytes` is a valid `DATA` packet of `session` with sequence
 * number `seq`: the check {@linkcode decodeSnwPacket} makes, for the one
 * packet a receiver expects next, without building a packet object (the
 * receiver's fast path: it answers before anything else).
 *
 * @example
 * ```ts
 * import { encodeSnwPacket, isSnwDataPacket, SnwType } from "./snw_packet.ts";
 * import { equal } from "node:assert/strict";
 * const bytes = encodeSnwPacket(SnwType.DATA, 7, 3, new Uint8Array(10));
 * equal(isSnwDataPacket(bytes, 7, 3), true);
 * equal(isSnwDataPacket(bytes, 7, 4), false);
 * ```
 *
 * @param bytes A datagram.
 * @param session The expected session id.
 * @param seq The expected sequence number.
 * @returns True only for an intact DATA packet with that session and seq.
 */
export function isSnwDataPacket(
  bytes: Uint8Array,
  session: number,
  seq: number,
): boolean {
  return bytes.length >= HEADER_SIZE && bytes[0] === MAGIC_0 &&
    bytes[1] === MAGIC_1 && bytes[2] === VERSION &&
    bytes[3] === SnwType.DATA && readUint32(bytes, 4) === session >>> 0 &&
    readUint32(bytes, 12) === seq >>> 0 &&
    readUint32(bytes, 8) === Math.floor(seq / 2 ** 32) &&
    ((bytes[16] << 8) | bytes[17]) === bytes.length - HEADER_SIZE &&
    checksumMatches(bytes);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Encodes the payload of a LEN packet: `LEN:<bytes>`.
 *
 * @param size The transfer size.
 * @returns The payload.
 */
export function encodeLenPayload(size: number): Uint8Array {
  return encoder.encode(`LEN:${size}`);
}

/**
 * Decodes the payload of a LEN packet.
 *
 * @param payload The payload.
 * @returns The announced size.
 * @throws {SnwPacketError} When it is not `LEN:<decimal>` with a safe integer.
 */
export function decodeLenPayload(payload: Uint8Array): number {
  const match = /^LEN:(\d{1,16})$/.exec(decoder.decode(payload));
  const size = match ? Number(match[1]) : NaN;
  if (!Number.isSafeInteger(size)) throw new SnwPacketError("malformed LEN");
  return size;
}

/** The fixed payloads of ACK, FIN, CLOSE and WAIT. */
export const SNW_WORDS: Readonly<
  Record<"ACK" | "FIN" | "CLOSE" | "WAIT", Uint8Array>
> = {
  ACK: encoder.encode("ACK"),
  FIN: encoder.encode("FIN"),
  CLOSE: encoder.encode("CLOSE"),
  WAIT: encoder.encode("WAIT"),
};
