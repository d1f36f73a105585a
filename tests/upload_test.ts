/**
 * The upload receiver and client (SPEC §3, seed 002), tested the way the
 * course's grader does: real `server` and `client` processes, real files,
 * SHA-256 comparison, exact directory listings, exit codes and `ERROR:`
 * lines. Raw TCP senders from the test stand in for misbehaving clients.
 *
 * @module
 */

import { FullBacklogPort } from "./_helpers/full_backlog.ts";
import { UploadReceiver } from "../roles/server/upload_receiver.ts";
import { writeAll } from "../transport/byte_io.ts";
import { isTempName } from "../roles/partial_file.ts";
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { sha256File, tempDir, writeTestFile } from "./_helpers/files.ts";
import { firstLine, freePort } from "./_helpers/ports.ts";
import { resetQueuedConnections } from "./_helpers/reset_peers.ts";
import {
  peakRssKiB,
  pollUntil,
  waitForSignalHandler,
  waitForThreadIn,
} from "./_helpers/proc_status.ts";
import {
  type RoleProcess,
  runRole,
  startRole,
} from "./_helpers/role_process.ts";
import {
  parseUploadServerArgs,
  UploadArgsError,
} from "../roles/upload/upload_args.ts";
import { parseUploadClientArgs } from "../roles/client/upload_client_args.ts";
import {
  type ConnectDeps,
  connectWithin,
  UploadError,
} from "../roles/client/upload_connect.ts";
import type { UploadSocket } from "../roles/client/upload_socket.ts";
import { IdleWatchdog } from "../roles/upload/upload_watchdog.ts";
import {
  UPLOAD_ERROR_MARKER,
  writeErrorMarker,
} from "../roles/server/upload_connection.ts";
import {
  connectRaw,
  delay,
  exitCodeWithin,
  listDir,
  numberedFiles,
  startUploadServer,
  waitForContent,
  waitForPeerClose,
  writeAllTo,
} from "./upload/upload_harness.ts";
import { within } from "./_helpers/within.ts";

const MiB = 1024 * 1024;

/** Asserts a failed run: non-zero exit and exactly one `ERROR:` line on stderr. */
function assertErrorRun(
  result: { code: number; stderr: string },
  what: string,
): void {
  ok(result.code !== 0, `${what}: expected a non-zero exit, got 0`);
  // One ERROR: line; a usage error (exit 2) adds the usage text after it.
  match(
    result.stderr,
    result.code === 2 ? /^ERROR: [^\n]+\nusage: / : /^ERROR: [^\n]+\n$/,
    `${what}: stderr`,
  );
}

Deno.test("upload: 500 B, 1 MiB and 20 MiB each arrive as the only file 1.file", async () => {
  for (const size of [500, MiB, 20 * MiB]) {
    await using src = await tempDir();
    await using out = await tempDir();
    const file = join(src.path, `sent-${size}.bin`);
    await writeTestFile(file, size, size);
    await using server = await startUploadServer(out.path);
    const result = await runRole(
      "client",
      ["127.0.0.1", String(server.port), file],
      { timeoutMs: 30_000 },
    );
    equal(result.code, 0, `client for ${size} B: ${result.stderr}`);
    equal(result.stderr, "");
    deepEqual(await listDir(out.path), ["1.file"], `listing for ${size} B`);
    equal(
      await sha256File(join(out.path, "1.file")),
      await sha256File(file),
      `content for ${size} B`,
    );
  }
});

Deno.test({
  name:
    "upload: a 128 MiB upload leaves the receiver's memory flat (written as it arrives, never held whole)",
  ignore: Deno.build.os !== "linux", // reads /proc
  async fn() {
    await using src = await tempDir();
    await using out = await tempDir();
    const file = join(src.path, "big.bin");
    await writeTestFile(file, 128 * MiB, 12);
    await using server = await startUploadServer(out.path);
    const before = peakRssKiB(server.role.child.pid);
    const result = await runRole(
      "client",
      ["127.0.0.1", String(server.port), file],
      { timeoutMs: 60_000 },
    );
    equal(result.code, 0, result.stderr);
    equal(
      await sha256File(join(out.path, "1.file")),
      await sha256File(file),
    );
    // Holding the upload whole would add at least its 128 MiB.
    const growthMiB = (peakRssKiB(server.role.child.pid) - before) / 1024;
    ok(growthMiB < 48, `receiver peak RSS grew by ${growthMiB.toFixed(1)} MiB`);
  },
});

Deno.test("upload: 10 sequential clients of mixed sizes become 1.file … 10.file", async () => {
  await using src = await tempDir();
  await using out = await tempDir();
  const sizes = [
    0,
    1,
    1000,
    65_535,
    65_536,
    65_537,
    300_000,
    MiB,
    2 * MiB + 3,
    17,
  ];
  await using server = await startUploadServer(out.path);
  const hashes: string[] = [];
  for (const [i, size] of sizes.entries()) {
    const file = join(src.path, `f${i}.bin`);
    await writeTestFile(file, size, i + 7);
    hashes.push(await sha256File(file));
    // Alternate the positional and the explicit `client upload` form.
    const form = i % 2 === 0 ? [] : ["upload"];
    const result = await runRole(
      "client",
      [...form, "localhost", String(server.port), file],
      { timeoutMs: 20_000 },
    );
    equal(result.code, 0, `client ${i + 1}: ${result.stderr}`);
  }
  deepEqual(await listDir(out.path), numberedFiles(10));
  for (const [i, hash] of hashes.entries()) {
    equal(
      await sha256File(join(out.path, `${i + 1}.file`)),
      hash,
      `${i + 1}.file`,
    );
  }
});

