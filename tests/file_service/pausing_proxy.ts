/**
 * A TCP proxy for tests that freezes a transfer at a known point: it
 * forwards connections to a target unchanged until `pauseAfter` bytes went
 * one way, then stops reading and forwarding that way (the connection stays
 * open), so a test can kill a role in the middle of a transfer
 * deterministically and then {@linkcode PausingProxy.cut} the connections.
 * When either side closes, the other side is closed too.
 *
 * @module
 */

/** Which way the byte count is taken. */
export type Direction = "to-target" | "from-target";

/** Options of {@linkcode PausingProxy.start}. */
export interface PausingProxyOptions {
  /** The target's port on 127.0.0.1. */
  targetPort: number;
  /** The direction that is frozen. */
  direction: Direction;
  /** Bytes forwarded that way before freezing (per connection). */
  pauseAfter: number;
}

/** The running proxy; `await using` closes everything. */
export class PausingProxy implements AsyncDisposable {
  readonly #listener: Deno.TcpListener;
  readonly #options: PausingProxyOptions;
  readonly #conns = new Set<Deno.Conn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #accepting: Promise<void>;
  #resolvePaused!: () => void;
  #resolveCut!: () => void;
  readonly #cut: Promise<void>;
  /** Resolves when some connection reached the pause point. */
  readonly paused: Promise<void>;

  private constructor(options: PausingProxyOptions) {
    this.#options = options;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.paused = new Promise((resolve) => this.#resolvePaused = resolve);
    this.#cut = new Promise((resolve) => this.#resolveCut = resolve);
    this.#accepting = this.#accept();
  }

  /**
   * Starts the proxy on a free port of 127.0.0.1.
   *
   * @param options Target and pause point.
   * @returns The proxy.
   */
  static start(options: PausingProxyOptions): PausingProxy {
    return new PausingProxy(options);
  }

  /** The proxy's port. */
  get port(): number {
    return this.#listener.addr.port;
  }

  async #accept(): Promise<void> {
    while (true) {
      let client: Deno.Conn;
      try {
        client = await this.#listener.accept();
      } catch {
        return;
      }
      const task = this.#relay(client);
      this.#tasks.add(task);
      task.finally(() => this.#tasks.delete(task));
    }
  }

  async #relay(client: Deno.Conn): Promise<void> {
    this.#conns.add(client);
    let target: Deno.Conn;
    try {
      target = await Deno.connect({
        hostname: "127.0.0.1",
        port: this.#options.targetPort,
      });
    } catch {
      this.#close(client);
      return;
    }
    this.#conns.add(target);
    const closeBoth = () => {
      this.#close(client);
      this.#close(target);
    };
    const frozen = this.#options.direction;
    await Promise.all([
      this.#pump(client, target, frozen === "to-target").finally(closeBoth),
      this.#pump(target, client, frozen === "from-target").finally(closeBoth),
    ]);
  }

  async #pump(from: Deno.Conn, to: Deno.Conn, counted: boolean): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    let forwarded = 0;
    try {
      while (true) {
        const n = await from.read(buffer);
        if (n === null) return;
        let chunk = buffer.subarray(0, n);
        if (counted) {
          const room = this.#options.pauseAfter - forwarded;
          if (chunk.length >= room) {
            chunk = chunk.subarray(0, room);
            await writeAll(to, chunk);
            this.#resolvePaused();
            // Frozen: read and forward nothing more until cut().
            await this.#cut;
            return;
          }
          forwarded += chunk.length;
        }
        await writeAll(to, chunk);
      }
    } catch {
      // closed: the caller closes both sides
    }
  }

  #close(conn: Deno.Conn): void {
    if (!this.#conns.delete(conn)) return;
    try {
      conn.close();
    } catch { /* already closed */ }
  }

  /** Closes every connection (as if the network failed), keeps listening. */
  cut(): void {
    this.#resolveCut();
    for (const conn of [...this.#conns]) this.#close(conn);
  }

  /** Closes the listener and every connection. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    this.#resolveCut();
    for (const conn of [...this.#conns]) this.#close(conn);
    await this.#accepting;
    await Promise.allSettled([...this.#tasks]);
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    offset += await conn.write(bytes.subarray(offset));
  }
}
