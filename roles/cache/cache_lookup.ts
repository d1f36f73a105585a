/**
 * How the cache answers a `get` without ever serving a stale copy, and with
 * one origin fetch for concurrent misses:
 *
 * 1. If a fetch of the name is in flight, wait for it (its error, such as
 *    the origin's `not-found`, is everybody's error).
 * 2. If the name is cached, revalidate: `STAT` the origin and compare size
 *    and SHA-256. Equal → deliver the cached file ("from cache"). The origin
 *    says the file is gone → the cached copy is removed and the error
 *    relayed. The origin is unreachable → the get fails (a copy that cannot
 *    be revalidated is not served).
 * 3. Otherwise (not cached, or changed): fetch from the origin, verify,
 *    store, deliver ("from origin"). The fetch is registered so that
 *    concurrent gets of the same name join it instead of fetching again;
 *    a joiner still revalidates afterwards (the fetch may have started
 *    before the joiner's request arrived), which costs a `STAT`, never a
 *    second transfer — and it is told "from origin", because the file was
 *    not cached when it asked.
 *
 * The file is opened before the answer: the delivered bytes are the ones
 * whose version was checked, even if a newer version replaces them meanwhile.
 *
 * @module
 */

import { PartialFile } from "../partial_file.ts";
import { RemoteError } from "../file_service/file_control.ts";
import type { FileVersion } from "../file_service/file_transfer.ts";
import type { CacheEntry, CacheStore } from "./cache_store.ts";
import type { OriginClient } from "./origin_client.ts";

/** Gives up after this many revalidations that found the file changed again. */
const MAX_ROUNDS = 8;

/** A file ready to deliver; release with {@linkcode CacheLookup.release}. */
export interface ResolvedFile {
  /** The entry (pinned). */
  entry: CacheEntry;
  /** The open file, at its start. */
  file: Deno.FsFile;
  /** Where the client is told the file came from. */
  source: "cache" | "origin";
}

/** Revalidating, coalescing lookups of the cache. */
export class CacheLookup {
  readonly #store: CacheStore;
  readonly #origin: OriginClient;
  readonly #log: (line: string) => void;
  readonly #fetches = new Map<string, Promise<void>>();
  /** Origin fetches started so far. */
  fetchCount = 0;

  /**
   * Creates the lookup.
   *
   * @param store The cache's store.
   * @param origin The origin server.
   * @param log Event lines.
   */
  constructor(
    store: CacheStore,
    origin: OriginClient,
    log: (line: string) => void = () => {},
  ) {
    this.#store = store;
    this.#origin = origin;
    this.#log = log;
  }

  /**
   * Finds a fresh copy of `name`, fetching it from the origin when needed.
   *
   * @param name A safe bare file name.
   * @returns The open, pinned file and its source.
   * @throws {RemoteError} The origin's error (relayed) or a failed fetch.
   * @throws {UnreachableError} When the origin cannot be reached.
   */
  async resolve(name: string): Promise<ResolvedFile> {
    let joined = false;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const inflight = this.#fetches.get(name);
      if (inflight) {
        joined = true;
        await inflight;
      }
      if (this.#store.lookup(name)) {
        const current = await this.#stat(name);
        const cached = this.#store.lookup(name);
        if (cached && sameVersion(cached, current)) {
          const file = await this.#open(cached);
          if (file) {
            this.#store.touch(cached);
            return { entry: cached, file, source: joined ? "origin" : "cache" };
          }
          continue;
        }
        // The origin's file changed, or the cached copy did (re-hashed
        // at start after a change while the cache was down).
        if (cached) {
          this.#log(`"${name}" differs from the origin's copy: refetching`);
        }
      }
      if (this.#fetches.has(name)) continue;
      const fetched = await this.#fetch(name);
      if (fetched) return { ...fetched, source: "origin" };
    }
    throw new RemoteError(
      "transfer-failed",
      `Cannot get "${name}": it keeps changing on the origin server`,
    );
  }

  /**
   * Closes the file and unpins the entry of a delivery.
   *
   * @param resolved What {@linkcode CacheLookup.resolve} returned.
   */
  async release(resolved: ResolvedFile): Promise<void> {
    try {
      resolved.file.close();
    } catch { /* already closed */ }
    await this.#store.unpin(resolved.entry);
  }

  async #stat(name: string): Promise<FileVersion> {
    try {
      return await this.#origin.stat(name);
    } catch (error) {
      if (error instanceof RemoteError && error.code === "not-found") {
        await this.#store.remove(name, "gone from the origin");
      }
      throw error;
    }
  }

  /** Pins and opens `entry`; `undefined` when its file was replaced. */
  async #open(entry: CacheEntry): Promise<Deno.FsFile | undefined> {
    this.#store.pin(entry);
    let file: Deno.FsFile | undefined;
    try {
      // synchronous open and stat: microseconds each, where an async call's
      // trip through Deno's blocking pool costs more than the call itself
      file = Deno.openSync(this.#store.pathOf(entry.name), { read: true });
      if (this.#store.matches(entry, file.statSync())) return file;
    } catch {
      // removed meanwhile
    }
    file?.close();
    await this.#store.unpin(entry);
    if (this.#store.lookup(entry.name) === entry) {
      await this.#store.remove(entry.name, "its file changed on disk");
    }
    return undefined;
  }

  /** Fetches `name` (registered for joiners); returns it opened and pinned. */
  #fetch(
    name: string,
  ): Promise<{ entry: CacheEntry; file: Deno.FsFile } | undefined> {
    this.fetchCount++;
    const work = (async () => {
      const partial = await PartialFile.create(this.#store.pathOf(name));
      try {
        const version = await this.#origin.fetch(name, partial.file);
        const entry = await this.#store.admit(name, partial, version);
        this.#log(`fetched "${name}" from the origin (${version.size} bytes)`);
        let file: Deno.FsFile | undefined;
        try {
          file = await Deno.open(this.#store.pathOf(name), { read: true });
          if (this.#store.matches(entry, await file.stat())) {
            return { entry, file };
          }
        } catch { /* removed meanwhile */ }
        file?.close();
        await this.#store.unpin(entry);
        return undefined;
      } finally {
        await partial.discard();
      }
    })();
    const shared = work.finally(() => this.#fetches.delete(name)).then(
      () => {},
    );
    shared.catch(() => {});
    this.#fetches.set(name, shared);
    return work;
  }
}

function sameVersion(entry: CacheEntry, version: FileVersion): boolean {
  return entry.size === version.size && entry.sha256 === version.sha256;
}
