/**
 * The file service with a cache (SPEC §1, seed 000): the real `server`,
 * `cache` and `client` executables on 127.0.0.1, over tcp and snw; plus the
 * pure control codec.
 */

import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { join, resolve } from "node:path";
import { LossyRelay } from "../bench/relay.ts";
import { seededRandom } from "../bench/seeded_random.ts";
import {
  decodeFileServiceMessage,
  decodeFrameLength,
  encodeFileServiceMessage,
  FileServiceFrameDecoder,
  type FileServiceMessage,
  FileServiceProtocolError,
  FRAME_HEADER_BYTES,
} from "../protocol/file_service.ts";
import { parseByteSize } from "../roles/cache/cache_server.ts";
import {
  nameInFolder,
  parseFileCommand,
} from "../roles/client/file_command.ts";
import { FileServiceClient } from "../roles/client/file_session.ts";
import { inputLines, LINE_TOO_LONG } from "../roles/client/file_input_lines.ts";
import {
  ControlChannel,
  KEEP_ALIVE_MS,
} from "../roles/file_service/file_control.ts";
import { parseSeconds } from "../roles/file_service/file_options.ts";
import { storePath } from "../roles/file_service/file_store_names.ts";
import {
  newChannelTag,
  receiveFile,
} from "../roles/file_service/file_transfer.ts";
import { UnsafeNameError, unsafeNameReason } from "../roles/file_names.ts";
import { isTempName } from "../roles/partial_file.ts";
import { transportByName } from "../transport/registry.ts";
import { readExact, writeAll } from "../transport/byte_io.ts";
import { sha256File, tempDir, writeTestFile } from "./_helpers/files.ts";
import { FullBacklogPort } from "./_helpers/full_backlog.ts";
import { freePort } from "./_helpers/ports.ts";
import {
  peakRssKiB,
  pollUntil,
  waitForSignalHandler,
} from "./_helpers/proc_status.ts";
import {
  type RoleProcess,
  runRole,
  startRole,
} from "./_helpers/role_process.ts";
import { PausingProxy } from "./file_service/pausing_proxy.ts";
import {
  FileServiceRig,
  listDir,
  listeningPort,
  logLines,
  SPEC_TRANSCRIPT,
  TRANSPORTS,
} from "./file_service/rig.ts";

const MiB = 1024 * 1024;

function prompts(...steps: string[][]): string {
  return steps.map(([command, ...out]) =>
    `Enter command: ${command}\n${out.map((l) => `${l}\n`).join("")}`
  ).join("");
}

// ---------------------------------------------------------------------------
// The control codec (pure)

const SHA = "ab".repeat(32);
const SAMPLES: FileServiceMessage[] = [
  { type: "put", tag: "t-1_A", size: 0, name: "a b.txt" },
  { type: "put", tag: "x", size: Number.MAX_SAFE_INTEGER, name: "ü€.bin" },
  { type: "get", tag: "0123456789abcdef", name: "test.txt" },
  { type: "stat", name: "..weird name " },
  { type: "ready" },
  { type: "found", size: 20 * MiB, sha256: SHA },
  { type: "done", sha256: SHA },
  { type: "ok", text: "File delivered from cache." },
  { type: "error", code: "not-found", text: 'Cannot get "x": no such file' },
  { type: "wait" },
];

Deno.test("file_service codec: every message survives encode/decode", () => {
  for (const message of SAMPLES) {
    const frame = encodeFileServiceMessage(message);
    const length = decodeFrameLength(frame);
    equal(length, frame.length - 4);
    deepEqual(decodeFileServiceMessage(frame.subarray(4)), message);
  }
});

Deno.test("file_service codec: the frame decoder handles any chunking", () => {
  const stream = new Uint8Array(
    SAMPLES.flatMap((m) => [...encodeFileServiceMessage(m)]),
  );
  for (const step of [1, 2, 3, 5, 7, 64, stream.length]) {
    const decoder = new FileServiceFrameDecoder();
    const out: FileServiceMessage[] = [];
    for (let i = 0; i < stream.length; i += step) {
      out.push(...decoder.push(stream.subarray(i, i + step)));
    }
    deepEqual(out, SAMPLES, `step ${step}`);
    equal(decoder.pending, 0);
  }
});

Deno.test("file_service codec: malformed payloads are refused with its own error", () => {
  const bad = [
    "",
    "NOPE",
    "PUT",
    "PUT t 12",
    "PUT t -1 a",
    "PUT t 01 a",
    "PUT bad/tag 1 a",
    "GET t",
    "GET  a",
    "READY now",
    "FOUND 1 xyz",
    "FOUND 99999999999999999 " + SHA,
    "DONE " + SHA.toUpperCase(),
    "ERROR nope text",
    "ERROR not-found",
    "OK line\nbreak",
    "WAIT x",
  ];
  for (const text of bad) {
    throws(
      () => decodeFileServiceMessage(new TextEncoder().encode(text)),
      FileServiceProtocolError,
      JSON.stringify(text),
    );
  }
  throws(
    () => decodeFileServiceMessage(new Uint8Array([0x4f, 0x4b, 0x20, 0xff])),
    FileServiceProtocolError,
  );
  throws(
    () => decodeFrameLength(new Uint8Array([0, 0, 0, 0])),
    FileServiceProtocolError,
  );
  throws(
    () => decodeFrameLength(new Uint8Array([0xff, 0, 0, 0])),
    FileServiceProtocolError,
  );
  throws(
    () => decodeFrameLength(new Uint8Array([0, 0])),
    FileServiceProtocolError,
  );
  throws(
    () => encodeFileServiceMessage({ type: "get", tag: "t", name: "a\nb" }),
    FileServiceProtocolError,
  );
  throws(
    () => encodeFileServiceMessage({ type: "stat", name: "x".repeat(20_000) }),
    FileServiceProtocolError,
  );
});

Deno.test("file_service codec: seeded fuzz never throws anything but its own error", () => {
  const random = seededRandom(2024);
  const frames = SAMPLES.map((m) => encodeFileServiceMessage(m));
  for (let i = 0; i < 3000; i++) {
    let bytes: Uint8Array;
    if (i % 3 === 0) {
      bytes = new Uint8Array((random() * 40) | 0);
      for (let j = 0; j < bytes.length; j++) bytes[j] = (random() * 256) | 0;
    } else {
      const frame = frames[(random() * frames.length) | 0];
      bytes = frame.slice(0, (random() * (frame.length + 1)) | 0);
      if (i % 3 === 2 && bytes.length > 0) {
        bytes[(random() * bytes.length) | 0] ^= 1 << ((random() * 8) | 0);
      }
    }
    for (
      const attempt of [
        () => decodeFileServiceMessage(bytes),
        () => new FileServiceFrameDecoder().push(bytes),
      ]
    ) {
      try {
        attempt();
      } catch (error) {
        ok(error instanceof FileServiceProtocolError, String(error));
      }
    }
  }
});

Deno.test("file_service input: commands, blanks and mistakes", () => {
  deepEqual(parseFileCommand("put test.txt"), {
    type: "put",
    name: "test.txt",
  });
  deepEqual(parseFileCommand("  get\ta.bin  "), { type: "get", name: "a.bin" });
  deepEqual(parseFileCommand("quit"), { type: "quit" });
  deepEqual(parseFileCommand("   "), { type: "empty" });
  equal(parseFileCommand("put").type, "invalid");
  equal(parseFileCommand("get a b").type, "invalid");
  equal(parseFileCommand("quit now").type, "invalid");
  equal(parseFileCommand("PUT a").type, "invalid");
  deepEqual(parseFileCommand('put "my notes.txt" '), {
    type: "put",
    name: "my notes.txt",
  });
  deepEqual(parseFileCommand('get it"s.txt'), {
    type: "get",
    name: 'it"s.txt',
  });
  for (const bad of ['put "a b', 'put "a" b', 'get ""', 'put "a"b"']) {
    equal(parseFileCommand(bad).type, "invalid", bad);
  }
  const cwd = "/home/me";
  const lexical = (path: string) => resolve(path); // no links in this tree
  for (
    const [typed, name] of [
      ["a.txt", "a.txt"],
      ["/home/me/client/a.txt", "a.txt"],
      ["client/a.txt", "a.txt"],
      ["./client/a.txt", "a.txt"],
      ["client/../client/a b.txt", "a b.txt"],
    ]
  ) deepEqual(nameInFolder(typed, "client", cwd, lexical), { name }, typed);
  deepEqual(nameInFolder("/srv/c/a.txt", "/srv/c", cwd, lexical), {
    name: "a.txt",
  });
  for (
    const typed of [
      "./a.txt",
      "/etc/passwd",
      "../client/a.txt",
      "client/sub/a.txt",
      "client/",
      "client/..",
    ]
  ) ok("error" in nameInFolder(typed, "client", cwd, lexical), typed);
  equal(parseSeconds("1.5", "timeout", 30), 1500);
  equal(parseSeconds(undefined, "timeout", 30), 30_000);
  // Longer than a timer can wait (it would fire at once): refused.
  // Only plain decimals, as every role reads them; nothing that rounds to 0.
  for (
    const bad of ["0", "-1", "x", "2147484", "3000000", "1e1", "0x10", " 5"]
      .concat(["0.0001", "Infinity", ""])
  ) {
    throws(() => parseSeconds(bad, "timeout", 30), /invalid --timeout/, bad);
  }
  equal(parseByteSize("3000"), 3000);
  equal(parseByteSize("2G"), 2 * 1024 ** 3);
  equal(parseByteSize("64MiB"), 64 * MiB);
  throws(() => parseByteSize("lots"));
});

