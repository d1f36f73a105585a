/**
 * Pure codec of the streaming GET/PUT/DEL protocol (SPEC §5, seed 004):
 * bytes in, messages out, no sockets.
 *
 * Wire format (details and sequence diagrams in docs/stream_protocol.md):
 *
 * - Text messages are UTF-8 words sent bare, with no newline and no length:
 *   `READY`, `OK`, `DONE`, `GET <f>`, `PUT <f>`, `DEL <f>`,
 *   `ERROR: <message>`. Their boundaries come from the lock-step exchange
 *   (each side waits for the other's answer), so a reader knows what it
 *   expects next. Readers also accept a trailing CR, LF or CRLF, and skip
 *   CR/LF left over before a text message, for other implementations.
 * - A size is an 8-byte big-endian unsigned integer:
 *
 *   ```
 *   +----+----+----+----+----+----+----+----+
 *   | b7 | b6 | b5 | b4 | b3 | b2 | b1 | b0 |   size = b7·2^56 + … + b0
 *   +----+----+----+----+----+----+----+----+
 *   ```
 *
 *   sockkit handles sizes up to 2^53 − 1 (`Number.MAX_SAFE_INTEGER`, 8 PiB)
 *   as numbers; larger values decode only through
 *   {@linkcode decodeSizeBigInt}.
 * - File data is exactly `size` raw bytes, sent in blocks of 1024 bytes by
 *   default.
 *
 * {@linkcode scanText} decides, from the bytes received so far, whether a
 * complete text message is there: an expected fixed word (`READY`, `OK`,
 * `DONE`) is complete as soon as its bytes are, whatever follows (a server
 * may send `OK` and `DONE` back to back for an empty PUT, and they can
 * arrive as `OKDONE`); any other text (a request, an `ERROR: …` reply,
 * garbage) is complete at a line end, at the end of the stream, or when the
 * caller saw the peer fall silent (it is "open").
 *
 * @module
 */

/** File data block size used when none is configured (the assignment's 1024). */
export const DEFAULT_BLOCK_SIZE = 1024;

/** Length in bytes of an encoded size. */
export const SIZE_BYTES = 8;

/** Longest text message accepted, in bytes (a request is verb + 255-byte name). */
export const MAX_TEXT_BYTES = 4096;

/** The fixed words of the protocol. */
export const Word = {
  /** Server greeting; client's go-ahead before the size in GET. */
  READY: "READY",
  /** Acknowledgement. */
  OK: "OK",
  /** Transfer or deletion complete. */
  DONE: "DONE",
} as const;

/** One of the fixed words of the protocol. */
export type Word = typeof Word[keyof typeof Word];

/** Prefix of every server error message. */
export const ERROR_PREFIX = "ERROR: ";

/** The request verbs. */
export const VERBS = ["GET", "PUT", "DEL"] as const;

/** A request verb. */
export type Verb = typeof VERBS[number];

/** A request: what to do with which file. */
export interface Request {
  /** The operation. */
  verb: Verb;
  /** The file name exactly as sent (not yet checked for safety). */
  fileName: string;
}

/** Bytes that violate the protocol: a malformed request, size or message. */
export class StreamProtocolError extends Error {
  /**
   * Creates the error.
   *
   * @param message What was wrong.
   * @param options Standard error options.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StreamProtocolError";
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const CR = 0x0d;
const LF = 0x0a;
const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);
const MAX_U64 = (1n << 64n) - 1n;

/**
 * Encodes a text message (UTF-8, no terminator).
 *
 * @example
 * ```ts
 * import { encodeText } from "./stream_protocol.ts";
 * console.log(encodeText("OK")); // Uint8Array(2) [ 79, 75 ]
 * ```
 *
 * @param text The message.
 * @returns Its bytes.
 */
export function encodeText(text: string): Uint8Array {
  return encoder.encode(text);
}

/**
 * Encodes a size as 8 bytes, big-endian, unsigned.
 *
 * @example
 * ```ts
 * import { encodeSize } from "./stream_protocol.ts";
 * console.log(encodeSize(2 ** 32 + 1)); // Uint8Array(8) [ 0, 0, 0, 1, 0, 0, 0, 1 ]
 * ```
 *
 * @param size A non-negative integer: a safe-integer number, or a bigint
 *   below 2^64.
 * @returns The 8 bytes.
 * @throws {RangeError} When the size is negative, fractional, unsafe or too
 *   large for 8 bytes.
 */
export function encodeSize(size: number | bigint): Uint8Array {
  let value: bigint;
  if (typeof size === "number") {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new RangeError(
        `Cannot encode size ${size}: not an integer in 0..2^53-1`,
      );
    }
    value = BigInt(size);
  } else {
    if (size < 0n || size > MAX_U64) {
      throw new RangeError(`Cannot encode size ${size}: not in 0..2^64-1`);
    }
    value = size;
  }
  const bytes = new Uint8Array(SIZE_BYTES);
  new DataView(bytes.buffer).setBigUint64(0, value, false);
  return bytes;
}