/**
 * Sends `bytes` as one raw upload (FIN at the end) and waits for the
 * receiver's close, which comes only once `<n>.file` is in place.
 */
async function rawUpload(port: number, bytes: Uint8Array): Promise<void> {
  using conn = await connectRaw(port);
  await writeAllTo(conn, bytes);
  await conn.closeWrite();
  await waitForPeerClose(conn, 10_000);
}

Deno.test("upload: numbering restarts at 1 with each server run; an existing 1.file is replaced only when the new upload is complete", async () => {
  await using src = await tempDir();
  await using out = await tempDir();
  const size = 300_000;
  const [old1, old2, next] = await Promise.all([1, 2, 3].map(async (seed) => {
    const path = join(src.path, `${seed}.bin`);
    await writeTestFile(path, size, 40 + seed);
    return { bytes: await Deno.readFile(path), sha256: await sha256File(path) };
  }));
  // The first run stores 1.file and 2.file.
  {
    await using server = await startUploadServer(out.path);
    await rawUpload(server.port, old1.bytes);
    await rawUpload(server.port, old2.bytes);
    server.role.kill("SIGTERM");
    equal(await exitCodeWithin(server.role, 10_000), 0);
  }
  deepEqual(await listDir(out.path), ["1.file", "2.file"]);
  const oldInode = (await Deno.stat(join(out.path, "1.file"))).ino;
  // The second run's first upload is connection 1 again: half of it sent.
  await using server = await startUploadServer(out.path);
  using conn = await connectRaw(server.port);
  const half = size / 2;
  await writeAllTo(conn, next.bytes.subarray(0, half));
  let written: { name: string; ino: number | null } | undefined;
  await pollUntil(
    async () => {
      for (const name of await listDir(out.path)) {
        const info = await Deno.stat(join(out.path, name)).catch(() => null);
        const grown = isTempName(name)
          ? info?.size === half
          : info?.size !== size; // written in place
        if (info && grown) written = { name, ino: info.ino };
      }
      return written !== undefined;
    },
    10_000,
    "the receiver to store the first half of the upload",
  );
  match(
    written!.name,
    /^\.1\.file\.part-[0-9a-f]{8}$/,
    `written to ${written!.name}`,
  );
  equal(
    await sha256File(join(out.path, "1.file")),
    old1.sha256,
    "1.file mid-upload is still the first run's, whole",
  );
  await writeAllTo(conn, next.bytes.subarray(half));
  await conn.closeWrite();
  await waitForPeerClose(conn, 10_000);
  deepEqual(await listDir(out.path), ["1.file", "2.file"]);
  equal(await sha256File(join(out.path, "1.file")), next.sha256);
  equal(await sha256File(join(out.path, "2.file")), old2.sha256);
  // Renamed over the old file, not written into it.
  const newInode = (await Deno.stat(join(out.path, "1.file"))).ino;
  equal(newInode, written!.ino);
  ok(newInode !== oldInode, "1.file is a new file");
});

Deno.test("upload: 20 concurrent clients give 20 correct files", async () => {
  await using src = await tempDir();
  await using out = await tempDir();
  await using server = await startUploadServer(out.path, [], true);
  const files = await Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      const file = join(src.path, `c${i}.bin`);
      await writeTestFile(file, 100_000 + i * 50_000, 100 + i);
      return file;
    }),
  );
  const results = await Promise.all(
    files.map((file) =>
      runRole("client", ["127.0.0.1", String(server.port), file], {
        timeoutMs: 60_000,
      })
    ),
  );
  for (const [i, result] of results.entries()) {
    equal(result.code, 0, `client ${i}: ${result.stderr}`);
  }
  deepEqual(await listDir(out.path), numberedFiles(20));
  const sent = (await Promise.all(files.map(sha256File))).sort();
  const stored = (await Promise.all(
    numberedFiles(20).map((name) => sha256File(join(out.path, name))),
  )).sort();
  deepEqual(stored, sent);
});

Deno.test("upload: connections reset before they were accepted are counted, each an ERROR file", async () => {
  await using src = await tempDir();
  await using out = await tempDir();
  const file = join(src.path, "after.bin");
  await writeTestFile(file, 5000, 4);
  await using server = await startUploadServer(out.path);
  // Queued while the server is stopped, reset before it can accept them.
  server.role.kill("SIGSTOP");
  try {
    await resetQueuedConnections(server.port, 3);
  } finally {
    server.role.kill("SIGCONT");
  }
  const result = await runRole(
    "client",
    ["127.0.0.1", String(server.port), file],
    { timeoutMs: 30_000 },
  );
  equal(result.code, 0, result.stderr);
  deepEqual(await listDir(out.path), [
    "1.file",
    "2.file",
    "3.file",
    "4.file",
  ]);
  for (const name of ["1.file", "2.file", "3.file"]) {
    equal(await Deno.readTextFile(join(out.path, name)), "ERROR", name);
  }
  equal(await sha256File(join(out.path, "4.file")), await sha256File(file));
});

