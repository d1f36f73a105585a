/**
 * End-to-end tests of `chat server` / `chat client` (SPEC §4): real
 * processes driven through stdin, raw protocol peers on 127.0.0.1, exact
 * output, SHA-256 of received files.
 */

import { deepEqual, equal, match, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  ChatProtocolError,
  encodeFile,
  encodeFileHeader,
  encodeMessage,
  MAX_FILE_BYTES,
} from "../protocol/chat_protocol.ts";
import { ChatServer } from "../roles/chat/chat_server.ts";
import { FileSpool } from "../roles/chat/file_spool.ts";
import {
  DEFAULT_OUTBOX_LIMITS,
  FRAME_OVERHEAD_BYTES,
  Outbox,
} from "../roles/chat/outbox.ts";
import { CLIENT_HELP, SERVER_HELP } from "../roles/chat/chat_options.ts";
import { INPUT_HELP } from "../roles/chat/user_input.ts";
import { sha256File, tempDir, writeTestFile } from "./_helpers/files.ts";
import {
  roleFlags,
  type RoleProcess,
  runRole,
  startRole,
} from "./_helpers/role_process.ts";
import { freePort } from "./_helpers/ports.ts";
import { peakRssKiB, waitForSignalHandler } from "./_helpers/proc_status.ts";
import { RawPeer, startChatServer, waitUntil } from "./chat/chat_peers.ts";
import { within } from "./_helpers/within.ts";
import { seededRandom as random } from "../bench/seeded_random.ts";

const INCORRECT = "incorrect user input format";

function clientArgs(user: string, port: number): string[] {
  return ["client", "-u", user, "-a", "127.0.0.1", "-p", String(port)];
}

function countLines(text: string, line: string): number {
  return text.split("\n").filter((l) => l === line).length;
}

Deno.test("chat client: missing username prints `Missing Username.` and the help, exit 1", async () => {
  const missing = await runRole("chat", ["client", "-p", "15000"]);
  equal(missing.code, 1);
  equal(missing.stdout, `Missing Username.\n${CLIENT_HELP}\n`);
  const help = await runRole("chat", ["client", "-h"]);
  equal(help.code, 0);
  equal(help.stdout, `${CLIENT_HELP}\n`);
  const serverHelp = await runRole("chat", ["server", "--help"]);
  equal(serverHelp.code, 0);
  equal(serverHelp.stdout, `${SERVER_HELP}\n`);
});

Deno.test("chat: bad arguments are usage errors (exit 2); an unreachable server is exit 1", async () => {
  for (
    const args of [
      ["client", "-u", "a b"],
      ["client", "-u", "alice", "-p", "port"],
      ["client", "-u", "alice", "extra"],
      ["server", "--max-clients", "0"],
      ["server", "--bogus"],
      ["server", "-p", "-1"], // an option value: invalid port "-1"
    ]
  ) {
    const result = await runRole("chat", args);
    equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    // A one-line reason, then the usage.
    match(result.stderr, /^chat: [^\n]+\nusage:\n/);
  }
  // The range named is the one accepted: the server takes 0 (any free port).
  match(
    (await runRole("chat", ["server", "-p", "70000"])).stderr,
    /^chat: invalid port "70000": must be 0-65535 \(0: any free port\)\n/,
  );
  match(
    (await runRole("chat", ["client", "-u", "a", "-p", "0"])).stderr,
    /^chat: invalid port "0": must be 1-65535\n/,
  );
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const result = await runRole("chat", clientArgs("alice", port));
  equal(result.code, 1);
  match(result.stderr, /chat: cannot connect to 127\.0\.0\.1:\d+/);
});

Deno.test("chat: one client gets help, is told about malformed input, lists, messages itself, and quits", async () => {
  await using server = await startChatServer();
  await using dir = await tempDir();
  const malformed = [
    "hello",
    "LIST",
    "list extra",
    "msg 2 alice hi",
    "msg 1 alice",
    "msg x alice hi",
    "msg 0 hi",
    "file 1 alice",
    "file 1 alice a b",
    "",
  ];
  const input = [
    "help",
    ...malformed,
    "list",
    "msg 1 alice hello   me",
    "list",
    "quit",
    "list",
  ].join("\n") + "\n";
  const result = await runRole("chat", clientArgs("alice", server.port), {
    input,
    cwd: dir.path,
  });
  equal(result.stderr, "");
  equal(
    result.stdout,
    `${INPUT_HELP}\n` + `${INCORRECT}\n`.repeat(malformed.length) +
      "list: alice\nmsg: alice: hello   me\nlist: alice\nquitting\n",
  );
  equal(result.code, 0);
  await server.process.stdout.waitFor("disconnected: alice\n");
  equal(
    server.process.stdout.text,
    "join: alice\nrequest_users_list: alice\nmsg: alice\n" +
      "request_users_list: alice\ndisconnected: alice\n",
  );
});

