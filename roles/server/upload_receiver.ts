/**
 * The upload receiver's accept loop (SPEC §3): numbers connections from 1 in
 * accept order, receives each one concurrently into `<FILE-DIR>/<n>.file`
 * (see {@linkcode receiveUpload}), and shuts down on request with every
 * in-flight file settled.
 *
 * @module
 */

import { join } from "node:path";
import { isLostBeforeAccept } from "../../transport/accept_errors.ts";
import {
  receiveUpload,
  type UploadOutcome,
  writeErrorMarker,
} from "./upload_connection.ts";

/** Options of {@linkcode UploadReceiver}. */
export interface UploadReceiverOptions {
  /** The directory the `<n>.file` files go to. */
  dir: string;
  /** Abort a connection after this long without data, in milliseconds. */
  idleTimeoutMs: number;
  /** Receives one line per connection event (default: none). */
  log?: (line: string) => void;
}

/** Pause after a failed accept (for example out of file descriptors). */
const ACCEPT_RETRY_MS = 100;

/** Accepts uploads on a listener until {@linkcode UploadReceiver.shutdown}. */
export class UploadReceiver {
  readonly #listener: Deno.Listener;
  readonly #options: UploadReceiverOptions;
  readonly #stop = new AbortController();
  readonly #inFlight = new Set<Promise<void>>();
  #accepted = 0;
  /** Resolves when the accept loop ended and every connection is settled. */
  readonly finished: Promise<void>;

  /**
   * Starts accepting on `listener` (which the receiver closes on shutdown).
   *
   * @example
   * ```ts ignore
   * const listener = Deno.listen({ hostname: "0.0.0.0", port: 5000 });
   * const receiver = new UploadReceiver(listener, {
   *   dir: "save",
   *   idleTimeoutMs: 10_000,
   * });
   * Deno.addSignalListener("SIGTERM", () => receiver.shutdown());
   * await receiver.finished;
   * ```
   *
   * @param listener A TCP listener.
   * @param options Where files go, the idle timeout and a log.
   */
  constructor(listener: Deno.Listener, options: UploadReceiverOptions) {
    this.#listener = listener;
    this.#options = options;
    this.finished = this.#acceptLoop();
  }

  /** How many connections were accepted so far. */
  get accepted(): number {
    return this.#accepted;
  }

  /**
   * Stops accepting and ends every in-flight upload: a connection still
   * receiving gets the `ERROR` marker, one already complete is stored.
   * Idempotent; await {@linkcode UploadReceiver.finished} for the end.
   */
  shutdown(): void {
    if (this.#stop.signal.aborted) return;
    this.#stop.abort();
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
  }

  async #acceptLoop(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (signal.aborted || error instanceof Deno.errors.BadResource) break;
        if (isLostBeforeAccept(error)) {
          // An established connection, reset before we took it: it still
          // counts (seed 002), and like any reset upload it is an ERROR.
          const task = this.#recordLost(++this.#accepted);
          this.#inFlight.add(task);
          task.finally(() => this.#inFlight.delete(task));
          continue;
        }
        this.#options.log?.(
          `accept failed: ${error instanceof Error ? error.message : error}`,
        );
        await new Promise((resolve) => setTimeout(resolve, ACCEPT_RETRY_MS));
        continue;
      }
      if (signal.aborted) {
        conn.close();
        break;
      }
      const id = ++this.#accepted;
      const task = this.#receive(id, conn);
      this.#inFlight.add(task);
      task.finally(() => this.#inFlight.delete(task));
    }
    this.shutdown();
    await Promise.all(this.#inFlight);
  }

  async #recordLost(id: number): Promise<void> {
    const name = `${id}.file`;
    const marked = await writeErrorMarker(join(this.#options.dir, name));
    this.#options.log?.(
      `${name}: ${
        marked ? "ERROR" : "ERROR marker not written"
      } (the connection was reset before it was accepted)`,
    );
  }

  async #receive(id: number, conn: Deno.Conn): Promise<void> {
    const name = `${id}.file`;
    const log = this.#options.log;
    if (log) {
      const peer = conn.remoteAddr as Deno.NetAddr;
      log(`connection ${id} from ${peer.hostname}:${peer.port} -> ${name}`);
    }
    let outcome: UploadOutcome;
    try {
      outcome = await receiveUpload(conn, join(this.#options.dir, name), {
        idleTimeoutMs: this.#options.idleTimeoutMs,
        signal: this.#stop.signal,
      });
    } catch (error) {
      // receiveUpload never throws; this keeps the server alive regardless.
      log?.(`${name}: unexpected failure: ${error}`);
      return;
    }
    if (!log) return;
    if (outcome.kind === "saved") {
      log(`${name}: saved ${outcome.bytes} bytes`);
    } else {
      log(
        `${name}: ${
          outcome.marked ? "ERROR" : "ERROR marker not written"
        } (${outcome.reason})`,
      );
    }
  }
}
