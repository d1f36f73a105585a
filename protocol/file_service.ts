/**
 * The control protocol of the file service (SPEC §1): pure encoders and
 * decoders, no sockets.
 *
 * Every control message travels over TCP in one frame: a 4-byte big-endian
 * payload length, then the payload, one line of UTF-8 text without a line
 * terminator. The payload starts with a verb; its fields are separated by
 * one space; a file name or a human-readable text is always the last field
 * and may itself contain spaces.
 *
 * ```
 * +-----------------------------+--------------------------------------+
 * | length: u32 big-endian (4)  | payload: `length` bytes of UTF-8     |
 * +-----------------------------+--------------------------------------+
 * ```
 *
 * | payload                         | sent by             | meaning                                   |
 * | ------------------------------- | ------------------- | ----------------------------------------- |
 * | `PUT <tag> <size> <name>`       | client → origin     | upload `size` bytes as `name`             |
 * | `GET <tag> <name>`              | client → cache, cache → origin | download `name`                |
 * | `STAT <name>`                   | cache → origin      | current version of `name`                 |
 * | `READY`                         | origin → client     | go ahead with the upload                  |
 * | `FOUND <size> <sha256>`         | origin, cache       | version; for GET the transfer follows     |
 * | `DONE <sha256>`                 | client → origin     | SHA-256 of the bytes just uploaded        |
 * | `OK <text>`                     | origin, cache       | success, `text` is shown to the user      |
 * | `ERROR <code> <text>`           | origin, cache       | failure, `text` is shown to the user      |
 * | `WAIT`                          | origin, cache       | keep-alive while a long step runs         |
 *
 * `<tag>` names the data channel (1–64 of `A-Z a-z 0-9 _ -`), `<size>` is a
 * decimal byte count, `<sha256>` 64 lower-case hex digits, `<code>` one of
 * {@linkcode ERROR_CODES}. File data never travels in a frame: it moves as
 * a transfer of the selected transport (see docs/file_service.md).
 *
 * @module
 */

/** The largest payload a frame may carry. */
export const MAX_PAYLOAD_BYTES = 16 * 1024;

/** The size of a frame header (the payload length). */
export const FRAME_HEADER_BYTES = 4;

/** The origin's answer to a successful upload (SPEC §1, exact). */
export const UPLOADED_TEXT = "File successfully uploaded.";
/** The cache's answer to a get served from its store (SPEC §1, exact). */
export const FROM_CACHE_TEXT = "File delivered from cache.";
/** The cache's answer to a get fetched from the origin (SPEC §1, exact). */
export const FROM_ORIGIN_TEXT = "File delivered from origin.";

/** Error codes of `ERROR` messages. */
export const ERROR_CODES = [
  "not-found",
  "bad-name",
  "bad-request",
  "unavailable",
  "transfer-failed",
  "io-error",
] as const;

/** An error code of an `ERROR` message. */
export type ErrorCode = typeof ERROR_CODES[number];

/** Upload request: `PUT <tag> <size> <name>`. */
export interface PutMessage {
  /** Discriminant. */
  type: "put";
  /** The data channel's tag. */
  tag: string;
  /** The file size in bytes. */
  size: number;
  /** The bare file name. */
  name: string;
}

/** Download request: `GET <tag> <name>`. */
export interface GetMessage {
  /** Discriminant. */
  type: "get";
  /** The data channel's tag. */
  tag: string;
  /** The bare file name. */
  name: string;
}

/** Version query: `STAT <name>`. */
export interface StatMessage {
  /** Discriminant. */
  type: "stat";
  /** The bare file name. */
  name: string;
}

/** Go ahead with the upload: `READY`. */
export interface ReadyMessage {
  /** Discriminant. */
  type: "ready";
}

/** A file's version, and for GET the announcement of its transfer. */
export interface FoundMessage {
  /** Discriminant. */
  type: "found";
  /** The size in bytes. */
  size: number;
  /** SHA-256 of the content, lower-case hex. */
  sha256: string;
}