Deno.test("file_service input: lines over the bound are dropped, not held", async () => {
  const bytes = (...parts: string[]) =>
    ReadableStream.from(parts.map((p) => new TextEncoder().encode(p)));
  const lines = async (input: ReadableStream<Uint8Array>) => {
    const out: (string | typeof LINE_TOO_LONG)[] = [];
    for await (const line of inputLines(input, 5)) out.push(line);
    return out;
  };
  deepEqual(await lines(bytes("get a\r\nabcdefghij\nquit")), [
    "get a",
    LINE_TOO_LONG,
    "quit",
  ]);
  // Over the bound across chunks, and at the end without a line break.
  deepEqual(await lines(bytes("abc", "defgh", "ij\nok\n", "toolong")), [
    LINE_TOO_LONG,
    "ok",
    LINE_TOO_LONG,
  ]);
  deepEqual(await lines(bytes("12345\n", "")), ["12345"]);
});

Deno.test("file_service input: a path is resolved as the system does, through symbolic links", async () => {
  await using dir = await tempDir();
  const cwd = dir.path;
  await Deno.mkdir(join(cwd, "client"));
  await Deno.mkdir(join(cwd, "other"));
  await Deno.symlink("../other", join(cwd, "client", "out"));
  await Deno.symlink("client", join(cwd, "lnk"));
  // client/out/.. is cwd, not client: the file it names is cwd/a.txt.
  ok("error" in nameInFolder("client/out/../a.txt", "client", cwd));
  deepEqual(nameInFolder("client/a.txt", "client", cwd), { name: "a.txt" });
  // A folder given through a link is the folder it links to.
  deepEqual(nameInFolder("client/a.txt", "lnk", cwd), { name: "a.txt" });
  deepEqual(nameInFolder(`${cwd}/lnk/a.txt`, "client", cwd), {
    name: "a.txt",
  });
  ok("error" in nameInFolder("nowhere/a.txt", "client", cwd));
});

Deno.test("file_service names: escapes and reserved names are refused", () => {
  equal(storePath("d", "ok.txt"), join("d", "ok.txt"));
  for (
    const name of [
      "../x",
      "/etc/passwd",
      "..",
      ".",
      "a/b",
      "a\\b",
      "",
      ".x.part-0123abcd",
      ".sockkit-cache-index.json",
    ]
  ) {
    throws(() => storePath("d", name), UnsafeNameError, name);
    if (!name.startsWith(".sockkit")) {
      ok(unsafeNameReason(name) !== undefined, `every role refuses ${name}`);
    }
  }
});

Deno.test("file names: 255 bytes of UTF-8 are a name, 256 are refused, counted in bytes and not characters", () => {
  const bytes = (name: string) => new TextEncoder().encode(name).length;
  // 1-, 2- and 4-byte characters ("😀" is two UTF-16 code units, too).
  const longest = [
    "a".repeat(255),
    "é".repeat(127) + "a",
    "😀".repeat(63) + "abc",
  ];
  const over = ["a".repeat(256), "é".repeat(128), "😀".repeat(64)];
  for (const name of longest) {
    equal(bytes(name), 255);
    equal(unsafeNameReason(name), undefined, `${name.length} code units`);
    equal(storePath("d", name), join("d", name));
  }
  for (const name of over) {
    equal(bytes(name), 256);
    equal(unsafeNameReason(name), "longer than 255 bytes");
    throws(() => storePath("d", name), UnsafeNameError);
  }
  // Far fewer characters than bytes: a count of characters lets them pass.
  ok(over.slice(1).every((name) => name.length <= 128), "multi-byte names");
});

// ---------------------------------------------------------------------------
// End to end, over both transports

/** A `get` sent to the cache by hand, after the cache's first message. */
interface HandGet extends Disposable {
  /** The cache's first message: `WAIT` while it is still resolving the name. */
  first: FileServiceMessage;
  /** Receives the file into the folder; returns the cache's `OK` text. */
  answer(): Promise<string>;
}

/**
 * Sends `get <name>` to the rig's cache on a control connection of its own
 * and reads the cache's first message, which a client keeps to itself: a
 * `WAIT` ({@linkcode KEEP_ALIVE_MS} after the request) says the cache is
 * still resolving the name.
 *
 * @param rig The rig.
 * @param dir Where {@linkcode HandGet.answer} saves the file.
 * @param name The file.
 * @param timeoutMs Bound on the first message.
 * @returns The get, waiting for its answer.
 */
async function handGet(
  rig: FileServiceRig,
  dir: string,
  name: string,
  timeoutMs = 10 * KEEP_ALIVE_MS,
): Promise<HandGet> {
  const idleMs = 20_000;
  const control = await ControlChannel.connect({
    hostname: "127.0.0.1",
    port: rig.cachePort,
    what: "cache",
    connectTimeoutMs: 5000,
    idleMs,
  });
  try {
    const tag = newChannelTag();
    await control.send({ type: "get", tag, name });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      control.close();
    }, timeoutMs);
    let first: FileServiceMessage;
    try {
      const header = await readExact(
        control.conn,
        new Uint8Array(FRAME_HEADER_BYTES),
      );
      ok(header, "the cache closed the connection before any message");
      const payload = await readExact(
        control.conn,
        new Uint8Array(decodeFrameLength(header)),
      );
      ok(payload, "the cache closed the connection mid-message");
      first = decodeFileServiceMessage(payload);
    } catch (error) {
      if (!timedOut) throw error;
      throw new Error(`No message from the cache within ${timeoutMs} ms`);
    } finally {
      clearTimeout(timer);
    }
    const answer = async () => {
      const found = await control.expect("found");
      using file = await Deno.open(join(dir, name), {
        write: true,
        createNew: true,
      });
      await using channel = await transportByName(rig.transport).openChannel(
        control.conn,
        tag,
        { signal: AbortSignal.timeout(idleMs) },
      );
      const received = await receiveFile(channel, file, {
        idleMs,
        expectedSize: found.size,
      });
      equal(received.size, found.size);
      equal(received.sha256, found.sha256);
      return (await control.expect("ok")).text;
    };
    return { first, answer, [Symbol.dispose]: () => control.close() };
  } catch (error) {
    control.close();
    throw error;
  }
}

/**
 * Awaits every promise, then throws the first rejection if there was one
 * (nothing is left running behind a failure).
 *
 * @param promises The promises.
 * @returns Their values.
 */
async function allSettledValues<T>(promises: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  for (const result of results) {
    if (result.status === "rejected") throw result.reason;
  }
  return results.map((result) => (result as PromiseFulfilledResult<T>).value);
}

