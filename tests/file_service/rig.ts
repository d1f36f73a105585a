/**
 * A running file service for end-to-end tests: the real `server` (origin)
 * and `cache` executables as processes on 127.0.0.1, each in its own
 * temporary directory, plus client directories and a way to run client
 * sessions (real `client` processes) against them.
 *
 * @module
 */

import { join } from "node:path";
import {
  type RoleProcess,
  runRole,
  startRole,
} from "../_helpers/role_process.ts";

/** The transports the suite runs over. */
export const TRANSPORTS = ["tcp", "snw"] as const;
/** A transport name. */
export type TransportName = typeof TRANSPORTS[number];

/** The exact transcript of SPEC §1. */
export const SPEC_TRANSCRIPT = "Enter command: put test.txt\n" +
  "Awaiting server response.\n" +
  "Server response: File successfully uploaded.\n" +
  "Enter command: get test.txt\n" +
  "Server response: File delivered from origin.\n" +
  "Enter command: quit\n" +
  "Exiting program!\n";

const LISTENING = /listening on [^\s]+:(\d+)/;

/**
 * Waits for a role's listening line and returns its port.
 *
 * @param role The process.
 * @returns The port it printed.
 */
export async function listeningPort(role: RoleProcess): Promise<number> {
  const match = await role.stdout.waitFor(LISTENING, 20_000);
  return Number(match[1]);
}

/** Options of {@linkcode FileServiceRig.start}. */
export interface RigOptions {
  /** Extra arguments of the origin. */
  originArgs?: string[];
  /** Extra arguments of the cache. */
  cacheArgs?: string[];
  /** Environment of every process. */
  env?: Record<string, string>;
  /** Most open file descriptors the origin and the cache may have. */
  fdLimit?: number;
  /** Point the cache at this port instead of the origin's (a relay or proxy). */
  cacheOriginPort?: (originPort: number) => Promise<number> | number;
}

/** Origin + cache processes and directories; `await using` stops and removes all. */
export class FileServiceRig implements AsyncDisposable {
  /** The temporary root. */
  readonly root: string;
  /** The origin's directory. */
  readonly originDir: string;
  /** The cache's directory. */
  readonly cacheDir: string;
  /** The transport. */
  readonly transport: TransportName;
  /** The origin process. */
  origin!: RoleProcess;
  /** The cache process. */
  cache!: RoleProcess;
  /** The origin's port. */
  originPort = 0;
  /** The cache's port. */
  cachePort = 0;
  /** The port the cache uses for the origin. */
  cacheUpstreamPort = 0;
  readonly #options: RigOptions;

  private constructor(
    root: string,
    transport: TransportName,
    options: RigOptions,
  ) {
    this.root = root;
    this.transport = transport;
    this.originDir = join(root, "origin");
    this.cacheDir = join(root, "cache");
    this.#options = options;
  }

  /**
   * Starts origin and cache.
   *
   * @param transport `tcp` or `snw`.
   * @param options Extra arguments, environment, upstream redirection.
   * @returns The rig.
   */
  static async start(
    transport: TransportName,
    options: RigOptions = {},
  ): Promise<FileServiceRig> {
    const root = await Deno.makeTempDir({ prefix: "sockkit-files-" });
    const rig = new FileServiceRig(root, transport, options);
    try {
      await rig.startOrigin();
      rig.cacheUpstreamPort = options.cacheOriginPort
        ? await options.cacheOriginPort(rig.originPort)
        : rig.originPort;
      await rig.startCache();
    } catch (error) {
      await rig[Symbol.asyncDispose]();
      throw error;
    }
    return rig;
  }

  /** Starts (or restarts, on the same port when known) the origin. */
  async startOrigin(): Promise<void> {
    this.origin = startRole("server", [
      String(this.originPort),
      this.transport,
      "--dir",
      this.originDir,
      "--log",
      ...(this.#options.originArgs ?? []),
    ], { env: this.#options.env, fdLimit: this.#options.fdLimit });
    this.originPort = await listeningPort(this.origin);
  }

  /** Starts (or restarts, on the same port when known) the cache. */
  async startCache(extraArgs: string[] = []): Promise<void> {
    this.cache = startRole("cache", [
      String(this.cachePort),
      "127.0.0.1",
      String(this.cacheUpstreamPort),
      this.transport,
      "--dir",
      this.cacheDir,
      "--log",
      ...(this.#options.cacheArgs ?? []),
      ...extraArgs,
    ], { env: this.#options.env, fdLimit: this.#options.fdLimit });
    this.cachePort = await listeningPort(this.cache);
  }

  /**
   * Creates (if needed) and returns a client directory.
   *
   * @param name The directory's name under the root.
   * @returns Its path.
   */
  async clientDir(name = "client"): Promise<string> {
    const dir = join(this.root, name);
    await Deno.mkdir(dir, { recursive: true });
    return dir;
  }

  /**
   * The client's arguments for this rig.
   *
   * @param dir The client's directory.
   * @param ports Override the server or cache port (relays, proxies, dead ports).
   * @returns The arguments.
   */
  clientArgs(
    dir: string,
    ports: { server?: number; cache?: number } = {},
  ): string[] {
    return [
      "127.0.0.1",
      String(ports.server ?? this.originPort),
      "127.0.0.1",
      String(ports.cache ?? this.cachePort),
      this.transport,
      "--dir",
      dir,
    ];
  }

  /**
   * Runs one client session with piped input.
   *
   * @param dir The client's directory.
   * @param input Everything typed, at once.
   * @param ports Port overrides.
   * @param extra Extra client arguments.
   * @returns Exit code and output.
   */
  session(
    dir: string,
    input: string,
    ports: { server?: number; cache?: number } = {},
    extra: string[] = [],
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    return runRole("client", [...this.clientArgs(dir, ports), ...extra], {
      input,
      env: this.#options.env,
      timeoutMs: 60_000,
    });
  }

  /**
   * Starts an interactive client process (stdin piped) on `dir`.
   *
   * @param dir The client's directory.
   * @returns The running client.
   */
  startClient(dir: string): RoleProcess {
    return startRole("client", this.clientArgs(dir), {
      stdin: true,
      env: this.#options.env,
    });
  }

  /** Stops both servers and removes every directory. */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const role of [this.cache, this.origin]) {
      if (role) await role[Symbol.asyncDispose]();
    }
    await Deno.remove(this.root, { recursive: true }).catch(() => {});
  }
}

/**
 * Lines of a role's `--log` output that match `pattern`.
 *
 * @param role The process.
 * @param pattern What to count.
 * @returns The matching lines.
 */
export function logLines(role: RoleProcess, pattern: RegExp): string[] {
  return role.stdout.lines.filter((line) => pattern.test(line));
}

/**
 * The names in a directory (temporary files included), sorted.
 *
 * @param dir The directory.
 * @returns Its entries' names.
 */
export async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}
