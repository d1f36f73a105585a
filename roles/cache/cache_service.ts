/**
 * The cache of the file service (SPEC §1): answers `GET` from clients with
 * a fresh copy (see cache_lookup.ts), sends the file through the selected
 * transport's data channel, then the control message
 * `File delivered from cache.` or `File delivered from origin.` — the
 * sentence the client shows comes from here. Errors of the origin are
 * relayed unchanged. See docs/file_service.md.
 *
 * @module
 */

import {
  FROM_CACHE_TEXT,
  FROM_ORIGIN_TEXT,
  type GetMessage,
} from "../../protocol/file_service.ts";
import type { Transport } from "../../transport/types.ts";
import { ControlChannel, RemoteError } from "../file_service/file_control.ts";
import { serveControlRequests } from "../file_service/control_requests.ts";
import { ControlListener } from "../file_service/file_listener.ts";
import { storePath } from "../file_service/file_store_names.ts";
import { sendFile } from "../file_service/file_transfer.ts";
import { CacheLookup } from "./cache_lookup.ts";
import { CacheStore } from "./cache_store.ts";
import { OriginClient } from "./origin_client.ts";

/** Options of {@linkcode CacheServer.start}. */
export interface CacheServerOptions {
  /** The data transport (to clients and to the origin). */
  transport: Transport;
  /** The port; 0 picks one. */
  port: number;
  /** The interface (default 0.0.0.0). */
  hostname?: string;
  /** The origin server's host. */
  originHost: string;
  /** The origin server's port. */
  originPort: number;
  /** The cache directory. */
  dir: string;
  /** The byte bound of the cached files. */
  maxBytes: number;
  /** Idle timeout of connections and transfers, in ms. */
  idleMs: number;
  /** Bound on connecting to the origin, in ms. */
  connectTimeoutMs: number;
  /** Receives one event line per request (`--log`); default: none. */
  log?: (line: string) => void;
  /**
   * Receives a line about a problem that does not stop the server (an
   * accept that failed); default: none.
   */
  problem?: (line: string) => void;
}

/** The running cache. */
export class CacheServer {
  readonly #options: CacheServerOptions;
  readonly #control: ControlListener;
  readonly #store: CacheStore;
  readonly #lookup: CacheLookup;
  readonly #origin: OriginClient;
  readonly #log: (line: string) => void;
  #serving?: Promise<void>;

  private constructor(
    options: CacheServerOptions,
    control: ControlListener,
    store: CacheStore,
  ) {
    this.#options = options;
    this.#control = control;
    this.#store = store;
    this.#log = options.log ?? (() => {});
    const origin = this.#origin = new OriginClient({
      transport: options.transport,
      hostname: options.originHost,
      port: options.originPort,
      idleMs: options.idleMs,
      connectTimeoutMs: options.connectTimeoutMs,
    });
    this.#lookup = new CacheLookup(store, origin, this.#log);
  }

  /**
   * Opens the store (restoring earlier contents), binds the port and starts
   * serving.
   *
   * @param options Transport, ports, origin, directory, bound, timeouts, log.
   * @returns The cache.
   */
  static async start(options: CacheServerOptions): Promise<CacheServer> {
    // The port first: a second instance started by mistake on the same
    // port fails here, before the store removes the first one's temporary
    // files.
    const control = ControlListener.bind(
      options.transport,
      options.hostname ?? "0.0.0.0",
      options.port,
    );
    let store: CacheStore;
    try {
      store = await CacheStore.open({
        dir: options.dir,
        maxBytes: options.maxBytes,
        log: options.log,
      });
    } catch (error) {
      control.close();
      throw error;
    }
    const server = new CacheServer(options, control, store);
    server.#serving = control.serve(
      (conn) => server.#handle(conn),
      (error) =>
        options.problem?.(
          `accept failed: ${error instanceof Error ? error.message : error}`,
        ),
    );
    return server;
  }

  /** The bound port. */
  get port(): number {
    return this.#control.port;
  }

  /** Files held and bytes used, for the listening line. */
  get contents(): { files: number; bytes: number } {
    return { files: this.#store.names.length, bytes: this.#store.totalBytes };
  }

  /** Resolves when the cache stopped serving. */
  get finished(): Promise<void> {
    return this.#serving ?? Promise.resolve();
  }

  /**
   * Stops serving, ends the deliveries and origin fetches in progress (their
   * temporary files are removed), writes the index.
   */
  async close(): Promise<void> {
    this.#control.close();
    this.#origin.close();
    await this.#serving;
    await this.#store.close();
  }

  #handle(conn: Deno.Conn): Promise<void> {
    const control = new ControlChannel(conn, this.#options.idleMs);
    const peer = conn.remoteAddr as Deno.NetAddr;
    const who = `${peer.hostname}:${peer.port}`;
    return serveControlRequests(control, (request) => {
      if (request.type === "put") {
        throw new RemoteError(
          "bad-request",
          "The cache does not take uploads: put goes to the origin server",
        );
      }
      if (request.type !== "get") {
        throw new RemoteError(
          "bad-request",
          `Unexpected ${request.type.toUpperCase()} as a request`,
        );
      }
      return this.#get(control, request, who);
    }, (request, text) => {
      this.#log(`${request?.type ?? "request"} from ${who} failed: ${text}`);
    });
  }

  async #get(
    control: ControlChannel,
    request: GetMessage,
    who: string,
  ): Promise<void> {
    storePath(this.#options.dir, request.name); // refuse unsafe names first
    const resolved = await control.keepAliveWhile(
      this.#lookup.resolve(request.name),
    );
    try {
      const { entry, file, source } = resolved;
      await control.send({
        type: "found",
        size: entry.size,
        sha256: entry.sha256,
      });
      const idleMs = this.#options.idleMs;
      await using channel = await this.#control.acceptChannel(
        control.conn,
        request.tag,
        idleMs,
      );
      await sendFile(channel, file, entry.size, {
        idleMs,
        onStall: () => control.close(),
        hash: false,
      });
      await control.send({
        type: "ok",
        text: source === "cache" ? FROM_CACHE_TEXT : FROM_ORIGIN_TEXT,
      });
      this.#log(
        `get "${request.name}" (${entry.size} bytes) to ${who}: ${
          source === "cache" ? "hit" : "miss"
        }`,
      );
    } finally {
      await this.#lookup.release(resolved);
    }
  }
}