for (const transport of TRANSPORTS) {
  Deno.test(`file service over ${transport}: the SPEC §1 transcript, byte for byte`, async () => {
    await using rig = await FileServiceRig.start(transport);
    const dir = await rig.clientDir();
    await Deno.writeTextFile(join(dir, "test.txt"), "hello, cache\n");
    const run = await rig.session(dir, "put test.txt\nget test.txt\nquit\n");
    equal(run.stdout, SPEC_TRANSCRIPT);
    equal(run.stderr, "");
    equal(run.code, 0);
    const digest = await sha256File(join(dir, "test.txt"));
    equal(await sha256File(join(rig.originDir, "test.txt")), digest);
    equal(await sha256File(join(rig.cacheDir, "test.txt")), digest);
    // The sentences come from the servers: the cache logged the miss.
    await rig.cache.stdout.waitFor(/get "test.txt" \(13 bytes\) to .*: miss/);
    await rig.origin.stdout.waitFor('put "test.txt" (13 bytes)');
    // One listening line per listening role.
    equal(logLines(rig.origin, /listening/).length, 1);
    equal(logLines(rig.cache, /listening/).length, 1);

    // End of input is quit (a last line without a line break still counts).
    const eof = await rig.session(dir, "get test.txt");
    equal(
      eof.stdout,
      prompts(["get test.txt", "Server response: File delivered from cache."]) +
        "Enter command: \nExiting program!\n",
    );
    equal(eof.code, 0);
  });

  Deno.test(`file service over ${transport}: binary file byte-exact both ways, miss then hit`, async () => {
    // 20 MiB over snw too, with 16000-byte DATA packets to keep it quick
    // (the default 1000-byte packets are exercised by every other test).
    const size = 20 * MiB + 7;
    await using rig = await FileServiceRig.start(transport, {
      env: { SOCKKIT_SNW_CHUNK_SIZE: "16000" },
    });
    const up = await rig.clientDir("uploader");
    const down = await rig.clientDir("downloader");
    await writeTestFile(join(up, "blob.bin"), size, 77);
    const digest = await sha256File(join(up, "blob.bin"));
    const put = await rig.session(up, "put blob.bin\n");
    equal(put.stderr, "");
    equal(await sha256File(join(rig.originDir, "blob.bin")), digest);
    const run = await rig.session(down, "get blob.bin\nget blob.bin\nquit\n");
    equal(
      run.stdout,
      prompts(
        ["get blob.bin", "Server response: File delivered from origin."],
        ["get blob.bin", "Server response: File delivered from cache."],
        ["quit", "Exiting program!"],
      ),
    );
    equal(run.stderr, "");
    equal(await sha256File(join(down, "blob.bin")), digest);
    equal(await sha256File(join(rig.cacheDir, "blob.bin")), digest);
    deepEqual(await listDir(down), ["blob.bin"]);
  });

  Deno.test(`file service over ${transport}: a file re-uploaded to the origin is never served stale`, async () => {
    await using rig = await FileServiceRig.start(transport);
    const dir = await rig.clientDir();
    const path = join(dir, "s.bin");
    await writeTestFile(path, 4096, 1);
    const v1 = await sha256File(path);
    const first = await rig.session(dir, "put s.bin\nget s.bin\nget s.bin\n");
    match(first.stdout, /from origin\.\n.*from cache\.\n/s);
    equal(await sha256File(join(rig.cacheDir, "s.bin")), v1);
    // Same size, other content: only a real revalidation can tell.
    await writeTestFile(path, 4096, 2);
    const v2 = await sha256File(path);
    const second = await rig.session(
      dir,
      "put s.bin\nget s.bin\nget s.bin\nquit\n",
    );
    equal(
      second.stdout,
      prompts(
        [
          "put s.bin",
          "Awaiting server response.",
          "Server response: File successfully uploaded.",
        ],
        ["get s.bin", "Server response: File delivered from origin."],
        ["get s.bin", "Server response: File delivered from cache."],
        ["quit", "Exiting program!"],
      ),
    );
    equal(second.stderr, "");
    equal(await sha256File(path), v2);
    equal(await sha256File(join(rig.cacheDir, "s.bin")), v2);
    await rig.cache.stdout.waitFor(
      `"s.bin" differs from the origin's copy: refetching`,
    );
    // Gone from the origin: the cached copy is dropped, not served.
    await Deno.remove(join(rig.originDir, "s.bin"));
    const gone = await rig.session(dir, "get s.bin\n");
    equal(
      gone.stderr,
      'Error: Cannot get "s.bin": no such file on the origin server\n',
    );
    ok(!(await listDir(rig.cacheDir)).includes("s.bin"));
  });

  Deno.test(`file service over ${transport}: a cached copy changed in place on disk is fetched again, running or restarted`, async () => {
    await using rig = await FileServiceRig.start(transport);
    const dir = await rig.clientDir();
    const path = join(dir, "c.bin");
    await writeTestFile(path, 8192, 3);
    const digest = await sha256File(path);
    const cached = join(rig.cacheDir, "c.bin");
    await rig.session(dir, "put c.bin\nget c.bin\n");
    equal(await sha256File(cached), digest);
    // Same size, other bytes, written into the cache's copy.
    const damage = async () => {
      using file = await Deno.open(cached, { write: true });
      await file.write(new Uint8Array(100).fill(0xee));
    };
    await damage();
    const running = await rig.session(dir, "get c.bin\n");
    match(running.stdout, /Server response: File delivered from origin\.\n/);
    equal(running.stderr, "");
    equal(await sha256File(path), digest);
    equal(await sha256File(cached), digest);
    // The log blames the copy, not the origin.
    await rig.cache.stdout.waitFor(
      'removed "c.bin" (its file changed on disk)',
    );
    // Changed while the cache was down (its index records the time).
    await rig.cache[Symbol.asyncDispose]();
    await damage();
    await rig.startCache();
    const restarted = await rig.session(dir, "get c.bin\nget c.bin\n");
    match(
      restarted.stdout,
      /File delivered from origin\.\n.*File delivered from cache\.\n/s,
    );
    equal(restarted.stderr, "");
    equal(await sha256File(path), digest);
    await rig.cache.stdout.waitFor(
      `"c.bin" differs from the origin's copy: refetching`,
    );
  });

  Deno.test(`file service over ${transport}: errors keep the session alive, one line each`, async () => {
    await using rig = await FileServiceRig.start(transport);
    const dir = await rig.clientDir();
    await Deno.writeTextFile(join(dir, "ok.txt"), "fine\n");
    // Names taken by directories, on the origin and in the client's folder.
    await Deno.writeTextFile(join(dir, "sdir"), "x");
    await Deno.mkdir(join(rig.originDir, "sdir"));
    await Deno.mkdir(join(dir, "cdir"));
    const commands = [
      "put missing.txt",
      "get nothere.txt",
      "frobnicate",
      "put",
      "get a b",
      "quit now",
      "put ../escape.txt",
      "get /etc/passwd",
      "get ..",
      "get cdir",
    ];
    const run = await rig.session(
      dir,
      [...commands, "put sdir", "put ok.txt", "get ok.txt", "quit", ""].join(
        "\n",
      ),
    );
    equal(
      run.stdout,
      prompts(
        ...commands.map((c) => [c]),
        ["put sdir", "Awaiting server response."],
        [
          "put ok.txt",
          "Awaiting server response.",
          "Server response: File successfully uploaded.",
        ],
        ["get ok.txt", "Server response: File delivered from origin."],
        ["quit", "Exiting program!"],
      ),
    );
    deepEqual(run.stderr.split("\n"), [
      `Error: Cannot put "missing.txt": no such file in "${dir}"`,
      'Error: Cannot get "nothere.txt": no such file on the origin server',
      'Error: Unknown command "frobnicate" (commands: put <file>, get <file>, quit)',
      "Error: Usage: put <file> (one file name)",
      'Error: Usage: get <file> (one file name; quote a name with spaces: get "my file.txt")',
      "Error: Usage: quit (no arguments)",
      `Error: Cannot put "../escape.txt": not a file in the client's folder "${dir}" (files are put from it and got into it; --dir chooses it)`,
      `Error: Cannot get "/etc/passwd": not a file in the client's folder "${dir}" (files are put from it and got into it; --dir chooses it)`,
      'Error: Cannot get "..": refused file name "..": not a file name',
      'Error: Cannot get "cdir": a directory of that name is in the way',
      'Error: Cannot store "sdir": a directory of that name is in the way',
      "",
    ]);
    equal(run.code, 0);
    // Nothing was written for the failed gets; the cache relayed the error.
    deepEqual(await listDir(dir), ["cdir", "ok.txt", "sdir"]);
    deepEqual(await listDir(join(rig.originDir, "sdir")), []);
    await rig.cache.stdout.waitFor(
      'failed: Cannot get "nothere.txt": no such file on the origin server',
    );
  });

  Deno.test(`file service over ${transport}: a path into the client's folder, a quoted name with blanks`, async () => {
    await using rig = await FileServiceRig.start(transport);
    const dir = await rig.clientDir();
    await writeTestFile(join(dir, "my notes.txt"), 3000, 5);
    await writeTestFile(join(dir, "p.bin"), 2000, 6);
    const put = await rig.session(
      dir,
      `put ${join(dir, "p.bin")}\nput "my notes.txt"\nput x\u001b[2J\nput ${
        "y".repeat(300_000)
      }\n`,
    );
    // The echo of a piped command shows control bytes escaped, as errors do.
    ok(put.stdout.includes("Enter command: put x\\x1b[2J\n"), put.stdout);
    ok(!put.stdout.includes("\u001b"), put.stdout);
    equal(
      put.stderr,
      'Error: Cannot put "x\\x1b[2J": refused file name "x\\x1b[2J": control characters are not allowed\n' +
        "Error: Line too long (over 65536 characters): ignored\n",
    );
    const other = await rig.clientDir("other");
    const get = await rig.session(
      other,
      `get "my notes.txt"\nget ${join(other, "p.bin")}\n`,
    );
    equal(get.stderr, "");
    equal(
      get.stdout.match(/File delivered from origin\./g)?.length,
      2,
      get.stdout,
    );
    for (const name of ["p.bin", "my notes.txt"]) {
      const digest = await sha256File(join(dir, name));
      equal(await sha256File(join(rig.originDir, name)), digest, name);
      equal(await sha256File(join(other, name)), digest, name);
    }
  });

  Deno.test(`file service over ${transport}: 20 concurrent client processes`, async () => {
    await using rig = await FileServiceRig.start(transport);
    const n = 20;
    const name = (i: number) => `f${i % n}.bin`;
    const dirs = await Promise.all(
      Array.from({ length: n }, (_, i) => rig.clientDir(`c${i}`)),
    );
    const digests = await Promise.all(dirs.map(async (dir, i) => {
      await writeTestFile(join(dir, name(i)), 64 * 1024 + i, 100 + i);
      return await sha256File(join(dir, name(i)));
    }));
    const clients = dirs.map((dir) => rig.startClient(dir));
    try {
      // Each phase: every client types its command at once, then all wait
      // for their answer (the next phase needs every file in place).
      const phase = async (command: (i: number) => string, reply: string) => {
        await Promise.all(clients.map((c, i) => c.write(`${command(i)}\n`)));
        await Promise.all(
          clients.map((c) =>
            c.stdout.waitFor(`Server response: ${reply}`, 60_000)
          ),
        );
      };
      await phase((i) => `put ${name(i)}`, "File successfully uploaded.");
      await phase((i) => `get ${name(i)}`, "File delivered from origin.");
      await phase((i) => `get ${name(i + 1)}`, "File delivered from cache.");
      await Promise.all(clients.map((c) => c.write("quit\n")));
      for (const done of await Promise.all(clients.map((c) => c.finished()))) {
        equal(done.code, 0);
        equal(done.stderr, "");
        match(done.stdout, /Exiting program!\n$/);
      }
    } finally {
      for (const client of clients) await client[Symbol.asyncDispose]();
    }
    for (let i = 0; i < n; i++) {
      equal(await sha256File(join(rig.originDir, name(i))), digests[i]);
      equal(await sha256File(join(dirs[i], name(i + 1))), digests[(i + 1) % n]);
      deepEqual(await listDir(dirs[i]), [name(i), name(i + 1)].sort());
    }
  });

  Deno.test(`file service over ${transport}: 10 concurrent gets of an uncached file cause one origin fetch`, async () => {
    await using rig = await FileServiceRig.start(transport);
    const up = await rig.clientDir("up");
    await writeTestFile(
      join(up, "co.bin"),
      transport === "tcp" ? 8 * MiB : MiB,
      9,
    );
    const digest = await sha256File(join(up, "co.bin"));
    const base = {
      transport: transportByName(transport),
      server: { hostname: "127.0.0.1", port: rig.originPort },
      cache: { hostname: "127.0.0.1", port: rig.cachePort },
      idleMs: 20_000,
      connectTimeoutMs: 5000,
    };
    {
      await using uploader = new FileServiceClient({ ...base, dir: up });
      await uploader.put("co.bin");
    }
    const dirs = await Promise.all(
      Array.from({ length: 10 }, (_, i) => rig.clientDir(`d${i}`)),
    );
    // The origin stopped: the fetch that the first get starts cannot end,
    // so every get the cache takes meanwhile joins it. A get's first message
    // being a WAIT shows the cache took it and holds it.
    rig.origin.kill("SIGSTOP");
    const gets: HandGet[] = [];
    try {
      await allSettledValues(dirs.map(async (dir) => {
        gets.push(await handGet(rig, dir, "co.bin"));
      }));
      deepEqual(gets.map((get) => get.first.type), Array(10).fill("wait"));
      rig.origin.kill("SIGCONT");
      const answers = await allSettledValues(gets.map((get) => get.answer()));
      // README: gets that join a fetch in flight are told "from origin".
      deepEqual(answers, Array(10).fill("File delivered from origin."));
    } finally {
      rig.origin.kill("SIGCONT");
      for (const get of gets) get[Symbol.dispose]();
    }
    for (const dir of dirs) {
      equal(await sha256File(join(dir, "co.bin")), digest);
    }
    // Every delivery is logged after the fetch it waited for, as a miss.
    await rig.cache.stdout.waitFor(/(get "co\.bin".*\n[^]*){10}/);
    equal(logLines(rig.cache, /get "co\.bin".*: miss$/).length, 10);
    equal(logLines(rig.cache, /fetched "co\.bin"/).length, 1);
    await rig.origin.stdout.waitFor('get "co.bin"');
    equal(logLines(rig.origin, /get "co\.bin"/).length, 1);
  });
}