Deno.test("chat: several clients exchange messages; duplicates arrive once, unknown names are reported, EOF quits", async () => {
  await using server = await startChatServer();
  await using dir = await tempDir();
  const port = server.port;
  await using alice = startRole("chat", clientArgs("alice", port), {
    stdin: true,
    cwd: dir.path,
  });
  await server.process.stdout.waitFor("join: alice\n");
  await using bob = startRole("chat", clientArgs("bob", port), {
    stdin: true,
    cwd: dir.path,
  });
  await server.process.stdout.waitFor("join: bob\n");
  await using carol = startRole("chat", clientArgs("carol", port), {
    stdin: true,
    cwd: dir.path,
  });
  await server.process.stdout.waitFor("join: carol\n");

  await alice.write("msg 5 bob carol bob zed carol hi all\n");
  await alice.write("msg 2 bob carol marker\n");
  await bob.stdout.waitFor("msg: alice: marker\n");
  await carol.stdout.waitFor("msg: alice: marker\n");
  equal(bob.stdout.text, "msg: alice: hi all\nmsg: alice: marker\n");
  equal(carol.stdout.text, "msg: alice: hi all\nmsg: alice: marker\n");

  await bob.write("msg 1 alice hey alice\n");
  await alice.stdout.waitFor("msg: bob: hey alice\n");
  await bob.closeStdin(); // end of input = quit
  const bobDone = await bob.finished();
  equal(bobDone.code, 0);
  equal(
    bobDone.stdout,
    "msg: alice: hi all\nmsg: alice: marker\nquitting\n",
  );
  await server.process.stdout.waitFor("disconnected: bob\n");

  await alice.write("list\nmsg 1 bob too late\nquit\n");
  const aliceDone = await alice.finished();
  equal(aliceDone.code, 0);
  equal(aliceDone.stdout, "msg: bob: hey alice\nlist: alice carol\nquitting\n");
  await carol.closeStdin();
  equal((await carol.finished()).code, 0);
  await server.process.stdout.waitFor("disconnected: carol\n");

  equal(
    server.process.stdout.text,
    [
      "join: alice",
      "join: bob",
      "join: carol",
      "msg: alice",
      "msg: alice to non-existent user zed",
      "msg: alice",
      "msg: bob",
      "disconnected: bob",
      "request_users_list: alice",
      "msg: alice",
      "msg: alice to non-existent user bob",
      "disconnected: alice",
      "disconnected: carol",
      "",
    ].join("\n"),
  );
});

Deno.test("chat: files reach one and three recipients byte-exact as <user>_<name>; a missing file sends nothing", async () => {
  await using server = await startChatServer();
  await using root = await tempDir();
  const port = server.port;
  const dirs: Record<string, string> = {};
  for (const user of ["alice", "bob", "carol", "dave"]) {
    dirs[user] = join(root.path, user);
    await Deno.mkdir(dirs[user]);
  }
  await writeTestFile(join(dirs.alice, "photo.bin"), 1_500_003, 5);
  await Deno.mkdir(join(dirs.alice, "sub"));
  const notes = new Uint8Array(70_000).map((_, i) =>
    i % 50 === 0 ? 10 : i % 7 === 0 ? 0 : (i * 31) & 0xff
  );
  await Deno.writeFile(join(dirs.alice, "sub", "notes.txt"), notes);

  const clients = [];
  for (const user of ["alice", "bob", "carol", "dave"]) {
    const client = startRole("chat", clientArgs(user, port), {
      stdin: true,
      cwd: dirs[user],
    });
    clients.push(client);
    await server.process.stdout.waitFor(`join: ${user}\n`);
  }
  const [alice, bob, carol, dave] = clients;
  try {
    await alice.write("file 1 bob photo.bin\n");
    await bob.stdout.waitFor("file: alice: photo.bin\n", 20_000);
    equal(
      await sha256File(join(dirs.bob, "bob_photo.bin")),
      await sha256File(join(dirs.alice, "photo.bin")),
    );

    await alice.write("file 4 bob carol dave carol sub/notes.txt\n");
    const expected = createHash("sha256").update(notes).digest("hex");
    for (
      const [user, client] of [["bob", bob], ["carol", carol], [
        "dave",
        dave,
      ]] as const
    ) {
      await client.stdout.waitFor("file: alice: notes.txt\n", 20_000);
      equal(await sha256File(join(dirs[user], `${user}_notes.txt`)), expected);
    }

    await alice.write("file 1 bob missing.bin\n");
    await alice.stderr.waitFor('chat: cannot send "missing.bin": no such file');
    // A FIFO is refused without being opened (that would wait for a writer).
    await new Deno.Command("mkfifo", { args: [join(dirs.alice, "pipe")] })
      .output();
    await alice.write("file 1 bob pipe\n");
    await alice.stderr.waitFor(
      'chat: cannot send "pipe": not a regular file',
      5_000,
    );
    // Over the limits: refused locally with a clear reason, nothing sent.
    using huge = await Deno.open(join(dirs.alice, "huge.bin"), {
      write: true,
      create: true,
    });
    await huge.truncate(MAX_FILE_BYTES + 1); // sparse: no disk used
    await alice.write("file 1 bob huge.bin\n");
    await alice.stderr.waitFor(
      `chat: cannot send "huge.bin": ${
        MAX_FILE_BYTES + 1
      } bytes exceed the ${MAX_FILE_BYTES}-byte file limit`,
    );
    // A name bob cannot save as bob_<name> (257 bytes): refused before
    // sending, as bob would drop the file unseen.
    const long = `${"n".repeat(249)}.bin`;
    await Deno.writeFile(join(dirs.alice, long), new Uint8Array(10));
    await alice.write(`file 1 bob ${long}\n`);
    await alice.stderr.waitFor(
      `chat: cannot send "${long}": bob would save it as "bob_…", 257 bytes, over the 255-byte limit of file names`,
    );
    await alice.write(`msg 1 bob ${"x".repeat(70_000)}\n`);
    await alice.stderr.waitFor(
      "chat: message not sent: 70000 bytes exceed the 65536-byte limit",
    );
    await alice.write("file 2 ghost dave sub/notes.txt\n");
    await server.process.stdout.waitFor(
      "file: alice to non-existent user ghost\n",
    );
    await dave.write("msg 1 dave done\n");
    await dave.stdout.waitFor("msg: dave: done\n");
    equal(countLines(dave.stdout.text, "file: alice: notes.txt"), 2);
    equal(countLines(carol.stdout.text, "file: alice: notes.txt"), 1);
    equal(countLines(server.process.stdout.text, "file: alice"), 3);
    equal(bob.stdout.text, "file: alice: photo.bin\nfile: alice: notes.txt\n");
    // Only the final names, no leftover temporary files.
    deepEqual(
      [...Deno.readDirSync(dirs.carol)].map((entry) => entry.name),
      ["carol_notes.txt"],
    );
  } finally {
    for (const client of clients) await client[Symbol.asyncDispose]();
  }
});

