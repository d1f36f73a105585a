/**
 * Free ports on 127.0.0.1, for executables that cannot be told port 0
 * (the file service needs the same number free for TCP and UDP).
 *
 * @module
 */

/**
 * Finds a port number free for both TCP and UDP on 127.0.0.1 right now.
 *
 * @returns The port.
 */
export function freePort(): number {
  for (let attempt = 0; attempt < 50; attempt++) {
    const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = tcp.addr.port;
    try {
      const udp = Deno.listenDatagram({
        hostname: "127.0.0.1",
        port,
        transport: "udp",
      });
      udp.close();
      return port;
    } catch {
      // UDP side taken: try another
    } finally {
      tcp.close();
    }
  }
  throw new Error("Cannot find a free TCP+UDP port");
}