// ---------------------------------------------------------------------------
// The cache's bound, persistence, and failures (tcp: the logic is above the
// transport; snw runs the same code paths in the tests above)

Deno.test({
  name:
    "file service over tcp: a 128 MiB put, miss and hit leave the origin's and the cache's memory flat (streamed, never held whole)",
  ignore: Deno.build.os !== "linux", // reads /proc
  async fn() {
    const size = 128 * MiB;
    await using rig = await FileServiceRig.start("tcp");
    const up = await rig.clientDir("uploader");
    const down = await rig.clientDir("downloader");
    await writeTestFile(join(up, "big.bin"), size, 13);
    const digest = await sha256File(join(up, "big.bin"));
    const origin = rig.origin.child.pid;
    const cache = rig.cache.child.pid;
    const before = { origin: peakRssKiB(origin), cache: peakRssKiB(cache) };
    const put = await rig.session(up, "put big.bin\n");
    equal(put.stderr, "");
    const run = await rig.session(down, "get big.bin\nget big.bin\nquit\n");
    equal(run.stderr, "");
    match(run.stdout, /from origin\.[^]*from cache\./);
    equal(await sha256File(join(rig.originDir, "big.bin")), digest);
    equal(await sha256File(join(rig.cacheDir, "big.bin")), digest);
    equal(await sha256File(join(down, "big.bin")), digest);
    // Holding the file whole would add at least its 128 MiB.
    for (const [role, pid] of [["origin", origin], ["cache", cache]] as const) {
      const growthMiB = (peakRssKiB(pid) - before[role]) / 1024;
      ok(
        growthMiB < 48,
        `${role} peak RSS grew by ${growthMiB.toFixed(1)} MiB`,
      );
    }
  },
});

Deno.test("file service: LRU eviction at --max-bytes, contents survive a restart", async () => {
  await using rig = await FileServiceRig.start("tcp", {
    cacheArgs: ["--max-bytes", "3000"],
  });
  const dir = await rig.clientDir();
  for (const [i, name] of ["a", "b", "c", "d"].entries()) {
    await writeTestFile(join(dir, name), 1000, i + 1);
  }
  await rig.session(dir, "put a\nput b\nput c\nput d\n");
  const run = await rig.session(
    dir,
    "get a\nget b\nget c\nget a\nget d\nget b\nget a\n",
  );
  const sources = run.stdout.match(/from (cache|origin)/g);
  deepEqual(sources, [
    "from origin", // a
    "from origin", // b
    "from origin", // c: 3000 bytes, at the bound
    "from cache", // a
    "from origin", // d: evicts b, the least recently used
    "from origin", // b: evicts c
    "from cache", // a
  ]);
  deepEqual(await listDir(rig.cacheDir), [
    ".sockkit-cache-index.json",
    "a",
    "b",
    "d",
  ]);
  await rig.cache.stdout.waitFor('evicted "c"');
  equal(
    logLines(rig.cache, /evicted/).join("|"),
    [
      'cache: evicted "b" (1000 bytes)',
      'cache: evicted "c" (1000 bytes)',
    ].join("|"),
  );

  // Killed without warning, restarted on the same directory: still cached.
  rig.cache.kill("SIGKILL");
  await rig.cache.child.status;
  await rig.cache[Symbol.asyncDispose]();
  await rig.startCache(); // the explicit-form alias is tested below
  await rig.cache.stdout.waitFor("(3 cached, 3000 bytes)");
  const after = await rig.session(dir, "get d\nget c\n");
  deepEqual(after.stdout.match(/from (cache|origin)/g), [
    "from cache",
    "from origin",
  ]);
  // c came in as the most recent; a (least recently used) made room.
  deepEqual(await listDir(rig.cacheDir), [
    ".sockkit-cache-index.json",
    "b",
    "c",
    "d",
  ]);
  // A file above the bound is delivered, then dropped; it evicts nobody.
  await writeTestFile(join(dir, "huge"), 5000, 9);
  const huge = await rig.session(dir, "put huge\nget huge\nget huge\n");
  deepEqual(huge.stdout.match(/from (cache|origin)/g), [
    "from origin",
    "from origin",
  ]);
  await rig.cache.stdout.waitFor(/(evicted "huge"[^]*){2}/);
  deepEqual(await listDir(rig.cacheDir), [
    ".sockkit-cache-index.json",
    "b",
    "c",
    "d",
  ]);
});

