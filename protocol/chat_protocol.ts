/**
 * The chat wire protocol (SPEC §4): the eleven message types of the
 * assignment in their exact text formats, inside sockkit's binary-safe
 * length-prefixed framing. Pure: bytes in, messages out — no sockets.
 *
 * ## Messages (text, fields separated by exactly one space)
 *
 * | format | layout                       | types                                                                          |
 * | ------ | ---------------------------- | ------------------------------------------------------------------------------ |
 * | Type 1 | `<type> <username>`          | `join`, `disconnect`                                                           |
 * | Type 2 | `<type>`                     | `request_users_list`, `err_unknown_message`, `err_server_full`, `err_username_unavailable` |
 * | Type 3 | `<type> <list>`              | `response_users_list`                                                          |
 * | Type 4 | `<type> <list> <message>`    | `send_message`, `forward_message`, `send_file`, `forward_file`                 |
 *
 * A `<list>` is `<n> <u1> … <un>` (decimal `n`, no leading zeros). In
 * `forward_message`/`forward_file` the list is the sender alone. For the two
 * file types `<message>` is `<filename> <file contents>`: the header text ends
 * with the space after the file name, and every byte after it up to the end
 * of the frame is file content — raw bytes, any value (NUL, newline, invalid
 * UTF-8 all allowed). The header and all other messages must be UTF-8.
 *
 * ## Framing
 *
 * ```
 * +---------------------------------+-------------------------------------+
 * | length: u32 big-endian (4 bytes) | payload: `length` bytes (one message) |
 * +---------------------------------+-------------------------------------+
 * ```
 *
 * One frame carries exactly one message; the length says where it ends, so
 * frames survive TCP splitting and coalescing, and file bytes are never
 * scanned for delimiters. Example: `join client1` is the 16 bytes
 * `00 00 00 0c` `6a 6f 69 6e 20 63 6c 69 65 6e 74 31`.
 *
 * ## Limits (a violation is a {@linkcode ChatProtocolError})
 *
 * - a frame's length is at least 1;
 * - a non-file message, and the header of a file message, is at most
 *   {@linkcode MAX_MESSAGE_BYTES} (1 MiB);
 * - file contents are at most {@linkcode MAX_FILE_BYTES} (256 MiB);
 * - message text: 1 to {@linkcode MAX_TEXT_BYTES} (64 KiB) bytes, no control
 *   characters except tab;
 * - usernames: 1 to {@linkcode MAX_USERNAME_BYTES} (32) bytes, no whitespace,
 *   no control characters, no `/` or `\`;
 * - file names: 1 to 255 bytes, no whitespace, no control characters;
 * - a list names at most {@linkcode MAX_LIST_USERS} users; lists in
 *   `send_*` name at least one, in `forward_*` exactly one.
 *
 * File messages are decoded as a stream (`file-start`, `file-data`…,
 * `file-end`), so a receiver never holds a whole file in memory.
 *
 * @example
 * ```ts
 * import { ChatDecoder, encodeMessage } from "./chat_protocol.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const decoder = new ChatDecoder();
 * decoder.push(encodeMessage({ type: "join", username: "client1" }));
 * deepEqual(decoder.next(), {
 *   kind: "message",
 *   message: { type: "join", username: "client1" },
 * });
 * deepEqual(decoder.next(), undefined); // needs more bytes
 * ```
 *
 * @module
 */

/** Every message type and its format number (Type 1–4 of SPEC §4). */
export const CHAT_MESSAGE_FORMATS = {
  join: 1,
  disconnect: 1,
  request_users_list: 2,
  err_unknown_message: 2,
  err_server_full: 2,
  err_username_unavailable: 2,
  response_users_list: 3,
  send_message: 4,
  forward_message: 4,
  send_file: 4,
  forward_file: 4,
} as const;

/** The name of a chat message type. */
export type ChatMessageType = keyof typeof CHAT_MESSAGE_FORMATS;

