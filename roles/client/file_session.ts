/**
 * The client side of the file service's operations (SPEC §1): `put`
 * uploads straight to the origin server, `get` downloads through the cache.
 * Each operation uses a TCP control connection (kept open for the next
 * one, control_pool.ts) and one data channel of the selected transport.
 * Downloads are written to a temporary name, checked against the announced
 * size and SHA-256, and renamed into the client's directory only when the
 * cache confirmed; a file they replace is moved aside and removed in the
 * background.
 *
 * @module
 */

import type { FoundMessage } from "../../protocol/file_service.ts";
import type { Transport } from "../../transport/types.ts";
import { PartialFile } from "../partial_file.ts";
import { ControlPool } from "../file_service/control_pool.ts";
import {
  describeError,
  RemoteError,
  UnreachableError,
} from "../file_service/file_control.ts";
import { storePath } from "../file_service/file_store_names.ts";
import { Interrupter } from "../file_service/interrupter.ts";
import {
  newChannelTag,
  receiveFile,
  sendFile,
} from "../file_service/file_transfer.ts";

/** Where a peer listens. */
export interface PeerAddress {
  /** Host name or address. */
  hostname: string;
  /** TCP port (and UDP port for `snw`). */
  port: number;
}

/** Options of {@linkcode FileServiceClient}. */
export interface FileServiceClientOptions {
  /** The data transport. */
  transport: Transport;
  /** The origin server (for `put`). */
  server: PeerAddress;
  /** The cache (for `get`). */
  cache: PeerAddress;
  /** The client's directory: uploads are read from and downloads saved to it. */
  dir: string;
  /** Idle timeout of connections and transfers, in ms. */
  idleMs: number;
  /** Bound on connecting, in ms. */
  connectTimeoutMs: number;
  /** Called when an upload is about to contact the server. */
  onAwaitingServer?: () => void;
}

/** A `put` or `get` that failed; the message is one line for the user. */
export class FileCommandError extends Error {
  /**
   * Creates the error.
   *
   * @param message One line for the user.
   * @param options Standard error options.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "FileCommandError";
  }
}

function lowerFirst(text: string): string {
  return /^[A-Z][a-z]/.test(text)
    ? text[0].toLowerCase() + text.slice(1)
    : text;
}

function failure(verb: string, name: string, error: unknown): FileCommandError {
  if (error instanceof FileCommandError) return error;
  if (error instanceof RemoteError || error instanceof UnreachableError) {
    return new FileCommandError(error.message, { cause: error });
  }
  return new FileCommandError(
    `Cannot ${verb} "${name}": ${lowerFirst(describeError(error))}`,
    { cause: error },
  );
}

/** Runs `put` and `get` against an origin server and a cache. */
export class FileServiceClient implements AsyncDisposable {
  readonly #options: FileServiceClientOptions;
  readonly #pending = new Set<Promise<void>>();
  readonly #server: ControlPool;
  readonly #cache: ControlPool;
  readonly #interrupter = new Interrupter();

  /**
   * Creates the client; nothing is contacted before an operation.
   *
   * @param options Transport, peers, directory, timeouts.
   */
  constructor(options: FileServiceClientOptions) {
    this.#options = options;
    const pool = (peer: PeerAddress, what: string) =>
      new ControlPool({
        ...peer,
        what,
        connectTimeoutMs: options.connectTimeoutMs,
        idleMs: options.idleMs,
      });
    this.#server = pool(options.server, "server");
    this.#cache = pool(options.cache, "cache");
  }

  /**
   * Closes the connections kept open for the next operation and waits for
   * the removal of files that downloads replaced.
   */
  async close(): Promise<void> {
    this.#server.close();
    this.#cache.close();
    await Promise.all(this.#pending);
  }

  /**
   * Ends the operations in progress and every later one: their control
   * connections and data channels close, so they fail as a lost connection
   * would (a download's temporary file is removed, the peer discards an
   * unfinished upload). A download that was already being renamed into
   * place completes.
   */
  interrupt(): void {
    this.#interrupter.interrupt();
  }

  /** Same as {@linkcode FileServiceClient.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Tracks background work that {@linkcode FileServiceClient.close} awaits. */
  #settle(work: Promise<void>): void {
    this.#pending.add(work);
    work.finally(() => this.#pending.delete(work));
  }

  /**
   * Uploads `name` from the client's directory to the origin server.
   *
   * @param name A bare file name.
   * @returns The server's response text (`File successfully uploaded.`).
   * @throws {FileCommandError} With one line for the user.
   */
  async put(name: string): Promise<string> {
    const { dir, transport, idleMs } = this.#options;
    let file: Deno.FsFile;
    try {
      file = await Deno.open(storePath(dir, name), { read: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new FileCommandError(
          `Cannot put "${name}": no such file in "${dir}"`,
        );
      }
      throw failure("put", name, error);
    }
    try {
      const info = await file.stat();
      if (!info.isFile) {
        throw new FileCommandError(`Cannot put "${name}": not a regular file`);
      }
      this.#options.onAwaitingServer?.();
      return await this.#server.use(async (control) => {
        using _control = this.#interrupter.closeOnInterrupt(control);
        const tag = newChannelTag();
        await control.send({ type: "put", tag, size: info.size, name });
        await control.expect("ready");
        await using channel = await transport.openChannel(control.conn, tag, {
          signal: this.#interrupter.signal(idleMs),
        });
        using _channel = this.#interrupter.closeOnInterrupt(channel);
        const sha256 = await sendFile(channel, file, info.size, {
          idleMs,
          onStall: () => control.close(),
        });
        await control.send({ type: "done", sha256 });
        return (await control.expect("ok")).text;
      });
    } catch (error) {
      throw failure("put", name, error);
    } finally {
      file.close();
    }
  }

  /**
   * Downloads `name` through the cache into the client's directory.
   *
   * @param name A bare file name.
   * @returns The cache's response text (`File delivered from cache.` or
   *   `File delivered from origin.`).
   * @throws {FileCommandError} With one line for the user; no file is left
   *   under `name` unless the download completed and verified.
   */
  async get(name: string): Promise<string> {
    const { dir, transport, idleMs } = this.#options;
    let partial: PartialFile;
    try {
      partial = await PartialFile.create(storePath(dir, name));
    } catch (error) {
      throw failure("get", name, error);
    }
    try {
      return await this.#cache.use(async (control) => {
        using _control = this.#interrupter.closeOnInterrupt(control);
        const tag = newChannelTag();
        await control.send({ type: "get", tag, name });
        const found: FoundMessage = await control.expect("found");
        await using channel = await transport.openChannel(control.conn, tag, {
          signal: this.#interrupter.signal(idleMs),
        });
        using _channel = this.#interrupter.closeOnInterrupt(channel);
        const received = await receiveFile(channel, partial.file, {
          idleMs,
          expectedSize: found.size,
          onStall: () => control.close(),
        });
        if (
          received.size !== found.size || received.sha256 !== found.sha256
        ) {
          throw new FileCommandError(
            `Cannot get "${name}": the received bytes do not match the announced size and SHA-256`,
          );
        }
        const ok = await control.expect("ok");
        // Not atomic: on ext4 replacing a file by rename writes the new one
        // out first, and removing the old one takes as long (~1 s per GiB
        // here); the old copy is moved aside and removed in the background.
        await partial.commit({ sync: true, atomic: false });
        this.#settle(partial.replaced);
        return ok.text;
      });
    } catch (error) {
      throw failure("get", name, error);
    } finally {
      await partial.discard();
    }
  }
}