/**
 * Decodes an 8-byte big-endian size into a bigint (the full 64-bit range).
 *
 * @param bytes Exactly 8 bytes.
 * @returns The size.
 * @throws {StreamProtocolError} When `bytes` is not 8 bytes long.
 */
export function decodeSizeBigInt(bytes: Uint8Array): bigint {
  if (bytes.length !== SIZE_BYTES) {
    throw new StreamProtocolError(
      `Malformed size: expected ${SIZE_BYTES} bytes, got ${bytes.length}`,
    );
  }
  return new DataView(bytes.buffer, bytes.byteOffset, SIZE_BYTES)
    .getBigUint64(0, false);
}

/**
 * Decodes an 8-byte big-endian size into a number.
 *
 * @example
 * ```ts
 * import { decodeSize, encodeSize } from "./stream_protocol.ts";
 * console.log(decodeSize(encodeSize(5 * 2 ** 30))); // 5368709120
 * ```
 *
 * @param bytes Exactly 8 bytes.
 * @returns The size, at most `Number.MAX_SAFE_INTEGER`.
 * @throws {StreamProtocolError} When `bytes` is not 8 bytes long or the size
 *   exceeds 2^53 − 1 (it could not be counted exactly).
 */
export function decodeSize(bytes: Uint8Array): number {
  const value = decodeSizeBigInt(bytes);
  if (value > MAX_SAFE_BIG) {
    throw new StreamProtocolError(
      `Malformed size: ${value} bytes is above the supported 2^53-1`,
    );
  }
  return Number(value);
}

/**
 * Formats a request as sent on the wire.
 *
 * @example
 * ```ts
 * import { formatRequest } from "./stream_protocol.ts";
 * console.log(formatRequest({ verb: "GET", fileName: "a.txt" })); // "GET a.txt"
 * ```
 *
 * @param request The request.
 * @returns `<VERB> <file>`.
 */
export function formatRequest(request: Request): string {
  return `${request.verb} ${request.fileName}`;
}

/**
 * Parses a request text (already stripped of a trailing CR/LF).
 *
 * The verb is matched exactly (upper case, as the assignment sends it); the
 * file name is everything after the first space.
 *
 * @example
 * ```ts
 * import { parseRequest } from "./stream_protocol.ts";
 * console.log(parseRequest("PUT my file.bin")); // { verb: "PUT", fileName: "my file.bin" }
 * ```
 *
 * @param text The request.
 * @returns The request.
 * @throws {StreamProtocolError} For an unknown verb or a missing file name.
 */
export function parseRequest(text: string): Request {
  const space = text.indexOf(" ");
  const verb = space < 0 ? text : text.slice(0, space);
  if (!(VERBS as readonly string[]).includes(verb)) {
    throw new StreamProtocolError(`Unknown command ${quote(verb)}`);
  }
  const fileName = space < 0 ? "" : text.slice(space + 1);
  if (fileName.length === 0) {
    throw new StreamProtocolError(`Missing file name in ${quote(text)}`);
  }
  return { verb: verb as Verb, fileName };
}

/** The server's error messages (sent after {@linkcode ERROR_PREFIX}). */
export const ServerError = {
  /**
   * GET or DEL of a missing file.
   *
   * @param fileName The requested name.
   * @returns `<f> does not exist`.
   */
  doesNotExist: (fileName: string): string => `${fileName} does not exist`,
  /**
   * DEL that the operating system refused.
   *
   * @param fileName The requested name.
   * @returns `unable to delete <f>`.
   */
  unableToDelete: (fileName: string): string => `unable to delete ${fileName}`,
  /**
   * PUT of a file that cannot be created.
   *
   * @param fileName The requested name.
   * @returns `unable to create file <f>`.
   */
  unableToCreate: (fileName: string): string =>
    `unable to create file ${fileName}`,
  /**
   * GET of a file that exists but cannot be read (not in the assignment).
   *
   * @param fileName The requested name.
   * @returns `unable to read file <f>`.
   */
  unableToRead: (fileName: string): string => `unable to read file ${fileName}`,
  /**
   * A request that is not `GET|PUT|DEL <f>` (not in the assignment).
   *
   * @param text The request as received.
   * @returns `unknown command <text>`.
   */
  unknownCommand: (text: string): string => `unknown command ${text}`,
} as const;

/**
 * Formats a server error message.
 *
 * @example
 * ```ts
 * import { errorText, ServerError } from "./stream_protocol.ts";
 * console.log(errorText(ServerError.doesNotExist("a"))); // "ERROR: a does not exist"
 * ```
 *
 * @param message The message without prefix.
 * @returns `ERROR: <message>`.
 */
export function errorText(message: string): string {
  return ERROR_PREFIX + message;
}

