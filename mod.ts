/**
 * sockkit: classic socket applications for Deno — a file service with a
 * cache, a streaming GET/PUT/DEL protocol, an upload receiver, a repeat
 * transfer measurement and a chat — over one {@linkcode Transport}
 * interface with two implementations, stock TCP and a reliable stop-and-wait
 * protocol over UDP.
 *
 * This module is the public library API; the four executables live in
 * `roles/`.
 *
 * @example
 * ```ts
 * import { tcpTransport } from "./mod.ts";
 *
 * using listener = tcpTransport.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted = listener.accept();
 * await using client = await tcpTransport.connect({
 *   hostname: "127.0.0.1",
 *   port: listener.addr.port,
 * });
 * await using server = await accepted;
 * await client.send(3, new TextEncoder().encode("abc"));
 * const { size, readable } = await server.receive();
 * console.log(size, await new Response(readable).text()); // 3 "abc"
 * ```
 *
 * @module
 */

export * from "./version.ts";
export * from "./transport/mod.ts";
export * from "./protocol/mod.ts";
export {
  confinedPath,
  UnsafeNameError,
  unsafeNameReason,
} from "./roles/file_names.ts";
export { PartialFile } from "./roles/partial_file.ts";