Deno.test("upload: the ERROR marker of a connection lost before it was received replaces <n>.file by a rename, never rewriting it in place", async () => {
  await using out = await tempDir();
  const finalPath = join(out.path, "1.file");
  await Deno.writeTextFile(finalPath, "an older run's upload");
  // A reader that opened the old file goes on reading it whole: the marker
  // is a new file renamed over the name, not the old one truncated.
  using reader = await Deno.open(finalPath);
  equal(await writeErrorMarker(finalPath), true);
  deepEqual(await Deno.readFile(finalPath), UPLOAD_ERROR_MARKER);
  equal(
    new TextDecoder().decode(await new Response(reader.readable).bytes()),
    "an older run's upload",
  );
  deepEqual(await listDir(out.path), ["1.file"]);
});

Deno.test("upload: a connection that sends nothing and closes gives an empty 1.file", async () => {
  await using out = await tempDir();
  await using server = await startUploadServer(out.path);
  const conn = await connectRaw(server.port);
  try {
    await conn.closeWrite();
    equal(await waitForPeerClose(conn, 10_000), "eof");
  } finally {
    conn.close();
  }
  deepEqual(await listDir(out.path), ["1.file"]);
  equal((await Deno.stat(join(out.path, "1.file"))).size, 0);
});

Deno.test("upload: a slow client sending chunks with pauses shorter than the timeout succeeds", async () => {
  await using out = await tempDir();
  // 5 pauses of 500 ms = 2.5 s in total, longer than the 2 s timeout: only a
  // timer that restarts on every chunk lets this upload through.
  await using server = await startUploadServer(out.path, [
    "--timeout-ms",
    "2000",
  ]);
  const chunks = Array.from(
    { length: 6 },
    (_, i) => new TextEncoder().encode(`chunk ${i} `.repeat(100 + i)),
  );
  const conn = await connectRaw(server.port);
  try {
    for (const [i, chunk] of chunks.entries()) {
      if (i > 0) await delay(500);
      await writeAllTo(conn, chunk);
    }
    await conn.closeWrite();
    equal(await waitForPeerClose(conn, 10_000), "eof");
  } finally {
    conn.close();
  }
  deepEqual(await listDir(out.path), ["1.file"]);
  const expected = chunks.map((c) => new TextDecoder().decode(c)).join("");
  equal(await Deno.readTextFile(join(out.path, "1.file")), expected);
});

Deno.test("upload: a stalled client's file is exactly ERROR after the timeout while a parallel client succeeds", async () => {
  await using src = await tempDir();
  await using out = await tempDir();
  const timeoutMs = 1500;
  await using server = await startUploadServer(out.path, [
    "--timeout",
    String(timeoutMs / 1000),
    "-v",
  ]);
  // Connection 1 sends part of a file and stalls; connection 2 sends nothing.
  const stalled = await connectRaw(server.port);
  const silent = await connectRaw(server.port);
  try {
    await writeAllTo(stalled, new Uint8Array(1000).fill(65));
    const stalledAt = Date.now();
    // When the server says it aborted connection 1, seen as it is printed
    // (not after the good client below has run: that hid an early abort).
    const abortSeenAt = server.role.stdout.waitFor(
      `1.file: ERROR (no data for more than ${timeoutMs} ms)`,
      timeoutMs + 15_000,
    ).then(() => Date.now(), (error: Error) => error);
    await server.role.stdout.waitFor("connection 2 from");
    // Connection 3: a good client, in parallel, must not wait for the others.
    const file = join(src.path, "good.bin");
    await writeTestFile(file, 3 * MiB, 3);
    const good = await runRole(
      "client",
      ["127.0.0.1", String(server.port), file],
      { timeoutMs: 20_000 },
    );
    equal(good.code, 0, good.stderr);
    equal(await sha256File(join(out.path, "3.file")), await sha256File(file));

    await waitForContent(join(out.path, "1.file"), "ERROR", timeoutMs + 10_000);
    await waitForContent(join(out.path, "2.file"), "ERROR", 5_000);
    const seenAt = await abortSeenAt;
    if (seenAt instanceof Error) throw seenAt;
    ok(
      seenAt - stalledAt >= timeoutMs - 50,
      `the stalled upload was aborted ${
        seenAt - stalledAt
      } ms after its last data`,
    );
    // The server aborted both connections.
    await waitForPeerClose(stalled, 5_000);
    await waitForPeerClose(silent, 5_000);
  } finally {
    stalled.close();
    silent.close();
  }
  deepEqual(
    await listDir(out.path),
    numberedFiles(3),
    "no temporary files left",
  );
});

Deno.test("upload: the default no-data timeout is the spec's 10 s", async () => {
  await using out = await tempDir();
  await using server = await startUploadServer(out.path);
  const conn = await connectRaw(server.port);
  try {
    await writeAllTo(conn, new TextEncoder().encode("partial input"));
    const sentAt = Date.now();
    await delay(8_000);
    deepEqual(
      (await listDir(out.path)).filter((name) => !name.startsWith(".")),
      [],
      "1.file appeared before 10 s without data",
    );
    await waitForContent(join(out.path, "1.file"), "ERROR", 12_000);
    const elapsed = Date.now() - sentAt;
    ok(elapsed >= 9_950, `aborted after ${elapsed} ms`);
    equal(await waitForPeerClose(conn, 5_000), "eof");
  } finally {
    conn.close();
  }
  deepEqual(await listDir(out.path), ["1.file"]);
});

