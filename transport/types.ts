/**
 * The one `Transport` interface that the file service, the repeat transfer
 * and the benches use without knowing what is below: `tcp` (stock TCP) or
 * `snw` (stop-and-wait over UDP).
 *
 * A {@linkcode TransportConn} moves *transfers*: each one announces its
 * length first (an 8-byte size on TCP, a `LEN:<bytes>` datagram on SNW) and
 * then streams exactly that many bytes with backpressure, so no file is ever
 * held whole in memory. Transfers can flow in both directions of one
 * connection, one at a time per direction.
 *
 * Two ways to get a connection:
 * - standalone sessions: {@linkcode Transport.listen} / {@linkcode Transport.connect}
 *   (one session per copy in the repeat transfer);
 * - a data channel paired with a TCP control connection:
 *   {@linkcode Transport.openChannel} on the side that opened the control
 *   connection and {@linkcode ChannelAcceptor.accept} on the side that
 *   accepted it. Over `tcp` the transfers share the control connection
 *   itself; over `snw` they travel in a UDP session to the same port number
 *   as the peer's TCP port, matched by a tag both sides learnt over control.
 *
 * @module
 */

/** Names of the transports behind {@linkcode Transport}. */
export type TransportName = "tcp" | "snw";

/** An incoming transfer: its announced size and a stream of exactly that many bytes. */
export interface IncomingTransfer {
  /** The announced size in bytes. */
  readonly size: number;
  /**
   * Exactly `size` bytes. Errors with a transport error when the peer stops
   * making progress or goes away; the next transfer can only be received once
   * this one is read to the end (or cancelled, which fails the connection).
   */
  readonly readable: ReadableStream<Uint8Array>;
}

/** Bytes to send: a stream, an async iterable of chunks, or one buffer. */
export type TransferSource =
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array>
  | Uint8Array;

/** Options of {@linkcode TransportConn.send}. */
export interface SendOptions {
  /** Aborts the transfer; the connection is unusable afterwards. */
  signal?: AbortSignal;
  /**
   * Called whenever the peer took more bytes: after each write (tcp), each
   * acknowledged packet (snw). Keep it cheap; it runs per packet.
   */
  onProgress?: () => void;
}

/** Options of {@linkcode TransportConn.receive}. */
export interface ReceiveOptions {
  /** Stops waiting for the next transfer. */
  signal?: AbortSignal;
}

/** One connection (TCP) or session (SNW) that moves length-announced transfers. */
export interface TransportConn extends AsyncDisposable {
  /** The local address. */
  readonly localAddr: Deno.NetAddr;
  /** The peer's address. */
  readonly remoteAddr: Deno.NetAddr;
  /**
   * Sends one transfer of exactly `size` bytes taken from `source`.
   * Resolves when the transport has handed over all bytes (SNW: when the
   * receiver's `FIN` arrived). Rejects with `TransferSizeError` when the
   * source yields more or fewer bytes than announced.
   *
   * @param size The number of bytes announced to the receiver.
   * @param source The bytes.
   * @param options Cancellation.
   */
  send(
    size: number,
    source: TransferSource,
    options?: SendOptions,
  ): Promise<void>;
  /**
   * Waits for the peer's next transfer.
   *
   * @param options Cancellation.
   * @returns The announced size and the byte stream.
   */
  receive(options?: ReceiveOptions): Promise<IncomingTransfer>;
  /** Closes the connection (idempotent); pending operations reject. */
  close(): void;
}

/** Options of {@linkcode Transport.listen}. */
export interface ListenOptions {
  /** The interface to bind; default `0.0.0.0`. */
  hostname?: string;
  /** The port; 0 picks a free one. */
  port: number;
}

/** Options of {@linkcode Transport.connect}. */
export interface ConnectOptions {
  /** The peer's host name or address. */
  hostname: string;
  /** The peer's port. */
  port: number;
  /** Gives up connecting. */
  signal?: AbortSignal;
}

/** Accepts standalone connections; iterating ends cleanly on `close()`. */
export interface TransportListener
  extends AsyncIterable<TransportConn>, Disposable {
  /** The bound address (with the real port when 0 was asked for). */
  readonly addr: Deno.NetAddr;
  /** Waits for the next connection; rejects once closed. */
  accept(): Promise<TransportConn>;
  /** Stops listening (idempotent); accepted connections stay open. */
  close(): void;
}

/**
 * The acceptor side of data channels paired with TCP control connections,
 * bound to the same port number as the control listener (for `snw`; `tcp`
 * binds nothing).
 */
export interface ChannelAcceptor extends Disposable {
  /**
   * Returns the data channel the peer opened for `control` with `tag`.
   *
   * @param control The accepted TCP control connection.
   * @param tag The tag both sides agreed on over `control`.
   * @param options Cancellation (for example when `control` closes).
   * @returns The data channel; closing it never closes `control`.
   */
  accept(
    control: Deno.Conn,
    tag: string,
    options?: ReceiveOptions,
  ): Promise<TransportConn>;
  /** Releases the bound socket (idempotent). */
  close(): void;
}

/** A transport: `tcp` or `snw`. */
export interface Transport {
  /** Which transport this is. */
  readonly name: TransportName;
  /**
   * Listens for standalone connections.
   *
   * @param options Where to listen.
   * @returns The listener.
   */
  listen(options: ListenOptions): TransportListener;
  /**
   * Opens a standalone connection.
   *
   * @param options Where to connect.
   * @returns The connection.
   */
  connect(options: ConnectOptions): Promise<TransportConn>;
  /**
   * Opens the data channel for a TCP control connection that this side
   * opened.
   *
   * @param control The control connection.
   * @param tag A tag the acceptor knows from the control exchange (at most
   *   64 bytes of UTF-8).
   * @param options Cancellation.
   * @returns The data channel; closing it never closes `control`.
   */
  openChannel(
    control: Deno.Conn,
    tag: string,
    options?: { signal?: AbortSignal },
  ): Promise<TransportConn>;
  /**
   * Binds the acceptor of data channels next to a TCP control listener.
   *
   * @param options The control listener's address and port.
   * @returns The acceptor.
   */
  channels(options: ListenOptions): ChannelAcceptor;
}