/** Bytes of the length prefix of a frame. */
export const FRAME_PREFIX_BYTES = 4;
/** Largest non-file message, and largest file-message header, in bytes. */
export const MAX_MESSAGE_BYTES = 1024 * 1024;
/** Largest file content a file message may carry, in bytes (256 MiB). */
export const MAX_FILE_BYTES = 256 * 1024 * 1024;
/** Largest text of `send_message` / `forward_message`, in UTF-8 bytes. */
export const MAX_TEXT_BYTES = 64 * 1024;
/** Longest username, in UTF-8 bytes. */
export const MAX_USERNAME_BYTES = 32;
/** Longest file name, in UTF-8 bytes. */
export const MAX_FILE_NAME_BYTES = 255;
/** Most users one list may name. */
export const MAX_LIST_USERS = 10_000;

/** Type 1 messages: `<type> <username>`. */
export interface UserMessage {
  /** `join` or `disconnect`. */
  type: "join" | "disconnect";
  /** The user joining or leaving. */
  username: string;
}

/** Type 2 messages: just the type. */
export interface SignalMessage {
  /** The request or error. */
  type:
    | "request_users_list"
    | "err_unknown_message"
    | "err_server_full"
    | "err_username_unavailable";
}

/** Type 3: `response_users_list <n> <u1> … <un>`. */
export interface UsersListMessage {
  /** Always `response_users_list`. */
  type: "response_users_list";
  /** The connected users (the server sends them sorted). */
  users: string[];
}

/** Type 4 text messages: `<type> <n> <u1> … <un> <text>`. */
export interface TextMessage {
  /** `send_message` (list = recipients) or `forward_message` (list = sender). */
  type: "send_message" | "forward_message";
  /** Recipients (`send_message`) or the sender alone (`forward_message`). */
  users: string[];
  /** The text. */
  text: string;
}

/** A message that fits in one frame and is decoded whole. */
export type ChatMessage =
  | UserMessage
  | SignalMessage
  | UsersListMessage
  | TextMessage;

/**
 * The header of a Type 4 file message: `<type> <list> <fileName> ` followed
 * by `size` content bytes.
 */
export interface FileHeader {
  /** `send_file` (list = recipients) or `forward_file` (list = sender). */
  type: "send_file" | "forward_file";
  /** Recipients (`send_file`) or the sender alone (`forward_file`). */
  users: string[];
  /** The file name as the sender gives it (a bare name). */
  fileName: string;
  /** Bytes of file content that follow the header. */
  size: number;
}

/** What {@linkcode ChatDecoder.next} yields. */
export type ChatEvent =
  | { kind: "message"; message: ChatMessage }
  | { kind: "file-start"; header: FileHeader }
  | { kind: "file-data"; bytes: Uint8Array }
  | { kind: "file-end" };

/** Bytes that are not a valid chat frame or message. */
export class ChatProtocolError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong with the bytes.
   * @param options Standard error options.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ChatProtocolError";
  }
}

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });
const lenientDecoder = new TextDecoder();
const SPACE = 0x20;
const LONGEST_TYPE = Math.max(
  ...Object.keys(CHAT_MESSAGE_FORMATS).map((type) => type.length),
);
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
// deno-lint-ignore no-control-regex
const CONTROL_BUT_TAB = /[\u0000-\u0008\u000a-\u001f\u007f]/;
const WHITESPACE = /\s/u;
/** C1 controls and invisible format characters (zero-width, bidi overrides). */
const INVISIBLE = /[\p{Cc}\p{Cf}]/u;
const COUNT = /^(0|[1-9][0-9]{0,5})$/;

function byteLength(text: string): number {
  return encoder.encode(text).length;
}

/** Shows an untrusted value in a message: quoted, escaped, shortened. */
function shown(value: string): string {
  const short = value.length > 40 ? value.slice(0, 40) + "…" : value;
  return JSON.stringify(short);
}

/**
 * Explains why `name` cannot be a username, or returns `undefined` when it
 * can.
 *
 * @example
 * ```ts
 * import { usernameProblem } from "./chat_protocol.ts";
 * console.log(usernameProblem("client1")); // undefined
 * console.log(usernameProblem("a b")); // "whitespace is not allowed"
 * ```
 *
 * @param name The candidate username.
 * @returns The reason, or `undefined` when valid.
 */