for (const signal of ["SIGTERM", "SIGQUIT", "SIGINT", "SIGHUP"] as const) {
  Deno.test(`upload: ${signal} stops the server with exit code 0, in-flight file marked ERROR`, async () => {
    await using out = await tempDir();
    await using server = await startUploadServer(out.path, ["-v"]);
    // Connection 1 completes; connection 2 is still sending at the signal.
    const done = await connectRaw(server.port);
    try {
      await writeAllTo(done, new TextEncoder().encode("complete"));
      await done.closeWrite();
      equal(await waitForPeerClose(done, 10_000), "eof");
    } finally {
      done.close();
    }
    const inFlight = await connectRaw(server.port);
    try {
      await writeAllTo(inFlight, new Uint8Array(100_000));
      await server.role.stdout.waitFor("connection 2 from");
      server.role.kill(signal);
      equal(await exitCodeWithin(server.role, 10_000), 0);
    } finally {
      inFlight.close();
    }
    deepEqual(await listDir(out.path), ["1.file", "2.file"]);
    equal(await Deno.readTextFile(join(out.path, "1.file")), "complete");
    equal(await Deno.readTextFile(join(out.path, "2.file")), "ERROR");
  });
}

Deno.test("upload server: every bad port form and a port in use give one ERROR: line (plus usage for a usage error) and a non-zero exit", async () => {
  await using out = await tempDir();
  const inUse = freePort();
  using _holder = Deno.listen({ hostname: "0.0.0.0", port: inUse });
  const cases: Array<[string, string[]]> = [
    ["non-numeric", ["abc", out.path]],
    ["zero", ["0", out.path]],
    ["negative", ["-1", out.path]],
    ["too large", ["65536", out.path]],
    ["far too large", ["99999999", out.path]],
    ["empty", ["", out.path]],
    ["fraction", ["80.5", out.path]],
    ["explicit form", ["upload", "x1", out.path]],
    ["in use", [String(inUse), out.path]],
  ];
  const results = await Promise.all(
    cases.map(([, args]) => runRole("server", args, { timeoutMs: 20_000 })),
  );
  for (const [i, [what]] of cases.entries()) {
    assertErrorRun(results[i], what);
    equal(results[i].stdout, "", `${what}: nothing on stdout`);
  }
  match(results.at(-1)!.stderr, /address already in use/);
  // Documented exit codes: 2 for a bad command line, 1 for a port in use.
  deepEqual(results.map((r) => r.code), [2, 2, 2, 2, 2, 2, 2, 2, 1]);
  // A malformed command line adds the usage text after the ERROR: line.
  const missing = await runRole("server", ["upload", "5000"]);
  equal(missing.code, 2);
  match(missing.stderr, /^ERROR: missing <FILE-DIR>\nusage: server \[upload\]/);
  deepEqual(await listDir(out.path), []);
});

Deno.test("upload client: bad port, unresolvable host, refused connection and missing file each give ERROR: fast", async () => {
  await using src = await tempDir();
  const file = join(src.path, "a.bin");
  await writeTestFile(file, 1000);
  const closedPort = String(freePort());
  const cases: Array<[string, string[]]> = [
    ["non-numeric port", ["127.0.0.1", "http", file]],
    ["port 0", ["127.0.0.1", "0", file]],
    ["port too large", ["127.0.0.1", "70000", file]],
    ["negative port", ["127.0.0.1", "-5", file]],
    ["unresolvable host", ["no-such-host.invalid", closedPort, file]],
    ["refused connection", ["127.0.0.1", closedPort, file]],
    ["missing file", ["127.0.0.1", closedPort, join(src.path, "nope.bin")]],
  ];
  const started = Date.now();
  const results = await Promise.all(
    cases.map(([, args]) => runRole("client", args, { timeoutMs: 20_000 })),
  );
  for (const [i, [what]] of cases.entries()) assertErrorRun(results[i], what);
  match(results[4].stderr, /cannot resolve host "no-such-host\.invalid"/);
  match(results[5].stderr, /connection refused/);
  match(results[6].stderr, /no such file/);
  deepEqual(results.map((r) => r.code), [2, 2, 2, 2, 1, 1, 1]);
  // Far below the 10 s timeout: none of these waits for it.
  ok(Date.now() - started < 9_000, `took ${Date.now() - started} ms`);
});

Deno.test("upload client: a server that accepts but never reads gives ERROR: after the send timeout", async () => {
  await using src = await tempDir();
  // Larger than the socket buffers on both sides (a few MiB), written sparse.
  const file = join(src.path, "big.bin");
  await Deno.writeFile(file, new Uint8Array(0));
  await Deno.truncate(file, 64 * MiB);
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const timeoutMs = 1000;
  await using client = startRole("client", [
    "127.0.0.1",
    String(listener.addr.port),
    file,
    "--timeout-ms",
    String(timeoutMs),
  ]);
  const started = Date.now();
  const conn = await within(listener.accept(), 10_000, "the client's connect");
  try {
    const result = await client.finished(20_000);
    const elapsed = Date.now() - started;
    assertErrorRun(result, "stalled server");
    match(result.stderr, /no send progress for 1000 ms/);
    ok(elapsed >= timeoutMs - 50, `gave up after ${elapsed} ms`);
    ok(elapsed < timeoutMs + 8_000, `gave up only after ${elapsed} ms`);
    // Reset, not closed: a server reading now must not see a finished upload.
    equal(await waitForPeerClose(conn, 10_000), "error");
  } finally {
    conn.close();
  }
});

