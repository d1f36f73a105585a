/**
 * The cache's side of its conversation with the origin server: `STAT` to
 * revalidate a cached copy, `GET` to fetch a file into a temporary file.
 * Requests reuse idle TCP control connections (control_pool.ts); a fetch
 * also opens a data channel of the selected transport (to the origin's port
 * number).
 *
 * @module
 */

import type { Transport } from "../../transport/types.ts";
import { ControlPool } from "../file_service/control_pool.ts";
import { Interrupter } from "../file_service/interrupter.ts";
import {
  type ControlChannel,
  describeError,
  RemoteError,
  UnreachableError,
} from "../file_service/file_control.ts";
import {
  type FileVersion,
  newChannelTag,
  receiveFile,
} from "../file_service/file_transfer.ts";

/** Options of {@linkcode OriginClient}. */
export interface OriginClientOptions {
  /** The data transport. */
  transport: Transport;
  /** The origin's host. */
  hostname: string;
  /** The origin's port. */
  port: number;
  /** Idle timeout of connections and transfers, in ms. */
  idleMs: number;
  /** Bound on connecting, in ms. */
  connectTimeoutMs: number;
}

function lowerFirst(text: string): string {
  return /^[A-Z][a-z]/.test(text)
    ? text[0].toLowerCase() + text.slice(1)
    : text;
}

/** Talks to the origin server on behalf of the cache. */
export class OriginClient implements Disposable {
  readonly #options: OriginClientOptions;
  readonly #pool: ControlPool;
  readonly #interrupter = new Interrupter();

  /**
   * Creates the client; nothing is contacted before a request.
   *
   * @param options Transport, origin address, timeouts.
   */
  constructor(options: OriginClientOptions) {
    this.#options = options;
    this.#pool = new ControlPool({
      hostname: options.hostname,
      port: options.port,
      what: "origin server",
      connectTimeoutMs: options.connectTimeoutMs,
      idleMs: options.idleMs,
    });
  }

  /**
   * Closes the idle connections to the origin and ends the requests in
   * progress (a fetch fails as on a lost connection).
   */
  close(): void {
    this.#interrupter.interrupt();
    this.#pool.close();
  }

  /** Same as {@linkcode OriginClient.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  async #request<T>(
    name: string,
    work: (control: ControlChannel) => Promise<T>,
  ): Promise<T> {
    try {
      return await this.#pool.use(async (control) => {
        using _control = this.#interrupter.closeOnInterrupt(control);
        return await work(control);
      });
    } catch (error) {
      if (error instanceof RemoteError || error instanceof UnreachableError) {
        throw error;
      }
      throw new RemoteError(
        "transfer-failed",
        `Cannot get "${name}" from the origin server: ${
          lowerFirst(describeError(error))
        }`,
      );
    }
  }

  /**
   * Asks the origin for the current version of `name`.
   *
   * @param name A bare file name.
   * @returns Its size and SHA-256.
   * @throws {RemoteError} The origin's error (for example `not-found`), or
   *   `transfer-failed` when the exchange broke.
   * @throws {UnreachableError} When the origin cannot be reached.
   */
  stat(name: string): Promise<FileVersion> {
    return this.#request(name, async (control) => {
      await control.send({ type: "stat", name });
      const found = await control.expect("found");
      return { size: found.size, sha256: found.sha256 };
    });
  }

  /**
   * Fetches `name` from the origin into `file`, verifying size and SHA-256.
   *
   * @param name A bare file name.
   * @param file An empty temporary file, open for writing.
   * @returns The version received.
   * @throws {RemoteError} The origin's error, or `transfer-failed`.
   * @throws {UnreachableError} When the origin cannot be reached.
   */
  fetch(name: string, file: Deno.FsFile): Promise<FileVersion> {
    const { transport, idleMs } = this.#options;
    return this.#request(name, async (control) => {
      const tag = newChannelTag();
      await control.send({ type: "get", tag, name });
      const found = await control.expect("found");
      await using channel = await transport.openChannel(control.conn, tag, {
        signal: this.#interrupter.signal(idleMs),
      });
      using _channel = this.#interrupter.closeOnInterrupt(channel);
      const received = await receiveFile(channel, file, {
        idleMs,
        expectedSize: found.size,
        onStall: () => control.close(),
      });
      if (received.size !== found.size || received.sha256 !== found.sha256) {
        throw new Error(
          "the received bytes do not match the announced size and SHA-256",
        );
      }
      await control.expect("ok");
      return received;
    });
  }
}
