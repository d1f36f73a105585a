/**
 * The cache's store: the cached files under their own names in the cache
 * directory, an index of their versions (size + SHA-256) and recency, a
 * byte bound enforced by least-recently-used eviction, and persistence so
 * the contents survive a restart.
 *
 * - The index is `.sockkit-cache-index.json` in the cache directory,
 *   rewritten atomically (temporary name + rename) right after every change
 *   of content and at most every {@linkcode TOUCH_FLUSH_MS} after a hit.
 * - On open, leftover temporary files are removed, index entries whose file
 *   is gone or has another size are dropped, and files without an entry are
 *   hashed and adopted as least recently used.
 * - An entry being delivered is *pinned* and never evicted; a file larger
 *   than the bound is delivered, then evicted once unpinned. A replaced or
 *   evicted file that is still being read stays readable through its open
 *   handle (POSIX unlink/rename semantics).
 *
 * @module
 */

import { join } from "node:path";
import { writeAll } from "../../transport/byte_io.ts";
import {
  isTempName,
  PartialFile,
  removeAbandonedPartials,
} from "../partial_file.ts";
import {
  CACHE_INDEX_NAME,
  storePath,
} from "../file_service/file_store_names.ts";
import {
  type FileVersion,
  hashOpenFile,
} from "../file_service/file_transfer.ts";

/** Delay before a hit's new recency is written to the index, in ms. */
export const TOUCH_FLUSH_MS = 500;

/** One cached file. */
export interface CacheEntry {
  /** The bare file name. */
  readonly name: string;
  /** Size in bytes. */
  readonly size: number;
  /** SHA-256, lower-case hex. */
  readonly sha256: string;
  /** The file's device and inode when stored (detects replacement). */
  readonly identity: string;
  /** The file's modification time when stored, ms (detects a change in place). */
  readonly mtimeMs: number;
  /** Recency: larger is more recent. */
  lastUsed: number;
  /** Deliveries in progress. */
  pins: number;
}

/** Options of {@linkcode CacheStore.open}. */
export interface CacheStoreOptions {
  /** The cache directory. */
  dir: string;
  /** The byte bound. */
  maxBytes: number;
  /** Event lines (`--log`). */
  log?: (line: string) => void;
}

interface IndexRecord {
  name: string;
  size: number;
  sha256: string;
  lastUsed: number;
  /** Absent in indexes written before it was recorded. */
  mtimeMs?: number;
}

function identityOf(info: Deno.FileInfo): string {
  return `${info.dev}:${info.ino}`;
}

function mtimeOf(info: Deno.FileInfo): number {
  return info.mtime?.getTime() ?? -1;
}

function isIndexRecord(value: unknown): value is IndexRecord {
  if (typeof value !== "object" || value === null) return false;
  const r = value as Record<string, unknown>;
  return typeof r.name === "string" && Number.isSafeInteger(r.size) &&
    typeof r.sha256 === "string" && /^[0-9a-f]{64}$/.test(r.sha256) &&
    typeof r.lastUsed === "number" &&
    (r.mtimeMs === undefined || typeof r.mtimeMs === "number");
}