Deno.test("upload client: a stop signal mid-upload gives one ERROR: line and exit 1, at once", async () => {
  await using src = await tempDir();
  const file = join(src.path, "big.bin");
  await Deno.writeFile(file, new Uint8Array(0));
  await Deno.truncate(file, 64 * MiB); // more than the socket buffers take
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    await using client = startRole("client", [
      "127.0.0.1",
      String(listener.addr.port),
      file,
      "--timeout-ms",
      "30000",
    ]);
    const conn = await within(
      listener.accept(),
      10_000,
      `the client's connect (${signal})`,
    );
    try {
      await new Promise((resolve) => setTimeout(resolve, 300)); // stalled now
      await assertStoppedBy(client, signal, 5_000);
    } finally {
      conn.close();
    }
  }
});

Deno.test("upload: a client stopped mid-upload leaves ERROR on the server, not the bytes sent so far", async () => {
  // The file is a FIFO the test feeds: 1 MiB reaches the server, then the
  // client waits for more. Client 1 is stopped there; client 2 (the
  // control) sees its file end there and completes a 1 MiB upload.
  await using src = await tempDir();
  await using out = await tempDir();
  await using server = await startUploadServer(out.path, ["-v"]);
  for (const n of [1, 2]) {
    const fifo = join(src.path, `fifo${n}`);
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    ok(made.success, "mkfifo");
    const client = startRole("client", [
      "127.0.0.1",
      String(server.port),
      fifo,
      "--timeout-ms",
      "30000",
    ]);
    const writer = await Deno.open(fifo, { write: true });
    try {
      await writeAllTo(writer, new Uint8Array(MiB).fill(66));
      await server.role.stdout.waitFor(`connection ${n} from`);
      await delay(300); // the MiB is at the server
      if (n === 1) await assertStoppedBy(client, "SIGTERM", 5_000);
    } finally {
      writer.close();
    }
    if (n === 2) {
      const result = await client.finished(20_000);
      equal(result.code, 0, result.stderr);
    }
  }
  await waitForContent(join(out.path, "1.file"), "ERROR", 5_000);
  equal((await Deno.stat(join(out.path, "2.file"))).size, MiB);
  deepEqual(await listDir(out.path), numberedFiles(2));
});

Deno.test("upload client: a stop signal while it opens a FIFO that has no writer yet ends it at once", async () => {
  await using src = await tempDir();
  const fifo = join(src.path, "fifo");
  const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
  ok(made.success, "mkfifo");
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using client = startRole("client", [
    "127.0.0.1",
    String(listener.addr.port),
    fifo,
  ]);
  // Its stop handler in place, and blocked opening the FIFO.
  await waitForSignalHandler(client.child.pid, "SIGTERM");
  await waitForThreadIn(client.child.pid, "wait_for_partner");
  await assertStoppedBy(client, "SIGTERM", 3_000);
});

Deno.test("upload client: a receiver that half-closes first (FIN at accept) still gets every byte, and the upload succeeds", async () => {
  await using src = await tempDir();
  const file = join(src.path, "f.bin");
  await writeTestFile(file, 3 * MiB, 5);
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const received = (async () => {
    using conn = await listener.accept();
    await conn.closeWrite(); // legal TCP: done sending, still reading
    const hash = createHash("sha256");
    const buffer = new Uint8Array(64 * 1024);
    let bytes = 0;
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      hash.update(buffer.subarray(0, n));
      bytes += n;
    }
    return { bytes, sha256: hash.digest("hex") };
  })();
  const result = await runRole(
    "client",
    ["127.0.0.1", String(listener.addr.port), file],
    { timeoutMs: 20_000 },
  );
  equal(result.code, 0, result.stderr);
  deepEqual(await within(received, 10_000, "the upload's end"), {
    bytes: 3 * MiB,
    sha256: await sha256File(file),
  });
});

Deno.test("upload client: a receiver that reads everything but never closes gives ERROR: after the timeout, not exit 0", async () => {
  await using src = await tempDir();
  const file = join(src.path, "f.bin");
  await writeTestFile(file, 100_000, 6);
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const reading = (async () => {
    const conn = await listener.accept();
    const buffer = new Uint8Array(64 * 1024);
    let bytes = 0;
    for (let n; (n = await conn.read(buffer)) !== null;) bytes += n;
    return { conn, bytes }; // EOF seen, and the connection kept open
  })();
  const started = Date.now();
  const result = await runRole("client", [
    "127.0.0.1",
    String(listener.addr.port),
    file,
    "--timeout-ms",
    "1000",
  ], { timeoutMs: 20_000 });
  const { conn, bytes } = await within(reading, 10_000, "the upload's end");
  conn.close();
  equal(bytes, 100_000);
  equal(result.code, 1);
  equal(
    result.stderr,
    "ERROR: the server did not close the connection within 1000 ms after the last byte\n",
  );
  const ms = Date.now() - started;
  ok(ms < 8_000, `took ${ms} ms`);
});

