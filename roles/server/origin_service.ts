/**
 * The origin server of the file service (SPEC §1): stores uploads (`PUT`)
 * and serves files (`GET`) and their versions (`STAT`, for the cache's
 * revalidation). A control connection carries requests one after another;
 * file data moves through the selected transport's data channel. See
 * docs/file_service.md.
 *
 * @module
 */

import {
  FROM_ORIGIN_TEXT,
  type GetMessage,
  type PutMessage,
  type StatMessage,
  UPLOADED_TEXT,
} from "../../protocol/file_service.ts";
import type { Transport } from "../../transport/types.ts";
import { PartialFile, removeAbandonedPartials } from "../partial_file.ts";
import {
  ControlChannel,
  describeError,
  RemoteError,
} from "../file_service/file_control.ts";
import { serveControlRequests } from "../file_service/control_requests.ts";
import { ControlListener } from "../file_service/file_listener.ts";
import { storePath } from "../file_service/file_store_names.ts";
import { receiveFile, sendFile } from "../file_service/file_transfer.ts";
import { VersionBook } from "./origin_versions.ts";

/** Options of {@linkcode OriginServer.start}. */
export interface OriginServerOptions {
  /** The data transport. */
  transport: Transport;
  /** The port; 0 picks one. */
  port: number;
  /** The interface (default 0.0.0.0). */
  hostname?: string;
  /** Where the files are kept. */
  dir: string;
  /** Idle timeout of connections and transfers, in ms. */
  idleMs: number;
  /** Receives one event line per request (`--log`); default: none. */
  log?: (line: string) => void;
  /**
   * Receives a line about a problem that does not stop the server (an
   * accept that failed); default: none.
   */
  problem?: (line: string) => void;
}

/** A request failure answered with `ERROR <code> <text>`. */
class RequestError extends RemoteError {}

function notFound(verb: string, name: string): RequestError {
  return new RequestError(
    "not-found",
    `Cannot ${verb} "${name}": no such file on the origin server`,
  );
}

/** The running origin server. */
export class OriginServer {
  readonly #options: OriginServerOptions;
  readonly #control: ControlListener;
  readonly #versions = new VersionBook();
  readonly #log: (line: string) => void;
  #serving?: Promise<void>;

  private constructor(options: OriginServerOptions, control: ControlListener) {
    this.#options = options;
    this.#control = control;
    this.#log = options.log ?? (() => {});
  }

  /**
   * Prepares the directory (leftover temporary files are removed), binds
   * the port and starts serving.
   *
   * @param options Transport, port, directory, timeouts, log.
   * @returns The server.
   */
  static async start(options: OriginServerOptions): Promise<OriginServer> {
    await Deno.mkdir(options.dir, { recursive: true });
    const control = ControlListener.bind(
      options.transport,
      options.hostname ?? "0.0.0.0",
      options.port,
    );
    // Only once the port is ours: a second instance started by mistake on
    // the same port fails to bind before it can touch the first one's files.
    await removeAbandonedPartials(options.dir);
    const server = new OriginServer(options, control);
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

  /** Resolves when the server stopped (after {@linkcode OriginServer.close}). */
  get finished(): Promise<void> {
    return this.#serving ?? Promise.resolve();
  }

  /** Stops serving; connections in progress are closed. */
  close(): void {
    this.#control.close();
  }

  #handle(conn: Deno.Conn): Promise<void> {
    const control = new ControlChannel(conn, this.#options.idleMs);
    const peer = conn.remoteAddr as Deno.NetAddr;
    const who = `${peer.hostname}:${peer.port}`;
    return serveControlRequests(control, (request) => {
      switch (request.type) {
        case "put":
          return this.#put(control, request, who);
        case "get":
          return this.#get(control, request, who);
        case "stat":
          return this.#stat(control, request);
        default:
          throw new RequestError(
            "bad-request",
            `Unexpected ${request.type.toUpperCase()} as a request`,
          );
      }
    }, (request, text) => {
      this.#log(`${request?.type ?? "request"} from ${who} failed: ${text}`);
    });
  }

  #path(name: string): string {
    return storePath(this.#options.dir, name);
  }

  async #put(
    control: ControlChannel,
    request: PutMessage,
    who: string,
  ): Promise<void> {
    const path = this.#path(request.name);
    let partial: PartialFile;
    try {
      partial = await PartialFile.create(path);
    } catch (error) {
      throw new RequestError(
        "io-error",
        `Cannot store "${request.name}": ${describeError(error)}`,
      );
    }
    await using _cleanup = partial;
    await control.send({ type: "ready" });
    const idleMs = this.#options.idleMs;
    await using channel = await this.#control.acceptChannel(
      control.conn,
      request.tag,
      idleMs,
    );
    const received = await receiveFile(channel, partial.file, {
      idleMs,
      expectedSize: request.size,
      onStall: () => control.close(),
    });
    if (received.size !== request.size) {
      throw new RequestError(
        "transfer-failed",
        `Cannot store "${request.name}": announced ${request.size} bytes, received ${received.size}`,
      );
    }
    const done = await control.expect("done");
    if (done.sha256 !== received.sha256) {
      throw new RequestError(
        "transfer-failed",
        `Cannot store "${request.name}": SHA-256 mismatch`,
      );
    }
    const info = await partial.file.stat();
    await partial.commit();
    this.#versions.record(request.name, info, received.sha256);
    this.#log(`put "${request.name}" (${received.size} bytes) from ${who}`);
    await control.send({ type: "ok", text: UPLOADED_TEXT });
  }

  // deno-lint-ignore require-await -- async so that failures are rejections
  async #open(verb: string, name: string): Promise<Deno.FsFile> {
    const path = this.#path(name);
    let file: Deno.FsFile;
    try {
      // synchronous open and stat: microseconds each, where an async call's
      // trip through Deno's blocking pool costs more than the call itself
      file = Deno.openSync(path, { read: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) throw notFound(verb, name);
      throw new RequestError(
        "io-error",
        `Cannot ${verb} "${name}": ${describeError(error)}`,
      );
    }
    const info = file.statSync();
    if (!info.isFile) {
      file.close();
      throw notFound(verb, name);
    }
    return file;
  }

  async #get(
    control: ControlChannel,
    request: GetMessage,
    who: string,
  ): Promise<void> {
    using file = await this.#open("get", request.name);
    const version = await control.keepAliveWhile(
      this.#versions.versionOf(request.name, file),
    );
    await control.send({ type: "found", ...version });
    const idleMs = this.#options.idleMs;
    await using channel = await this.#control.acceptChannel(
      control.conn,
      request.tag,
      idleMs,
    );
    await sendFile(channel, file, version.size, {
      idleMs,
      onStall: () => control.close(),
      hash: false,
    });
    await control.send({ type: "ok", text: FROM_ORIGIN_TEXT });
    this.#log(`get "${request.name}" (${version.size} bytes) to ${who}`);
  }

  async #stat(control: ControlChannel, request: StatMessage): Promise<void> {
    using file = await this.#open("get", request.name);
    const version = await control.keepAliveWhile(
      this.#versions.versionOf(request.name, file),
    );
    await control.send({ type: "found", ...version });
  }
}
