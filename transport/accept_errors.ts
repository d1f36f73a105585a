/**
 * Which errors of `Deno.Listener.accept()` mean only that one queued peer
 * went away, not that the listener is broken.
 *
 * A connection reset or aborted while it waited in the accept queue makes
 * Deno's `accept()` reject (`ConnectionAborted`, `ConnectionReset`, or
 * `NotConnected` when the peer's address can no longer be read), and the
 * next `accept()` works: an accept loop must go on, never end the server.
 *
 * @module
 */

/**
 * Whether an `accept()` error was one queued connection that the peer
 * closed or reset before it was accepted.
 *
 * @example
 * ```ts
 * import { isLostBeforeAccept } from "./accept_errors.ts";
 * console.log(isLostBeforeAccept(new Deno.errors.NotConnected())); // true
 * console.log(isLostBeforeAccept(new Deno.errors.BadResource())); // false
 * ```
 *
 * @param error What `accept()` threw.
 * @returns `true` for such a connection.
 */
export function isLostBeforeAccept(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.NotConnected;
}