Deno.test("upload client: a stop signal while connecting ends it at once, not at the connect timeout", async () => {
  await using src = await tempDir();
  const file = join(src.path, "f.bin");
  await Deno.writeFile(file, new Uint8Array(10));
  await using blackhole = await FullBacklogPort.start(); // connects hang
  await using client = startRole("client", [
    "127.0.0.1",
    String(blackhole.port),
    file,
    "--timeout",
    "30",
  ]);
  // Its stop handler in place, and its SYN unanswered.
  await waitForSignalHandler(client.child.pid, "SIGINT");
  await pollUntil(
    () => connectingTo(blackhole.port),
    10_000,
    "a connect in SYN_SENT",
  );
  await assertStoppedBy(client, "SIGINT", 3_000);
});

/**
 * Whether a TCP connect to 127.0.0.1:`port` is under way (`SYN_SENT` in
 * `/proc/net/tcp`).
 */
async function connectingTo(port: number): Promise<boolean> {
  const table = await Deno.readTextFile("/proc/net/tcp");
  return table.split("\n").slice(1).some((line) => {
    const fields = line.trim().split(/\s+/);
    const remotePort = parseInt(fields[2]?.split(":")[1] ?? "", 16);
    return fields[3] === "02" && remotePort === port; // 02: SYN_SENT
  });
}

/**
 * Sends `signal` to an upload client and checks that it ends within
 * `withinMs` with exit 1 and the one `ERROR:` line of an interruption.
 */
async function assertStoppedBy(
  client: RoleProcess,
  signal: Deno.Signal,
  withinMs: number,
): Promise<void> {
  const started = Date.now();
  client.kill(signal);
  const result = await client.finished(20_000);
  equal(result.code, 1, result.stderr);
  equal(
    result.stderr,
    `ERROR: interrupted by ${signal} before the server confirmed the upload\n`,
  );
  const ms = Date.now() - started;
  ok(ms < withinMs, `ended after ${ms} ms`);
}

Deno.test("upload client: exit 0 means the server stored the file (it waits for the server's close)", async () => {
  await using src = await tempDir();
  await using out = await tempDir();
  const file = join(src.path, "x.bin");
  await writeTestFile(file, 5 * MiB, 9);
  await using server = await startUploadServer(out.path);
  const result = await runRole(
    "client",
    ["127.0.0.1", String(server.port), file, "-v"],
    { timeoutMs: 20_000 },
  );
  equal(result.code, 0, result.stderr);
  match(
    result.stdout,
    /^sent 5242880 bytes of ".*x\.bin" to 127\.0\.0\.1:\d+ in \d+ ms\n$/,
  );
  // Checked at once, no polling: the file is already in place.
  deepEqual(await listDir(out.path), ["1.file"]);
  equal(await sha256File(join(out.path, "1.file")), await sha256File(file));
});

const hasPython = (() => {
  try {
    return new Deno.Command("python3", { args: ["--version"] }).outputSync()
      .success;
  } catch {
    return false;
  }
})();
const FIXTURES = new URL("./upload/", import.meta.url).pathname;

