/**
 * The `tcp` transport: stock TCP through `Deno.listen` / `Deno.connect`.
 *
 * Wire format of one transfer (see docs/transports.md):
 *
 * ```
 * +--------------------------------+------------------------+
 * | size: u64 big-endian (8 bytes) | exactly `size` bytes   |
 * +--------------------------------+------------------------+
 * ```
 *
 * Transfers are framed by length, never by end of stream: in Deno, EOF on
 * `conn.readable` and `writable.close()` close the whole connection.
 *
 * @module
 */

import { abortable } from "./abortable.ts";
import { isLostBeforeAccept } from "./accept_errors.ts";
import { readExact, writeAll } from "./byte_io.ts";
import { ConnectionLostError } from "./errors.ts";
import { registerDirectReader } from "./transfer_chunks.ts";
import { sizedChunks } from "./transfer_source.ts";
import type {
  ChannelAcceptor,
  ConnectOptions,
  IncomingTransfer,
  ListenOptions,
  ReceiveOptions,
  SendOptions,
  TransferSource,
  Transport,
  TransportConn,
  TransportListener,
} from "./types.ts";

/** Bytes read from the socket per pull of an incoming transfer. */
const READ_CHUNK = 64 * 1024;

/**
 * A {@linkcode TransportConn} over one TCP connection.
 *
 * @example
 * ```ts ignore
 * const conn = await tcpTransport.connect({ hostname: "127.0.0.1", port });
 * await conn.send(5, new TextEncoder().encode("hello"));
 * conn.close();
 * ```
 */
export class TcpTransportConn implements TransportConn {
  #conn: Deno.Conn;
  #owned: boolean;
  #closed = false;
  #receiving = false;

  /**
   * Creates the instance.
   *
   * @param conn The TCP connection.
   * @param owned Whether `close()` closes `conn` (false for a data channel
   *   that shares a control connection).
   */
  constructor(conn: Deno.Conn, owned = true) {
    this.#conn = conn;
    this.#owned = owned;
  }

  /** The local address. */
  get localAddr(): Deno.NetAddr {
    return this.#conn.localAddr as Deno.NetAddr;
  }

  /** The peer's address. */
  get remoteAddr(): Deno.NetAddr {
    return this.#conn.remoteAddr as Deno.NetAddr;
  }

  /**
   * Sends one transfer: the 8-byte size, then the bytes.
   *
   * @param size The announced size.
   * @param source The bytes.
   * @param options Cancellation, progress.
   */
  async send(
    size: number,
    source: TransferSource,
    options?: SendOptions,
  ): Promise<void> {
    this.#checkOpen();
    const header = new Uint8Array(8);
    new DataView(header.buffer).setBigUint64(0, BigInt(size));
    const write = async (bytes: Uint8Array) => {
      options?.signal?.throwIfAborted();
      await writeAll(this.#conn, bytes, options?.onProgress);
    };
    try {
      await write(header);
      for await (const chunk of sizedChunks(source, size)) await write(chunk);
    } catch (error) {
      // A half-sent transfer leaves the stream unframed: give up on it.
      this.#fail();
      throw error;
    }
  }

  /**
   * Waits for the next transfer's size and returns its byte stream.
   *
   * @param options Cancellation.
   * @returns The transfer.
   */
  async receive(options?: ReceiveOptions): Promise<IncomingTransfer> {
    this.#checkOpen();
    if (this.#receiving) {
      throw new Error("Cannot receive: the previous transfer is unread");
    }
    const header = await abortable(
      readExact(this.#conn, new Uint8Array(8)),
      options?.signal,
    ).catch((error) => {
      this.#fail();
      throw error;
    });
    if (header === null) {
      throw new ConnectionLostError("Connection closed before a transfer");
    }
    const big = new DataView(header.buffer).getBigUint64(0);
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
      this.#fail();
      throw new RangeError(`Cannot receive transfer of ${big} bytes`);
    }
    const size = Number(big);
    let remaining = size;
    this.#receiving = size > 0;
    const conn = this.#conn;
    // A byte stream: BYOB readers (see `transferChunks`) read straight into
    // their own reused buffer; default readers get a fresh 64 KiB chunk each.
    /** The next bytes of the transfer into `target`; `null` at its end. */
    const readSome = async (target: Uint8Array): Promise<number | null> => {
      if (remaining === 0) return null;
      let n: number | null;
      try {
        n = await conn.read(
          target.subarray(0, Math.min(target.length, remaining)),
        );
      } catch (error) {
        this.#fail();
        throw new ConnectionLostError(
          `Connection failed with ${remaining} of ${size} bytes to go`,
          { cause: error },
        );
      }
      if (n === null) {
        this.#fail();
        throw new ConnectionLostError(
          `Connection closed with ${remaining} of ${size} bytes to go`,
        );
      }
      remaining -= n;
      if (remaining === 0) this.#receiving = false;
      return n;
    };
    const readable = new ReadableStream({
      type: "bytes",
      autoAllocateChunkSize: READ_CHUNK,
      pull: async (controller) => {
        const request = controller.byobRequest!;
        if (remaining === 0) {
          controller.close();
          request.respond(0);
          return;
        }
        const view = request.view!;
        const n = await readSome(
          new Uint8Array(view.buffer, view.byteOffset, view.byteLength),
        );
        request.respond(n!);
        if (remaining === 0) controller.close();
      },
      cancel: () => {
        if (remaining > 0) this.#fail();
      },
    });
    // transferChunks reads it straight from the socket (same state).
    registerDirectReader(readable, readSome);
    return { size, readable };
  }

  /** Closes the connection (only the data channel when it shares control). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#owned) {
      try {
        this.#conn.close();
      } catch {
        // already closed by the peer
      }
    }
  }

  /** Closes the connection. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  #checkOpen(): void {
    if (this.#closed) throw new Deno.errors.BadResource("Connection closed");
  }

  #fail(): void {
    // A broken framing poisons the socket, shared or not.
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}

/** A {@linkcode TransportListener} over `Deno.listen`. */
export class TcpTransportListener implements TransportListener {
  #listener: Deno.TcpListener;
  #closed = false;

  /**
   * Creates the instance.
   *
   * @param options Where to listen.
   */
  constructor(options: ListenOptions) {
    this.#listener = Deno.listen({
      hostname: options.hostname ?? "0.0.0.0",
      port: options.port,
      transport: "tcp",
    });
  }

