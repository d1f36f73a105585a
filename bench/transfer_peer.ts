/**
 * The receiving process of the transport demo and bench: listens on
 * 127.0.0.1 with the chosen transport, prints `listening <port>`, receives
 * one transfer, hashes it as it streams (never held whole) and prints
 * `received <bytes> <sha256>`.
 *
 * ```sh
 * deno run -A --unstable-net bench/transfer_peer.ts tcp|snw
 * ```
 *
 * @module
 */

import { createHash } from "node:crypto";
import { transportByName } from "../transport/mod.ts";

/**
 * Receives one transfer on `listener`'s first connection and hashes it.
 *
 * @param transportName `tcp` or `snw`.
 * @param report Receives the `listening` line.
 * @returns The byte count and SHA-256 (hex).
 */
export async function receiveOne(
  transportName: string,
  report: (line: string) => void,
): Promise<{ bytes: number; sha256: string }> {
  using listener = transportByName(transportName).listen({
    hostname: "127.0.0.1",
    port: 0,
  });
  report(`listening ${listener.addr.port}`);
  await using conn = await listener.accept();
  const incoming = await conn.receive();
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of incoming.readable) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { bytes, sha256: hash.digest("hex") };
}

if (import.meta.main) {
  const result = await receiveOne(Deno.args[0] ?? "tcp", (line) => {
    console.log(line);
  });
  console.log(`received ${result.bytes} ${result.sha256}`);
}