Deno.test({
  name:
    "upload: interoperates with plain Python peers (sendall+close client, read-until-EOF server)",
  ignore: !hasPython,
  async fn() {
    await using src = await tempDir();
    await using out = await tempDir();
    const file = join(src.path, "p.bin");
    await writeTestFile(file, 2 * MiB + 11, 21);
    const hash = await sha256File(file);

    // A Python client that closes without waiting: poll for the file.
    await using server = await startUploadServer(out.path);
    const sender = await new Deno.Command("python3", {
      args: [
        join(FIXTURES, "plain_sender.py"),
        "127.0.0.1",
        String(server.port),
        file,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    equal(sender.code, 0, new TextDecoder().decode(sender.stderr));
    await waitForFileSize(join(out.path, "1.file"), 2 * MiB + 11, 10_000);
    equal(await sha256File(join(out.path, "1.file")), hash);

    // Our client against a Python receiver.
    const received = join(out.path, "python-received.bin");
    const receiver = new Deno.Command("python3", {
      args: [join(FIXTURES, "plain_receiver.py"), received],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    try {
      const line = await firstLine(receiver.stdout);
      const port = Number(line);
      ok(port > 0, `python receiver port: ${line}`);
      const result = await runRole(
        "client",
        ["127.0.0.1", String(port), file],
        { timeoutMs: 20_000 },
      );
      equal(result.code, 0, result.stderr);
      equal((await receiver.status).code, 0);
      equal(await sha256File(received), hash);
    } finally {
      try {
        receiver.kill("SIGKILL");
      } catch { /* exited */ }
      await receiver.status;
    }
  },
});

async function waitForFileSize(
  path: string,
  size: number,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const info = await Deno.stat(path).catch(() => undefined);
    if (info?.size === size) return;
    await delay(50);
  }
  throw new Error(`${path} did not reach ${size} bytes within ${timeoutMs} ms`);
}

// ---- units: argument parsing, the watchdog, the connect phase ----

Deno.test("upload args: positional forms, options anywhere, last timeout wins", () => {
  const server = parseUploadServerArgs([
    "--timeout=0.25",
    "5000",
    "save",
    "-v",
  ]);
  deepEqual(server, {
    port: 5000,
    dir: "save",
    idleTimeoutMs: 250,
    verbose: true,
    help: false,
  });
  equal(
    parseUploadServerArgs(["1", "d", "--timeout", "3", "--timeout-ms", "70"])
      .idleTimeoutMs,
    70,
  );
  equal(
    parseUploadServerArgs(["1", "d", "--timeout-ms=70", "--timeout", "3"])
      .idleTimeoutMs,
    3000,
  );
  equal(parseUploadServerArgs(["1", "d"]).idleTimeoutMs, 10_000);
  const client = parseUploadClientArgs([
    "h",
    "65535",
    "f",
    "--timeout-ms",
    "9",
  ]);
  deepEqual(client, {
    host: "h",
    port: 65535,
    file: "f",
    timeoutMs: 9,
    verbose: false,
    help: false,
  });
  equal(parseUploadClientArgs(["--help"]).help, true);
});

Deno.test("upload args: every bad command line is an UploadArgsError with a reason", () => {
  const bad: Array<[() => unknown, RegExp]> = [
    [() => parseUploadServerArgs([]), /missing <PORT>/],
    [() => parseUploadServerArgs(["5000"]), /missing <FILE-DIR>/],
    [() => parseUploadServerArgs(["-7", "d"]), /invalid port "-7"/],
    [
      () => parseUploadServerArgs(["5000", "d", "x"]),
      /unexpected argument "x"/,
    ],
    [
      () => parseUploadServerArgs(["5000", "d", "--nope"]),
      /unknown option "--nope"/,
    ],
    [() => parseUploadServerArgs(["5000", "d", "--timeout"]), /needs a value/],
    [
      () => parseUploadServerArgs(["5000", "d", "--timeout", "0"]),
      /invalid --timeout/,
    ],
    [
      () => parseUploadServerArgs(["5000", "d", "--timeout", "-1"]),
      /invalid --timeout/,
    ],
    [
      () => parseUploadServerArgs(["5000", "d", "--timeout-ms", "1.5"]),
      /invalid --timeout-ms/,
    ],
    [
      () => parseUploadServerArgs(["5000", "d", "--timeout-ms", "2147483648"]),
      /invalid --timeout-ms/,
    ],
    [
      () => parseUploadServerArgs(["5000", "d", "--timeout", "1e3"]),
      /invalid --timeout/,
    ],
    [() => parseUploadClientArgs(["h"]), /missing <PORT>/],
    [() => parseUploadClientArgs(["", "1", "f"]), /empty <HOSTNAME-OR-IP>/],
    [() => parseUploadClientArgs(["h", "1"]), /missing <FILENAME>/],
    [
      () => parseUploadClientArgs(["h", "123456", "f"]),
      /invalid port "123456"/,
    ],
  ];
  for (const [call, reason] of bad) {
    let caught: unknown;
    try {
      call();
    } catch (error) {
      caught = error;
    }
    ok(
      caught instanceof UploadArgsError,
      `expected UploadArgsError for ${reason}`,
    );
    match(caught.message, reason);
  }
});

Deno.test("upload watchdog: fires after one long wait, never for waits that end or for time not waiting", async () => {
  let fired = 0;
  {
    using watchdog = new IdleWatchdog(50, () => fired++);
    watchdog.begin();
    const deadline = Date.now() + 5_000;
    while (!watchdog.fired && Date.now() < deadline) await delay(10);
    equal(fired, 1);
  }
  {
    // 1.5 s of short waits against a 1 s timeout: progress restarts it.
    using watchdog = new IdleWatchdog(1_000, () => fired++);
    const until = Date.now() + 1_500;
    while (Date.now() < until) {
      watchdog.begin();
      await delay(20);
      watchdog.end();
    }
    // Not waiting (for example writing to disk) does not count.
    await delay(1_200);
    equal(watchdog.fired, false);
  }
  equal(fired, 1);
});

function fakeConn(name: string): UploadSocket & { name: string } {
  return {
    name,
    write: () => Promise.resolve(),
    finish: () => Promise.resolve(),
    reset() {},
  };
}

Deno.test("upload connect: the whole connect phase is bounded by the timeout", async () => {
  const never = new Promise<never>(() => {});
  const hangingConnect: ConnectDeps = {
    lookup: () => Promise.resolve(["192.0.2.1"]),
    connect: () => never,
  };
  const started = Date.now();
  let error: unknown;
  try {
    await connectWithin("example.test", 80, 200, hangingConnect);
  } catch (caught) {
    error = caught;
  }
  ok(error instanceof UploadError);
  match(
    error.message,
    /cannot connect to example\.test:80: timed out after 200 ms/,
  );
  ok(Date.now() - started < 5_000);

  // A connection that completes after the timeout is reset, not leaked.
  let resets = 0;
  const late: ConnectDeps = {
    lookup: () => Promise.resolve(["127.0.0.1"]),
    connect: () =>
      new Promise((resolve) =>
        setTimeout(
          () => resolve({ ...fakeConn("late"), reset: () => resets++ }),
          300,
        )
      ),
  };
  await connectWithin("late.test", 80, 100, late).then(
    () => ok(false, "should time out"),
    (error) => match(error.message, /timed out after 100 ms/),
  );
  await new Promise((resolve) => setTimeout(resolve, 400));
  equal(resets, 1, "the late connection was reset");

  const hangingLookup: ConnectDeps = {
    lookup: () => never,
    connect: () => never,
  };
  error = undefined;
  try {
    await connectWithin("slow.test", 80, 100, hangingLookup);
  } catch (caught) {
    error = caught;
  }
  ok(error instanceof UploadError);
  match(error.message, /timed out after 100 ms/);
});

Deno.test("upload connect: tries every address in order; reports resolve and refuse failures", async () => {
  const tried: string[] = [];
  const secondWorks: ConnectDeps = {
    lookup: () => Promise.resolve(["::1", "127.0.0.1"]),
    connect(address) {
      tried.push(address);
      return address === "::1"
        ? Promise.reject(new Deno.errors.ConnectionRefused("refused"))
        : Promise.resolve(fakeConn(address));
    },
  };
  const conn = await connectWithin("localhost", 9, 1_000, secondWorks);
  deepEqual(tried, ["::1", "127.0.0.1"]);
  equal((conn as { name?: string }).name, "127.0.0.1");

  const allRefuse: ConnectDeps = {
    lookup: () => Promise.resolve(["127.0.0.1"]),
    connect: () => Promise.reject(new Deno.errors.ConnectionRefused("x")),
  };
  await connectWithin("h", 9, 1_000, allRefuse).then(
    () => ok(false, "should fail"),
    (error) =>
      match(error.message, /^cannot connect to h:9: connection refused$/),
  );
  // An IPv6 literal is bracketed, so that the port stands apart.
  for (const host of ["::1", "[::1]"]) {
    await connectWithin(host, 9, 1_000, allRefuse).then(
      () => ok(false, "should fail"),
      (error) =>
        match(
          error.message,
          /^cannot connect to \[::1\]:9: connection refused$/,
        ),
    );
  }

  const notFound: ConnectDeps = {
    lookup: () =>
      Promise.reject(
        Object.assign(new Error("getaddrinfo ENOTFOUND"), {
          code: "ENOTFOUND",
        }),
      ),
    connect: () => Promise.reject(new Error("unreachable")),
  };
  await connectWithin("nx.example", 9, 1_000, notFound).then(
    () => ok(false, "should fail"),
    (error) =>
      match(error.message, /^cannot resolve host "nx\.example": no such host$/),
  );

  let looked = false;
  const spy: ConnectDeps = {
    lookup: () => {
      looked = true;
      return Promise.resolve(["127.0.0.1"]);
    },
    connect: () => Promise.resolve(fakeConn("x")),
  };
  await connectWithin("Host.INVALID.", 9, 1_000, spy).then(
    () => ok(false, "should fail"),
    (error) => match(error.message, /reserved/),
  );
  equal(looked, false, "a .invalid name is never looked up");
});

/**
 * Wraps a connection so that every `read` records the size of the buffer it
 * was given: what the receiver reads into, observed without a hook in it.
 */
function recordingReads(conn: Deno.TcpConn, sizes: number[]): Deno.TcpConn {
  return new Proxy(conn, {
    get(target, key) {
      if (key === "read") {
        return (buffer: Uint8Array) => {
          sizes.push(buffer.length);
          return target.read(buffer);
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * Wraps a listener so that each accepted connection records its reads
 * ({@linkcode recordingReads}); `reads[i]` is connection i + 1's.
 */
function recordingListener(
  listener: Deno.TcpListener,
  reads: number[][],
): Deno.TcpListener {
  return new Proxy(listener, {
    get(target, key) {
      if (key === "accept") {
        return async () => {
          const conn = await target.accept();
          const sizes: number[] = [];
          reads.push(sizes);
          return recordingReads(conn, sizes);
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("upload receiver: idle connections read into 4 KiB buffers; a streaming one doubles its own to 64 KiB and is stored whole", async () => {
  await using dir = await tempDir();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  /** Per accepted connection, the buffer size of each of its reads. */
  const reads: number[][] = [];
  const receiver = new UploadReceiver(recordingListener(listener, reads), {
    dir: dir.path,
    idleTimeoutMs: 20_000,
  });
  const port = listener.addr.port;
  const conns: Deno.Conn[] = [];
  try {
    const before = Deno.memoryUsage().external;
    // 200 connections that sent one byte each and wait.
    for (let i = 0; i < 200; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(new Uint8Array([1]));
      conns.push(conn);
    }
    // Each has had its byte read and waits in its next read.
    const deadline = Date.now() + 10_000;
    const waiting = () =>
      reads.length === 200 && reads.every((sizes) => sizes.length >= 2);
    while (!waiting() && Date.now() < deadline) await delay(10);
    ok(waiting(), `reads of the idle uploads: ${JSON.stringify(reads)}`);
    const grown = Deno.memoryUsage().external - before;
    ok(grown < 4 * 1024 * 1024, `${grown} bytes more for 200 idle uploads`);
    for (const [i, sizes] of reads.entries()) {
      ok(
        sizes.every((size) => size === 4096),
        `idle upload ${i + 1} read into ${sizes.join(", ")} bytes`,
      );
    }
    // One that streams 8 MiB of random bytes: its buffer doubles while
    // reads fill it, and the file is stored whole.
    const hash = createHash("sha256");
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      for (let i = 0; i < 128; i++) {
        const block = crypto.getRandomValues(new Uint8Array(65536));
        hash.update(block);
        await writeAll(conn, block);
      }
      await conn.closeWrite();
      // The receiver closes the connection once 201.file is in place.
      equal(await waitForPeerClose(conn, 10_000), "eof");
    } finally {
      conn.close();
    }
    const streamed = [...new Set(reads[200])];
    deepEqual(
      streamed,
      [4096, 8192, 16384, 32768, 65536],
      `read buffer sizes of the streaming upload, in order: ${streamed}`,
    );
    equal(await sha256File(join(dir.path, "201.file")), hash.digest("hex"));
  } finally {
    for (const idle of conns) idle.close();
    receiver.shutdown();
    await receiver.finished;
  }
});