Deno.test("file service: explicit subcommand forms and usage errors", async () => {
  const root = await Deno.makeTempDir({ prefix: "sockkit-files-" });
  try {
    await using origin = startRole("server", [
      "origin",
      "0",
      "tcp",
      "--dir",
      join(root, "o"),
    ]);
    const originPort = await listeningPort(origin);
    await using cache = startRole("cache", [
      "serve",
      "0",
      "127.0.0.1",
      String(originPort),
      "tcp",
      "--dir",
      join(root, "c"),
    ]);
    const cachePort = await listeningPort(cache);
    const client = join(root, "client");
    await Deno.mkdir(client);
    await Deno.writeTextFile(join(client, "test.txt"), "explicit\n");
    const run = await runRole("client", [
      "files",
      "127.0.0.1",
      String(originPort),
      "127.0.0.1",
      String(cachePort),
      "tcp",
      "--dir",
      client,
    ], { input: "put test.txt\nget test.txt\nquit\n" });
    equal(run.stdout, SPEC_TRANSCRIPT);

    const usage: Array<[Parameters<typeof runRole>[0], string[], RegExp]> = [
      ["client", ["h", "1", "h", "2", "tcp", "extra"], /unexpected argument/],
      ["client", ["h", "1", "h", "x", "snw"], /<cachePort>: invalid port/],
      ["client", ["h", "1", "h", "2", "tcp", "--timeout", "-1"], /--timeout/],
      ["server", ["0", "tcp", "--bogus"], /bogus/],
      ["server", ["origin", "0", "udp"], /unknown transport "udp"/],
      ["cache", ["0", "127.0.0.1", "nope", "tcp"], /<srvPort>: invalid port/],
      ["cache", ["0", "h", "1", "tcp", "--max-bytes", "x"], /--max-bytes/],
      ["cache", ["0", "h", "1"], /missing tcp\|snw/],
      ["cache", ["0", "", "1", "tcp"], /empty <srvHost>/],
      ["client", ["h", "1", " ", "2", "snw"], /empty <cacheHost>/],
    ];
    for (const [role, args, reason] of usage) {
      const result = await runRole(role, args);
      equal(result.code, 2, `${role} ${args.join(" ")}`);
      match(result.stderr, reason);
      match(result.stderr, /usage:/);
    }
    // Bad SNW tuning in the environment is named, not "unknown transport".
    const tuning = await runRole("server", ["0", "snw"], {
      env: { SOCKKIT_SNW_TIMEOUT_MS: "0" },
    });
    equal(tuning.code, 2);
    match(tuning.stderr, /SOCKKIT_SNW_TIMEOUT_MS must be a positive number/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("file service: a peer on the other transport gets a clear error, not a hang or a garbled size", async () => {
  await using dir = await tempDir();
  const started = (role: "server" | "cache", args: string[]) =>
    startRole(role, [...args, "--timeout", "2"], { cwd: dir.path });
  await using origin = started("server", ["0", "snw", "--host", "127.0.0.1"]);
  const originPort = await listeningPort(origin);
  await using cache = started("cache", [
    "0",
    "127.0.0.1",
    String(originPort),
    "tcp",
    "--host",
    "127.0.0.1",
  ]);
  const cachePort = await listeningPort(cache);
  await Deno.mkdir(join(dir.path, "c"));
  await Deno.writeTextFile(join(dir.path, "c", "a.txt"), "abc");
  const client = (transport: string, input: string) =>
    runRole("client", [
      "127.0.0.1",
      String(originPort),
      "127.0.0.1",
      String(cachePort),
      transport,
      "--dir",
      "c",
      "--timeout",
      "2",
    ], { cwd: dir.path, input });
  // A tcp client against the snw origin: the origin says what it missed
  // (within half its idle timeout, before the client's own gives up).
  const put = await client("tcp", "put a.txt\n");
  equal(
    put.stderr,
    "Error: No snw data channel within 1 s (does the peer use snw too?)\n",
  );
  // Stored over snw; then the tcp cache fetches it from the snw origin.
  equal((await client("snw", "put a.txt\n")).stderr, "");
  const get = await client("tcp", "get a.txt\n");
  match(
    get.stderr,
    /^Error: Cannot get "a\.txt" from the origin server: protocol error: the data channel announced \d+ bytes, not the 3 agreed on the control connection \(do both ends use the same transport\?\)\n$/,
  );
});

Deno.test("file service: unreachable server or cache fail fast, the session goes on", async () => {
  await using rig = await FileServiceRig.start("tcp");
  const dir = await rig.clientDir();
  await Deno.writeTextFile(join(dir, "x.txt"), "x\n");
  const dead = freePort();
  const started = Date.now();
  const run = await rig.session(
    dir,
    "put x.txt\nget x.txt\nquit\n",
    { server: dead, cache: dead },
  );
  ok(Date.now() - started < 15_000);
  equal(
    run.stdout,
    prompts(
      ["put x.txt", "Awaiting server response."],
      ["get x.txt"],
      ["quit", "Exiting program!"],
    ),
  );
  deepEqual(run.stderr.split("\n"), [
    `Error: Cannot reach the server at 127.0.0.1:${dead}: connection refused`,
    `Error: Cannot reach the cache at 127.0.0.1:${dead}: connection refused`,
    "",
  ]);
  deepEqual(await listDir(dir), ["x.txt"]);

  // A cached copy is not served while the origin cannot revalidate it.
  await rig.session(dir, "put x.txt\nget x.txt\n");
  await rig.origin[Symbol.asyncDispose]();
  const down = await rig.session(dir, "get x.txt\n");
  equal(
    down.stderr,
    `Error: Cannot reach the origin server at 127.0.0.1:${rig.originPort}: connection refused\n`,
  );

  // A peer that accepts but never answers: bounded by --timeout.
  using silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of silent) held.push(conn);
  })();
  const hung = await rig.session(
    dir,
    "get x.txt\n",
    { cache: silent.addr.port },
    ["--timeout", "1"],
  );
  equal(hung.stderr, 'Error: Cannot get "x.txt": no answer for 1 s\n');
  silent.close();
  await accepting.catch(() => {});
  for (const conn of held) conn.close();
});

Deno.test("file service: a peer that never completes the connection is given up after --connect-timeout", async () => {
  await using rig = await FileServiceRig.start("tcp");
  const dir = await rig.clientDir();
  await Deno.writeTextFile(join(dir, "x.txt"), "x\n");
  await using blackhole = await FullBacklogPort.start();
  const started = Date.now();
  const run = await rig.session(
    dir,
    "put x.txt\nget x.txt\nquit\n",
    { server: blackhole.port, cache: blackhole.port },
    ["--connect-timeout", "0.5"],
  );
  const took = Date.now() - started;
  deepEqual(run.stderr.split("\n"), [
    `Error: Cannot reach the server at 127.0.0.1:${blackhole.port}: no connection within 0.5 s`,
    `Error: Cannot reach the cache at 127.0.0.1:${blackhole.port}: no connection within 0.5 s`,
    "",
  ]);
  equal(run.code, 0);
  // two bounded waits, not a hang (the kernel's own SYN retries take minutes)
  ok(took >= 1000 && took < 10_000, `took ${took} ms`);
  deepEqual(await listDir(dir), ["x.txt"]);
});

Deno.test("file service: an origin that never completes the cache's connection is given up after the cache's --connect-timeout, each get", async () => {
  await using blackhole = await FullBacklogPort.start();
  await using rig = await FileServiceRig.start("tcp", {
    cacheOriginPort: () => blackhole.port,
    cacheArgs: ["--connect-timeout", "0.5"],
  });
  const dir = await rig.clientDir();
  await using client = rig.startClient(dir);
  const refused =
    `Error: Cannot reach the origin server at 127.0.0.1:${blackhole.port}: no connection within 0.5 s\n`;
  const escaped = refused.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  for (const attempt of [1, 2]) {
    const asked = performance.now();
    await client.write("get x.txt\n");
    // Before the cache's default of 5 s (a hang would last minutes: the
    // kernel's SYN retries).
    await client.stderr.waitFor(
      new RegExp(`(?:${escaped}){${attempt}}`),
      4_000,
    );
    const took = performance.now() - asked;
    ok(took >= 500, `attempt ${attempt}: the error came after ${took} ms`);
  }
  await client.write("quit\n");
  await client.closeStdin();
  const done = await client.finished();
  equal(done.code, 0);
  equal(done.stderr, refused.repeat(2));
  deepEqual(await listDir(dir), []);
});

/**
 * Polls the bytes in `dir`'s files other than its index until `atLeast`.
 *
 * @param dir The folder.
 * @param atLeast The bytes to wait for.
 * @returns The bytes seen and when (`performance.now()`).
 */
async function waitForStoredBytes(
  dir: string,
  atLeast: number,
): Promise<{ bytes: number; at: number }> {
  const stored = async () => {
    let bytes = 0;
    for (const name of await listDir(dir)) {
      if (name.endsWith(".json")) continue;
      bytes += (await Deno.stat(join(dir, name))).size;
    }
    return { bytes, at: performance.now() };
  };
  const deadline = Date.now() + 20_000;
  let seen = await stored();
  while (seen.bytes < atLeast && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    seen = await stored();
  }
  ok(seen.bytes >= atLeast, `${dir}: the transfer is under way`);
  return seen;
}

/**
 * How long the rest of a transfer into `dir` would take, in ms: waits until
 * `dir` holds `from` bytes (its index aside), then 4 MiB more, and carries
 * that pace on to `end` bytes.
 *
 * @param dir The folder the transfer writes to.
 * @param from Bytes stored when the pace is first taken.
 * @param end Bytes stored when the transfer is complete.
 * @returns The time left, in ms.
 */
async function restOfTransfer(
  dir: string,
  from: number,
  end: number,
): Promise<number> {
  const first = await waitForStoredBytes(dir, from);
  const second = await waitForStoredBytes(dir, first.bytes + 4 * MiB);
  const bytesPerMs = (second.bytes - first.bytes) / (second.at - first.at);
  return (end - second.bytes) / bytesPerMs;
}

/**
 * Fails unless `role` is still running: its exit status is not known yet
 * (its output so far cannot tell, the listening line stays in it).
 *
 * @param role The process.
 * @param what What it is, for the message.
 */
async function assertRunning(role: RoleProcess, what: string): Promise<void> {
  // A status already known wins the race: it is the first entry.
  const status = await Promise.race([role.child.status, undefined]);
  if (status) {
    throw new Error(
      `${what} exited (code ${status.code}):\n${role.stderr.text}`,
    );
  }
}

/** Stops `role` with SIGTERM; returns how long it took to exit 0. */
async function stopTimed(role: RoleProcess): Promise<number> {
  const signalled = performance.now();
  role.kill("SIGTERM");
  const status = await role.child.status;
  equal(status.code, 0);
  return performance.now() - signalled;
}

Deno.test("file service over snw: SIGTERM stops the origin mid-upload and the cache mid-fetch at once (their SNW sessions are closed), no partial file", async () => {
  await using rig = await FileServiceRig.start("snw");
  const dir = await rig.clientDir();
  await writeTestFile(join(dir, "big.bin"), 64 * MiB, 6);
  await Deno.copyFile(join(dir, "big.bin"), join(rig.originDir, "there.bin"));
  await using client = startRole("client", rig.clientArgs(dir), {
    stdin: true,
  });
  // The cache fetching a 64 MiB file from the origin over snw.
  await client.write("get there.bin\n");
  // "At once": in a fraction of the time the rest of the transfer takes at
  // the pace it went so far (seconds at SNW's pace), which a stop that let
  // the transfer finish would take (a fixed bound passes that on a faster
  // machine).
  const fetchRest = await restOfTransfer(rig.cacheDir, 2 * MiB, 64 * MiB);
  const cacheTook = await stopTimed(rig.cache);
  ok(
    cacheTook < fetchRest / 4,
    `cache stopped after ${
      cacheTook.toFixed(0)
    } ms, the rest of the fetch would take ${fetchRest.toFixed(0)} ms`,
  );
  await client.stderr.waitFor(/Error: Cannot get "there\.bin": .+\n/);
  const cached = await listDir(rig.cacheDir);
  deepEqual(cached.filter((name) => !name.endsWith(".json")), []);
  // The origin receiving a 64 MiB upload over snw.
  await client.write("put big.bin\n");
  // there.bin and the upload's temporary file
  const uploadRest = await restOfTransfer(
    rig.originDir,
    66 * MiB,
    128 * MiB,
  );
  const originTook = await stopTimed(rig.origin);
  ok(
    originTook < uploadRest / 4,
    `origin stopped after ${
      originTook.toFixed(0)
    } ms, the rest of the upload would take ${uploadRest.toFixed(0)} ms`,
  );
  await client.stderr.waitFor(/Error: Cannot put "big\.bin": .+\n/);
  deepEqual(
    (await listDir(rig.originDir)).filter((name) => !name.endsWith(".json")),
    ["there.bin"],
  );
});

/**
 * Waits until `proxy` froze its transfer; fails as soon as one of `roles`
 * exits first (the transfer cannot get there any more), or after
 * `timeoutMs`.
 *
 * @param proxy The proxy.
 * @param roles The processes the transfer needs, by what they are.
 * @param timeoutMs The bound.
 */
async function untilPaused(
  proxy: PausingProxy,
  roles: Record<string, RoleProcess>,
  timeoutMs = 20_000,
): Promise<void> {
  const point = "the proxy's pause point";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new Error(`The transfer did not reach ${point} within ${timeoutMs} ms`),
      );
    }, timeoutMs);
  });
  // Rejections after the race was decided are handled by the race.
  const exited = Object.entries(roles).map(async ([what, role]) => {
    const { code } = await role.child.status;
    throw new Error(
      `The ${what} exited (code ${code}) before the transfer reached ${point}:\n${role.stderr.text}`,
    );
  });
  try {
    await Promise.race([proxy.paused, timedOut, ...exited]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A client in `dir` whose `command` stands paused after 1 MiB in a proxy in
 * front of the origin (a put) or the cache (a get); disposing it ends the
 * client and the proxy.
 */
async function pausedCommand(
  rig: FileServiceRig,
  dir: string,
  command: string,
  toward: "origin" | "cache",
) {
  const upload = toward === "origin";
  const proxy = PausingProxy.start({
    targetPort: upload ? rig.originPort : rig.cachePort,
    direction: upload ? "to-target" : "from-target",
    pauseAfter: MiB,
  });
  const client = startRole(
    "client",
    rig.clientArgs(
      dir,
      upload ? { server: proxy.port } : { cache: proxy.port },
    ),
    { stdin: true },
  );
  const dispose = async () => {
    await client[Symbol.asyncDispose]();
    await proxy[Symbol.asyncDispose]();
  };
  try {
    await client.write(`${command}\n`);
    await untilPaused(proxy, {
      client,
      [toward]: upload ? rig.origin : rig.cache,
    });
  } catch (error) {
    await dispose();
    throw error;
  }
  return { proxy, client, [Symbol.asyncDispose]: dispose };
}

/** A `put big.bin` (8 MiB, from the rig's client folder) paused at the origin. */
async function pausedPut(rig: FileServiceRig, seed: number) {
  const dir = await rig.clientDir();
  await writeTestFile(join(dir, "big.bin"), 8 * MiB, seed);
  const paused = await pausedCommand(rig, dir, "put big.bin", "origin");
  return Object.assign(paused, { dir });
}

Deno.test("file service: killing the origin mid-upload leaves no partial file", async () => {
  await using rig = await FileServiceRig.start("tcp");
  await using paused = await pausedPut(rig, 3);
  const { client, proxy } = paused;
  await assertRunning(rig.origin, "the origin"); // still up mid-transfer
  rig.origin.kill("SIGKILL");
  await rig.origin.child.status;
  proxy.cut();
  await client.stderr.waitFor(/Error: Cannot put "big\.bin": .+\n/);
  ok(!(await listDir(rig.originDir)).includes("big.bin"));
  await client.write("quit\n");
  await client.closeStdin();
  const done = await client.finished();
  equal(
    done.stdout,
    prompts(["put big.bin", "Awaiting server response."], [
      "quit",
      "Exiting program!",
    ]),
  );
  equal(done.stderr.split("\n").length, 2);
  // A restarted origin removes the temporary file the killed one left.
  await rig.origin[Symbol.asyncDispose]();
  await rig.startOrigin();
  deepEqual(await listDir(rig.originDir), []);
});

Deno.test("file service: more idle clients than the origin and the cache have file descriptors delay service but end neither", async () => {
  // 64 descriptors each, so 100 idle connections cannot all be accepted.
  await using rig = await FileServiceRig.start("tcp", { fdLimit: 64 });
  const idle: Deno.Conn[] = [];
  try {
    for (
      const [role, port] of [[rig.origin, rig.originPort], [
        rig.cache,
        rig.cachePort,
      ]] as const
    ) {
      for (let i = 0; i < 100; i++) {
        idle.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      }
      await role.stderr.waitFor(/: accept failed: Too many open files/, 20_000);
    }
    // Said once per streak of failures, not at every retry (ten a second).
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const role of [rig.origin, rig.cache]) {
      equal(
        role.stderr.text.match(/accept failed/g)?.length,
        1,
        role.stderr.text,
      );
    }
    for (const conn of idle.splice(0)) conn.close();
    const dir = await rig.clientDir();
    await Deno.writeTextFile(join(dir, "a.txt"), "still serving\n");
    const run = await rig.session(dir, "put a.txt\nget a.txt\nquit\n");
    equal(run.code, 0, run.stderr);
    match(run.stdout, /File delivered from origin\./);
  } finally {
    for (const conn of idle) conn.close();
  }
});

Deno.test("file service: a cache that cannot write its index logs it and goes on serving and evicting", async () => {
  await using rig = await FileServiceRig.start("tcp", {
    cacheArgs: ["--max-bytes", "3000"],
  });
  // The index's name taken by a directory: every write of it fails.
  const index = join(rig.cacheDir, ".sockkit-cache-index.json");
  await Deno.remove(index);
  await Deno.mkdir(index);
  const dir = await rig.clientDir();
  for (const name of ["a.bin", "b.bin"]) {
    await Deno.writeFile(join(dir, name), new Uint8Array(2000).fill(7));
  }
  const run = await rig.session(
    dir,
    "put a.bin\nput b.bin\nget a.bin\nget a.bin\nget b.bin\nquit\n",
  );
  equal(run.code, 0, run.stderr);
  equal(run.stderr, "");
  match(
    run.stdout,
    /from origin\.\n.*from cache\.\n.*from origin\.\n/s,
  );
  await rig.cache.stdout.waitFor(/cache: cannot write the index: /);
  // a.bin, delivered (unpinned) and then pushed out by b.bin: the bound holds.
  await rig.cache.stdout.waitFor('evicted "a.bin" (2000 bytes)');
});

Deno.test("file service: a second origin or cache started on the same port and folder fails before it touches the running one's temporary files", async () => {
  await using rig = await FileServiceRig.start("tcp");
  // What a transfer in progress holds: a temporary file in each folder.
  const inFlight = ".big.bin.part-0123abcd";
  for (const dir of [rig.originDir, rig.cacheDir]) {
    await Deno.writeFile(join(dir, inFlight), new Uint8Array(10));
  }
  const second = {
    origin: ["server", [String(rig.originPort), "tcp", "--dir", rig.originDir]],
    cache: ["cache", [
      String(rig.cachePort),
      "127.0.0.1",
      String(rig.originPort),
      "tcp",
      "--dir",
      rig.cacheDir,
    ]],
  } as const;
  for (const [what, [role, args]] of Object.entries(second)) {
    await using twin = startRole(role, [...args]);
    const done = await twin.finished();
    ok(done.code !== 0, `a second ${what} started: ${done.stdout}`);
    match(done.stderr, /in use/i, what);
  }
  for (const dir of [rig.originDir, rig.cacheDir]) {
    ok((await listDir(dir)).includes(inFlight), `removed from ${dir}`);
  }
  // The running pair still serves.
  const dir = await rig.clientDir();
  await Deno.writeTextFile(join(dir, "a.txt"), "still here\n");
  const run = await rig.session(dir, "put a.txt\nget a.txt\n");
  equal(run.code, 0, run.stderr);
});

/**
 * A `get big.bin` into `<rig>/down` (8 MiB, put by another client from
 * `<rig>/up`) paused at the cache.
 */
async function pausedGet(rig: FileServiceRig, seed: number) {
  const up = await rig.clientDir("up");
  const down = await rig.clientDir("down");
  await writeTestFile(join(up, "big.bin"), 8 * MiB, seed);
  await rig.session(up, "put big.bin\n");
  const paused = await pausedCommand(rig, down, "get big.bin", "cache");
  return Object.assign(paused, { up, down });
}

Deno.test("file service: killing the cache mid-delivery leaves no partial file", async () => {
  await using rig = await FileServiceRig.start("tcp");
  await using paused = await pausedGet(rig, 4);
  const { client, down, proxy } = paused;
  rig.cache.kill("SIGKILL");
  await rig.cache.child.status;
  proxy.cut();
  await client.stderr.waitFor(/Error: Cannot get "big\.bin": .+\n/);
  await client.write("quit\n");
  await client.closeStdin();
  const done = await client.finished();
  equal(
    done.stdout,
    prompts(["get big.bin"], ["quit", "Exiting program!"]),
  );
  deepEqual(await listDir(down), []);
});

/** The temporary files (`.<name>.part-<8 hex>`) in `dir`. */
async function tempFiles(dir: string): Promise<string[]> {
  return (await listDir(dir)).filter(isTempName);
}

/**
 * Waits until `dir` holds a temporary file (a transfer's bytes may still
 * sit in a socket buffer when the proxy pauses).
 *
 * @param dir The role's folder.
 * @param what The role, for the message.
 */
async function untilTempFile(dir: string, what: string): Promise<void> {
  await pollUntil(
    async () => (await tempFiles(dir)).length > 0,
    10_000,
    `a temporary file in the ${what}'s folder`,
  );
}

// Every stop signal README.md and docs/file_service.md list for the servers
// (the snw test above stops both with SIGTERM at SNW's pace).
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"] as const) {
  Deno.test(`file service: ${signal} stops the cache mid-fetch and the origin mid-upload with exit 0 and removes their temporary files`, async () => {
    let fetch: PausingProxy | undefined;
    try {
      await using rig = await FileServiceRig.start("tcp", {
        cacheOriginPort: (originPort) => {
          fetch = PausingProxy.start({
            targetPort: originPort,
            direction: "from-target",
            pauseAfter: MiB,
          });
          return fetch.port;
        },
      });
      const dir = await rig.clientDir();
      await writeTestFile(join(dir, "big.bin"), 8 * MiB, 11);
      await Deno.copyFile(
        join(dir, "big.bin"),
        join(rig.originDir, "there.bin"),
      );
      // The cache mid-fetch: the origin's bytes frozen after 1 MiB.
      {
        await using client = rig.startClient(dir);
        await client.write("get there.bin\n");
        await untilPaused(fetch!, {
          client,
          cache: rig.cache,
          origin: rig.origin,
        });
        await untilTempFile(rig.cacheDir, "cache");
        await waitForSignalHandler(rig.cache.child.pid, signal);
        rig.cache.kill(signal);
        const stopped = await rig.cache.finished();
        equal(stopped.code, 0, `cache exit ${stopped.code}: ${stopped.stderr}`);
        deepEqual(await listDir(rig.cacheDir), [".sockkit-cache-index.json"]);
        await client.stderr.waitFor(/Error: Cannot get "there\.bin": .+\n/);
      }
      // The origin mid-upload: the client's bytes frozen after 1 MiB.
      await using paused = await pausedCommand(
        rig,
        dir,
        "put big.bin",
        "origin",
      );
      await untilTempFile(rig.originDir, "origin");
      await waitForSignalHandler(rig.origin.child.pid, signal);
      rig.origin.kill(signal);
      const stopped = await rig.origin.finished();
      equal(stopped.code, 0, `origin exit ${stopped.code}: ${stopped.stderr}`);
      deepEqual(await tempFiles(rig.originDir), []);
      ok(!(await listDir(rig.originDir)).includes("big.bin"));
      equal(
        await sha256File(join(rig.originDir, "there.bin")),
        await sha256File(join(dir, "big.bin")),
      );
      paused.proxy.cut();
      await paused.client.stderr.waitFor(
        /Error: Cannot put "big\.bin": .+\n/,
      );
    } finally {
      await fetch?.[Symbol.asyncDispose]();
    }
  });
}

