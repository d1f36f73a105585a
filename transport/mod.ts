/**
 * Transports: the {@linkcode Transport} interface, `tcp` and `snw`.
 *
 * @module
 */

export * from "./types.ts";
export * from "./errors.ts";
export * from "./byte_io.ts";
export * from "./tcp.ts";
export * from "./registry.ts";
export * from "./snw.ts";
export * from "./snw_packet.ts";
export * from "./rto.ts";
export * from "./crc32.ts";
export * from "./abortable.ts";
export * from "./accept_errors.ts";
export * from "./transfer_chunks.ts";
