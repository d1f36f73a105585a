/**
 * A seeded lossy relay for tests and benches: it forwards UDP datagrams in
 * both directions between its clients and one target, dropping,
 * duplicating, reordering, delaying and corrupting them with probabilities
 * drawn from a fixed-seed generator, and forwards plain TCP connections on
 * the same port number unchanged. So a role pointed at the relay's port
 * sends both its TCP control traffic and its SNW data through it.
 *
 * Command line (prints one line `relay listening on 127.0.0.1:<port> -> ...`):
 *
 * ```sh
 * deno task relay --target-port 9000 --drop 0.1 --duplicate 0.02 --seed 7
 * ```
 *
 * @module
 */

import { parseCommandLine, parsePort, UsageError } from "../roles/cli.ts";
import { seededRandom } from "./seeded_random.ts";

/** Impairments and addresses of a {@linkcode LossyRelay}. */
export interface RelayOptions {
  /** The port of the real peer. */
  targetPort: number;
  /** The host of the real peer (default 127.0.0.1). */
  targetHost?: string;
  /** The relay's own port (default 0: a free port for both TCP and UDP). */
  port?: number;
  /** The interface to bind (default 127.0.0.1). */
  hostname?: string;
  /** Seed of the generator (default 1). */
  seed?: number;
  /** Probability that a datagram is dropped. */
  drop?: number;
  /** Probability that a datagram is sent twice. */
  duplicate?: number;
  /** Probability that a datagram is held back so later ones overtake it. */
  reorder?: number;
  /** Probability that one byte of a datagram is flipped. */
  corrupt?: number;
  /** Every datagram is delayed by a uniform 0..delayMs (default 0). */
  delayMs?: number;
  /** How long a reordered datagram is held back, in ms (default 15). */
  reorderMs?: number;
  /** Forward TCP on the same port (default true). */
  tcp?: boolean;
}

/** What the relay did so far. */
export interface RelayStats {
  /** Datagrams received from either side. */
  datagrams: number;
  /** Datagrams dropped. */
  dropped: number;
  /** Extra copies sent. */
  duplicated: number;
  /** Datagrams held back. */
  reordered: number;
  /** Datagrams with a flipped byte. */
  corrupted: number;
  /** TCP connections forwarded. */
  tcpConnections: number;
}

/** A running relay; close it (or `await using` it) when done. */
export class LossyRelay implements AsyncDisposable {
  /** Counters of what was done to the traffic. */
  readonly stats: RelayStats = {
    datagrams: 0,
    dropped: 0,
    duplicated: 0,
    reordered: 0,
    corrupted: 0,
    tcpConnections: 0,
  };
  readonly #options: Required<Omit<RelayOptions, "port">>;
  readonly #random: () => number;
  readonly #front: Deno.DatagramConn;
  readonly #tcp?: Deno.TcpListener;
  readonly #upstreams = new Map<string, Deno.DatagramConn>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  readonly #tcpConns = new Set<Deno.Conn>();
  readonly #tasks = new Set<Promise<void>>();
  #closed = false;
  #sendChain: Promise<void> = Promise.resolve();

