/**
 * The upload client's connection set-up (SPEC §3): resolve the host, then try
 * its addresses in order, the whole phase bounded by the connect timeout
 * (10 s by default), like Python's `socket.create_connection`.
 *
 * Names under the special-use top-level domain `invalid` are refused without
 * a lookup, as RFC 6761 §6.4 asks of name-resolution APIs, so they fail fast
 * and never cause a DNS query.
 *
 * @module
 */

import {
  connectUploadSocket,
  describeSocketError,
  systemErrorCode,
  type UploadSocket,
} from "./upload_socket.ts";

/** A failed upload: one `ERROR:` line on stderr and exit code 1. */
export class UploadError extends Error {
  /**
   * Creates the error.
   *
   * @param message What failed, action first.
   * @param options Standard error options.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UploadError";
  }
}

/** What {@linkcode connectWithin} uses to reach the network (replaceable in tests). */
export interface ConnectDeps {
  /**
   * Resolves a host name to IP addresses, in the order to try them.
   *
   * @param host A host name or IP literal.
   * @returns The addresses.
   */
  lookup(host: string): Promise<string[]>;
  /**
   * Opens one TCP connection to an IP address.
   *
   * @param hostname An IP literal.
   * @param port The port.
   * @returns The connection.
   */
  connect(hostname: string, port: number): Promise<UploadSocket>;
}

/** The system resolver (`getaddrinfo`, so `/etc/hosts` counts) and a `node:net` connection. */
export const systemConnectDeps: ConnectDeps = {
  async lookup(host) {
    const { lookup } = await import("node:dns/promises");
    const found = await lookup(host, { all: true, verbatim: true });
    return found.map((entry) => entry.address);
  },
  connect: connectUploadSocket,
};

/**
 * Whether `host` is under the special-use domain `invalid` (RFC 6761 §6.4).
 *
 * @example
 * ```ts
 * import { isReservedInvalidName } from "./upload_connect.ts";
 * console.log(isReservedInvalidName("no-such-host.invalid")); // true
 * console.log(isReservedInvalidName("localhost")); // false
 * ```
 *
 * @param host A host name.
 * @returns `true` for `invalid` and any name ending in `.invalid`.
 */
export function isReservedInvalidName(host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, "");
  return name === "invalid" || name.endsWith(".invalid");
}

/** The IP literal inside brackets (`[::1]` → `::1`), else the name unchanged. */
function unbracket(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/**
 * Resolves `host` and connects to `port`, giving up after `timeoutMs` for the
 * whole phase (lookup and every attempt together).
 *
 * @example
 * ```ts ignore
 * const conn = await connectWithin("localhost", 5000, 10_000);
 * ```
 *
 * @param host A host name or IP address (IPv6 optionally in brackets).
 * @param port The server's port.
 * @param timeoutMs The connect timeout in milliseconds.
 * @param deps The resolver and connector (default: the system's).
 * @returns The connection.
 * @throws {UploadError} When the host does not resolve, every address
 *   refuses or fails, or the timeout passes.
 */
export async function connectWithin(
  host: string,
  port: number,
  timeoutMs: number,
  deps: ConnectDeps = systemConnectDeps,
): Promise<UploadSocket> {
  // An IPv6 literal in brackets, so that the port stands apart: [::1]:5000.
  const where = host.includes(":") && !host.startsWith("[")
    ? `[${host}]:${port}`
    : `${host}:${port}`;
  if (isReservedInvalidName(host)) {
    throw new UploadError(
      `cannot resolve host "${host}": the domain "invalid" is reserved (RFC 6761)`,
    );
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new UploadError(
            `cannot connect to ${where}: timed out after ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
  });
  expired.catch(() => {});
  try {
    const lookup = deps.lookup(unbracket(host));
    lookup.catch(() => {});
    let addresses: string[];
    try {
      addresses = await Promise.race([lookup, expired]);
    } catch (error) {
      if (error instanceof UploadError) throw error;
      const code = systemErrorCode(error);
      throw new UploadError(
        `cannot resolve host "${host}": ${
          code === "ENOTFOUND"
            ? "no such host"
            : (error instanceof Error ? error.message : String(error))
        }`,
        { cause: error },
      );
    }
    if (addresses.length === 0) {
      throw new UploadError(`cannot resolve host "${host}": no address`);
    }
    let lastError: unknown;
    let timedOut = false;
    for (const address of addresses) {
      const attempt = deps.connect(address, port);
      // A connection that completes after the timeout is reset, not leaked.
      attempt.then((conn) => {
        if (timedOut) conn.reset();
      }, () => {});
      try {
        return await Promise.race([attempt, expired]);
      } catch (error) {
        if (error instanceof UploadError) {
          timedOut = true;
          throw error;
        }
        lastError = error;
      }
    }
    throw new UploadError(
      `cannot connect to ${where}: ${describeSocketError(lastError)}`,
      { cause: lastError },
    );
  } finally {
    clearTimeout(timer);
  }
}
