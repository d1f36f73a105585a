/**
 * PartialFile (roles/partial_file.ts): written under a temporary name,
 * renamed into place only on commit, atomically or (the client) by moving
 * the old file aside and removing it in the background.
 */

import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { isTempName } from "../roles/file_service/file_store_names.ts";
import { PartialFile } from "../roles/partial_file.ts";

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) out.push(entry.name);
  return out.sort();
}

async function written(path: string, text: string): Promise<PartialFile> {
  const partial = await PartialFile.create(path);
  partial.file.writeSync(new TextEncoder().encode(text));
  return partial;
}

const COMMITS = [
  { label: "atomic rename", options: {} },
  { label: "atomic rename, sync", options: { sync: true } },
  { label: "remove first", options: { atomic: false } },
  { label: "remove first, sync", options: { atomic: false, sync: true } },
];

for (const { label, options } of COMMITS) {
  Deno.test(`partial file (${label}): commit creates or replaces the file, discard keeps the old one`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "sockkit-partial-" });
    try {
      const path = join(dir, "a.txt");
      const first = await written(path, "one");
      deepEqual((await names(dir)).length, 1);
      await first.commit(options);
      equal(await Deno.readTextFile(path), "one");
      const second = await written(path, "two");
      await second.commit(options);
      equal(await Deno.readTextFile(path), "two");
      await second.replaced; // the old file, when it was moved aside
      deepEqual(await names(dir), ["a.txt"]);
      await rejects(second.commit(options), /already finished/);
      // A failed transfer: the old file stays, the temporary one goes.
      const third = await written(path, "thr");
      await third.discard();
      equal(await Deno.readTextFile(path), "two");
      deepEqual(await names(dir), ["a.txt"]);
      // A rename that fails (here: its temporary file vanished) keeps the
      // old file under its name.
      const fourth = await written(path, "fou");
      await Deno.remove(fourth.tempPath);
      await rejects(fourth.commit(options), Deno.errors.NotFound);
      equal(await Deno.readTextFile(path), "two");
      deepEqual(await names(dir), ["a.txt"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(`partial file (${label}): a directory under the final name is never removed`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "sockkit-partial-" });
    try {
      const path = join(dir, "d");
      // Made before: refused at once, before any byte is written.
      await Deno.mkdir(path);
      await rejects(
        PartialFile.create(path),
        (error: Error) =>
          error instanceof Deno.errors.IsADirectory &&
          error.message === "a directory of that name is in the way",
      );
      deepEqual(await names(dir), ["d"]);
      // Made while the file was written: the commit fails.
      await Deno.remove(path);
      const partial = await written(path, "x");
      await Deno.mkdir(path);
      await rejects(partial.commit(options));
      equal((await Deno.stat(path)).isDirectory, true);
      deepEqual(await names(dir), ["d"], "the temporary file is removed");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("partial file: a final name of the longest length (255 bytes, ASCII or multi-byte) gets a temporary name that fits", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sockkit-partial-" });
  try {
    const bytes = (text: string) => new TextEncoder().encode(text).length;
    // 255 ASCII bytes; 85 three-byte characters; two-byte ones cut mid-way.
    for (
      const name of ["a".repeat(255), "€".repeat(85), "x" + "é".repeat(127)]
    ) {
      equal(bytes(name), 255);
      for (const options of [{}, { atomic: false }]) {
        const path = join(dir, name);
        const partial = await written(path, name);
        const temp = partial.tempPath.slice(dir.length + 1);
        ok(bytes(temp) <= 255, `${bytes(temp)} bytes`);
        ok(isTempName(temp), temp);
        ok(!temp.includes("\uFFFD"), "cut between characters");
        await partial.commit(options);
        await partial.replaced;
        equal(await Deno.readTextFile(path), name);
        deepEqual(await names(dir), [name]);
      }
      await Deno.remove(join(dir, name));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