/**
 * Returns the message of an `ERROR: …` text without its prefix, or
 * `undefined` when `text` is not an error. `ERROR:` without the space is
 * accepted too.
 *
 * @example
 * ```ts
 * import { errorMessage } from "./stream_protocol.ts";
 * console.log(errorMessage("ERROR: a does not exist")); // "a does not exist"
 * console.log(errorMessage("OK")); // undefined
 * ```
 *
 * @param text A received text message.
 * @returns The message, or `undefined`.
 */
export function errorMessage(text: string): string | undefined {
  if (!text.startsWith("ERROR:")) return undefined;
  return text.slice("ERROR:".length).replace(/^ /, "");
}

/** What {@linkcode scanText} found in the bytes received so far. */
export type ScanResult =
  | {
    /** A complete text message. */
    kind: "message";
    /** The message, without leading or trailing CR/LF. */
    text: string;
    /** How many bytes of the input it used (including CR/LF). */
    consumed: number;
  }
  | {
    /**
     * Not complete yet. `open` is true when only a line end, the end of the
     * stream or the peer falling silent can complete it; false when more
     * bytes of an expected word are due.
     */
    kind: "incomplete";
    /** Whether silence from the peer would complete the message. */
    open: boolean;
  }
  | {
    /** The input ended with no message (only CR/LF, or nothing). */
    kind: "end";
    /** Bytes used (leading CR/LF). */
    consumed: number;
  };

function newlineLength(bytes: Uint8Array, at: number): number {
  if (bytes[at] === CR) return bytes[at + 1] === LF ? 2 : 1;
  return bytes[at] === LF ? 1 : 0;
}

function startsWith(bytes: Uint8Array, at: number, word: Uint8Array): boolean {
  if (bytes.length - at < word.length) return false;
  for (let i = 0; i < word.length; i++) {
    if (bytes[at + i] !== word[i]) return false;
  }
  return true;
}

function isStrictPrefix(
  bytes: Uint8Array,
  at: number,
  word: Uint8Array,
): boolean {
  const rest = bytes.length - at;
  if (rest >= word.length) return false;
  for (let i = 0; i < rest; i++) {
    if (bytes[at + i] !== word[i]) return false;
  }
  return true;
}

function decodeText(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch (cause) {
    throw new StreamProtocolError("Malformed message: not valid UTF-8", {
      cause,
    });
  }
}

/**
 * Finds the first complete text message in `bytes`.
 *
 * @example
 * ```ts
 * import { scanText } from "./stream_protocol.ts";
 * const bytes = new TextEncoder().encode("OK\r\n");
 * console.log(scanText(bytes, ["OK"], false)); // { kind: "message", text: "OK", consumed: 4 }
 * console.log(scanText(bytes.subarray(0, 1), ["OK"], false)); // { kind: "incomplete", open: false }
 * ```
 *
 * @param bytes The bytes received and not yet used.
 * @param words The fixed words that may come now (complete without waiting).
 * @param ended Whether no more bytes will come for this message (end of
 *   stream, or the peer fell silent while the message was open).
 * @returns A message, a verdict to wait, or the end.
 * @throws {StreamProtocolError} For text that is not UTF-8 or is longer
 *   than {@linkcode MAX_TEXT_BYTES}, and for more than that many blank line
 *   ends before a message (they would otherwise pile up unread).
 */
export function scanText(
  bytes: Uint8Array,
  words: readonly string[],
  ended: boolean,
): ScanResult {
  let start = 0;
  while (start < bytes.length && (bytes[start] === CR || bytes[start] === LF)) {
    start++;
  }
  if (start > MAX_TEXT_BYTES) {
    throw new StreamProtocolError(
      `Malformed message: more than ${MAX_TEXT_BYTES} bytes of line ends`,
    );
  }
  if (start === bytes.length) {
    return ended
      ? { kind: "end", consumed: start }
      : { kind: "incomplete", open: false };
  }
  let waitForWord = false;
  for (const word of words) {
    const encoded = encoder.encode(word);
    if (startsWith(bytes, start, encoded)) {
      const after = start + encoded.length;
      return {
        kind: "message",
        text: word,
        consumed: after + newlineLength(bytes, after),
      };
    } else if (isStrictPrefix(bytes, start, encoded)) {
      waitForWord = true;
    }
  }
  const lf = bytes.indexOf(LF, start);
  const end = lf >= 0 ? lf : bytes.length;
  if (end - start > MAX_TEXT_BYTES) {
    throw new StreamProtocolError(
      `Malformed message: longer than ${MAX_TEXT_BYTES} bytes`,
    );
  }
  if (lf < 0 && !ended) {
    return { kind: "incomplete", open: !waitForWord };
  }
  const textEnd = end > start && bytes[end - 1] === CR ? end - 1 : end;
  return {
    kind: "message",
    text: decodeText(bytes.subarray(start, textEnd)),
    consumed: lf >= 0 ? lf + 1 : bytes.length,
  };
}

/**
 * Quotes a received text for a log or error message (JSON style, so control
 * characters stay visible).
 *
 * @param text The text.
 * @returns The quoted text.
 */
export function quote(text: string): string {
  return JSON.stringify(text);
}
