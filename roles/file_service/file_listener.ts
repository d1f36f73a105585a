/**
 * The listening side of the file service (origin server and cache): a TCP
 * control listener and, on the same port number, the transport's acceptor
 * of data channels (a UDP socket for `snw`, nothing for `tcp`). Each
 * connection is handled concurrently; `close()` stops everything.
 *
 * @module
 */

import { isLostBeforeAccept } from "../../transport/accept_errors.ts";
import { TransferTimeoutError } from "../../transport/errors.ts";
import type {
  ChannelAcceptor,
  Transport,
  TransportConn,
} from "../../transport/types.ts";

/** Pause before accepting again after an accept failed, in ms. */
const ACCEPT_RETRY_MS = 100;

/** Longest wait for a request's data channel, in ms. */
const CHANNEL_WAIT_MS = 10_000;

/** How many times a free port (port 0) is tried for both TCP and the acceptor. */
const PORT_ATTEMPTS = 20;

/** Handles one accepted control connection; must not throw. */
export type ConnectionHandler = (conn: Deno.Conn) => Promise<void>;

/** A TCP control listener with its data-channel acceptor. */
export class ControlListener {
  /** The TCP listener. */
  readonly listener: Deno.TcpListener;
  /** The data-channel acceptor on the same port number. */
  readonly acceptor: ChannelAcceptor;
  readonly #open = new Set<Deno.Conn>();
  /** The data channel of each control connection's current request. */
  readonly #channels = new Map<Deno.Conn, TransportConn>();
  readonly #handlers = new Set<Promise<void>>();
  #closed = false;

  private constructor(
    listener: Deno.TcpListener,
    acceptor: ChannelAcceptor,
    readonly transportName: string,
  ) {
    this.listener = listener;
    this.acceptor = acceptor;
  }

  /**
   * Waits at most half of `idleMs` (10 s at most) for the data channel that
   * the peer of `control` opens with `tag`.
   *
   * @param control The accepted control connection.
   * @param tag The tag of the request.
   * @param idleMs The idle timeout (the wait is half of it, at most 10 s).
   * @returns The data channel.
   * @throws {TransferTimeoutError} When none came in time.
   */
  async acceptChannel(
    control: Deno.Conn,
    tag: string,
    idleMs: number,
  ): Promise<TransportConn> {
    // A channel comes within a round trip of the request (an SNW OPEN is
    // retransmitted for at most its give-up timeout): waiting half the idle
    // timeout (at most 10 s) lets the clear error below reach a peer before
    // its own idle timeout.
    const waitMs = Math.min(idleMs / 2, CHANNEL_WAIT_MS);
    const signal = AbortSignal.timeout(waitMs);
    let channel: TransportConn;
    try {
      channel = await this.acceptor.accept(control, tag, { signal });
    } catch (error) {
      if (!signal.aborted) throw error;
      // The usual cause: a peer started with the other transport.
      throw new TransferTimeoutError(
        `No ${this.transportName} data channel within ${
          waitMs / 1000
        } s (does the peer use ${this.transportName} too?)`,
        { cause: error },
      );
    }
    // Requests on one control connection come one after another: the
    // previous request's channel is already closed by its handler.
    this.#channels.set(control, channel);
    if (this.#closed) channel.close();
    return channel;
  }

  /**
   * Binds the TCP port and the transport's acceptor on the same number.
   *
   * @param transport The data transport.
   * @param hostname The interface.
   * @param port The port; 0 picks one free for both.
   * @returns The listener.
   */
  static bind(
    transport: Transport,
    hostname: string,
    port: number,
  ): ControlListener {
    for (let attempt = 1;; attempt++) {
      const listener = Deno.listen({ hostname, port, transport: "tcp" });
      try {
        const acceptor = transport.channels({
          hostname,
          port: listener.addr.port,
        });
        return new ControlListener(listener, acceptor, transport.name);
      } catch (error) {
        listener.close();
        const retry = port === 0 && attempt < PORT_ATTEMPTS &&
          error instanceof Deno.errors.AddrInUse;
        if (!retry) throw error;
      }
    }
  }

  /** The bound port. */
  get port(): number {
    return this.listener.addr.port;
  }

  /**
   * Accepts connections until closed, each handled concurrently. An
   * accept that fails for want of resources (`EMFILE`: descriptors held by
   * other clients) is reported and retried after a pause: the server goes
   * on serving.
   *
   * @param handler Handles one connection (closes it when done).
   * @param onAcceptError Told of the first failure of each streak (not of
   *   every retry, ten a second).
   */
  async serve(
    handler: ConnectionHandler,
    onAcceptError: (error: unknown) => void = () => {},
  ): Promise<void> {
    let failing = false;
    while (!this.#closed) {
      let conn: Deno.Conn;
      try {
        conn = await this.listener.accept();
      } catch (error) {
        if (this.#closed || error instanceof Deno.errors.BadResource) break;
        if (isLostBeforeAccept(error)) continue;
        if (!failing) onAcceptError(error);
        failing = true;
        await new Promise((resolve) => setTimeout(resolve, ACCEPT_RETRY_MS));
        continue;
      }
      failing = false;
      (conn as Deno.TcpConn).setNoDelay(true);
      this.#open.add(conn);
      const handled = handler(conn).catch(() => {}).finally(() => {
        this.#open.delete(conn);
        this.#channels.delete(conn);
        this.#handlers.delete(handled);
      });
      this.#handlers.add(handled);
    }
    await Promise.allSettled([...this.#handlers]);
  }

  /**
   * Stops listening, closes open connections, the data channels of
   * requests in progress (an SNW session would otherwise run to its end)
   * and the acceptor.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.listener.close();
    for (const conn of this.#open) {
      try {
        conn.close();
      } catch { /* closed by its handler */ }
    }
    for (const channel of this.#channels.values()) {
      try {
        channel.close();
      } catch { /* closed by its handler */ }
    }
    this.acceptor.close();
  }
}
