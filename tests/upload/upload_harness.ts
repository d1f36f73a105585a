/**
 * Helpers for the upload receiver's end-to-end tests: start a real
 * `server <PORT> <FILE-DIR>` process, send raw TCP uploads from the test
 * (any plain TCP sender is a valid client), and poll the directory.
 *
 * @module
 */

import { freePort } from "../_helpers/ports.ts";
import { type RoleProcess, startRole } from "../_helpers/role_process.ts";

/** A running upload receiver. */
export interface UploadServer extends AsyncDisposable {
  /** The process. */
  role: RoleProcess;
  /** The port it listens on. */
  port: number;
}

/**
 * Starts `server [upload] <port> <dir> ...extra` on a free port and waits for
 * its listening line (retrying when the port was taken in between).
 *
 * @param dir The upload directory.
 * @param extra Options after the positional arguments.
 * @param explicit Whether to use the explicit `server upload ...` form.
 * @returns The server; `await using` kills it.
 */
export async function startUploadServer(
  dir: string,
  extra: string[] = [],
  explicit = false,
): Promise<UploadServer> {
  for (let attempt = 1;; attempt++) {
    const port = freePort();
    const args = [String(port), dir, ...extra];
    const role = startRole("server", explicit ? ["upload", ...args] : args);
    try {
      await role.stdout.waitFor(
        `upload receiver listening on 0.0.0.0:${port}`,
        15_000,
      );
      return {
        role,
        port,
        [Symbol.asyncDispose]: () => role[Symbol.asyncDispose](),
      };
    } catch (error) {
      await role[Symbol.asyncDispose]();
      if (attempt >= 3 || !role.stderr.text.includes("in use")) throw error;
    }
  }
}

/**
 * The names in a directory, sorted (hidden temporary files included).
 *
 * @param dir The directory.
 * @returns Its entries' names.
 */
export async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
}

/** `1.file` … `<n>.file`, in order. */
export function numberedFiles(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${i + 1}.file`);
}

/**
 * Polls until `path` holds exactly `expected` (as text), or fails.
 *
 * @param path The file.
 * @param expected Its expected content.
 * @param timeoutMs How long to wait.
 */
export async function waitForContent(
  path: string,
  expected: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "<missing>";
  while (Date.now() < deadline) {
    try {
      last = await Deno.readTextFile(path);
      if (last === expected) return;
    } catch {
      last = "<missing>";
    }
    await delay(50);
  }
  throw new Error(
    `${path} did not become ${
      JSON.stringify(expected)
    } within ${timeoutMs} ms; last: ${JSON.stringify(last.slice(0, 40))}`,
  );
}

/**
 * Resolves after `ms` milliseconds.
 *
 * @param ms The delay.
 */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Opens a raw TCP connection to the receiver on 127.0.0.1.
 *
 * @param port The receiver's port.
 * @returns The connection.
 */
export function connectRaw(port: number): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: "127.0.0.1", port });
}

/**
 * Writes all bytes to a connection (or a file).
 *
 * @param conn The connection.
 * @param bytes The bytes.
 */
export async function writeAllTo(
  conn: { write(p: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/**
 * Waits for the peer to close the connection (EOF or reset), bounded.
 *
 * @param conn The connection.
 * @param timeoutMs How long to wait.
 * @returns `"eof"`, `"error"` (reset) — or throws on timeout.
 */
export async function waitForPeerClose(
  conn: Deno.Conn,
  timeoutMs: number,
): Promise<"eof" | "error"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`peer did not close within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  const closed = (async () => {
    const sink = new Uint8Array(1024);
    try {
      while (await conn.read(sink) !== null) { /* discard */ }
      return "eof" as const;
    } catch {
      return "error" as const;
    }
  })();
  try {
    return await Promise.race([closed, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Waits for a process to exit within `timeoutMs` and returns its code.
 *
 * @param role The process.
 * @param timeoutMs The bound.
 * @returns The exit code.
 */
export async function exitCodeWithin(
  role: RoleProcess,
  timeoutMs: number,
): Promise<number> {
  return (await role.finished(timeoutMs)).code;
}
