/**
 * Real transfers between two processes on 127.0.0.1 (see
 * `transfer_peer.ts`), optionally through the lossy relay. Used by
 * `make demo` and `make bench`.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { sha256File } from "../tests/_helpers/files.ts";
import { FILE_ROLE_V8_FLAGS } from "./build.ts";
import { LossyRelay, type RelayOptions } from "./relay.ts";

const PEER = fileURLToPath(new URL("./transfer_peer.ts", import.meta.url));

/** The outcome of {@linkcode transferBetweenProcesses}. */
export interface TransferResult {
  /** Bytes sent. */
  bytes: number;
  /** From the sender's start to the receiver's report, in ms. */
  ms: number;
  /** SHA-256 of the file sent. */
  sentSha256: string;
  /** SHA-256 of what the other process received. */
  receivedSha256: string;
  /** Peak RSS of the sending process, KiB. */
  senderRssKiB: number;
  /** Peak RSS of the receiving process, KiB. */
  receiverRssKiB: number;
}

/** Options of {@linkcode transferBetweenProcesses}. */
export interface TransferOptions {
  /** Extra environment for both processes (e.g. SNW tuning). */
  env?: Record<string, string>;
  /** Put the lossy relay between the two (impairments only). */
  relay?: Omit<RelayOptions, "targetPort">;
  /** Known SHA-256 of the file (skips hashing it again). */
  sha256?: string;
  /**
   * Measure the transport alone: send as many bytes as the file has from
   * memory and count them on arrival, hashing nothing (both hashes are
   * then `""`).
   */
  memory?: boolean;
}

/** A child process whose stdout is read line by line with arrival times. */
class PeerProcess implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #lines: ReadableStreamDefaultReader<string>;

  constructor(args: string[], env: Record<string, string>) {
    this.#child = new Deno.Command(Deno.execPath(), {
      // The file roles' V8 flags: the peers stand for their transports.
      args: ["run", "-A", "--unstable-net", FILE_ROLE_V8_FLAGS, PEER, ...args],
      stdout: "piped",
      stderr: "inherit",
      env: { NO_COLOR: "1", ...env },
    }).spawn();
    this.#lines = this.#child.stdout.pipeThrough(new TextDecoderStream())
      .pipeThrough(lineSplitter()).getReader();
  }

  /** The next line and when it arrived. */
  async line(): Promise<{ text: string; at: number }> {
    const { value } = await this.#lines.read();
    return { text: value ?? "", at: performance.now() };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#lines.cancel().catch(() => {});
    try {
      this.#child.kill();
    } catch { /* already ended */ }
    await this.#child.status;
  }
}

/**
 * Sends `path` from one fresh process to another over `kind`.
 *
 * @param kind `tcp`, `snw`, or `raw` (a plain TCP copy, the reference).
 * @param path The file to send.
 * @param options Environment, relay, known hash.
 * @returns Size, time, both hashes and both peak RSS figures.
 */
export async function transferBetweenProcesses(
  kind: string,
  path: string,
  options: TransferOptions = {},
): Promise<TransferResult> {
  const memory = options.memory ?? false;
  const sentSha256 = memory ? "" : options.sha256 ?? await sha256File(path);
  const env = options.env ?? {};
  await using receiver = new PeerProcess(
    [memory ? "receive-count" : "receive", kind],
    env,
  );
  const first = (await receiver.line()).text;
  let port = Number(/^listening (\d+)$/.exec(first)?.[1]);
  if (!port) throw new Error(`receiver did not start: ${first}`);
  await using relay = options.relay
    ? LossyRelay.start({ ...options.relay, targetPort: port })
    : undefined;
  if (relay) port = relay.port;
  const from = memory ? `memory:${(await Deno.stat(path)).size}` : path;
  await using sender = new PeerProcess(["send", kind, String(port), from], env);
  const start = await sender.line();
  if (start.text !== "start") throw new Error(`sender failed: ${start.text}`);
  const report = await receiver.line();
  const sent = (await sender.line()).text;
  const received = /^received (\d+) ([0-9a-f]{64}|-) (\d+)$/.exec(report.text);
  const sentMatch = /^sent (\d+) [\d.]+ (\d+)$/.exec(sent);
  if (!received || !sentMatch || received[1] !== sentMatch[1]) {
    throw new Error(`transfer failed: ${report.text} / ${sent}`);
  }
  return {
    bytes: Number(sentMatch[1]),
    ms: report.at - start.at,
    sentSha256,
    receivedSha256: memory ? "" : received[2],
    senderRssKiB: Number(sentMatch[2]),
    receiverRssKiB: Number(received[3]),
  };
}

/**
 * The stop-and-wait ceiling: a raw UDP ping-pong between two processes
 * moving `bytes` in datagrams of `payload` bytes, each answered by `ACK`.
 *
 * @param payload Bytes per datagram.
 * @param bytes Total bytes.
 * @returns Milliseconds taken.
 */
export async function udpPingPong(
  payload: number,
  bytes: number,
): Promise<number> {
  await using echo = new PeerProcess(["udp-echo"], {});
  const first = (await echo.line()).text;
  const port = Number(/^listening (\d+)$/.exec(first)?.[1]);
  await using ping = new PeerProcess([
    "udp-ping",
    String(port),
    String(payload),
    String(bytes),
  ], {});
  const start = await ping.line();
  const done = await ping.line();
  if (!done.text.startsWith("sent ")) {
    throw new Error(`ping failed: ${done.text}`);
  }
  return done.at - start.at;
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
