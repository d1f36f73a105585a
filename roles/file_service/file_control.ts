/**
 * The TCP control connection of the file service, shared by the client, the
 * cache and the origin server: framed messages of protocol/file_service.ts
 * read exactly (never past a frame, so a `tcp` data transfer can follow on
 * the same connection), writes serialised, an idle timeout on every wait,
 * and `WAIT` keep-alives while a long step runs on the other side.
 *
 * @module
 */

import {
  decodeFileServiceMessage,
  decodeFrameLength,
  encodeFileServiceMessage,
  type ErrorCode,
  type FileServiceMessage,
  FileServiceProtocolError,
  FRAME_HEADER_BYTES,
} from "../../protocol/file_service.ts";
import { readExact, writeAll } from "../../transport/byte_io.ts";
import { UnsafeNameError } from "../file_names.ts";
import { ConnectionLostError } from "../../transport/errors.ts";

/** How often `WAIT` is sent while a long step runs, in ms. */
export const KEEP_ALIVE_MS = 1000;

/** The peer answered with an `ERROR` message. */
export class RemoteError extends Error {
  /**
   * Creates the error.
   *
   * @param code The peer's error code.
   * @param message The peer's text, shown to the user as is.
   */
  constructor(readonly code: ErrorCode, message: string) {
    super(message);
    this.name = "RemoteError";
  }
}

/** A server could not be reached (refused, unresolvable, or too slow). */
export class UnreachableError extends Error {
  /**
   * Creates the error.
   *
   * @param message What could not be reached and why.
   * @param options Standard error options.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UnreachableError";
  }
}

/** The peer sent nothing for the idle timeout. */
export class ControlTimeoutError extends Error {
  /**
   * Creates the error.
   *
   * @param message What was awaited.
   */
  constructor(message: string) {
    super(message);
    this.name = "ControlTimeoutError";
  }
}

function reasonOf(error: unknown): string {
  if (error instanceof Deno.errors.ConnectionRefused) {
    return "connection refused";
  }
  if (error instanceof Deno.errors.TimedOut) return "timed out";
  if (error instanceof Error) {
    return error.message.replace(/\s*\(os error \d+\)$/, "");
  }
  return String(error);
}

/** Options of {@linkcode ControlChannel.connect}. */
export interface ConnectControlOptions {
  /** Host name or address. */
  hostname: string;
  /** TCP port. */
  port: number;
  /** What the peer is, for messages: `server`, `cache`, `origin server`. */
  what: string;
  /** Give up connecting after this long, in ms. */
  connectTimeoutMs: number;
  /** Idle timeout of the connection, in ms. */
  idleMs: number;
}

/** One framed control connection. */
export class ControlChannel {
  /** The TCP connection (a `tcp` data channel shares it). */
  readonly conn: Deno.Conn;
  /** Give up when the peer sends nothing for this long, in ms. */
  readonly idleMs: number;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;
  #received = 0;

  /**
   * Wraps an open connection.
   *
   * @param conn The TCP connection.
   * @param idleMs The idle timeout of every receive, in ms.
   */
  constructor(conn: Deno.Conn, idleMs: number) {
    this.conn = conn;
    this.idleMs = idleMs;
  }

  /**
   * Connects to a peer within a bounded time.
   *
   * @param options Where, what for messages, and timeouts.
   * @returns The control channel.
   * @throws {UnreachableError} When the connection cannot be made in time.
   */
  static async connect(
    options: ConnectControlOptions,
  ): Promise<ControlChannel> {
    const where = `${options.hostname}:${options.port}`;
    const signal = AbortSignal.timeout(options.connectTimeoutMs);
    try {
      const conn = await Deno.connect({
        hostname: options.hostname,
        port: options.port,
        transport: "tcp",
        signal,
      });
      conn.setNoDelay(true);
      return new ControlChannel(conn, options.idleMs);
    } catch (error) {
      const reason = signal.aborted
        ? `no connection within ${options.connectTimeoutMs / 1000} s`
        : reasonOf(error);
      throw new UnreachableError(
        `Cannot reach the ${options.what} at ${where}: ${reason}`,
        { cause: error },
      );
    }
  }

