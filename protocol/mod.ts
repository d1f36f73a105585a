/**
 * The application protocols' pure codecs (bytes in, messages out; no
 * sockets), one namespace per protocol:
 *
 * - {@linkcode fileService}: the file service's control frames (SPEC §1),
 * - {@linkcode repeat}: the repeat transfer's name/length header (SPEC §2),
 * - {@linkcode chat}: chat frames and messages (SPEC §4),
 * - {@linkcode stream}: the lock-step GET/PUT/DEL protocol (SPEC §5).
 *
 * @module
 */

export * as chat from "./chat_protocol.ts";
export * as fileService from "./file_service.ts";
export * as repeat from "./repeat_protocol.ts";
export * as stream from "./stream_protocol.ts";