Deno.test("chat client: a stop signal during a download quits as end of input does and removes the file still arriving; a second one ends it at once", async () => {
  await using server = await startChatServer();
  await using root = await tempDir();
  const dirs = { bob: join(root.path, "bob"), carol: join(root.path, "carol") };
  const clients: Record<string, RoleProcess> = {};
  for (const user of ["bob", "carol"] as const) {
    await Deno.mkdir(dirs[user]);
    clients[user] = startRole("chat", clientArgs(user, server.port), {
      stdin: true,
      cwd: dirs[user],
    });
    await server.process.stdout.waitFor(`join: ${user}\n`);
  }
  const { bob, carol } = clients;
  const partSize = (dir: string) =>
    [...Deno.readDirSync(dir)].filter((entry) => entry.name.includes(".part-"))
      .reduce(
        (sum, entry) => sum + Deno.statSync(join(dir, entry.name)).size,
        0,
      );
  try {
    using alice = await RawPeer.join(server.port, "alice");
    await alice.write(encodeFile(
      { type: "send_file", users: ["bob", "carol"], fileName: "big.bin" },
      new Uint8Array(64_000_000).fill(9),
    ));
    // Both mid-download, then the server frozen: the rest never arrives.
    await waitUntil(
      () => partSize(dirs.bob) > 0 && partSize(dirs.carol) > 0,
      "both downloads under way",
      30_000,
    );
    server.process.kill("SIGSTOP");
    const started = performance.now();
    // Two different signals, so they cannot arrive as one; either order is
    // a first and a second stop. (The client watches its stop signals
    // before it sends its join.)
    carol.kill("SIGINT");
    carol.kill("SIGTERM"); // the second: no drain
    bob.kill("SIGINT");
    const exited = (client: RoleProcess) =>
      client.child.status.then(() => performance.now() - started);
    const [carolExit, bobExit] = [exited(carol), exited(bob)];
    const carolDone = await carol.finished(10_000);
    const bobDone = await bob.finished(10_000);
    for (const done of [carolDone, bobDone]) {
      equal(done.code, 0, done.stderr);
      ok(done.stdout.endsWith("quitting\n"), done.stdout);
    }
    // Bob, stopped once, waits out the client's 3 s quit drain for a server
    // that never answers; carol's second signal cuts it short. Carol is
    // timed against bob, whose exit a loaded machine slows as much.
    const [carolMs, bobMs] = [await carolExit, await bobExit];
    ok(bobMs >= 2_900, `bob ended after ${bobMs} ms, before the drain`);
    ok(
      carolMs < bobMs - 1_500,
      `the second signal ended carol after ${carolMs} ms, bob after ${bobMs} ms`,
    );
    deepEqual([...Deno.readDirSync(dirs.bob)], []);
    deepEqual([...Deno.readDirSync(dirs.carol)], []);
  } finally {
    server.process.kill("SIGCONT");
    for (const client of Object.values(clients)) {
      await client[Symbol.asyncDispose]();
    }
  }
});

Deno.test("chat client: two stop signals while a file is stuck on its way quit at once and say the file was not sent", async () => {
  // A server that takes the join and the file's header, then reads nothing
  // more: the rest of the file sticks in the socket buffers.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using dir = await tempDir();
  await writeTestFile(join(dir.path, "big.bin"), 64_000_000, 4);
  await using alice = startRole(
    "chat",
    clientArgs("alice", listener.addr.port),
    { stdin: true, cwd: dir.path },
  );
  using server = new RawPeer(
    await within(listener.accept(), 20_000, "alice's connection", () => {
      listener.close();
    }),
  );
  // The client watches its stop signals before it sends its join.
  deepEqual(await server.nextMessage(20_000), {
    type: "join",
    username: "alice",
  });
  await alice.write("file 1 bob big.bin\n");
  const start = await server.next(20_000);
  ok(start?.kind === "file-start", JSON.stringify(start)); // the send is on
  // Two different signals: two of one kind sent at once may arrive as one.
  const started = performance.now();
  alice.kill("SIGINT"); // ends the input; the file would go on
  alice.kill("SIGTERM"); // the second: at once
  const done = await alice.finished(10_000);
  const ms = performance.now() - started;
  equal(done.code, 0, done.stderr);
  equal(done.stdout, "quitting\n");
  equal(done.stderr, 'chat: "big.bin" was not sent: interrupted\n');
  ok(ms < 2_000, `ended after ${ms.toFixed(0)} ms`);
});