  /**
   * Sends one message (writes never interleave).
   *
   * @param message The message.
   */
  send(message: FileServiceMessage): Promise<void> {
    const frame = encodeFileServiceMessage(message);
    const next = this.#writing.then(() => writeAll(this.conn, frame));
    this.#writing = next.catch(() => {});
    return next;
  }

  /**
   * Receives the next message other than `WAIT`; each `WAIT` restarts the
   * idle timer.
   *
   * @returns The message.
   * @throws {ControlTimeoutError} When nothing arrives for the idle timeout
   *   (the connection is closed).
   * @throws {ConnectionLostError} When the peer closed the connection.
   * @throws {FileServiceProtocolError} On a malformed frame.
   */
  async receive(): Promise<FileServiceMessage> {
    while (true) {
      const message = await this.#receiveOne();
      if (message.type !== "wait") return message;
    }
  }

  /**
   * Receives the next message and checks its type; an `ERROR` message is
   * thrown as a {@linkcode RemoteError}.
   *
   * @param type The expected message type.
   * @returns The message.
   * @throws {RemoteError} When the peer answered `ERROR`.
   * @throws {FileServiceProtocolError} When another message arrived.
   */
  async expect<T extends FileServiceMessage["type"]>(
    type: T,
  ): Promise<Extract<FileServiceMessage, { type: T }>> {
    const message = await this.receive();
    if (message.type === "error") {
      throw new RemoteError(message.code, message.text);
    }
    if (message.type !== type) {
      throw new FileServiceProtocolError(
        `Expected ${type.toUpperCase()}, got ${message.type.toUpperCase()}`,
      );
    }
    return message as Extract<FileServiceMessage, { type: T }>;
  }

  /**
   * Sends `WAIT` every {@linkcode KEEP_ALIVE_MS} until `work` settles.
   *
   * @param work The long step.
   * @returns The step's result.
   */
  async keepAliveWhile<T>(work: Promise<T>): Promise<T> {
    const timer = setInterval(() => {
      this.send({ type: "wait" }).catch(() => {});
    }, KEEP_ALIVE_MS);
    try {
      return await work;
    } finally {
      clearInterval(timer);
      await this.#writing;
    }
  }

  /** How many messages (`WAIT` included) arrived on this connection so far. */
  get messagesReceived(): number {
    return this.#received;
  }

  /** Whether {@linkcode ControlChannel.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the connection (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // already closed by a failed transfer
    }
  }

  async #receiveOne(): Promise<FileServiceMessage> {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.close();
    }, this.idleMs);
    try {
      const header = await readExact(
        this.conn,
        new Uint8Array(FRAME_HEADER_BYTES),
      );
      if (header === null) {
        throw new ConnectionLostError("The peer closed the connection");
      }
      const payload = await readExact(
        this.conn,
        new Uint8Array(decodeFrameLength(header)),
      );
      if (payload === null) {
        throw new ConnectionLostError("The peer closed the connection");
      }
      this.#received++;
      return decodeFileServiceMessage(payload);
    } catch (error) {
      if (timedOut) {
        throw new ControlTimeoutError(
          `No answer for ${this.idleMs / 1000} s`,
        );
      }
      if (
        error instanceof Deno.errors.ConnectionReset ||
        error instanceof Deno.errors.BrokenPipe ||
        error instanceof Deno.errors.BadResource ||
        error instanceof Deno.errors.Interrupted
      ) {
        throw new ConnectionLostError("The connection was lost", {
          cause: error,
        });
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * The `ERROR` code that answers a request which failed with `error`.
 *
 * @param error What went wrong.
 * @returns The code to send to the peer.
 */
export function errorCodeOf(error: unknown): ErrorCode {
  if (error instanceof RemoteError) return error.code;
  if (error instanceof UnreachableError) return "unavailable";
  if (error instanceof UnsafeNameError) return "bad-name";
  if (error instanceof FileServiceProtocolError) return "bad-request";
  return "transfer-failed";
}

/**
 * Describes any error of a file-service step in one line for the user.
 *
 * @param error What went wrong.
 * @returns One line without the error class name.
 */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const text = error.message.replace(/\s*\(os error \d+\)$/, "");
    if (error instanceof FileServiceProtocolError) {
      return `protocol error: ${text}`;
    }
    return text;
  }
  return String(error);
}