/** End of an upload with its digest: `DONE <sha256>`. */
export interface DoneMessage {
  /** Discriminant. */
  type: "done";
  /** SHA-256 of the bytes sent, lower-case hex. */
  sha256: string;
}

/** Success: `OK <text>`. */
export interface OkMessage {
  /** Discriminant. */
  type: "ok";
  /** What the user sees after `Server response: `. */
  text: string;
}

/** Failure: `ERROR <code> <text>`. */
export interface ErrorMessage {
  /** Discriminant. */
  type: "error";
  /** What kind of failure. */
  code: ErrorCode;
  /** One line for the user. */
  text: string;
}

/** Keep-alive while a long step runs: `WAIT`. */
export interface WaitMessage {
  /** Discriminant. */
  type: "wait";
}

/** Any control message of the file service. */
export type FileServiceMessage =
  | PutMessage
  | GetMessage
  | StatMessage
  | ReadyMessage
  | FoundMessage
  | DoneMessage
  | OkMessage
  | ErrorMessage
  | WaitMessage;

/** A frame or payload that is not a valid control message. */
export class FileServiceProtocolError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong with the bytes.
   */
  constructor(message: string) {
    super(message);
    this.name = "FileServiceProtocolError";
  }
}

const TAG = /^[A-Za-z0-9_-]{1,64}$/;
const SIZE = /^(0|[1-9][0-9]{0,15})$/;
const SHA256 = /^[0-9a-f]{64}$/;
const ERROR_CODE_SET: ReadonlySet<string> = new Set(ERROR_CODES);

/**
 * Whether `tag` is a valid data-channel tag.
 *
 * @param tag The candidate.
 * @returns `true` when it has 1–64 characters of `A-Z a-z 0-9 _ -`.
 */
export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

function checkField(ok: boolean, what: string, value: unknown): void {
  if (!ok) {
    throw new FileServiceProtocolError(
      `Invalid ${what} ${JSON.stringify(value)}`,
    );
  }
}

function checkSize(size: number): void {
  checkField(
    Number.isSafeInteger(size) && size >= 0,
    "size",
    size,
  );
}

function checkText(text: string, what: string): void {
  checkField(!/[\r\n]/.test(text), what, text);
}

function payloadOf(message: FileServiceMessage): string {
  switch (message.type) {
    case "put":
      checkField(isValidTag(message.tag), "tag", message.tag);
      checkSize(message.size);
      checkText(message.name, "name");
      checkField(message.name.length > 0, "name", message.name);
      return `PUT ${message.tag} ${message.size} ${message.name}`;
    case "get":
      checkField(isValidTag(message.tag), "tag", message.tag);
      checkText(message.name, "name");
      checkField(message.name.length > 0, "name", message.name);
      return `GET ${message.tag} ${message.name}`;
    case "stat":
      checkText(message.name, "name");
      checkField(message.name.length > 0, "name", message.name);
      return `STAT ${message.name}`;
    case "ready":
      return "READY";
    case "found":
      checkSize(message.size);
      checkField(SHA256.test(message.sha256), "sha256", message.sha256);
      return `FOUND ${message.size} ${message.sha256}`;
    case "done":
      checkField(SHA256.test(message.sha256), "sha256", message.sha256);
      return `DONE ${message.sha256}`;
    case "ok":
      checkText(message.text, "text");
      return `OK ${message.text}`;
    case "error":
      checkField(ERROR_CODE_SET.has(message.code), "code", message.code);
      checkText(message.text, "text");
      return `ERROR ${message.code} ${message.text}`;
    case "wait":
      return "WAIT";
  }
}

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Encodes one control message as a complete frame (header and payload).
 *
 * @example
 * ```ts
 * import { encodeFileServiceMessage } from "./file_service.ts";
 * const frame = encodeFileServiceMessage({ type: "stat", name: "a.txt" });
 * console.log(frame.length); // 14
 * ```
 *
 * @param message The message.
 * @returns The frame bytes.
 * @throws {FileServiceProtocolError} When a field cannot be encoded (bad
 *   tag, size, digest or code, a line break in a name or text, or a payload
 *   longer than {@linkcode MAX_PAYLOAD_BYTES}).
 */
