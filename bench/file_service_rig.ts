/**
 * The file service as the evaluation runs it: the real `server` (origin),
 * `cache` and interactive `client` executables on 127.0.0.1, each in its own
 * folder, optionally with the seeded lossy relay in front of the origin and
 * in front of the cache (so both hops of an uncached `get` are impaired).
 * The client is driven through its prompt (`put <f>`, `get <f>`), and each
 * command is timed from writing it to the client's `Server response:` line.
 *
 * @module
 */

import { join } from "node:path";
import { type RoleProcess, startRole } from "../tests/_helpers/role_process.ts";
import { LossyRelay } from "./relay.ts";

/** Options of {@linkcode FileServiceRig.start}. */
export interface RigOptions {
  /** `tcp` or `snw`. */
  transport: "tcp" | "snw";
  /** Working folder (gets `server/`, `cache/`, `client/`). */
  dir: string;
  /** Datagram loss of the relays, 0..1; `undefined` runs without relays. */
  relayDrop?: number;
  /** Seed of the relays' generator. */
  seed?: number;
  /** Extra environment for the roles (SNW tuning). */
  env?: Record<string, string>;
  /** Bound on one command, ms (default 300 000). */
  commandTimeoutMs?: number;
}

/** A command's outcome and its wall-clock window. */
export interface CommandTiming {
  /** The client's response text (after `Server response: `). */
  response: string;
  /** When the command was written, ms since the epoch. */
  startMs: number;
  /** When the response line arrived, ms since the epoch. */
  endMs: number;
}

/** A command the client answered with something else than a response. */
export class RigCommandError extends Error {
  /**
   * Creates the error.
   *
   * @param message What happened, with the roles' stderr.
   */
  constructor(message: string) {
    super(message);
    this.name = "RigCommandError";
  }
}

function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Origin, cache, relays and client of one configuration. */
export class FileServiceRig implements AsyncDisposable {
  /** The origin's port (TCP and UDP). */
  readonly originPort: number;
  /** The cache's port (TCP and UDP). */
  readonly cachePort: number;
  /** The client's folder (files to `put` go here). */
  readonly clientDir: string;
  readonly #roles: RoleProcess[];
  readonly #relays: LossyRelay[];
  readonly #client: RoleProcess;
  readonly #timeoutMs: number;
  #responses = 0;

  private constructor(
    ports: { origin: number; cache: number },
    clientDir: string,
    roles: RoleProcess[],
    relays: LossyRelay[],
    timeoutMs: number,
  ) {
    this.originPort = ports.origin;
    this.cachePort = ports.cache;
    this.clientDir = clientDir;
    this.#roles = roles;
    this.#relays = relays;
    this.#client = roles[roles.length - 1];
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Starts origin, relays (when asked), cache and client; waits until each
   * role is listening and the client shows its prompt.
   *
   * @param options Transport, folder, loss, environment.
   * @returns The running rig.
   */
  static async start(options: RigOptions): Promise<FileServiceRig> {
    const roles: RoleProcess[] = [];
    const relays: LossyRelay[] = [];
    const env = options.env ?? {};
    const t = options.transport;
    try {
      for (const sub of ["server", "cache", "client"]) {
        await Deno.mkdir(join(options.dir, sub), { recursive: true });
      }
      const origin = startRole("server", [
        "0",
        t,
        "--host",
        "127.0.0.1",
        "--dir",
        join(options.dir, "server"),
      ], { env });
      roles.push(origin);
      const originPort = Number(
        (await origin.stdout.waitFor(/listening on [^:\s]+:(\d+)/, 30_000))[1],
      );
      const relayed = options.relayDrop !== undefined;
      const relay = (targetPort: number, seed: number) => {
        const r = LossyRelay.start({
          targetPort,
          seed,
          drop: options.relayDrop ?? 0,
        });
        relays.push(r);
        return r.port;
      };
      const seed = options.seed ?? 1;
      const cacheOrigin = relayed ? relay(originPort, seed) : originPort;
      const cache = startRole("cache", [
        "0",
        "127.0.0.1",
        String(cacheOrigin),
        t,
        "--host",
        "127.0.0.1",
        "--dir",
        join(options.dir, "cache"),
      ], { env });
      roles.push(cache);
      const cachePort = Number(
        (await cache.stdout.waitFor(/listening on [^:\s]+:(\d+)/, 30_000))[1],
      );
      const clientCache = relayed ? relay(cachePort, seed + 1) : cachePort;
      const clientDir = join(options.dir, "client");
      const client = startRole("client", [
        "127.0.0.1",
        String(originPort),
        "127.0.0.1",
        String(clientCache),
        t,
        "--dir",
        clientDir,
      ], { env, stdin: true });
      roles.push(client);
      await client.stdout.waitFor("Enter command: ", 30_000);
      return new FileServiceRig(
        { origin: originPort, cache: cachePort },
        clientDir,
        roles,
        relays,
        options.commandTimeoutMs ?? 300_000,
      );
    } catch (error) {
      await closeAll(roles, relays);
      throw error;
    }
  }

  /** The process ids of origin, cache and client (for memory figures). */
  get rolePids(): { origin: number; cache: number; client: number } {
    const [origin, cache] = this.#roles;
    return {
      origin: origin.child.pid,
      cache: cache.child.pid,
      client: this.#client.child.pid,
    };
  }

  /**
   * Types one command into the client and waits for its response line.
   *
   * @param command `put <f>` or `get <f>`.
   * @returns The response and the command's wall-clock window.
   * @throws {RigCommandError} When the client prints an error or times out.
   */
  async command(command: string): Promise<CommandTiming> {
    const seen = this.#client.stdout.text.length;
    const errorsBefore = this.#client.stderr.text.length;
    const startMs = nowMs();
    await this.#client.write(`${command}\n`);
    try {
      // Anchored after what was already read: linear, no backtracking blow-up.
      await this.#client.stdout.waitFor(
        new RegExp(`^[\\s\\S]{${seen}}[\\s\\S]*?Enter command: `),
        this.#timeoutMs,
      );
    } catch (error) {
      throw new RigCommandError(
        `"${command}" got no answer: ${(error as Error).message.trim()}`,
      );
    }
    const endMs = nowMs();
    const responses = [
      ...this.#client.stdout.text.matchAll(/Server response: ([^\n]*)\n/g),
    ];
    if (responses.length <= this.#responses) {
      throw new RigCommandError(
        `"${command}" failed: ${
          this.#client.stderr.text.slice(errorsBefore).trim() || "no response"
        }`,
      );
    }
    this.#responses = responses.length;
    return { response: responses[responses.length - 1][1], startMs, endMs };
  }

  /** Stops the client (`quit`), the cache, the origin and the relays. */
  async close(): Promise<void> {
    await this.#client.write("quit\n").catch(() => {});
    await closeAll(this.#roles, this.#relays);
  }

  /** Same as {@linkcode close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

async function closeAll(roles: RoleProcess[], relays: LossyRelay[]) {
  for (const role of [...roles].reverse()) {
    await role[Symbol.asyncDispose]().catch(() => {});
  }
  for (const relay of relays) await relay.close();
}