Deno.test("chat: the 11th client is refused, a taken name is refused, a freed place can be used", async () => {
  await using server = await startChatServer();
  const port = server.port;
  const peers: RawPeer[] = [];
  try {
    for (let i = 0; i < 9; i++) peers.push(await RawPeer.join(port, `r${i}`));
    await server.process.stdout.waitFor("join: r8\n");

    const taken = await runRole("chat", clientArgs("r3", port));
    equal(taken.stdout, "disconnected: username not available\n");
    equal(taken.code, 1);

    peers.push(await RawPeer.join(port, "r9"));
    await server.process.stdout.waitFor("join: r9\n");
    const full = await runRole("chat", clientArgs("eleven", port));
    equal(full.stdout, "disconnected: server full\n");
    equal(full.code, 1);

    await peers[0].link.send({ type: "disconnect", username: "r0" });
    equal(await peers[0].nextMessage(), null); // the server closes
    await server.process.stdout.waitFor("disconnected: r0\n");
    const joined = await runRole("chat", clientArgs("eleven", port), {
      input: "list\nquit\n",
    });
    equal(
      joined.stdout,
      "list: eleven r1 r2 r3 r4 r5 r6 r7 r8 r9\nquitting\n",
    );
    equal(joined.code, 0);
    await server.process.stdout.waitFor("disconnected: eleven\n");
    equal(
      server.process.stdout.text.split("\n").slice(9).join("\n"),
      [
        "disconnected: username not available",
        "join: r9",
        "disconnected: server full",
        "disconnected: r0",
        "join: eleven",
        "request_users_list: eleven",
        "disconnected: eleven",
        "",
      ].join("\n"),
    );
  } finally {
    for (const peer of peers) peer.close();
  }
});

Deno.test("chat server: unknown or malformed messages get err_unknown_message and a disconnect; abrupt exits are cleaned up", async () => {
  await using server = await startChatServer();
  const port = server.port;
  const out = server.process.stdout;
  using good = await RawPeer.join(port, "good");

  const cases: Array<[string, Uint8Array]> = [
    [
      "m1",
      encodeMessage({ type: "forward_message", users: ["x"], text: "hi" }),
    ],
    ["m2", new Uint8Array([0, 0, 0, 5, ...new TextEncoder().encode("hello")])],
    ["m3", encodeMessage({ type: "join", username: "again" })],
    ["m4", encodeMessage({ type: "disconnect", username: "someone" })],
    [
      "m5",
      encodeFile(
        { type: "send_file", users: ["good"], fileName: ".." },
        new Uint8Array(3),
      ),
    ],
  ];
  for (const [name, bytes] of cases) {
    using peer = await RawPeer.join(port, name);
    await out.waitFor(`join: ${name}\n`);
    await peer.write(bytes);
    deepEqual(await peer.nextMessage(), { type: "err_unknown_message" });
    equal(await peer.nextMessage(), null);
    await out.waitFor(`disconnected: ${name} sent unknown command\n`);
  }
  {
    // Before joining, the peer is named by its address.
    using stranger = await RawPeer.connect(port);
    await stranger.link.send({ type: "request_users_list" });
    deepEqual(await stranger.nextMessage(), { type: "err_unknown_message" });
    await out.waitFor(/disconnected: 127\.0\.0\.1:\d+ sent unknown command\n/);
  }
  {
    // Vanishing without `disconnect` frees the name.
    const ghost = await RawPeer.join(port, "ghost");
    await out.waitFor("join: ghost\n");
    ghost.close();
    await out.waitFor("disconnected: ghost\n");
  }
  await good.link.send({ type: "request_users_list" });
  deepEqual(await good.nextMessage(), {
    type: "response_users_list",
    users: ["good"],
  });
  ok(!server.process.stderr.text.includes("internal error"));
});

Deno.test("chat client: err_unknown_message from the server ends it with the exact line", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using client = startRole(
    "chat",
    clientArgs("alice", listener.addr.port),
    { stdin: true },
  );
  using server = new RawPeer(
    await within(listener.accept(), 20_000, "alice's connection", () => {
      listener.close();
    }),
  );
  deepEqual(await server.nextMessage(20_000), {
    type: "join",
    username: "alice",
  });
  await server.link.send({ type: "err_unknown_message" });
  const done = await client.finished();
  equal(done.stdout, "disconnected: server received an unknown command\n");
  equal(done.code, 1);
});

