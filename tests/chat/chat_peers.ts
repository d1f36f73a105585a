/**
 * Test helpers for the chat: a chat server process on a free port, raw
 * protocol peers (no client process), and bounded waits.
 *
 * @module
 */

import type { ChatEvent, ChatMessage } from "../../protocol/chat_protocol.ts";
import { ChatConnection } from "../../roles/chat/chat_connection.ts";
import { type RoleProcess, startRole } from "../_helpers/role_process.ts";

/** A chat server process; `await using` kills it. */
export interface ChatServerProcess extends AsyncDisposable {
  /** The process (stdout: event lines, stderr: diagnostics). */
  process: RoleProcess;
  /** The port it listens on (127.0.0.1). */
  port: number;
}

/**
 * Starts `chat server -a 127.0.0.1 -p 0 [...extra]` and waits for its
 * listening line.
 *
 * @param extra More arguments, e.g. `["--max-clients", "1000"]`.
 * @param env More environment, e.g. `TMPDIR`.
 * @returns The running server.
 */
export async function startChatServer(
  extra: string[] = [],
  env: Record<string, string> = {},
): Promise<ChatServerProcess> {
  // The process is SIGKILLed at the end, which leaves its spool directory
  // behind: without a TMPDIR of the test's own, every test that sends a file
  // left one in the system's temporary folder.
  const tmp = env.TMPDIR === undefined
    ? await Deno.makeTempDir({ prefix: "sockkit-chat-test-" })
    : undefined;
  const process = startRole("chat", [
    "server",
    "-a",
    "127.0.0.1",
    "-p",
    "0",
    ...extra,
  ], { env: tmp === undefined ? env : { ...env, TMPDIR: tmp } });
  const stop = async () => {
    await process[Symbol.asyncDispose]();
    if (tmp !== undefined) await Deno.remove(tmp, { recursive: true });
  };
  try {
    const match = await process.stderr.waitFor(
      /listening on 127\.0\.0\.1:(\d+)/,
      20_000,
    );
    return { process, port: Number(match[1]), [Symbol.asyncDispose]: stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Polls `predicate` until it holds.
 *
 * @param predicate The condition.
 * @param what Named in the timeout error.
 * @param timeoutMs How long to wait.
 */
export async function waitUntil(
  predicate: () => boolean,
  what: string,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A client speaking the wire protocol directly; `using` closes it. */
export class RawPeer implements Disposable {
  /** The framed connection. */
  readonly link: ChatConnection;

  /**
   * Wraps a connection.
   *
   * @param conn A connection to the chat server.
   */
  constructor(conn: Deno.TcpConn) {
    this.link = new ChatConnection(conn);
  }

  /**
   * Connects to 127.0.0.1:`port`.
   *
   * @param port The server port.
   * @returns The peer.
   */
  static async connect(port: number): Promise<RawPeer> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    return new RawPeer(conn);
  }

  /**
   * Connects and sends `join <name>`.
   *
   * @param port The server port.
   * @param name The username.
   * @returns The peer.
   */
  static async join(port: number, name: string): Promise<RawPeer> {
    const peer = await RawPeer.connect(port);
    await peer.link.send({ type: "join", username: name });
    return peer;
  }

  /**
   * Writes raw bytes.
   *
   * @param bytes Anything.
   */
  async write(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) {
      offset += await this.link.conn.write(bytes.subarray(offset));
    }
  }

  /**
   * The next event, or `null` at end of stream; closes the peer and throws
   * after `timeoutMs`.
   *
   * @param timeoutMs How long to wait.
   * @returns The event.
   */
  async next(timeoutMs = 10_000): Promise<ChatEvent | null> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let timedOut = false;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        timedOut = true;
        this.close();
        resolve();
      }, timeoutMs);
    });
    try {
      const result = await Promise.race([this.link.next(), timeout]);
      if (timedOut) throw new Error(`No event within ${timeoutMs} ms`);
      return result ?? null;
    } catch (error) {
      if (timedOut) throw new Error(`No event within ${timeoutMs} ms`);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The next whole message (file events are an error here).
   *
   * @param timeoutMs How long to wait.
   * @returns The message, or `null` at end of stream.
   */
  async nextMessage(timeoutMs = 10_000): Promise<ChatMessage | null> {
    const event = await this.next(timeoutMs);
    if (event === null) return null;
    if (event.kind !== "message") {
      throw new Error(`Expected a message, got ${event.kind}`);
    }
    return event.message;
  }

  /** Closes the connection. */
  close(): void {
    this.link.close();
  }

  /** Closes the connection. */
  [Symbol.dispose](): void {
    this.close();
  }
}
