/**
 * A real transfer of a generated file between two processes on 127.0.0.1
 * over one transport: this process sends, `transfer_peer.ts` receives and
 * hashes. Used by `make demo` and the benches.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { sha256File } from "../tests/_helpers/files.ts";
import { transportByName } from "../transport/mod.ts";

const PEER = fileURLToPath(new URL("./transfer_peer.ts", import.meta.url));

/** The outcome of {@linkcode transferBetweenProcesses}. */
export interface TransferResult {
  /** Bytes sent. */
  bytes: number;
  /** Wall time from connect to the receiver's report, in ms. */
  ms: number;
  /** SHA-256 of the file sent. */
  sentSha256: string;
  /** SHA-256 of what the other process received. */
  receivedSha256: string;
}

/**
 * Sends `path` to a freshly started receiver process over `transportName`.
 *
 * @param transportName `tcp` or `snw`.
 * @param path The file to send.
 * @returns Size, time and both hashes.
 */
export async function transferBetweenProcesses(
  transportName: string,
  path: string,
): Promise<TransferResult> {
  const bytes = (await Deno.stat(path)).size;
  const sentSha256 = await sha256File(path);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", PEER, transportName],
    stdout: "piped",
    stderr: "inherit",
    env: { NO_COLOR: "1" },
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream())
    .pipeThrough(lineSplitter()).getReader();
  try {
    const first = (await lines.read()).value ?? "";
    const port = Number(/^listening (\d+)$/.exec(first)?.[1]);
    if (!port) throw new Error(`receiver did not start: ${first}`);
    const started = performance.now();
    await using conn = await transportByName(transportName).connect({
      hostname: "127.0.0.1",
      port,
    });
    using file = await Deno.open(path);
    await conn.send(bytes, file.readable);
    const report = (await lines.read()).value ?? "";
    const ms = performance.now() - started;
    const match = /^received (\d+) ([0-9a-f]{64})$/.exec(report);
    if (!match) throw new Error(`receiver failed: ${report}`);
    return { bytes, ms, sentSha256, receivedSha256: match[2] };
  } finally {
    await lines.cancel().catch(() => {});
    try {
      child.kill();
    } catch { /* already ended */ }
    await child.status;
  }
}

/**
 * Splits a text stream into lines.
 *
 * @returns The transform.
 */
export function lineSplitter(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(text, controller) {
      const parts = (rest + text).split("\n");
      rest = parts.pop() ?? "";
      for (const part of parts) controller.enqueue(part);
    },
    flush(controller) {
      if (rest) controller.enqueue(rest);
    },
  });
}