Deno.test("chat server survives a seeded fuzz of random bytes and truncated frames while good clients chat", async () => {
  await using server = await startChatServer(["--max-clients", "100"]);
  const port = server.port;
  using good1 = await RawPeer.join(port, "good1");
  using good2 = await RawPeer.join(port, "good2");
  await server.process.stdout.waitFor("join: good2\n");
  const next = random(0x003_5b59);
  const valid = [
    encodeMessage({ type: "send_message", users: ["good2"], text: "x" }),
    encodeMessage({ type: "request_users_list" }),
    encodeFile(
      { type: "send_file", users: ["nobody"], fileName: "f.bin" },
      new Uint8Array(5000).map(() => Math.floor(next() * 256)),
    ),
  ];
  const bytes = (n: number) =>
    new Uint8Array(n).map(() => Math.floor(next() * 256));

  async function fuzzer(i: number): Promise<void> {
    const mode = i % 5;
    using peer = mode === 0
      ? await RawPeer.connect(port)
      : await RawPeer.join(port, `fuzz${i}`);
    let stream: Uint8Array;
    if (mode <= 1) {
      stream = bytes(1 + Math.floor(next() * 3000));
    } else if (mode === 2) {
      const frame = valid[i % valid.length];
      stream = frame.subarray(0, 1 + Math.floor(next() * (frame.length - 1)));
    } else if (mode === 3) {
      stream = new Uint8Array([0xff, 0xff, 0xff, 0xf0, ...bytes(100)]);
    } else {
      stream = valid[i % valid.length].slice();
      for (let k = 0; k < 3; k++) {
        stream[Math.floor(next() * stream.length)] = Math.floor(next() * 256);
      }
    }
    try {
      for (let offset = 0; offset < stream.length;) {
        const size = 1 + Math.floor(next() * 700);
        await peer.write(stream.subarray(offset, offset + size));
        offset += size;
      }
      await peer.link.closeWrite();
      // Whatever the server answers, it ends the connection.
      while ((await peer.next(10_000)) !== null) { /* ignore */ }
    } catch (error) {
      if (
        !(error instanceof ChatProtocolError) &&
        !(error instanceof Deno.errors.ConnectionReset) &&
        !(error instanceof Deno.errors.BrokenPipe)
      ) throw error;
    }
  }

  async function goodRound(round: number): Promise<void> {
    await good1.link.send({
      type: "send_message",
      users: ["good2"],
      text: `round ${round}`,
    });
    while (true) {
      const message = await good2.nextMessage();
      if (
        message?.type === "forward_message" && message.users[0] === "good1"
      ) {
        equal(message.text, `round ${round}`);
        return;
      }
    }
  }

  for (let batch = 0; batch < 6; batch++) {
    const fuzzers = [];
    for (let i = 0; i < 10; i++) fuzzers.push(fuzzer(batch * 10 + i));
    await Promise.all([...fuzzers, goodRound(batch)]);
  }
  await waitUntil(() => {
    const lines = server.process.stdout.lines;
    const joined = lines.filter((line) => line.startsWith("join: fuzz"));
    return joined.every((line) =>
      lines.some((other) =>
        other === `disconnected: ${line.slice(6)}` ||
        other === `disconnected: ${line.slice(6)} sent unknown command`
      )
    );
  }, "every fuzzer to be disconnected");
  await good1.link.send({ type: "request_users_list" });
  let list;
  do list = await good1.nextMessage(); while (
    list?.type !== "response_users_list"
  );
  deepEqual(list.users, ["good1", "good2"]);
  ok(
    !server.process.stderr.text.includes("internal error"),
    server.process.stderr.text,
  );
});

Deno.test("chat server: 200 raw clients under --max-clients 1000 all join and receive one broadcast", async () => {
  await using server = await startChatServer(["--max-clients", "1000"]);
  const names = Array.from(
    { length: 200 },
    (_, i) => `u${String(i).padStart(3, "0")}`,
  );
  const peers = await Promise.all(
    names.map((name) => RawPeer.join(server.port, name)),
  );
  try {
    await waitUntil(
      () =>
        server.process.stdout.lines.filter((l) => l.startsWith("join: "))
          .length === 200,
      "200 joins",
    );
    await peers[0].link.send({
      type: "send_message",
      users: names,
      text: "broadcast to all",
    });
    const received = await Promise.all(
      peers.map((peer) => peer.nextMessage(20_000)),
    );
    for (const message of received) {
      deepEqual(message, {
        type: "forward_message",
        users: ["u000"],
        text: "broadcast to all",
      });
    }
    await peers[199].link.send({ type: "request_users_list" });
    deepEqual(await peers[199].nextMessage(), {
      type: "response_users_list",
      users: names,
    });
  } finally {
    for (const peer of peers) peer.close();
  }
});

Deno.test("chat server: a stdout and stderr nobody reads do not stop it, an unread stderr does not hold up stdout, and the lines come out in order once read", async () => {
  // A harness that reads the server's output only at the end (Popen with
  // stdout=PIPE, stderr=PIPE, then communicate()), or reads stdout and
  // never stderr. A pipe holds 64 KiB.
  await using server = await startChatServer();
  const { stdout, stderr } = server.process;
  stdout.pause();
  stderr.pause();
  const requests = 6000; // 26 bytes of stdout each: 156 KB
  const strangers = 1500; // ~90 bytes of stderr each (and 50 of stdout)
  try {
    using alice = await RawPeer.join(server.port, "alice");
    const list = async (what: string) => {
      await alice.link.send({ type: "request_users_list" });
      deepEqual(await alice.nextMessage(5_000), {
        type: "response_users_list",
        users: ["alice"],
      }, what);
    };
    for (let i = 0; i < requests; i++) await list(`request ${i + 1}`);
    for (let i = 0; i < strangers; i += 50) {
      await Promise.all(Array.from({ length: 50 }, async () => {
        // Not joined: refused, with a line on stderr and one on stdout.
        using stranger = await RawPeer.connect(server.port);
        await stranger.link.send({ type: "request_users_list" });
        deepEqual(await stranger.nextMessage(5_000), {
          type: "err_unknown_message",
        });
      }));
    }
    await list("a request after the strangers");
    // Stdout is read again; stderr stays full and unread.
    stdout.resume();
    using _bob = await RawPeer.join(server.port, "bob");
    await stdout.waitFor("join: bob\n", 5_000);
  } finally {
    stdout.resume();
    stderr.resume();
  }
  const count = (lines: string[], pattern: RegExp) =>
    lines.filter((line) => pattern.test(line)).length;
  await waitUntil(
    () =>
      count(stderr.lines, /sent an invalid message/) === strangers &&
      stdout.lines.includes("disconnected: alice") &&
      stdout.lines.includes("disconnected: bob"),
    "every line",
  );
  const lines = stdout.lines;
  deepEqual(lines.slice(0, requests + 1), [
    "join: alice",
    ...Array(requests).fill("request_users_list: alice"),
  ]);
  equal(
    count(lines, /^disconnected: 127\.0\.0\.1:\d+ sent unknown/),
    strangers,
  );
  const tail = lines.slice(requests + 1 + strangers);
  deepEqual(tail.slice(0, 2), ["request_users_list: alice", "join: bob"]);
  deepEqual(tail.slice(2).sort(), [
    "disconnected: alice",
    "disconnected: bob",
  ]);
  ok(!stderr.text.includes("dropped"), "8 MiB were never reached");
});

