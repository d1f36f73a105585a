/**
 * Fixtures for tests/stream_test.ts: the Python peers, waiting for a silent
 * server's port, and a raw TCP peer with bounded reads for scripting
 * misbehaving clients and servers byte by byte.
 *
 * @module
 */

import { type LineCollector, RoleProcess } from "../_helpers/role_process.ts";

/** The independent Python client (typical student code). */
export const PEER_CLIENT = new URL("./peer_client.py", import.meta.url)
  .pathname;
/** The independent Python server (typical student code). */
export const PEER_SERVER = new URL("./peer_server.py", import.meta.url)
  .pathname;

/** What a finished process printed. */
export interface Outcome {
  /** Exit status. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

/**
 * Starts a Python script as a process whose output the test can read.
 *
 * @param script Path of the script.
 * @param args Its arguments.
 * @param cwd Its working directory.
 * @returns The running process (`await using` kills it).
 */
export function startPython(
  script: string,
  args: string[],
  cwd: string,
): RoleProcess {
  const child = new Deno.Command("python3", {
    args: ["-u", script, ...args],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return new RoleProcess(child, false);
}

/**
 * Runs a Python script to completion.
 *
 * @param script Path of the script.
 * @param args Its arguments.
 * @param cwd Its working directory.
 * @returns Exit status and output.
 */
export async function runPython(
  script: string,
  args: string[],
  cwd: string,
): Promise<Outcome> {
  await using process = startPython(script, args, cwd);
  return await process.finished(20_000);
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Waits until something accepts TCP connections on 127.0.0.1:`port` (for a
 * server that prints nothing). Each probe connects and closes at once.
 *
 * @param port The port.
 * @param timeoutMs How long to keep trying.
 */
export async function waitForPort(
  port: number,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Error(`Nothing listens on port ${port}`, { cause: error });
      }
      await delay(50);
    }
  }
}

/**
 * Waits until `collector` has at least `count` lines starting with `prefix`.
 *
 * @param collector A process's stdout or stderr.
 * @param prefix The line start.
 * @param count How many such lines.
 * @param timeoutMs How long to wait.
 */
export async function waitForLines(
  collector: LineCollector,
  prefix: string,
  count: number,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (
    collector.lines.filter((line) => line.startsWith(prefix)).length < count
  ) {
    if (Date.now() > deadline) {
      throw new Error(
        `Timed out waiting for ${count} lines "${prefix}…"; got:\n${collector.text}`,
      );
    }
    await delay(20);
  }
}

/** A raw TCP peer with reads bounded in time, for scripted misbehaviour. */
export class RawPeer implements Disposable {
  /** The connection. */
  readonly conn: Deno.Conn;
  #closed = false;

  /**
   * Wraps a connection.
   *
   * @param conn The connection.
   */
  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /**
   * Connects to 127.0.0.1:`port`.
   *
   * @param port The port.
   * @returns The peer.
   */
  static async connect(port: number): Promise<RawPeer> {
    return new RawPeer(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /**
   * Writes bytes or text in one write.
   *
   * @param data What to send.
   */
  async send(data: string | Uint8Array): Promise<void> {
    let bytes = typeof data === "string"
      ? new TextEncoder().encode(data)
      : data;
    while (bytes.length > 0) {
      bytes = bytes.subarray(await this.conn.write(bytes));
    }
  }

  /**
   * Reads exactly `n` bytes (fewer if the stream ends).
   *
   * @param n How many bytes.
   * @param timeoutMs Give up after this long (closes the connection).
   * @returns The bytes.
   */
  async read(n: number, timeoutMs = 10_000): Promise<Uint8Array> {
    const buffer = new Uint8Array(n);
    let filled = 0;
    await this.#bounded(timeoutMs, async () => {
      while (filled < n) {
        const got = await this.conn.read(buffer.subarray(filled));
        if (got === null) break;
        filled += got;
      }
    });
    return buffer.subarray(0, filled);
  }

  /**
   * One read of at most `max` bytes, as Python's `socket.recv(max)`.
   *
   * @param max The most bytes to take.
   * @param timeoutMs Give up after this long (closes the connection).
   * @returns The bytes (none at end of stream).
   */
  async recv(max: number, timeoutMs = 10_000): Promise<Uint8Array> {
    const buffer = new Uint8Array(max);
    let got: number | null = null;
    await this.#bounded(timeoutMs, async () => {
      got = await this.conn.read(buffer);
    });
    return buffer.subarray(0, got ?? 0);
  }

  /**
   * Reads `text.length` bytes and returns them as text.
   *
   * @param length How many bytes.
   * @param timeoutMs Give up after this long.
   * @returns The text.
   */
  async readText(length: number, timeoutMs = 10_000): Promise<string> {
    return new TextDecoder().decode(await this.read(length, timeoutMs));
  }

  /**
   * Reads until the peer closes the connection (or resets it).
   *
   * @param timeoutMs Give up after this long.
   * @returns Everything read, as text.
   */
  async readToEnd(timeoutMs = 10_000): Promise<string> {
    const chunks: Uint8Array[] = [];
    await this.#bounded(timeoutMs, async () => {
      while (true) {
        const buffer = new Uint8Array(65536);
        let got: number | null;
        try {
          got = await this.conn.read(buffer);
        } catch (error) {
          if (error instanceof Deno.errors.ConnectionReset) break;
          throw error;
        }
        if (got === null) break;
        chunks.push(buffer.slice(0, got));
      }
    });
    return new TextDecoder().decode(
      new Uint8Array(chunks.flatMap((chunk) => [...chunk])),
    );
  }

  async #bounded(timeoutMs: number, body: () => Promise<void>): Promise<void> {
    let expired = false;
    const timer = setTimeout(() => {
      expired = true;
      this.close();
    }, timeoutMs);
    try {
      await body();
    } catch (error) {
      if (expired) {
        throw new Error(`Raw peer read timed out after ${timeoutMs} ms`);
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes the connection (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Output of a process as one list: its stdout lines, then its stderr lines
 * (both clients print their errors on stdout: this shows any that do not).
 *
 * @param outcome What the process printed.
 * @returns The lines.
 */
export function allLines(outcome: Outcome): string[] {
  const split = (text: string) => text.split("\n").filter((l) => l !== "");
  return [...split(outcome.stdout), ...split(outcome.stderr)];
}

/**
 * Names in a directory that look like leftover temporary files.
 *
 * @param dir The directory.
 * @returns Names starting with `.`.
 */
export async function hiddenFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.startsWith(".")) names.push(entry.name);
  }
  return names;
}