Deno.test("file service: a signal mid-put interrupts it (exit 1); the origin discards the upload and keeps serving", async () => {
  await using rig = await FileServiceRig.start("tcp");
  await using paused = await pausedPut(rig, 7);
  const { client, dir, proxy } = paused;
  client.kill("SIGTERM");
  const done = await client.finished();
  equal(done.code, 1);
  equal(done.stderr, "Error: interrupted\n");
  equal(done.stdout, prompts(["put big.bin", "Awaiting server response."]));
  proxy.cut();
  // The origin drops its temporary file once the upload's connection is gone.
  const deadline = Date.now() + 10_000;
  while (
    (await listDir(rig.originDir)).some((n) => !n.endsWith(".json")) &&
    Date.now() < deadline
  ) await new Promise((resolve) => setTimeout(resolve, 20));
  deepEqual(
    (await listDir(rig.originDir)).filter((n) => !n.endsWith(".json")),
    [],
  );
  const again = await rig.session(dir, "put big.bin\n");
  match(again.stdout, /Server response: File successfully uploaded\.\n/);
  equal(
    await sha256File(join(rig.originDir, "big.bin")),
    await sha256File(join(dir, "big.bin")),
  );
});

Deno.test("file service: a signal mid-get interrupts it (no partial file, exit 1); at the prompt it ends the session", async () => {
  await using rig = await FileServiceRig.start("tcp");
  await using paused = await pausedGet(rig, 5);
  const { up, down, proxy } = paused;
  {
    const client = paused.client;
    ok((await listDir(down)).length === 1, "the download's temporary file");
    client.kill("SIGINT");
    const done = await client.finished();
    equal(done.code, 1);
    equal(done.stderr, "Error: interrupted\n");
    equal(done.stdout, prompts(["get big.bin"]));
    deepEqual(await listDir(down), []);
  }
  // The cache keeps serving; a signal at the prompt is end of input.
  proxy.cut();
  await using client = startRole("client", rig.clientArgs(down), {
    stdin: true,
  });
  await client.write("get big.bin\n");
  // At the prompt that follows the answer (not the one before the command).
  await client.stdout.waitFor(
    /Server response: File delivered from \w+\.\nEnter command: /,
  );
  client.kill("SIGHUP");
  const done = await client.finished();
  equal(done.code, 0, done.stderr);
  match(done.stdout, /Enter command: \nExiting program!\n$/);
  deepEqual(await listDir(down), ["big.bin"]);
  equal(
    await sha256File(join(down, "big.bin")),
    await sha256File(join(up, "big.bin")),
  );
});