Deno.test("chat server: a stderr that cannot be written (/dev/full) does not keep it from serving", async () => {
  const port = freePort();
  const main = new URL("../roles/chat/main.ts", import.meta.url).pathname;
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      `exec "$0" run ${
        roleFlags("chat").join(" ")
      } "${main}" server -a 127.0.0.1 -p ${port} 2>/dev/full`,
      Deno.execPath(),
    ],
    stdout: "null",
    stderr: "null",
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  }).spawn();
  try {
    let peer: RawPeer | undefined;
    const deadline = Date.now() + 20_000;
    while (!peer) {
      try {
        peer = await RawPeer.join(port, "alice");
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    using alice = peer;
    await alice.link.send({ type: "request_users_list" });
    deepEqual(await alice.nextMessage(), {
      type: "response_users_list",
      users: ["alice"],
    });
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
});

Deno.test("chat server: a stalled client is dropped when its queue overflows; others keep receiving", async () => {
  await using server = await startChatServer();
  const port = server.port;
  using _stalled = await RawPeer.join(port, "stalled"); // never reads
  using listener = await RawPeer.join(port, "listener");
  using sender = await RawPeer.join(port, "sender");
  await server.process.stdout.waitFor("join: sender\n");
  const text = "z".repeat(60_000);
  // 1000 × 60 kB = 60 MB for "stalled": far more than its 8 MiB queue plus
  // socket buffers. The listener is paced (it reads each batch before the
  // next is sent), so its own queue stays small however loaded the machine.
  for (let batch = 0; batch < 50; batch++) {
    for (let i = 0; i < 20; i++) {
      await sender.link.send({
        type: "send_message",
        users: ["stalled", "listener"],
        text,
      });
    }
    for (let i = 0; i < 20; i++) {
      const message = await listener.nextMessage(20_000);
      equal(message?.type, "forward_message");
    }
  }
  await server.process.stdout.waitFor("disconnected: stalled\n");
  match(server.process.stderr.text, /dropping "stalled": outgoing queue/);
  await listener.link.send({ type: "request_users_list" });
  deepEqual(await listener.nextMessage(), {
    type: "response_users_list",
    users: ["listener", "sender"],
  });
});

Deno.test("chat server: a stalled client is dropped when the files queued to it pass its byte bound (the spool it can hold stays bounded)", async () => {
  const printed: string[] = [];
  const warned: string[] = [];
  await using server = ChatServer.listen({
    hostname: "127.0.0.1",
    port: 0,
    maxClients: 10,
    maxQueuedFileBytes: 16_000_000,
    print: (line) => printed.push(line),
    warn: (line) => warned.push(line),
  });
  const serving = server.serve();
  const port = server.addr.port;
  {
    using _stalled = await RawPeer.join(port, "stalled"); // never reads
    using sender = await RawPeer.join(port, "sender");
    await waitUntil(() => server.users.length === 2, "both joined");
    // 8 files of 6 MB: far fewer than the 32 files of the count bound, but
    // 48 MB, more than the byte bound plus what the socket buffers take.
    const content = new Uint8Array(6_000_000).fill(3);
    for (let i = 0; i < 8 && server.users.includes("stalled"); i++) {
      await sender.write(encodeFile(
        { type: "send_file", users: ["stalled"], fileName: `f${i}.bin` },
        content,
      ));
    }
    await waitUntil(
      () => printed.includes("disconnected: stalled"),
      "stalled dropped",
      20_000,
    );
    ok(
      warned.some((line) =>
        line ===
          'chat server: dropping "stalled": files queued over 16000000 bytes (client too slow)'
      ),
      warned.join("\n"),
    );
    deepEqual(server.users, ["sender"]);
  }
  await server.close();
  await serving;
});

/** Every path under `dir`, relative, sorted. */
async function treeOf(dir: string, prefix = ""): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(join(dir, prefix))) {
    const path = join(prefix, entry.name);
    names.push(path);
    if (entry.isDirectory) names.push(...await treeOf(dir, path));
  }
  return names.sort();
}

// Every stop signal the README lists for the chat server.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"] as const) {
  Deno.test(`chat server: ${signal} exits 0 and removes every spooled file (files queued to a stalled client, an upload cut off)`, async () => {
    await using tmp = await tempDir();
    await using server = await startChatServer([], { TMPDIR: tmp.path });
    using _stalled = await RawPeer.join(server.port, "stalled"); // never reads
    using sender = await RawPeer.join(server.port, "sender");
    await server.process.stdout.waitFor("join: sender\n");
    const content = new Uint8Array(2_000_000).fill(7);
    for (let i = 0; i < 3; i++) {
      await sender.write(encodeFile(
        { type: "send_file", users: ["stalled"], fileName: `f${i}.bin` },
        content,
      ));
    }
    await waitUntil(
      () => countLines(server.process.stdout.text, "file: sender") === 3,
      "three files spooled",
    );
    const cut = encodeFile(
      { type: "send_file", users: ["stalled"], fileName: "cut.bin" },
      content,
    );
    await sender.write(cut.subarray(0, cut.length / 2));
    // The cut upload's spool file next to those still queued to "stalled".
    const spooled = async () => (await treeOf(tmp.path)).length;
    const deadline = Date.now() + 15_000;
    while (await spooled() < 3 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    ok(await spooled() >= 3, (await treeOf(tmp.path)).join(", "));
    await waitForSignalHandler(server.process.child.pid, signal);
    server.process.kill(signal);
    const done = await server.process.finished();
    equal(done.code, 0, done.stderr);
    deepEqual(await treeOf(tmp.path), []);
  });
}