  /** The bound address. */
  get addr(): Deno.NetAddr {
    return this.#listener.addr;
  }

  /** Waits for the next connection. */
  async accept(): Promise<TransportConn> {
    const conn = await this.#listener.accept();
    conn.setNoDelay(true);
    return new TcpTransportConn(conn);
  }

  /** Yields connections until the listener is closed. */
  async *[Symbol.asyncIterator](): AsyncIterator<TransportConn> {
    while (!this.#closed) {
      try {
        yield await this.accept();
      } catch (error) {
        if (this.#closed) return;
        if (isLostBeforeAccept(error)) continue;
        throw error;
      }
    }
  }

  /** Stops listening. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener.close();
  }

  /** Stops listening. */
  [Symbol.dispose](): void {
    this.close();
  }
}

class TcpChannelAcceptor implements ChannelAcceptor {
  accept(control: Deno.Conn): Promise<TransportConn> {
    return Promise.resolve(new TcpTransportConn(control, false));
  }
  close(): void {}
  [Symbol.dispose](): void {}
}

/**
 * The `tcp` transport.
 *
 * @example
 * ```ts
 * import { tcpTransport } from "./tcp.ts";
 *
 * using listener = tcpTransport.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted = listener.accept();
 * await using client = await tcpTransport.connect({
 *   hostname: "127.0.0.1",
 *   port: listener.addr.port,
 * });
 * await using server = await accepted;
 * await client.send(2, new Uint8Array([1, 2]));
 * const transfer = await server.receive();
 * console.log(transfer.size); // 2
 * for await (const _ of transfer.readable);
 * ```
 */
export const tcpTransport: Transport = {
  name: "tcp",
  listen(options: ListenOptions): TransportListener {
    return new TcpTransportListener(options);
  },
  async connect(options: ConnectOptions): Promise<TransportConn> {
    const pending = Deno.connect({
      hostname: options.hostname,
      port: options.port,
      transport: "tcp",
    });
    try {
      const conn = await abortable(pending, options.signal);
      conn.setNoDelay(true);
      return new TcpTransportConn(conn);
    } catch (error) {
      pending.then((conn) => conn.close(), () => {});
      throw error;
    }
  },
  openChannel(control: Deno.Conn): Promise<TransportConn> {
    return Promise.resolve(new TcpTransportConn(control, false));
  },
  channels(): ChannelAcceptor {
    return new TcpChannelAcceptor();
  },
};
