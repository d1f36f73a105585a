/**
 * A chat connection: a TCP connection that reads chat events through a
 * {@linkcode ChatDecoder} and writes whole frames. Used by the chat client,
 * the server's read side, the tests and the benchmark.
 *
 * @module
 */

import {
  ChatDecoder,
  type ChatDecoderOptions,
  type ChatEvent,
  type ChatMessage,
  encodeFileHeader,
  encodeMessage,
  type FileHeader,
} from "../../protocol/chat_protocol.ts";
import { writeAll } from "../../transport/byte_io.ts";
import { ConnectionLostError } from "../../transport/errors.ts";

/** Read buffer of an idle connection (kept small: a server holds thousands). */
const MIN_READ_BYTES = 16 * 1024;
/** Read buffer during bulk transfers (grown while reads fill the buffer). */
const MAX_READ_BYTES = 256 * 1024;

/** A framed chat connection over one `Deno.Conn`. */
export class ChatConnection implements Disposable {
  /** The underlying TCP connection. */
  readonly conn: Deno.Conn;
  readonly #decoder: ChatDecoder;
  #buffer = new Uint8Array(MIN_READ_BYTES);
  #closed = false;

  /**
   * Wraps a connection.
   *
   * @param conn The TCP connection (owned: `close()` closes it).
   * @param options Decoder limits.
   */
  constructor(conn: Deno.Conn, options?: ChatDecoderOptions) {
    this.conn = conn;
    this.#decoder = new ChatDecoder(options);
  }

  /**
   * Reads the next event. A `file-data` event's bytes are valid until the
   * next call.
   *
   * @returns The event, or `null` when the peer closed between frames.
   * @throws {ChatProtocolError} On malformed bytes.
   * @throws {ConnectionLostError} When the stream ends inside a frame.
   * @throws {Deno.errors.ConnectionReset} (and other I/O errors) when the
   *   connection fails.
   */
  async next(): Promise<ChatEvent | null> {
    while (true) {
      const event = this.#decoder.next();
      if (event) return event;
      const buffer = this.#buffer;
      const n = await this.conn.read(buffer);
      if (n === null) {
        if (!this.#decoder.atBoundary) {
          throw new ConnectionLostError(
            "The connection ended in the middle of a message",
          );
        }
        return null;
      }
      this.#decoder.push(buffer.subarray(0, n));
      // Grow while reads fill the buffer (a file arriving), shrink when idle.
      // Earlier `file-data` views keep the old buffer alive until dropped.
      if (n === buffer.length && buffer.length < MAX_READ_BYTES) {
        this.#buffer = new Uint8Array(buffer.length * 2);
      } else if (n < MIN_READ_BYTES && buffer.length > MIN_READ_BYTES) {
        this.#buffer = new Uint8Array(MIN_READ_BYTES);
      }
    }
  }

  /**
   * Changes the decoder's limits for the frames that start from now on.
   *
   * @param options The new limits (defaults: the protocol's).
   */
  setLimits(options: ChatDecoderOptions): void {
    this.#decoder.setLimits(options);
  }

  /**
   * Sends one message.
   *
   * @param message The message.
   */
  async send(message: ChatMessage): Promise<void> {
    await writeAll(this.conn, encodeMessage(message));
  }

  /**
   * Sends a file message whose content comes from `source`, which must
   * yield exactly `header.size` bytes.
   *
   * @param header The header with the content size.
   * @param source The content, in chunks.
   * @throws {RangeError} When the source yields more or fewer bytes than
   *   announced (the connection is then unusable and should be closed).
   */
  async sendFile(
    header: FileHeader,
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  ): Promise<void> {
    await writeAll(this.conn, encodeFileHeader(header));
    let sent = 0;
    for await (const chunk of source) {
      if (sent + chunk.length > header.size) {
        throw new RangeError(
          `Cannot send "${header.fileName}": it grew beyond the announced ${header.size} bytes`,
        );
      }
      await writeAll(this.conn, chunk);
      sent += chunk.length;
    }
    if (sent !== header.size) {
      throw new RangeError(
        `Cannot send "${header.fileName}": it ended after ${sent} of the announced ${header.size} bytes`,
      );
    }
  }

  /** Shuts down the sending side (the peer reads end of stream). */
  async closeWrite(): Promise<void> {
    try {
      await this.conn.closeWrite();
    } catch {
      // already closed or reset
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

  /** Closes the connection. */
  [Symbol.dispose](): void {
    this.close();
  }
}