export function usernameProblem(name: string): string | undefined {
  if (name.length === 0) return "empty username";
  if (WHITESPACE.test(name)) return "whitespace is not allowed";
  if (CONTROL.test(name)) return "control characters are not allowed";
  if (INVISIBLE.test(name)) {
    // "a\u200bb" would show as "ab", and U+202E reverses what follows: one
    // user could pass for another.
    return "invisible or format characters are not allowed";
  }
  if (name.includes("/") || name.includes("\\")) {
    return "path separators are not allowed";
  }
  if (byteLength(name) > MAX_USERNAME_BYTES) {
    return `longer than ${MAX_USERNAME_BYTES} bytes`;
  }
  return undefined;
}

/**
 * Sorts usernames ascending by Unicode code point (the order of Python's
 * `sorted`), as `response_users_list` and the client's `list:` line show
 * them.
 *
 * @example
 * ```ts
 * import { sortUsernames } from "./chat_protocol.ts";
 * console.log(sortUsernames(["bob", "Alice", "alice"])); // ["Alice", "alice", "bob"]
 * ```
 *
 * @param names The names.
 * @returns A sorted copy.
 */
export function sortUsernames(names: Iterable<string>): string[] {
  return [...names].sort(byCodePoint);
}

function byCodePoint(a: string, b: string): number {
  const left = [...a];
  const right = [...b];
  const n = Math.min(left.length, right.length);
  for (let i = 0; i < n; i++) {
    const d = left[i].codePointAt(0)! - right[i].codePointAt(0)!;
    if (d !== 0) return d;
  }
  return left.length - right.length;
}

/**
 * Explains why `text` cannot be the text of a message, or returns
 * `undefined` when it can.
 *
 * @param text The candidate text.
 * @returns The reason, or `undefined` when valid.
 */
export function textProblem(text: string): string | undefined {
  if (text.length === 0) return "empty text";
  if (CONTROL_BUT_TAB.test(text)) return "control characters are not allowed";
  const bytes = byteLength(text);
  if (bytes > MAX_TEXT_BYTES) {
    return `text of ${bytes} bytes exceeds the ${MAX_TEXT_BYTES}-byte limit`;
  }
  return undefined;
}

/**
 * Explains why `name` cannot be carried as a file name, or returns
 * `undefined` when it can. (Whether it is safe to *store* under is the
 * receiver's decision.)
 *
 * @param name The candidate file name.
 * @returns The reason, or `undefined` when valid.
 */
export function fileNameProblem(name: string): string | undefined {
  if (name.length === 0) return "empty file name";
  if (WHITESPACE.test(name)) return "whitespace is not allowed";
  if (CONTROL.test(name)) return "control characters are not allowed";
  if (byteLength(name) > MAX_FILE_NAME_BYTES) {
    return `longer than ${MAX_FILE_NAME_BYTES} bytes`;
  }
  return undefined;
}

/**
 * The name under which a recipient saves a received file:
 * `<recipient>_<file name>` (SPEC §4).
 *
 * @example
 * ```ts
 * import { savedFileName } from "./chat_protocol.ts";
 * console.log(savedFileName("bob", "photo.png")); // "bob_photo.png"
 * ```
 *
 * @param recipient The recipient's username.
 * @param fileName The file name as sent.
 * @returns The saved name.
 */
export function savedFileName(recipient: string, fileName: string): string {
  return `${recipient}_${fileName}`;
}

/**
 * Explains why some of `recipients` could not save a file named `fileName`
 * (its saved name, {@linkcode savedFileName}, would be longer than a file
 * name may be), or returns `undefined` when all can. A sender checks this
 * before sending, as a recipient would otherwise drop the file unseen.
 *
 * @example
 * ```ts
 * import { savedNameProblem } from "./chat_protocol.ts";
 * console.log(savedNameProblem(["bob"], "a".repeat(252))); // "bob would save it as ..."
 * ```
 *
 * @param recipients The recipients' usernames.
 * @param fileName The file name as sent.
 * @returns The reason, or `undefined`.
 */
export function savedNameProblem(
  recipients: readonly string[],
  fileName: string,
): string | undefined {
  for (const recipient of recipients) {
    const bytes = byteLength(savedFileName(recipient, fileName));
    if (bytes > MAX_FILE_NAME_BYTES) {
      return `${recipient} would save it as "${
        savedFileName(recipient, "…")
      }", ${bytes} bytes, over the ${MAX_FILE_NAME_BYTES}-byte limit of file names`;
    }
  }
  return undefined;
}