Deno.test("chat server: a spool folder that cannot be made costs that one file (said on stderr); the server goes on and the next upload tries again", async () => {
  await using tmp = await tempDir();
  const later = join(tmp.path, "made-later");
  await using server = await startChatServer([], { TMPDIR: later });
  using bob = await RawPeer.join(server.port, "bob");
  using alice = await RawPeer.join(server.port, "alice");
  await server.process.stdout.waitFor("join: alice\n");
  const send = (fileName: string, fill: number) =>
    alice.write(encodeFile(
      { type: "send_file", users: ["bob"], fileName },
      new Uint8Array(1000).fill(fill),
    ));
  await send("lost.bin", 1);
  await server.process.stderr.waitFor(
    /chat server: cannot spool "lost\.bin" from alice: .+\n/,
  );
  await server.process.stdout.waitFor("file: alice\n");
  await Deno.mkdir(later);
  await send("kept.bin", 2);
  const start = await bob.next();
  ok(start?.kind === "file-start", JSON.stringify(start));
  equal(start.header.fileName, "kept.bin");
  const data = await bob.next();
  ok(data?.kind === "file-data");
  deepEqual(data.bytes, new Uint8Array(1000).fill(2));
  equal((await bob.next())?.kind, "file-end");
  // Still serving: a message goes through.
  await alice.write(encodeMessage({
    type: "send_message",
    users: ["bob"],
    text: "after",
  }));
  const message = await bob.nextMessage();
  equal(message?.type, "forward_message");
});

Deno.test({
  name:
    "chat server relays a 100 MiB file to 5 recipients with flat memory (spooled, streamed)",
  ignore: Deno.build.os !== "linux",
  async fn() {
    await using server = await startChatServer();
    await using dir = await tempDir();
    const size = 100 * 1024 * 1024;
    await writeTestFile(join(dir.path, "big.bin"), size, 9);
    const expected = await sha256File(join(dir.path, "big.bin"));
    const names = ["r1", "r2", "r3", "r4", "r5"];
    const peers = await Promise.all(
      names.map((name) => RawPeer.join(server.port, name)),
    );
    try {
      await server.process.stdout.waitFor("join: r5\n");
      const pid = server.process.child.pid;
      const before = peakRssKiB(pid);
      await using alice = startRole("chat", clientArgs("alice", server.port), {
        stdin: true,
        cwd: dir.path,
      });
      await server.process.stdout.waitFor("join: alice\n");
      await alice.write(`file 5 ${names.join(" ")} big.bin\n`);
      const digests = await Promise.all(peers.map(async (peer) => {
        const start = await peer.next(30_000);
        ok(start?.kind === "file-start");
        deepEqual(start.header, {
          type: "forward_file",
          users: ["alice"],
          fileName: "big.bin",
          size,
        });
        const hash = createHash("sha256");
        while (true) {
          const event = await peer.next(30_000);
          if (event?.kind === "file-end") break;
          ok(event?.kind === "file-data");
          hash.update(event.bytes);
        }
        return hash.digest("hex");
      }));
      deepEqual(digests, names.map(() => expected));
      const growthMiB = (peakRssKiB(pid) - before) / 1024;
      ok(growthMiB < 48, `server peak RSS grew by ${growthMiB.toFixed(1)} MiB`);
    } finally {
      for (const peer of peers) peer.close();
    }
  },
});

Deno.test("chat client: a closed stdout is named as such, not as a lost connection", async () => {
  await using server = await startChatServer();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...roleFlags("chat"),
      new URL("../roles/chat/main.ts", import.meta.url).pathname,
      ...clientArgs("alice", server.port),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  await child.stdout.cancel(); // nobody reads what it prints
  const stdin = child.stdin.getWriter();
  await waitUntil(
    () => server.process.stdout.text.includes("join: alice\n"),
    "alice's join",
  );
  await stdin.write(new TextEncoder().encode("list\n"));
  const { code, stderr } = await within(
    child.output(),
    20_000,
    "the client to exit",
    () => child.kill("SIGKILL"),
  );
  await stdin.close().catch(() => {});
  equal(code, 1);
  match(
    new TextDecoder().decode(stderr),
    /^chat: cannot write to standard output: Broken pipe/m,
  );
});

Deno.test("chat server: before joining, a connection cannot make it hold a large frame, and idle ones beyond its bound are closed oldest first", async () => {
  const printed: string[] = [];
  const warned: string[] = [];
  await using server = ChatServer.listen({
    hostname: "127.0.0.1",
    port: 0,
    maxClients: 10, // so at most 64 connections wait to join
    print: (line) => printed.push(line),
    warn: (line) => warned.push(line),
  });
  const serving = server.serve();
  const port = server.addr.port;
  {
    // A frame announcing 1 MiB before any join: refused at its prefix.
    using big = await RawPeer.connect(port);
    const prefix = new Uint8Array(9);
    new DataView(prefix.buffer).setUint32(0, 1024 * 1024);
    prefix.set(new TextEncoder().encode("join "), 4);
    await big.write(prefix);
    deepEqual(await big.nextMessage(5_000), { type: "err_unknown_message" });
    equal(await big.nextMessage(5_000), null);
    ok(
      warned.some((line) => /exceeds every limit/.test(line)),
      warned.join("\n"),
    );

    // 70 connections that never join: the 6 oldest are closed.
    const idle: RawPeer[] = [];
    try {
      for (let i = 0; i < 70; i++) idle.push(await RawPeer.connect(port));
      for (const peer of idle.slice(0, 6)) {
        equal(await peer.nextMessage(5_000), null, "an old one closed");
      }
      await waitUntil(
        () => warned.filter((l) => /have not joined/.test(l)).length === 6,
        "six closed",
      );
      // A real user still joins and is served.
      using alice = await RawPeer.join(port, "alice");
      await waitUntil(() => server.users.includes("alice"), "alice joined");
      await alice.link.send({ type: "request_users_list" });
      deepEqual(await alice.nextMessage(), {
        type: "response_users_list",
        users: ["alice"],
      });
    } finally {
      for (const peer of idle) peer[Symbol.dispose]();
    }
  }
  await server.close();
  await serving;
});