Deno.test("file service: the origin dying while the cache fetches leaves no partial file", async () => {
  let proxy: PausingProxy | undefined;
  try {
    await using rig = await FileServiceRig.start("tcp", {
      cacheOriginPort: (originPort) => {
        proxy = PausingProxy.start({
          targetPort: originPort,
          direction: "from-target",
          pauseAfter: MiB,
        });
        return proxy.port;
      },
    });
    const up = await rig.clientDir("up");
    const down = await rig.clientDir("down");
    await writeTestFile(join(up, "big.bin"), 8 * MiB, 5);
    await rig.session(up, "put big.bin\n");
    await using client = startRole("client", rig.clientArgs(down), {
      stdin: true,
    });
    await client.write("get big.bin\n");
    await untilPaused(proxy!, {
      client,
      cache: rig.cache,
      origin: rig.origin,
    });
    rig.origin.kill("SIGKILL");
    await rig.origin.child.status;
    proxy!.cut();
    await client.stderr.waitFor(
      /Error: Cannot get "big\.bin" from the origin server: .+\n/,
    );
    await client.write("quit\n");
    await client.closeStdin();
    equal((await client.finished()).code, 0);
    deepEqual(await listDir(down), []);
    deepEqual(await listDir(rig.cacheDir), [".sockkit-cache-index.json"]);
  } finally {
    await proxy?.[Symbol.asyncDispose]();
  }
});

