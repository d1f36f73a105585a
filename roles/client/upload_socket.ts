/**
 * The upload client's TCP connection (SPEC §3), with the one thing
 * `Deno.TcpConn` cannot do: end a failed upload with a reset (`RST`).
 *
 * The seed's protocol has no length, so the receiver takes a connection
 * closed gracefully (`FIN`) as a finished upload. A client that fails or is
 * stopped part-way must therefore not close gracefully, or the receiver
 * stores the bytes that got through as if they were the whole file. A reset
 * tells it the upload failed (the upload receiver then writes `ERROR`).
 * `Deno.TcpConn` always closes with `FIN`; `node:net`'s `resetAndDestroy()`
 * sets `SO_LINGER` to 0 and closes, which sends `RST`.
 *
 * @module
 */

import { connect, type Socket } from "node:net";

/** A connection to the upload receiver. */
export interface UploadSocket {
  /**
   * Writes bytes; resolves once the socket took all of them.
   *
   * @param bytes The bytes (not reused by the caller until this settles).
   * @returns A promise that rejects when the connection is lost or reset.
   */
  write(bytes: Uint8Array): Promise<void>;
  /**
   * Half-closes (`FIN`) and waits for the receiver to close its side,
   * discarding anything it sends.
   *
   * @returns A promise that resolves on the receiver's `FIN` and rejects when
   *   the connection is lost or reset first.
   */
  finish(): Promise<void>;
  /** Aborts the connection with a reset (`RST`); idempotent. */
  reset(): void;
}

/**
 * The system error code an error carries (`ECONNREFUSED`, `ENOTFOUND`, …),
 * as `node:` modules set it.
 *
 * @example
 * ```ts
 * import { systemErrorCode } from "./upload_socket.ts";
 * console.log(systemErrorCode(Object.assign(new Error("x"), { code: "EPIPE" }))); // "EPIPE"
 * ```
 *
 * @param error Anything thrown.
 * @returns The code, or `undefined` without one.
 */
export function systemErrorCode(error: unknown): string | undefined {
  if (typeof error === "object" && error !== null && "code" in error) {
    const code = (error as { code: unknown }).code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}

/**
 * What a socket error says, in the words of the `ERROR:` lines
 * (`connection refused`, `connection reset`, else the error's message).
 *
 * @example
 * ```ts
 * import { describeSocketError } from "./upload_socket.ts";
 * const refused = Object.assign(new Error("x"), { code: "ECONNREFUSED" });
 * console.log(describeSocketError(refused)); // "connection refused"
 * ```
 *
 * @param error A `node:net` error or a `Deno.errors` one.
 * @returns The description.
 */
export function describeSocketError(error: unknown): string {
  const code = systemErrorCode(error);
  if (
    code === "ECONNREFUSED" || error instanceof Deno.errors.ConnectionRefused
  ) {
    return "connection refused";
  }
  if (code === "ECONNRESET" || error instanceof Deno.errors.ConnectionReset) {
    return "connection reset";
  }
  if (code === "EPIPE") return "broken pipe";
  return error instanceof Error ? error.message : String(error);
}

/** {@linkcode UploadSocket} over a `node:net` socket. */
class NodeUploadSocket implements UploadSocket {
  readonly #socket: Socket;
  /** Rejects pending writes and the finish wait when the socket closes. */
  readonly #onClose = new Set<(error: Error) => void>();
  #error?: Error;
  #closed = false;
  #ended = false;

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("error", (error: Error) => this.#error ??= error);
    socket.on("data", () => {}); // the receiver sends nothing we need
    socket.on("end", () => this.#ended = true);
    socket.on("close", () => {
      this.#closed = true;
      const error = this.#failure();
      for (const fail of this.#onClose) fail(error);
      this.#onClose.clear();
    });
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(this.#failure());
    return new Promise((resolve, reject) => {
      const fail = (error: Error) => reject(error);
      this.#onClose.add(fail);
      this.#socket.write(bytes, (error?: Error | null) => {
        this.#onClose.delete(fail);
        if (error) reject(this.#error ?? error);
        else resolve();
      });
    });
  }

  finish(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#closed) return reject(this.#failure());
      // Done when our FIN is out (after every byte) and the receiver's came,
      // in either order: a receiver may half-close first and read on.
      let sent = false;
      const check = () => {
        if (!sent || !this.#ended) return;
        cleanUp();
        this.#socket.destroy();
        resolve();
      };
      const fail = (error: Error) => {
        cleanUp();
        if (sent && this.#ended) resolve();
        else reject(error);
      };
      const cleanUp = () => {
        this.#onClose.delete(fail);
        this.#socket.off("end", check);
      };
      this.#onClose.add(fail);
      this.#socket.on("end", check);
      this.#socket.end(() => {
        sent = true;
        check();
      });
    });
  }

  /** Why the connection ended: its error, or the receiver's close. */
  #failure(): Error {
    return this.#error ?? new Error("closed by the server");
  }

  reset(): void {
    if (this.#closed || this.#socket.destroyed) return;
    this.#socket.resetAndDestroy();
  }
}

/**
 * Opens a TCP connection to an IP address for an upload.
 *
 * @example
 * ```ts ignore
 * const socket = await connectUploadSocket("127.0.0.1", 5000);
 * await socket.write(new TextEncoder().encode("hello"));
 * await socket.finish();
 * ```
 *
 * @param hostname An IP literal (names are resolved by the caller).
 * @param port The receiver's port.
 * @returns The connected socket.
 * @throws {Error} The system's error (with its `code`) when the connection
 *   fails.
 */
export function connectUploadSocket(
  hostname: string,
  port: number,
): Promise<UploadSocket> {
  return new Promise((resolve, reject) => {
    // Half-open allowed: a receiver's early FIN must not end our side (with
    // a FIN that would make a cut-off upload look complete).
    const socket = connect({
      host: hostname,
      port,
      noDelay: true,
      allowHalfOpen: true,
    });
    const failed = (error: Error) => {
      socket.destroy();
      reject(error);
    };
    socket.once("error", failed);
    socket.once("connect", () => {
      socket.off("error", failed);
      resolve(new NodeUploadSocket(socket));
    });
  });
}