Deno.test("chat server: a connection that has not joined within the join timeout is closed without a word; a joined one stays", async () => {
  const printed: string[] = [];
  const warned: string[] = [];
  await using server = ChatServer.listen({
    hostname: "127.0.0.1",
    port: 0,
    maxClients: 10,
    joinTimeoutMs: 300,
    print: (line) => printed.push(line),
    warn: (line) => warned.push(line),
  });
  const serving = server.serve();
  const port = server.addr.port;
  {
    using alice = await RawPeer.join(port, "alice");
    await waitUntil(() => server.users.includes("alice"), "alice joined");
    // Connected after alice: by the time it is closed, alice's own join
    // timer has run out too.
    const connected = performance.now();
    using idle = await RawPeer.connect(port);
    equal(await idle.nextMessage(3_000), null, "closed, nothing sent first");
    const ms = performance.now() - connected;
    ok(ms >= 250, `closed after ${ms.toFixed(0)} ms, before its timeout`);
    await alice.link.send({ type: "request_users_list" });
    deepEqual(await alice.nextMessage(3_000), {
      type: "response_users_list",
      users: ["alice"],
    });
    deepEqual(printed, ["join: alice", "request_users_list: alice"]);
    deepEqual(warned, []);
  }
  await server.close();
  await serving;
});

Deno.test("chat outbox: each queued frame counts with its overhead, so tiny messages to a client that never reads cannot queue far past the bound", () => {
  // A connection whose first write never completes: everything after it
  // stays queued.
  const stalled = {
    write: () => new Promise<number>(() => {}),
    close: () => {},
  } as unknown as Deno.Conn;
  let failure = "";
  const outbox = new Outbox(stalled, {
    ...DEFAULT_OUTBOX_LIMITS,
    maxQueuedBytes: 100_000,
  }, (reason) => failure = reason);
  const tiny = new Uint8Array(10);
  let queued = 0;
  while (outbox.sendFrame(tiny)) queued++;
  ok(
    queued <= Math.ceil(100_000 / (10 + FRAME_OVERHEAD_BYTES)) + 1,
    `${queued} frames queued`,
  );
  match(failure, /outgoing queue over 100000 bytes/);
  outbox.close();
});

Deno.test("chat outbox: the 33rd file queued to a client that never reads disconnects it and releases every queued spool", async () => {
  await using dir = await tempDir();
  // A connection whose writes wait until it is closed, then fail: the first
  // file's header is in flight from the start, the rest stay queued.
  let connClosed = false;
  const closers: Array<() => void> = [];
  const stalled = {
    write: () =>
      new Promise<number>((_, reject) => {
        closers.push(() => reject(new Deno.errors.BadResource("closed")));
      }),
    close: () => {
      connClosed = true;
      for (const close of closers.splice(0)) close();
    },
  } as unknown as Deno.Conn;
  const failures: string[] = [];
  const outbox = new Outbox(
    stalled,
    DEFAULT_OUTBOX_LIMITS,
    (reason) => failures.push(reason),
  );
  const accepted: boolean[] = [];
  for (let i = 0; i < 33; i++) {
    const spool = await FileSpool.create(dir.path);
    await spool.write(new Uint8Array([i]));
    spool.finish();
    const header = encodeFileHeader({
      type: "forward_file",
      users: ["alice"],
      fileName: `f${i}.bin`,
      size: spool.size,
    });
    accepted.push(outbox.sendFile(header, spool));
    spool.release(); // the upload's own reference, as the server does
  }
  deepEqual(accepted, [...Array(32).fill(true), false]);
  deepEqual(failures, ["more than 32 files queued (client too slow)"]);
  ok(outbox.closed && connClosed, "the client is disconnected");
  await outbox.flushed();
  // The one in flight is released when its write fails, the queued ones at
  // once: no spool file is left.
  await waitUntil(
    () => [...Deno.readDirSync(dir.path)].length === 0,
    "every spool file removed",
    3_000,
  );
});

Deno.test("chat server: files still reach their recipients after its spool directory was removed under it", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "sockkit-chat-test-" });
  try {
    await using server = await startChatServer([], { TMPDIR: tmp });
    using alice = await RawPeer.join(server.port, "alice");
    using bob = await RawPeer.join(server.port, "bob");
    await server.process.stdout.waitFor("join: bob\n");
    /** Sends `text` as a file from alice to bob and returns what bob got. */
    const relay = async (text: string) => {
      await alice.write(encodeFile(
        { type: "send_file", users: ["bob"], fileName: "a.txt" },
        new TextEncoder().encode(text),
      ));
      let got = "";
      while (true) {
        const event = await bob.next(5_000);
        if (event === null || event.kind === "file-end") break;
        if (event.kind === "file-data") {
          got += new TextDecoder().decode(event.bytes);
        }
      }
      return got;
    };
    equal(await relay("first"), "first");
    for (const entry of Deno.readDirSync(tmp)) {
      await Deno.remove(join(tmp, entry.name), { recursive: true });
    }
    equal(await relay("second"), "second");
    equal(await relay("third"), "third");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