export function encodeFileServiceMessage(
  message: FileServiceMessage,
): Uint8Array {
  const payload = encoder.encode(payloadOf(message));
  if (payload.length > MAX_PAYLOAD_BYTES) {
    throw new FileServiceProtocolError(
      `Cannot encode a ${payload.length}-byte payload (at most ${MAX_PAYLOAD_BYTES})`,
    );
  }
  const frame = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  new DataView(frame.buffer).setUint32(0, payload.length);
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * Decodes a frame header: the payload length.
 *
 * @example
 * ```ts
 * import { decodeFrameLength } from "./file_service.ts";
 * console.log(decodeFrameLength(new Uint8Array([0, 0, 0, 5]))); // 5
 * ```
 *
 * @param header At least {@linkcode FRAME_HEADER_BYTES} bytes.
 * @returns The payload length.
 * @throws {FileServiceProtocolError} When the header is short, or the length
 *   is 0 or above {@linkcode MAX_PAYLOAD_BYTES}.
 */
export function decodeFrameLength(header: Uint8Array): number {
  if (header.length < FRAME_HEADER_BYTES) {
    throw new FileServiceProtocolError(
      `Frame header needs ${FRAME_HEADER_BYTES} bytes, got ${header.length}`,
    );
  }
  const length = new DataView(header.buffer, header.byteOffset, 4)
    .getUint32(0);
  if (length === 0 || length > MAX_PAYLOAD_BYTES) {
    throw new FileServiceProtocolError(
      `Invalid frame length ${length} (1-${MAX_PAYLOAD_BYTES})`,
    );
  }
  return length;
}

function splitFields(rest: string, count: number, verb: string): string[] {
  const fields: string[] = [];
  let remaining = rest;
  for (let i = 0; i < count - 1; i++) {
    const space = remaining.indexOf(" ");
    if (space < 0) {
      throw new FileServiceProtocolError(`${verb} needs ${count} fields`);
    }
    fields.push(remaining.slice(0, space));
    remaining = remaining.slice(space + 1);
  }
  fields.push(remaining);
  return fields;
}

function parseSize(text: string): number {
  if (!SIZE.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new FileServiceProtocolError(`Invalid size ${JSON.stringify(text)}`);
  }
  return Number(text);
}

function parseDigest(text: string): string {
  if (!SHA256.test(text)) {
    throw new FileServiceProtocolError(
      `Invalid sha256 ${JSON.stringify(text)}`,
    );
  }
  return text;
}

function parseTag(text: string): string {
  if (!isValidTag(text)) {
    throw new FileServiceProtocolError(`Invalid tag ${JSON.stringify(text)}`);
  }
  return text;
}

function parseName(text: string): string {
  if (text.length === 0 || /[\r\n]/.test(text)) {
    throw new FileServiceProtocolError(`Invalid name ${JSON.stringify(text)}`);
  }
  return text;
}

/**
 * Decodes a frame payload into a control message.
 *
 * @example
 * ```ts
 * import { decodeFileServiceMessage } from "./file_service.ts";
 * const payload = new TextEncoder().encode("GET k3 test.txt");
 * console.log(decodeFileServiceMessage(payload));
 * // { type: "get", tag: "k3", name: "test.txt" }
 * ```
 *
 * @param payload The payload bytes (without the header).
 * @returns The message.
 * @throws {FileServiceProtocolError} When the payload is not valid UTF-8 or
 *   not a well-formed message.
 */
export function decodeFileServiceMessage(
  payload: Uint8Array,
): FileServiceMessage {
  let text: string;
  try {
    text = strictDecoder.decode(payload);
  } catch {
    throw new FileServiceProtocolError("Payload is not valid UTF-8");
  }
  const space = text.indexOf(" ");
  const verb = space < 0 ? text : text.slice(0, space);
  const rest = space < 0 ? undefined : text.slice(space + 1);
  const need = (): string => {
    if (rest === undefined) {
      throw new FileServiceProtocolError(`${verb} needs fields`);
    }
    return rest;
  };
  const bare = (message: ReadyMessage | WaitMessage): FileServiceMessage => {
    if (rest !== undefined) {
      throw new FileServiceProtocolError(`${verb} takes no fields`);
    }
    return message;
  };
  switch (verb) {
    case "PUT": {
      const [tag, size, name] = splitFields(need(), 3, verb);
      return {
        type: "put",
        tag: parseTag(tag),
        size: parseSize(size),
        name: parseName(name),
      };
    }
    case "GET": {
      const [tag, name] = splitFields(need(), 2, verb);
      return { type: "get", tag: parseTag(tag), name: parseName(name) };
    }
    case "STAT":
      return { type: "stat", name: parseName(need()) };
    case "READY":
      return bare({ type: "ready" });
    case "FOUND": {
      const [size, digest] = splitFields(need(), 2, verb);
      return {
        type: "found",
        size: parseSize(size),
        sha256: parseDigest(digest),
      };
    }
    case "DONE":
      return { type: "done", sha256: parseDigest(need()) };
    case "OK": {
      const body = need();
      if (/[\r\n]/.test(body)) {
        throw new FileServiceProtocolError("OK text has a line break");
      }
      return { type: "ok", text: body };
    }
    case "ERROR": {
      const [code, body] = splitFields(need(), 2, verb);
      if (!ERROR_CODE_SET.has(code)) {
        throw new FileServiceProtocolError(
          `Unknown error code ${JSON.stringify(code)}`,
        );
      }
      if (/[\r\n]/.test(body)) {
        throw new FileServiceProtocolError("ERROR text has a line break");
      }
      return { type: "error", code: code as ErrorCode, text: body };
    }
    case "WAIT":
      return bare({ type: "wait" });
    default:
      throw new FileServiceProtocolError(
        `Unknown verb ${JSON.stringify(verb.slice(0, 16))}`,
      );
  }
}

/**
 * Decodes control frames from bytes that arrive in arbitrary pieces (for
 * captures, tests and peers that read ahead; the roles read exact frames).
 *
 * @example
 * ```ts
 * import {
 *   encodeFileServiceMessage,
 *   FileServiceFrameDecoder,
 * } from "./file_service.ts";
 * const decoder = new FileServiceFrameDecoder();
 * const frame = encodeFileServiceMessage({ type: "ready" });
 * console.log(decoder.push(frame.subarray(0, 3)).length); // 0
 * console.log(decoder.push(frame.subarray(3))); // [ { type: "ready" } ]
 * ```
 */
export class FileServiceFrameDecoder {
  #buffer = new Uint8Array(0);

  /**
   * Adds bytes and returns every message completed by them.
   *
   * @param bytes The next bytes of the stream.
   * @returns The completed messages, in order.
   * @throws {FileServiceProtocolError} On a malformed frame; the decoder is
   *   unusable afterwards.
   */
  push(bytes: Uint8Array): FileServiceMessage[] {
    const joined = new Uint8Array(this.#buffer.length + bytes.length);
    joined.set(this.#buffer);
    joined.set(bytes, this.#buffer.length);
    const messages: FileServiceMessage[] = [];
    let offset = 0;
    while (joined.length - offset >= FRAME_HEADER_BYTES) {
      const length = decodeFrameLength(joined.subarray(offset));
      const end = offset + FRAME_HEADER_BYTES + length;
      if (joined.length < end) break;
      messages.push(
        decodeFileServiceMessage(
          joined.subarray(offset + FRAME_HEADER_BYTES, end),
        ),
      );
      offset = end;
    }
    this.#buffer = joined.slice(offset);
    return messages;
  }

  /** The number of bytes held for an incomplete frame. */
  get pending(): number {
    return this.#buffer.length;
  }
}