Deno.test("file service: connections are kept between commands and survive an origin restart", async () => {
  await using rig = await FileServiceRig.start("tcp");
  const dir = await rig.clientDir();
  await Deno.writeTextFile(join(dir, "a.txt"), "first\n");
  await Deno.writeTextFile(join(dir, "b.txt"), "other\n");
  await using client = rig.startClient(dir);
  const answers: string[] = [];
  const run = async (command: string) => {
    const before = client.stdout.text.length;
    await client.write(`${command}\n`);
    const [, text] = await client.stdout.waitFor(
      new RegExp(`^[\\s\\S]{${before}}[\\s\\S]*?Server response: (.*)\\n`),
      30_000,
    );
    answers.push(text);
  };
  await run("put a.txt");
  await run("put a.txt");
  await run("get a.txt");
  await run("get a.txt");
  await run("put b.txt");
  await run("get b.txt");
  // Both uploads came over one connection (the origin logs the peer).
  const puts = logLines(rig.origin, /put "a\.txt"/);
  equal(puts.length, 2);
  equal(puts[0].replace(/.* from /, ""), puts[1].replace(/.* from /, ""));
  // The cache's fetches of a.txt and b.txt too, over the connection it kept
  // to the origin (the STAT of the hit in between), and the client's three
  // gets over the one it kept to the cache. A server logs a request after
  // its answer: wait for the last line.
  const peers = async (role: RoleProcess, last: RegExp) => {
    await role.stdout.waitFor(last);
    return logLines(role, /get "[ab]\.txt"/).map((line) =>
      line.replace(/.* to ([^ ]+?):?( (hit|miss))?$/, "$1")
    );
  };
  const fetched = await peers(rig.origin, /get "b\.txt" .* to .+\n/);
  equal(fetched.length, 2, fetched.join(", "));
  equal(
    fetched[0],
    fetched[1],
    `the cache's connection to the origin: ${fetched.join(", ")}`,
  );
  const served = await peers(rig.cache, /get "b\.txt" .* to .*: miss\n/);
  equal(served.length, 3, served.join(", "));
  deepEqual(
    served,
    [served[0], served[0], served[0]],
    `the client's connection to the cache: ${served.join(", ")}`,
  );
  // The origin restarts: the client's and the cache's kept connections to
  // it are dead, and the next requests go through without an error.
  await rig.origin[Symbol.asyncDispose]();
  await rig.startOrigin();
  await Deno.writeTextFile(join(dir, "a.txt"), "second\n");
  await run("put a.txt");
  await run("get a.txt");
  deepEqual(answers, [
    "File successfully uploaded.",
    "File successfully uploaded.",
    "File delivered from origin.",
    "File delivered from cache.",
    "File successfully uploaded.",
    "File delivered from origin.",
    "File successfully uploaded.",
    "File delivered from origin.",
  ]);
  equal(await Deno.readTextFile(join(dir, "a.txt")), "second\n");
  await client.write("quit\n");
  await client.closeStdin();
  const done = await client.finished();
  equal(done.code, 0);
  equal(done.stderr, "");
});

Deno.test("file service: escapes and garbage on the wire are refused, servers keep serving", async () => {
  await using rig = await FileServiceRig.start("tcp");
  const exchange = async (port: number, bytes: Uint8Array) => {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await writeAll(conn, bytes);
    const header = await readExact(conn, new Uint8Array(4));
    ok(header, "an answer");
    const payload = await readExact(
      conn,
      new Uint8Array(decodeFrameLength(header)),
    );
    return decodeFileServiceMessage(payload!);
  };
  const frame = (m: FileServiceMessage) => encodeFileServiceMessage(m);
  const cases: Array<[number, Uint8Array, string]> = [
    [
      rig.originPort,
      frame({ type: "put", tag: "t", size: 3, name: "../x" }),
      "bad-name",
    ],
    [rig.originPort, frame({ type: "stat", name: "/etc/passwd" }), "bad-name"],
    [
      rig.originPort,
      frame({ type: "get", tag: "t", name: ".x.part-0123abcd" }),
      "bad-name",
    ],
    [
      rig.cachePort,
      frame({ type: "get", tag: "t", name: "../../etc/passwd" }),
      "bad-name",
    ],
    [
      rig.cachePort,
      frame({ type: "put", tag: "t", size: 1, name: "a" }),
      "bad-request",
    ],
    [rig.originPort, new Uint8Array([0xff, 0xff, 0xff, 0xff]), "bad-request"],
    [
      rig.cachePort,
      new Uint8Array([0, 0, 0, 3, 0x42, 0x41, 0x44]),
      "bad-request",
    ],
  ];
  for (const [port, bytes, code] of cases) {
    const answer = await exchange(port, bytes);
    equal(answer.type, "error");
    equal(answer.type === "error" && answer.code, code);
  }
  deepEqual(await listDir(rig.originDir), []);
  const dir = await rig.clientDir();
  await Deno.writeTextFile(join(dir, "test.txt"), "still here\n");
  const run = await rig.session(dir, "put test.txt\nget test.txt\nquit\n");
  equal(run.stdout, SPEC_TRANSCRIPT);
});

Deno.test("file service over snw: through lossy relays (10% loss, duplicates, reordering, corruption), byte-exact", async () => {
  const impairments = {
    drop: 0.1,
    duplicate: 0.03,
    reorder: 0.03,
    corrupt: 0.01,
  };
  const env = { SOCKKIT_SNW_TIMEOUT_MS: "5000" };
  let originRelay: LossyRelay | undefined;
  try {
    await using rig = await FileServiceRig.start("snw", {
      env,
      cacheOriginPort: (originPort) => {
        originRelay = LossyRelay.start({
          targetPort: originPort,
          seed: 11,
          ...impairments,
        });
        return originRelay.port;
      },
    });
    await using cacheRelay = LossyRelay.start({
      targetPort: rig.cachePort,
      seed: 12,
      ...impairments,
    });
    const up = await rig.clientDir("up");
    const down = await rig.clientDir("down");
    await writeTestFile(join(up, "lossy.bin"), 300 * 1024 + 3, 8);
    const digest = await sha256File(join(up, "lossy.bin"));
    const put = await rig.session(up, "put lossy.bin\n", {
      server: originRelay!.port,
    });
    match(put.stdout, /Server response: File successfully uploaded\./);
    const run = await rig.session(
      down,
      "get lossy.bin\nget lossy.bin\nquit\n",
      {
        server: originRelay!.port,
        cache: cacheRelay.port,
      },
    );
    equal(
      run.stdout,
      prompts(
        ["get lossy.bin", "Server response: File delivered from origin."],
        ["get lossy.bin", "Server response: File delivered from cache."],
        ["quit", "Exiting program!"],
      ),
    );
    equal(await sha256File(join(rig.originDir, "lossy.bin")), digest);
    equal(await sha256File(join(rig.cacheDir, "lossy.bin")), digest);
    equal(await sha256File(join(down, "lossy.bin")), digest);
    for (const relay of [originRelay!, cacheRelay]) {
      ok(relay.stats.dropped > 0 && relay.stats.tcpConnections > 0);
    }
  } finally {
    await originRelay?.close();
  }
});

Deno.test("file client: a server's error text is shown with its control and bidi characters escaped", async () => {
  await using dir = await tempDir();
  // A cache that answers every request with one hostile ERROR.
  using fake = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const answering = (async () => {
    using conn = await fake.accept();
    await conn.read(new Uint8Array(4096)); // the GET
    await writeAll(
      conn,
      encodeFileServiceMessage({
        type: "error",
        code: "not-found",
        text: "gone\x1b]0;owned\x07\u202eevil",
      }),
    );
    await conn.read(new Uint8Array(16)).catch(() => null); // until it leaves
  })();
  const run = await runRole("client", [
    "127.0.0.1",
    String(fake.addr.port),
    "127.0.0.1",
    String(fake.addr.port),
    "tcp",
    "--dir",
    dir.path,
  ], { input: "get x.txt\nquit\n", timeoutMs: 20_000 });
  await answering;
  equal(run.code, 0, run.stderr);
  equal(run.stderr, "Error: gone\\x1b]0;owned\\x07\\u{202e}evil\n");
});
