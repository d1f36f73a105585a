/**
 * PartialFile (roles/partial_file.ts): written under a temporary name,
 * renamed into place only on commit, atomically or (the client) by moving
 * the old file aside and removing it in the background.
 */

import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import {
  isTempName,
  PartialFile,
  removeAbandonedPartials,
} from "../roles/partial_file.ts";
import { freePort } from "./_helpers/ports.ts";
import { type RoleName, startRole } from "./_helpers/role_process.ts";

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

Deno.test("abandoned partial files: the sweep removes unlocked ones and keeps those being written, here or in another process", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sockkit-partial-" });
  let child: Deno.ChildProcess | undefined;
  let reader: ReadableStreamDefaultReader<string> | undefined;
  try {
    // Being written in this process.
    const live = await written(join(dir, "live.txt"), "live");
    // Left by a writer that was killed; a user's file.
    const dead = ".dead.txt.part-0123abcd";
    await Deno.writeTextFile(join(dir, dead), "x");
    await Deno.writeTextFile(join(dir, "user.part-0123abcd"), "mine");
    // Being written by another process.
    const module = new URL("../roles/partial_file.ts", import.meta.url).href;
    child = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { PartialFile } from ${JSON.stringify(module)};
        const p = await PartialFile.create(${
          JSON.stringify(join(dir, "other.txt"))
        });
        console.log(p.tempPath);
        await new Promise(() => setInterval(() => {}, 1000));`,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const otherTemp = (await reader.read()).value?.trim() ?? "";
    ok(otherTemp.startsWith(dir), `the other process's file: ${otherTemp}`);

    deepEqual(await removeAbandonedPartials(dir), [dead]);
    const left = await names(dir);
    for (const kept of [live.tempPath, otherTemp]) {
      ok(left.includes(kept.slice(dir.length + 1)), kept);
    }
    ok(left.includes("user.part-0123abcd"));
    // The one being written here still commits.
    await live.commit();
    equal(await Deno.readTextFile(join(dir, "live.txt")), "live");
    // Its writer killed, the other process's file is abandoned.
    child.kill("SIGKILL");
    await child.status;
    child = undefined;
    deepEqual(await removeAbandonedPartials(dir), [
      otherTemp.slice(dir.length + 1),
    ]);
    // A folder it cannot read: nothing removed, no error (the role's own
    // use of the folder reports the problem).
    deepEqual(await removeAbandonedPartials(join(dir, "missing")), []);
  } finally {
    if (child) {
      try {
        child.kill("SIGKILL");
      } catch { /* ended already */ }
      await child.status;
    }
    await reader?.cancel().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every role that keeps a folder removes the temporary files abandoned in it when it starts, and no other file", async () => {
  const root = await Deno.makeTempDir({ prefix: "sockkit-partial-" });
  try {
    const reference = join(root, "ref.bin");
    await Deno.writeTextFile(reference, "reference");
    const roles: Array<[RoleName, (dir: string) => string[]]> = [
      ["server", (dir) => [String(freePort()), "tcp", "--dir", dir]],
      ["server", (dir) => [String(freePort()), dir]], // upload receiver
      ["server", (dir) => [String(freePort()), "--dir", dir]], // stream
      [
        "server",
        (dir) => ["repeat", String(freePort()), reference, "--dir", dir],
      ],
      [
        "cache",
        (dir) => [String(freePort()), "127.0.0.1", "9", "tcp", "--dir", dir],
      ],
      [
        "client",
        (dir) => ["127.0.0.1", "9", "127.0.0.1", "9", "tcp", "--dir", dir],
      ],
    ];
    for (const [index, [name, args]] of roles.entries()) {
      const dir = join(root, String(index));
      await Deno.mkdir(dir);
      const abandoned = join(dir, ".big.bin.part-0123abcd");
      await Deno.writeTextFile(abandoned, "half");
      await Deno.writeTextFile(join(dir, "kept.part-0123abcd"), "a user's");
      await using role = startRole(name, args(dir), { stdin: true });
      const deadline = Date.now() + 10_000;
      while ((await names(dir)).includes(".big.bin.part-0123abcd")) {
        ok(
          Date.now() < deadline,
          `${name} ${args(dir).join(" ")}: not removed`,
        );
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      ok((await names(dir)).includes("kept.part-0123abcd"), `${name} ${index}`);
      role.kill();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