  private constructor(
    options: RelayOptions,
    front: Deno.DatagramConn,
    tcp?: Deno.TcpListener,
  ) {
    this.#options = {
      targetPort: options.targetPort,
      targetHost: options.targetHost ?? "127.0.0.1",
      hostname: options.hostname ?? "127.0.0.1",
      seed: options.seed ?? 1,
      drop: options.drop ?? 0,
      duplicate: options.duplicate ?? 0,
      reorder: options.reorder ?? 0,
      corrupt: options.corrupt ?? 0,
      delayMs: options.delayMs ?? 0,
      reorderMs: options.reorderMs ?? 15,
      tcp: options.tcp ?? true,
    };
    this.#random = seededRandom(this.#options.seed);
    this.#front = front;
    this.#tcp = tcp;
    this.#track(this.#frontLoop());
    if (tcp) this.#track(this.#acceptLoop(tcp));
  }

  /**
   * Starts a relay. With port 0 it picks a port free for both TCP and UDP.
   *
   * @param options Target, port and impairments.
   * @returns The running relay.
   */
  static start(options: RelayOptions): LossyRelay {
    const hostname = options.hostname ?? "127.0.0.1";
    const wantTcp = options.tcp ?? true;
    for (let attempt = 0;; attempt++) {
      let tcp: Deno.TcpListener | undefined;
      try {
        tcp = wantTcp
          ? Deno.listen({ hostname, port: options.port ?? 0 })
          : undefined;
        const port = tcp ? tcp.addr.port : options.port ?? 0;
        const front = Deno.listenDatagram({ transport: "udp", hostname, port });
        return new LossyRelay(options, front, tcp);
      } catch (error) {
        tcp?.close();
        if (!(error instanceof Deno.errors.AddrInUse) || attempt >= 20) {
          throw error;
        }
      }
    }
  }

  /** The relay's port (the same number for UDP and TCP). */
  get port(): number {
    return (this.#front.addr as Deno.NetAddr).port;
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  async #frontLoop(): Promise<void> {
    const target: Deno.NetAddr = {
      transport: "udp",
      hostname: this.#options.targetHost,
      port: this.#options.targetPort,
    };
    while (!this.#closed) {
      let datagram: Uint8Array;
      let client: Deno.NetAddr;
      try {
        const [bytes, addr] = await this.#front.receive();
        datagram = bytes;
        client = addr as Deno.NetAddr;
      } catch {
        if (this.#closed) return;
        continue;
      }
      const upstream = this.#upstreamFor(client);
      this.#impair(datagram, (bytes) => upstream.send(bytes, target));
    }
  }

  #upstreamFor(client: Deno.NetAddr): Deno.DatagramConn {
    const key = `${client.hostname}:${client.port}`;
    let upstream = this.#upstreams.get(key);
    if (!upstream) {
      upstream = Deno.listenDatagram({
        transport: "udp",
        hostname: this.#options.hostname,
        port: 0,
      });
      this.#upstreams.set(key, upstream);
      this.#track(this.#backLoop(upstream, client));
    }
    return upstream;
  }

  async #backLoop(
    upstream: Deno.DatagramConn,
    client: Deno.NetAddr,
  ): Promise<void> {
    while (!this.#closed) {
      let datagram: Uint8Array;
      try {
        [datagram] = await upstream.receive();
      } catch {
        if (this.#closed) return;
        continue;
      }
      this.#impair(datagram, (bytes) => this.#front.send(bytes, client));
    }
  }

  /** Applies the impairments to one datagram and forwards what is left. */
  #impair(
    datagram: Uint8Array,
    forward: (bytes: Uint8Array) => Promise<number>,
  ): void {
    const o = this.#options;
    const random = this.#random;
    this.stats.datagrams++;
    if (random() < o.drop) {
      this.stats.dropped++;
      return;
    }
    let bytes = datagram;
    if (random() < o.corrupt && bytes.length > 0) {
      bytes = bytes.slice();
      const at = Math.floor(random() * bytes.length);
      bytes[at] ^= 1 + Math.floor(random() * 255);
      this.stats.corrupted++;
    }
    const copies = random() < o.duplicate ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    let delay = o.delayMs > 0 ? random() * o.delayMs : 0;
    if (random() < o.reorder) {
      delay += o.reorderMs;
      this.stats.reordered++;
    }
    for (let i = 0; i < copies; i++) {
      if (delay <= 0) this.#send(forward, bytes);
      else {
        const timer = setTimeout(() => {
          this.#timers.delete(timer);
          this.#send(forward, bytes);
        }, delay);
        this.#timers.add(timer);
      }
    }
  }

  /**
   * Forwards in arrival order: Deno runs UDP sends that are not awaited in
   * last-in, first-out order, which would reorder every burst.
   */
  #send(
    forward: (bytes: Uint8Array) => Promise<number>,
    bytes: Uint8Array,
  ): void {
    if (this.#closed) return;
    const sent = this.#sendChain.then(() =>
      this.#closed ? undefined : forward(bytes).then(() => {}, () => {})
    );
    this.#sendChain = sent;
    this.#track(sent);
  }

  async #acceptLoop(listener: Deno.TcpListener): Promise<void> {
    while (!this.#closed) {
      let client: Deno.TcpConn;
      try {
        client = await listener.accept();
      } catch {
        return;
      }
      this.stats.tcpConnections++;
      this.#track(this.#forwardTcp(client));
    }
  }

  async #forwardTcp(client: Deno.TcpConn): Promise<void> {
    this.#tcpConns.add(client);
    let server: Deno.TcpConn | undefined;
    try {
      server = await Deno.connect({
        hostname: this.#options.targetHost,
        port: this.#options.targetPort,
      });
      this.#tcpConns.add(server);
      await Promise.all([pump(client, server), pump(server, client)]);
    } catch {
      // A reset on either side ends the pair.
    } finally {
      for (const conn of [client, server]) {
        if (!conn) continue;
        this.#tcpConns.delete(conn);
        try {
          conn.close();
        } catch { /* closed */ }
      }
    }
  }

  /** Stops forwarding and releases every socket and timer. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    const closeQuietly = (c: { close(): void }) => {
      try {
        c.close();
      } catch { /* closed */ }
    };
    closeQuietly(this.#front);
    if (this.#tcp) closeQuietly(this.#tcp);
    for (const upstream of this.#upstreams.values()) closeQuietly(upstream);
    for (const conn of this.#tcpConns) closeQuietly(conn);
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }

  /** Same as {@linkcode LossyRelay.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Copies `from` to `to` until EOF, then half-closes `to`. */
async function pump(from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  while (true) {
    const n = await from.read(buffer);
    if (n === null) break;
    let offset = 0;
    while (offset < n) offset += await to.write(buffer.subarray(offset, n));
  }
  await to.closeWrite().catch(() => {});
}

/** Usage of the relay's command line. */
export const RELAY_USAGE =
  "usage: relay --target-port N [--target-host H] [--port P] [--seed S] " +
  "[--drop p] [--duplicate p] [--reorder p] [--corrupt p] [--delay-ms ms]";

/**
 * Parses the relay's command line.
 *
 * @example
 * ```ts
 * import { parseRelayArgs } from "./relay.ts";
 * const options = parseRelayArgs(["--target-port", "9000", "--drop", "0.1"]);
 * if (options !== "help") console.log(options.drop); // 0.1
 * ```
 *
 * @param args The arguments.
 * @returns The relay's options, or `"help"` for `-h/--help`.
 * @throws {UsageError} On a bad command line.
 */
export function parseRelayArgs(args: string[]): RelayOptions | "help" {
  const { values } = parseCommandLine({
    args,
    options: {
      help: { type: "boolean", short: "h" },
      "target-port": { type: "string" },
      "target-host": { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "0" },
      seed: { type: "string", default: "1" },
      drop: { type: "string", default: "0" },
      duplicate: { type: "string", default: "0" },
      reorder: { type: "string", default: "0" },
      corrupt: { type: "string", default: "0" },
      "delay-ms": { type: "string", default: "0" },
    },
  });
  if (values.help) return "help";
  if (values["target-port"] === undefined) {
    throw new UsageError("missing --target-port");
  }
  const rate = (name: "drop" | "duplicate" | "reorder" | "corrupt") => {
    const value = Number(values[name]);
    if (!(value >= 0 && value <= 1)) {
      throw new UsageError(`invalid --${name} "${values[name]}": 0 to 1`);
    }
    return value;
  };
  const delayMs = Number(values["delay-ms"]);
  if (!(delayMs >= 0 && delayMs <= 60_000)) {
    throw new UsageError(`invalid --delay-ms "${values["delay-ms"]}"`);
  }
  const seed = Number(values.seed);
  if (!Number.isInteger(seed)) {
    throw new UsageError(`invalid --seed "${values.seed}"`);
  }
  return {
    targetPort: parsePort(values["target-port"], false),
    targetHost: values["target-host"],
    port: parsePort(values.port),
    seed,
    drop: rate("drop"),
    duplicate: rate("duplicate"),
    reorder: rate("reorder"),
    corrupt: rate("corrupt"),
    delayMs,
  };
}

if (import.meta.main) {
  let options: RelayOptions | "help";
  try {
    options = parseRelayArgs(Deno.args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`relay: ${error.message}`);
    console.error(RELAY_USAGE);
    Deno.exit(2);
  }
  if (options === "help") {
    console.log(RELAY_USAGE);
    Deno.exit(0);
  }
  const relay = LossyRelay.start(options);
  console.log(
    `relay listening on 127.0.0.1:${relay.port} -> ${options.targetHost}:${options.targetPort}`,
  );
}
