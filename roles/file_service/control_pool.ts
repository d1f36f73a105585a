/**
 * Keep-alive control connections to one peer (the client to the origin and
 * to the cache, the cache to the origin): a request takes an idle
 * connection or opens one, and gives it back when the request succeeded.
 * A connection that the peer closed while it sat idle (its idle timeout, a
 * restart) fails before any answer arrives; such a request is retried once
 * on a new connection, so keep-alive never turns into an error the user
 * sees. See docs/file_service.md ("Connections").
 *
 * @module
 */

import { ConnectionLostError } from "../../transport/errors.ts";
import { type ConnectControlOptions, ControlChannel } from "./file_control.ts";

/** Idle connections kept per peer. */
export const POOL_MAX_IDLE = 8;

/**
 * An idle connection is closed after this long unused, in ms (a timer
 * closes it, so that neither side holds it longer, half-closed).
 */
export const POOL_IDLE_MS = 5000;

interface IdleChannel {
  control: ControlChannel;
  since: number;
}

function lostBeforeAnswer(error: unknown): boolean {
  return error instanceof ConnectionLostError ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionReset;
}

/** Idle control connections to one peer, reused by later requests. */
export class ControlPool implements Disposable {
  readonly #options: ConnectControlOptions;
  readonly #idle: IdleChannel[] = [];
  readonly #keepMs: number;
  #sweep?: ReturnType<typeof setTimeout>;
  #closed = false;

  /**
   * Creates the pool; nothing is connected before a request.
   *
   * @param options Where to connect, what the peer is, timeouts.
   * @param keepMs How long an idle connection is kept (default
   *   {@linkcode POOL_IDLE_MS}).
   */
  constructor(options: ConnectControlOptions, keepMs: number = POOL_IDLE_MS) {
    this.#options = options;
    this.#keepMs = keepMs;
  }

  /** How many idle connections the pool holds. */
  get idleCount(): number {
    return this.#idle.length;
  }

  /**
   * Runs one request on a control connection. The connection goes back to
   * the pool when `work` succeeds and is closed when it fails.
   *
   * @param work The request (send, receive, transfer).
   * @returns What `work` returned.
   * @throws {UnreachableError} When a new connection cannot be made.
   * @throws What `work` threw (a reused connection that the peer had closed
   *   before answering is retried on a new one first).
   */
  async use<T>(work: (control: ControlChannel) => Promise<T>): Promise<T> {
    for (let reused = this.#takeIdle(); reused; reused = this.#takeIdle()) {
      const before = reused.messagesReceived;
      try {
        return await this.#run(reused, work);
      } catch (error) {
        // Nothing was answered: the peer closed the connection while idle.
        if (reused.messagesReceived !== before || !lostBeforeAnswer(error)) {
          throw error;
        }
      }
    }
    return await this.#run(await ControlChannel.connect(this.#options), work);
  }

  /** Closes the idle connections; later requests connect anew and are not kept. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#sweep);
    this.#sweep = undefined;
    for (const { control } of this.#idle.splice(0)) control.close();
  }

  /** Same as {@linkcode ControlPool.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  async #run<T>(
    control: ControlChannel,
    work: (control: ControlChannel) => Promise<T>,
  ): Promise<T> {
    let result: T;
    try {
      result = await work(control);
    } catch (error) {
      control.close();
      throw error;
    }
    if (this.#closed || control.closed || this.#idle.length >= POOL_MAX_IDLE) {
      control.close();
    } else {
      this.#idle.push({ control, since: performance.now() });
      this.#scheduleSweep();
    }
    return result;
  }

  #takeIdle(): ControlChannel | undefined {
    this.#dropStale();
    return this.#idle.pop()?.control;
  }

  /** Closes the connections idle for longer than the pool keeps them. */
  #dropStale(): void {
    // Oldest first (pushed as they came back): the stale ones are in front.
    const now = performance.now();
    while (this.#idle.length > 0 && now - this.#idle[0].since >= this.#keepMs) {
      this.#idle.shift()!.control.close();
    }
  }

  /** Arms the timer that closes the oldest idle connection when it expires. */
  #scheduleSweep(): void {
    if (this.#sweep !== undefined || this.#idle.length === 0) return;
    const due = this.#idle[0].since + this.#keepMs - performance.now();
    const sweep = setTimeout(() => {
      this.#sweep = undefined;
      this.#dropStale();
      this.#scheduleSweep();
    }, Math.max(0, due) + 1);
    Deno.unrefTimer(sweep); // never what keeps a process running
    this.#sweep = sweep;
  }
}