/** The cached files with their index and LRU bound. */
export class CacheStore {
  readonly #dir: string;
  readonly #maxBytes: number;
  readonly #log: (line: string) => void;
  readonly #entries = new Map<string, CacheEntry>();
  #bytes = 0;
  #clock = 0;
  #saving: Promise<void> = Promise.resolve();
  #touchTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  private constructor(options: CacheStoreOptions) {
    this.#dir = options.dir;
    this.#maxBytes = options.maxBytes;
    this.#log = options.log ?? (() => {});
  }

  /**
   * Opens (and repairs) the store in `dir`.
   *
   * @param options Directory, bound, log.
   * @returns The store.
   */
  static async open(options: CacheStoreOptions): Promise<CacheStore> {
    const store = new CacheStore(options);
    await Deno.mkdir(options.dir, { recursive: true });
    await removeAbandonedPartials(options.dir);
    await store.#load();
    await store.#evict();
    await store.#save({ strict: true }); // a folder it cannot write: say so now
    return store;
  }

  /** Bytes held by entries. */
  get totalBytes(): number {
    return this.#bytes;
  }

  /** The byte bound. */
  get maxBytes(): number {
    return this.#maxBytes;
  }

  /** The cached names, least recently used first. */
  get names(): string[] {
    return [...this.#entries.values()].sort((a, b) => a.lastUsed - b.lastUsed)
      .map((entry) => entry.name);
  }

  /**
   * The current entry of `name`.
   *
   * @param name A bare file name.
   * @returns The entry, if cached.
   */
  lookup(name: string): CacheEntry | undefined {
    return this.#entries.get(name);
  }

  /**
   * The path of a cached file.
   *
   * @param name A bare file name.
   * @returns Its path in the cache directory.
   */
  pathOf(name: string): string {
    return storePath(this.#dir, name);
  }

  /**
   * Keeps `entry` from eviction until {@linkcode CacheStore.unpin}.
   *
   * @param entry The entry.
   */
  pin(entry: CacheEntry): void {
    entry.pins++;
  }

  /**
   * Ends one delivery of `entry`; evicts when over the bound.
   *
   * @param entry The entry.
   */
  async unpin(entry: CacheEntry): Promise<void> {
    entry.pins = Math.max(0, entry.pins - 1);
    if (entry.pins === 0) await this.#evict();
  }

  /**
   * Marks `entry` as most recently used.
   *
   * @param entry The entry.
   */
  touch(entry: CacheEntry): void {
    entry.lastUsed = ++this.#clock;
    if (this.#touchTimer === undefined && !this.#closed) {
      this.#touchTimer = setTimeout(() => {
        this.#touchTimer = undefined;
        void this.#save();
      }, TOUCH_FLUSH_MS);
    }
  }

  /**
   * Stores a completely received and verified file under its name,
   * replacing an older version, and returns its entry pinned once.
   *
   * @param name A bare file name.
   * @param partial The temporary file holding the content.
   * @param version Its verified size and SHA-256.
   * @returns The new entry (pinned; unpin after delivery).
   */
  async admit(
    name: string,
    partial: PartialFile,
    version: FileVersion,
  ): Promise<CacheEntry> {
    const info = await partial.file.stat();
    await partial.commit();
    this.#drop(name);
    const entry: CacheEntry = {
      name,
      size: version.size,
      sha256: version.sha256,
      identity: identityOf(info),
      mtimeMs: mtimeOf(info),
      lastUsed: ++this.#clock,
      pins: 1,
    };
    this.#entries.set(name, entry);
    this.#bytes += entry.size;
    await this.#save();
    await this.#evict();
    return entry;
  }

  /**
   * Forgets `name` and removes its file.
   *
   * @param name A bare file name.
   * @param why The reason, for the log line.
   */
  async remove(name: string, why: string): Promise<void> {
    const entry = this.#drop(name);
    if (!entry) return;
    await this.#removeFileOf(entry);
    this.#log(`removed "${name}" (${why})`);
    await this.#save();
  }

  /**
   * Whether an open file is the one `entry` describes.
   *
   * @param entry The entry.
   * @param info The open file's `stat`.
   * @returns `true` when device, inode and size match.
   */
  matches(entry: CacheEntry, info: Deno.FileInfo): boolean {
    return identityOf(info) === entry.identity && info.size === entry.size &&
      mtimeOf(info) === entry.mtimeMs;
  }

  /** Writes the index a last time and stops its timer. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#touchTimer);
    this.#touchTimer = undefined;
    await this.#save();
  }

  /** Forgets `name`'s entry; returns it (`undefined` when there was none). */
  #drop(name: string): CacheEntry | undefined {
    const old = this.#entries.get(name);
    if (!old) return undefined;
    this.#entries.delete(name);
    this.#bytes -= old.size;
    return old;
  }

  /**
   * Removes the file of a dropped entry, unless the name now holds another
   * file (a newer version committed meanwhile): that one stays.
   */
  async #removeFileOf(entry: CacheEntry): Promise<void> {
    const path = this.pathOf(entry.name);
    try {
      if (identityOf(await Deno.lstat(path)) !== entry.identity) return;
      await Deno.remove(path);
    } catch { /* gone already */ }
  }

  async #evict(): Promise<void> {
    // A file larger than the bound never fits: while it is being delivered
    // it does not push others out, and it is the first to go afterwards.
    const max = this.#maxBytes;
    const entries = [...this.#entries.values()];
    let excess = this.#bytes - max -
      entries.filter((e) => e.pins > 0 && e.size > max)
        .reduce((sum, e) => sum + e.size, 0);
    if (excess <= 0) return;
    const victims: CacheEntry[] = [];
    const candidates = entries
      .filter((entry) => entry.pins === 0)
      .sort((a, b) =>
        Number(b.size > max) - Number(a.size > max) || a.lastUsed - b.lastUsed
      );
    for (const entry of candidates) {
      if (excess <= 0) break;
      this.#drop(entry.name);
      excess -= entry.size;
      victims.push(entry);
    }
    if (victims.length === 0) return;
    for (const victim of victims) {
      await this.#removeFileOf(victim);
      this.#log(`evicted "${victim.name}" (${victim.size} bytes)`);
    }
    await this.#save();
  }

  /**
   * Writes the index (after any write under way). The index only speeds up
   * a restart: a failure to write it is logged, and the files stay served;
   * only `strict` (at startup) rejects with it.
   */
  #save(options: { strict?: boolean } = {}): Promise<void> {
    const next = this.#saving.then(async () => {
      const records: IndexRecord[] = [...this.#entries.values()].map((e) => ({
        name: e.name,
        size: e.size,
        sha256: e.sha256,
        lastUsed: e.lastUsed,
        mtimeMs: e.mtimeMs,
      }));
      const json = JSON.stringify({ format: 1, entries: records }, null, 1);
      await using partial = await PartialFile.create(
        join(this.#dir, CACHE_INDEX_NAME),
      );
      await writeAll(partial.file, new TextEncoder().encode(json));
      await partial.commit();
    });
    this.#saving = next.catch((error) => {
      this.#log(`cannot write the index: ${(error as Error).message}`);
    });
    return options.strict ? next : this.#saving;
  }

  async #load(): Promise<void> {
    let records: IndexRecord[] = [];
    try {
      const text = await Deno.readTextFile(join(this.#dir, CACHE_INDEX_NAME));
      const parsed = JSON.parse(text) as { entries?: unknown };
      if (Array.isArray(parsed.entries)) {
        records = parsed.entries.filter(isIndexRecord);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        this.#log(`index unreadable, rebuilding: ${(error as Error).message}`);
      }
    }
    records.sort((a, b) => a.lastUsed - b.lastUsed);
    const recorded = new Map(records.map((r) => [r.name, r]));
    const adopt: string[] = [];
    for await (const item of Deno.readDir(this.#dir)) {
      if (
        !item.isFile || isTempName(item.name) ||
        item.name === CACHE_INDEX_NAME
      ) continue;
      if (!recorded.has(item.name)) adopt.push(item.name);
    }
    // Unknown files first (oldest), then the index in its recency order.
    for (const name of adopt.sort()) await this.#adopt(name);
    for (const record of records) {
      try {
        const info = await Deno.stat(this.pathOf(record.name));
        if (!info.isFile || info.size !== record.size) continue;
        if (record.mtimeMs !== undefined && record.mtimeMs !== mtimeOf(info)) {
          // Changed while the cache was down: its recorded SHA-256 may lie.
          await this.#adopt(record.name);
        } else this.#add(record, info);
      } catch {
        // gone or unsafe: dropped
      }
    }
  }

  /** Caches a file found in the directory, hashing it. */
  async #adopt(name: string): Promise<void> {
    try {
      using file = await Deno.open(this.pathOf(name), { read: true });
      const info = await file.stat();
      const sha256 = await hashOpenFile(file);
      this.#add({ name, size: info.size, sha256, lastUsed: 0 }, info);
    } catch {
      // an unsafe name or unreadable file: not cached
    }
  }

  #add(record: IndexRecord, info: Deno.FileInfo): void {
    this.#drop(record.name);
    this.#entries.set(record.name, {
      name: record.name,
      size: record.size,
      sha256: record.sha256,
      identity: identityOf(info),
      mtimeMs: mtimeOf(info),
      lastUsed: ++this.#clock,
      pins: 0,
    });
    this.#bytes += record.size;
  }
}