function checkList(type: string, users: readonly string[]): void {
  const min = type.startsWith("send_") ? 1 : 0;
  const max = type.startsWith("forward_") ? 1 : MAX_LIST_USERS;
  if (users.length < min || users.length > max) {
    throw new RangeError(
      `Cannot encode ${type}: ${users.length} users (allowed ${min}-${max})`,
    );
  }
  if (type.startsWith("forward_") && users.length !== 1) {
    throw new RangeError(`Cannot encode ${type}: the list must be the sender`);
  }
  for (const user of users) {
    const problem = usernameProblem(user);
    if (problem) {
      throw new RangeError(
        `Cannot encode ${type}: username ${shown(user)}: ${problem}`,
      );
    }
  }
}

/**
 * The SPEC §4 text of a message, without framing.
 *
 * @example
 * ```ts
 * import { messageText } from "./chat_protocol.ts";
 * console.log(messageText({ type: "send_message", users: ["client2"], text: "hello!" }));
 * // "send_message 1 client2 hello!"
 * ```
 *
 * @param message The message.
 * @returns Its text, for example `response_users_list 2 client1 client2`.
 * @throws {RangeError} When a field breaks the protocol's rules.
 */
export function messageText(message: ChatMessage): string {
  switch (message.type) {
    case "join":
    case "disconnect": {
      const problem = usernameProblem(message.username);
      if (problem) {
        throw new RangeError(
          `Cannot encode ${message.type}: username ${
            shown(message.username)
          }: ${problem}`,
        );
      }
      return `${message.type} ${message.username}`;
    }
    case "request_users_list":
    case "err_unknown_message":
    case "err_server_full":
    case "err_username_unavailable":
      return message.type;
    case "response_users_list":
      checkList(message.type, message.users);
      return [message.type, message.users.length, ...message.users].join(" ");
    case "send_message":
    case "forward_message": {
      checkList(message.type, message.users);
      const problem = textProblem(message.text);
      if (problem) {
        throw new RangeError(`Cannot encode ${message.type}: ${problem}`);
      }
      return [
        message.type,
        message.users.length,
        ...message.users,
        message.text,
      ].join(" ");
    }
  }
}

function frame(payload: Uint8Array, extra = 0): Uint8Array {
  const bytes = new Uint8Array(FRAME_PREFIX_BYTES + payload.length);
  new DataView(bytes.buffer).setUint32(0, payload.length + extra);
  bytes.set(payload, FRAME_PREFIX_BYTES);
  return bytes;
}

/**
 * Encodes a message as one frame (length prefix plus text), in one
 * allocation.
 *
 * @example
 * ```ts
 * import { encodeMessage } from "./chat_protocol.ts";
 * const bytes = encodeMessage({ type: "request_users_list" });
 * console.log(bytes.length); // 4 + 18
 * ```
 *
 * @param message The message.
 * @returns The frame.
 * @throws {RangeError} When a field breaks the protocol's rules.
 */
export function encodeMessage(message: ChatMessage): Uint8Array {
  const payload = encoder.encode(messageText(message));
  if (payload.length > MAX_MESSAGE_BYTES) {
    throw new RangeError(
      `Cannot encode ${message.type}: ${payload.length} bytes exceed the ${MAX_MESSAGE_BYTES}-byte limit`,
    );
  }
  return frame(payload);
}

/**
 * Encodes the start of a file frame: the length prefix (which counts the
 * content too) and the header text `<type> <list> <fileName> `. The caller
 * sends exactly `header.size` content bytes right after it.
 *
 * @example
 * ```ts
 * import { encodeFileHeader } from "./chat_protocol.ts";
 * const head = encodeFileHeader({
 *   type: "send_file",
 *   users: ["bob"],
 *   fileName: "a.txt",
 *   size: 3,
 * });
 * console.log(new TextDecoder().decode(head.subarray(4))); // "send_file 1 bob a.txt "
 * ```
 *
 * @param header The header, with the content size.
 * @returns The prefix and header bytes.
 * @throws {RangeError} When a field breaks the protocol's rules.
 */
