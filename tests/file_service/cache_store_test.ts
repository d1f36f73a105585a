/**
 * CacheStore (roles/cache/cache_store.ts) on a real directory: removing or
 * evicting an entry deletes its own file, never a newer file that took the
 * name meanwhile.
 */

import { deepEqual, equal } from "node:assert/strict";
import { join } from "node:path";
import { CacheStore } from "../../roles/cache/cache_store.ts";
import { PartialFile } from "../../roles/partial_file.ts";
import { tempDir } from "../_helpers/files.ts";

/** Stores `size` bytes under `name` and unpins the entry. */
async function store(cache: CacheStore, name: string, size: number) {
  const partial = await PartialFile.create(cache.pathOf(name));
  partial.file.writeSync(new Uint8Array(size).fill(1));
  const entry = await cache.admit(name, partial, {
    size,
    sha256: "ab".repeat(32),
  });
  await cache.unpin(entry);
}

/** Puts another file (another inode) under `name`, as a commit would. */
async function replaceOnDisk(dir: string, name: string): Promise<void> {
  const other = join(dir, `.${name}.other`);
  await Deno.writeTextFile(other, "newer");
  await Deno.rename(other, join(dir, name));
}

Deno.test("cache store: remove and eviction delete the entry's own file, not a newer one under its name", async () => {
  await using dir = await tempDir();
  const log: string[] = [];
  const cache = await CacheStore.open({
    dir: dir.path,
    maxBytes: 3000,
    log: (line) => log.push(line),
  });
  try {
    await store(cache, "a.bin", 1000);
    await replaceOnDisk(dir.path, "a.bin");
    await cache.remove("a.bin", "test");
    equal(await Deno.readTextFile(join(dir.path, "a.bin")), "newer");

    await store(cache, "b.bin", 2000);
    await replaceOnDisk(dir.path, "b.bin");
    await store(cache, "c.bin", 2000); // pushes b.bin out
    deepEqual(log.filter((line) => line.startsWith("evicted")), [
      'evicted "b.bin" (2000 bytes)',
    ]);
    equal(await Deno.readTextFile(join(dir.path, "b.bin")), "newer");
    // An entry whose file is its own is removed with it.
    await cache.remove("c.bin", "test");
    await Deno.lstat(join(dir.path, "c.bin")).then(
      () => Promise.reject(new Error("c.bin is still there")),
      () => {},
    );
  } finally {
    await cache.close();
  }
});