export function encodeFileHeader(header: FileHeader): Uint8Array {
  checkList(header.type, header.users);
  const problem = fileNameProblem(header.fileName);
  if (problem) {
    throw new RangeError(
      `Cannot encode ${header.type}: file name ${
        shown(header.fileName)
      }: ${problem}`,
    );
  }
  if (
    !Number.isSafeInteger(header.size) || header.size < 0 ||
    header.size > MAX_FILE_BYTES
  ) {
    throw new RangeError(
      `Cannot encode ${header.type}: size ${header.size} is not within 0-${MAX_FILE_BYTES}`,
    );
  }
  const text = [
    header.type,
    header.users.length,
    ...header.users,
    header.fileName,
    "",
  ].join(" ");
  const payload = encoder.encode(text);
  if (payload.length > MAX_MESSAGE_BYTES) {
    throw new RangeError(
      `Cannot encode ${header.type}: header of ${payload.length} bytes exceeds the ${MAX_MESSAGE_BYTES}-byte limit`,
    );
  }
  return frame(payload, header.size);
}

/**
 * Encodes a whole file message (header and content) as one frame — for
 * small files and tests; large files are sent as
 * {@linkcode encodeFileHeader} followed by streamed content.
 *
 * @param header The header; its size is taken from `content`.
 * @param content The file content.
 * @returns The frame.
 * @throws {RangeError} When a field breaks the protocol's rules.
 */
export function encodeFile(
  header: Omit<FileHeader, "size">,
  content: Uint8Array,
): Uint8Array {
  const head = encodeFileHeader({ ...header, size: content.length });
  const bytes = new Uint8Array(head.length + content.length);
  bytes.set(head);
  bytes.set(content, head.length);
  return bytes;
}

/** A cursor over the text of one message. */
class TextCursor {
  #pos = 0;

  constructor(readonly text: string) {}

  get atEnd(): boolean {
    return this.#pos >= this.text.length;
  }

  /** The next space-separated field (possibly empty). */
  field(): string {
    const space = this.text.indexOf(" ", this.#pos);
    const end = space < 0 ? this.text.length : space;
    const value = this.text.slice(this.#pos, end);
    this.#pos = end;
    return value;
  }

  /** Consumes the one space between fields. */
  space(what: string): void {
    if (this.text[this.#pos] !== " ") {
      throw new ChatProtocolError(`missing ${what}`);
    }
    this.#pos++;
  }

  /** Everything left. */
  rest(): string {
    const value = this.text.slice(this.#pos);
    this.#pos = this.text.length;
    return value;
  }
}

function parseCount(field: string, type: string): number {
  if (!COUNT.test(field)) {
    throw new ChatProtocolError(`${type}: invalid user count ${shown(field)}`);
  }
  const count = Number(field);
  const min = type.startsWith("send_") ? 1 : 0;
  const max = type.startsWith("forward_") ? 1 : MAX_LIST_USERS;
  if (count < min || count > max) {
    throw new ChatProtocolError(
      `${type}: user count ${count} is not within ${min}-${max}`,
    );
  }
  return count;
}

function parseList(cursor: TextCursor, type: string): string[] {
  const count = parseCount(cursor.field(), type);
  const users: string[] = [];
  for (let i = 0; i < count; i++) {
    cursor.space(`username ${i + 1} of ${count}`);
    const user = cursor.field();
    const problem = usernameProblem(user);
    if (problem) {
      throw new ChatProtocolError(
        `${type}: invalid username ${shown(user)}: ${problem}`,
      );
    }
    users.push(user);
  }
  return users;
}

function decodeText(bytes: Uint8Array, what: string): string {
  try {
    return strictDecoder.decode(bytes);
  } catch (cause) {
    throw new ChatProtocolError(`${what} is not valid UTF-8`, { cause });
  }
}

function typeOf(name: string): ChatMessageType {
  if (!Object.hasOwn(CHAT_MESSAGE_FORMATS, name)) {
    throw new ChatProtocolError(`unknown message type ${shown(name)}`);
  }
  return name as ChatMessageType;
}

function isFileType(type: ChatMessageType): type is FileHeader["type"] {
  return type === "send_file" || type === "forward_file";
}

/**
 * Parses the payload of one non-file frame.
 *
 * @param payload The bytes between two frame boundaries.
 * @returns The message.
 * @throws {ChatProtocolError} When the bytes are not a valid message.
 */
export function parseMessage(payload: Uint8Array): ChatMessage {
  const cursor = new TextCursor(decodeText(payload, "message"));
  const type = typeOf(cursor.field());
  switch (type) {
    case "join":
    case "disconnect": {
      cursor.space("username");
      const username = cursor.field();
      if (!cursor.atEnd) {
        throw new ChatProtocolError(`${type}: unexpected text after username`);
      }
      const problem = usernameProblem(username);
      if (problem) {
        throw new ChatProtocolError(
          `${type}: invalid username ${shown(username)}: ${problem}`,
        );
      }
      return { type, username };
    }
    case "request_users_list":
    case "err_unknown_message":
    case "err_server_full":
    case "err_username_unavailable":
      if (!cursor.atEnd) {
        throw new ChatProtocolError(`${type}: unexpected text after the type`);
      }
      return { type };
    case "response_users_list": {
      cursor.space("user list");
      const users = parseList(cursor, type);
      if (!cursor.atEnd) {
        throw new ChatProtocolError(`${type}: unexpected text after the list`);
      }
      return { type, users };
    }
    case "send_message":
    case "forward_message": {
      cursor.space("user list");
      const users = parseList(cursor, type);
      cursor.space("message text");
      const text = cursor.rest();
      const problem = textProblem(text);
      if (problem) throw new ChatProtocolError(`${type}: ${problem}`);
      return { type, users, text };
    }
    case "send_file":
    case "forward_file":
      throw new ChatProtocolError(`${type} must be decoded as a stream`);
  }
}

function parseFileHeader(
  bytes: Uint8Array,
  type: FileHeader["type"],
  size: number,
): FileHeader {
  const cursor = new TextCursor(decodeText(bytes, `${type} header`));
  cursor.field(); // the type, already known
  cursor.space("user list");
  const users = parseList(cursor, type);
  cursor.space("file name");
  const fileName = cursor.field();
  const problem = fileNameProblem(fileName);
  if (problem) {
    throw new ChatProtocolError(
      `${type}: invalid file name ${shown(fileName)}: ${problem}`,
    );
  }
  cursor.space("file contents");
  return { type, users, fileName, size };
}

/** Limits of a {@linkcode ChatDecoder}, lower than the protocol's for tests. */
export interface ChatDecoderOptions {
  /** Largest non-file message or file header (default {@linkcode MAX_MESSAGE_BYTES}). */
  maxMessageBytes?: number;
  /** Largest file content (default {@linkcode MAX_FILE_BYTES}). */
  maxFileBytes?: number;
}

type DecoderState = "prefix" | "head" | "content" | "failed";

/**
 * Incremental decoder of a chat byte stream: push chunks as they arrive, in
 * any split, and pull events with {@linkcode ChatDecoder.next} until it
 * returns `undefined` (more bytes needed). Non-file messages are yielded
 * whole; file messages as `file-start`, `file-data` (views into the pushed
 * chunk, valid until the next push) and `file-end`. Memory use is bounded by
 * the message limit, whatever the file size.
 *
 * Any malformed input makes `next()` throw a {@linkcode ChatProtocolError}
 * (and every later call too: a byte stream cannot resynchronise).
 *
 * @example
 * ```ts
 * import { ChatDecoder, encodeFile } from "./chat_protocol.ts";
 *
 * const decoder = new ChatDecoder();
 * decoder.push(encodeFile(
 *   { type: "forward_file", users: ["alice"], fileName: "a.bin" },
 *   new Uint8Array([0, 10, 255]),
 * ));
 * for (let event = decoder.next(); event; event = decoder.next()) {
 *   console.log(event.kind); // file-start, file-data, file-end
 * }
 * ```
 */
export class ChatDecoder {
  #maxMessage: number;
  #maxFile: number;
  #chunk: Uint8Array = new Uint8Array(0);
  #offset = 0;
  #state: DecoderState = "prefix";
  #error?: ChatProtocolError;
  readonly #prefix = new Uint8Array(FRAME_PREFIX_BYTES);
  #prefixFill = 0;
  #length = 0;
  #head = new Uint8Array(0);
  #headFill = 0;
  #type?: ChatMessageType;
  #spaces: number[] = [];
  #neededSpaces = 0;
  #contentLeft = 0;

  /**
   * Creates a decoder positioned at a frame boundary.
   *
   * @param options Limits (defaults: the protocol's).
   */
  constructor(options: ChatDecoderOptions = {}) {
    this.#maxMessage = options.maxMessageBytes ?? MAX_MESSAGE_BYTES;
    this.#maxFile = options.maxFileBytes ?? MAX_FILE_BYTES;
  }

  /**
   * Changes the limits for the frames that start from now on (a server
   * takes large frames from a connection only once it has joined).
   *
   * @param options The new limits (defaults: the protocol's).
   */
  setLimits(options: ChatDecoderOptions): void {
    this.#maxMessage = options.maxMessageBytes ?? MAX_MESSAGE_BYTES;
    this.#maxFile = options.maxFileBytes ?? MAX_FILE_BYTES;
  }

  /** Whether the decoder sits between frames (a clean place for the stream to end). */
  get atBoundary(): boolean {
    return this.#state === "prefix" && this.#prefixFill === 0;
  }

  /**
   * Adds received bytes. Every earlier chunk must have been consumed
   * (`next()` returned `undefined`).
   *
   * @param chunk The bytes, in stream order.
   * @throws {Error} When the previous chunk was not consumed yet.
   */
  push(chunk: Uint8Array): void {
    if (this.#offset < this.#chunk.length && this.#state !== "failed") {
      throw new Error("ChatDecoder.push: the previous chunk is not consumed");
    }
    this.#chunk = chunk;
    this.#offset = 0;
  }

  /**
   * Checks that the stream may end here.
   *
   * @throws {ChatProtocolError} When the stream ended inside a frame.
   */
  finish(): void {
    if (this.#error) throw this.#error;
    if (!this.atBoundary) {
      this.#error = new ChatProtocolError("the stream ended inside a frame");
      this.#state = "failed";
      throw this.#error;
    }
  }

  /**
   * The next event from the bytes pushed so far.
   *
   * @returns The event, or `undefined` when more bytes are needed.
   * @throws {ChatProtocolError} When the bytes are not valid chat frames.
   */
  next(): ChatEvent | undefined {
    if (this.#error) throw this.#error;
    try {
      return this.#next();
    } catch (error) {
      if (!(error instanceof ChatProtocolError)) throw error;
      this.#error = error;
      this.#state = "failed";
      this.#chunk = new Uint8Array(0);
      this.#offset = 0;
      throw error;
    }
  }

  #next(): ChatEvent | undefined {
    while (true) {
      const available = this.#chunk.length - this.#offset;
      switch (this.#state) {
        case "prefix": {
          if (available === 0) return undefined;
          const take = Math.min(
            available,
            FRAME_PREFIX_BYTES - this.#prefixFill,
          );
          this.#prefix.set(
            this.#chunk.subarray(this.#offset, this.#offset + take),
            this.#prefixFill,
          );
          this.#offset += take;
          this.#prefixFill += take;
          if (this.#prefixFill < FRAME_PREFIX_BYTES) return undefined;
          this.#startFrame(new DataView(this.#prefix.buffer).getUint32(0));
          break;
        }
        case "head": {
          const event = this.#readHead();
          if (event) return event;
          if (this.#state === "head") return undefined;
          break;
        }
        case "content": {
          if (this.#contentLeft === 0) {
            this.#state = "prefix";
            return { kind: "file-end" };
          }
          if (available === 0) return undefined;
          const take = Math.min(available, this.#contentLeft);
          const bytes = this.#chunk.subarray(this.#offset, this.#offset + take);
          this.#offset += take;
          this.#contentLeft -= take;
          return { kind: "file-data", bytes };
        }
        case "failed":
          throw this.#error ?? new ChatProtocolError("decoder failed");
      }
    }
  }

  #startFrame(length: number): void {
    this.#prefixFill = 0;
    if (length === 0) throw new ChatProtocolError("empty frame");
    if (length > this.#maxMessage + this.#maxFile) {
      throw new ChatProtocolError(
        `frame of ${length} bytes exceeds every limit`,
      );
    }
    this.#length = length;
    this.#state = "head";
    this.#headFill = 0;
    this.#type = undefined;
    this.#spaces = [];
    this.#neededSpaces = 0;
    this.#head = new Uint8Array(Math.min(length, 256));
  }

  #append(bytes: Uint8Array): void {
    const needed = this.#headFill + bytes.length;
    if (needed > this.#head.length) {
      let size = this.#head.length * 2;
      while (size < needed) size *= 2;
      const grown = new Uint8Array(
        Math.min(size, Math.min(this.#length, this.#maxMessage)),
      );
      grown.set(this.#head.subarray(0, this.#headFill));
      this.#head = grown;
    }
    this.#head.set(bytes, this.#headFill);
    this.#headFill = needed;
  }

  /** Reads header bytes; returns an event when a message or file header is complete. */
  #readHead(): ChatEvent | undefined {
    while (this.#offset < this.#chunk.length) {
      const available = this.#chunk.length - this.#offset;
      if (this.#type !== undefined && !isFileType(this.#type)) {
        const take = Math.min(available, this.#length - this.#headFill);
        this.#append(this.#chunk.subarray(this.#offset, this.#offset + take));
        this.#offset += take;
        if (this.#headFill < this.#length) return undefined;
        this.#state = "prefix";
        return {
          kind: "message",
          message: parseMessage(this.#head.subarray(0, this.#length)),
        };
      }
      // Type unknown yet, or a file header: copy up to and including the next space.
      const limit = Math.min(
        available,
        this.#length - this.#headFill,
        this.#maxMessage - this.#headFill,
      );
      if (limit <= 0) {
        throw new ChatProtocolError(
          `message header exceeds the ${this.#maxMessage}-byte limit`,
        );
      }
      const window = this.#chunk.subarray(this.#offset, this.#offset + limit);
      const space = window.indexOf(SPACE);
      const take = space < 0 ? limit : space + 1;
      this.#append(window.subarray(0, take));
      this.#offset += take;
      if (space >= 0) this.#spaces.push(this.#headFill - 1);
      const complete = this.#headFill === this.#length;

      if (this.#type === undefined) {
        if (this.#spaces.length === 0 && !complete) {
          if (this.#headFill > LONGEST_TYPE) {
            throw new ChatProtocolError(
              `unknown message type ${
                shown(
                  lenientDecoder.decode(this.#head.subarray(0, LONGEST_TYPE)),
                )
              }…`,
            );
          }
          continue;
        }
        const end = this.#spaces[0] ?? this.#headFill;
        this.#type = typeOf(
          lenientDecoder.decode(this.#head.subarray(0, end)),
        );
        if (!isFileType(this.#type)) {
          if (this.#length > this.#maxMessage) {
            throw new ChatProtocolError(
              `${this.#type} of ${this.#length} bytes exceeds the ${this.#maxMessage}-byte limit`,
            );
          }
          if (complete) {
            this.#state = "prefix";
            return {
              kind: "message",
              message: parseMessage(this.#head.subarray(0, this.#length)),
            };
          }
          continue;
        }
      }
      // A file header.
      const type = this.#type as FileHeader["type"];
      if (this.#neededSpaces === 0 && this.#spaces.length >= 2) {
        const count = parseCount(
          lenientDecoder.decode(
            this.#head.subarray(this.#spaces[0] + 1, this.#spaces[1]),
          ),
          type,
        );
        this.#neededSpaces = count + 3;
      }
      if (
        this.#neededSpaces > 0 && this.#spaces.length === this.#neededSpaces
      ) {
        const size = this.#length - this.#headFill;
        if (size > this.#maxFile) {
          throw new ChatProtocolError(
            `${type}: ${size} bytes of content exceed the ${this.#maxFile}-byte file limit`,
          );
        }
        const header = parseFileHeader(
          this.#head.subarray(0, this.#headFill),
          type,
          size,
        );
        this.#contentLeft = size;
        this.#state = "content";
        this.#head = new Uint8Array(0);
        return { kind: "file-start", header };
      }
      if (complete) {
        throw new ChatProtocolError(
          `${type}: the frame ends inside the header`,
        );
      }
    }
    return undefined;
  }
}
