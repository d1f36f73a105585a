/**
 * The repeat-transfer measurement (SPEC §2, seed 001): real `server repeat`
 * and `client repeat` processes on 127.0.0.1 over tcp, raw udp and snw
 * (one suite over all three), exact output lines, SHA-256 of the stored
 * copies, error counting against a differing reference, raw udp and snw
 * through the seeded lossy relay; plus unit tests of the ordinals, the
 * codecs (with a seeded fuzz) and the raw-UDP receiver's copy separation.
 *
 * @module
 */

import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { join } from "node:path";
import { resetQueuedConnections } from "./_helpers/reset_peers.ts";
import { pollUntil, waitForSignalHandler } from "./_helpers/proc_status.ts";
import { LossyRelay, type RelayOptions } from "../bench/relay.ts";
import { seededRandom } from "../bench/seeded_random.ts";
import { sha256File, tempDir, writeTestFile } from "./_helpers/files.ts";
import {
  type RoleProcess,
  runRole,
  startRole,
} from "./_helpers/role_process.ts";
import { transportByName } from "../transport/registry.ts";
import { copyName } from "../roles/repeat/copy_names.ts";
import { encodeSnwPacket, SnwType } from "../transport/snw_packet.ts";
import { CopyStore } from "../roles/server/repeat_copy_store.ts";
import {
  decodeRepeatHeader,
  decodeRepeatReceipt,
  encodeRepeatHeader,
  encodeRepeatReceipt,
  repeatHeaderLength,
  RepeatProtocolError,
} from "../protocol/repeat_protocol.ts";
import {
  averageMs,
  errorPercent,
  ordinal,
} from "../roles/repeat/repeat_lines.ts";
import {
  decodeRawDatagram,
  encodeRawDatagram,
  RawDatagramError,
  RawType,
  UdpRawReceiver,
} from "../transport/udp_raw.ts";
import {
  assertAverageIsMean,
  assertLines,
  expectedClientLines,
  expectedServerLines,
  startRepeatServer,
} from "./repeat/repeat_harness.ts";

const TRANSPORTS = ["tcp", "udp", "snw"] as const;
/** The snw give-up timeout in these tests: generous, the CPU is shared. */
const SNW_ENV = { SOCKKIT_SNW_TIMEOUT_MS: "3000" };

// ---------------------------------------------------------------- units

Deno.test("ordinal gives English ordinals", () => {
  const cases: [number, string][] = [
    [1, "1st"],
    [2, "2nd"],
    [3, "3rd"],
    [4, "4th"],
    [11, "11th"],
    [12, "12th"],
    [13, "13th"],
    [21, "21st"],
    [22, "22nd"],
    [23, "23rd"],
    [100, "100th"],
    [101, "101st"],
    [111, "111th"],
    [112, "112th"],
  ];
  deepEqual(cases.map(([n]) => ordinal(n)), cases.map(([, s]) => s));
});

Deno.test("averageMs is the mean of the times as printed; errorPercent has 2 decimals", () => {
  equal(averageMs([1.0004, 2.0004, 3.0004]), 2);
  equal(averageMs([0.1234, 0.1236]), 0.124);
  equal(averageMs([]), undefined);
  equal(errorPercent(1, 3), 33.33);
  equal(errorPercent(0, 100), 0);
  equal(errorPercent(20, 100), 20);
});

Deno.test("repeat codec: header and receipt round trip; header prefix readable byte by byte", () => {
  const header = {
    copy: 42,
    total: 100,
    size: 2 ** 40 + 3,
    name: "xyz “ü”.txt",
  };
  const bytes = encodeRepeatHeader(header);
  let length: number | undefined;
  for (let i = 0; i <= bytes.length; i++) {
    length = repeatHeaderLength(bytes.subarray(0, i));
    if (i < 21) equal(length, undefined);
  }
  equal(length, bytes.length);
  const withBody = new Uint8Array([...bytes, 1, 2, 3]);
  deepEqual(decodeRepeatHeader(withBody), { header, length: bytes.length });
  const receipt = { copy: 7, received: 123456789, correct: false };
  deepEqual(decodeRepeatReceipt(encodeRepeatReceipt(receipt)), receipt);
  throws(() => encodeRepeatHeader({ ...header, name: "" }), RangeError);
  throws(
    () => encodeRepeatHeader({ ...header, name: "n".repeat(256) }),
    RangeError,
  );
  throws(
    () => decodeRepeatHeader(bytes.subarray(0, bytes.length - 1)),
    RepeatProtocolError,
  );
});

Deno.test("repeat and raw-udp codecs: random, truncated and flipped bytes only throw their own error", () => {
  const random = seededRandom(2024);
  const header = encodeRepeatHeader({ copy: 1, total: 3, size: 9, name: "a" });
  const datagram = encodeRawDatagram({
    type: RawType.DATA,
    stream: 5,
    seq: 2,
    size: 3000,
    index: 2,
    chunk: 1024,
    meta: header,
    payload: new Uint8Array(3000 - 2048),
  });
  decodeRawDatagram(datagram); // valid as built
  const samples: Uint8Array[] = [];
  for (let i = 0; i < 2000; i++) {
    const base = [
      header,
      encodeRepeatReceipt({ copy: 1, received: 2, correct: true }),
      datagram,
    ][i % 3];
    const bytes = base.slice(0, Math.floor(random() * (base.length + 1)));
    if (random() < 0.5 && bytes.length > 0) {
      bytes[Math.floor(random() * bytes.length)] ^= 1 <<
        Math.floor(random() * 8);
    }
    if (random() < 0.2) {
      samples.push(
        Uint8Array.from(
          { length: Math.floor(random() * 64) },
          () => Math.floor(random() * 256),
        ),
      );
    }
    samples.push(bytes);
  }
  for (const bytes of samples) {
    for (const decode of [decodeRepeatHeader, decodeRepeatReceipt]) {
      try {
        decode(bytes);
      } catch (error) {
        ok(error instanceof RepeatProtocolError, String(error));
      }
    }
    try {
      repeatHeaderLength(bytes);
    } catch (error) {
      ok(error instanceof RepeatProtocolError, String(error));
    }
    try {
      decodeRawDatagram(bytes);
    } catch (error) {
      ok(error instanceof RawDatagramError, String(error));
    }
  }
  const flipped = datagram.slice();
  flipped[40] ^= 0x10;
  throws(() => decodeRawDatagram(flipped), /checksum/);
  // Tiny chunks are refused, when built and when received.
  const tiny = {
    type: RawType.DATA,
    stream: 5,
    seq: 2,
    size: 2 ** 32,
    index: 70_000,
    chunk: 1,
    meta: header,
    payload: new Uint8Array(1),
  } as const;
  throws(
    () => decodeRawDatagram(encodeRawDatagram(tiny)),
    /chunk size 1 is under 256/,
  );
  throws(
    () =>
      decodeRawDatagram(
        encodeRawDatagram({
          ...tiny,
          chunk: 255,
          payload: new Uint8Array(255),
        }),
      ),
    RawDatagramError,
  );
});

Deno.test("raw udp receiver keeps copies apart: late datagrams of copy k are dropped during copy k+1", async () => {
  await using receiver = new UdpRawReceiver({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeoutMs: 300,
  });
  const socket = Deno.listenDatagram({
    transport: "udp",
    hostname: "127.0.0.1",
    port: 0,
  });
  try {
    const chunk = 256; // the smallest chunk size
    const datagram = (
      seq: number,
      index: number,
      type: number = RawType.DATA,
    ) =>
      encodeRawDatagram({
        type: type as 1 | 2 | 3,
        stream: 77,
        seq,
        size: 3 * chunk,
        index,
        chunk,
        meta: new Uint8Array([seq]),
        payload: type === RawType.DATA
          ? new Uint8Array(chunk).fill(seq * 16 + index)
          : new Uint8Array(0),
      });
    const send = (bytes: Uint8Array) => socket.send(bytes, receiver.addr);
    // Copy 1 loses its chunk 2; copy 2 starts; then copy 1's chunk 2 arrives late.
    await send(datagram(1, 0));
    await send(datagram(1, 1));
    await send(datagram(2, 0));
    await send(datagram(1, 2));
    await send(datagram(2, 1));
    await send(datagram(2, 1)); // duplicate
    await send(datagram(2, 2));
    await send(new Uint8Array([1, 2, 3])); // garbage
    await send(datagram(2, 2, RawType.END));

    const first = await receiver.receive({ timeoutMs: 5000 });
    ok(first);
    const got1: number[] = [];
    for await (const c of first.chunks()) got1.push(c.offset);
    deepEqual(got1, [0, chunk]);
    equal(first.endReason, "superseded");
    equal(first.complete, false);

    const second = await receiver.receive({ timeoutMs: 5000 });
    ok(second);
    equal(second.seq, 2);
    deepEqual(second.meta, new Uint8Array([2]));
    const got2: number[] = [];
    for await (const c of second.chunks()) got2.push(c.bytes[0]);
    deepEqual(got2, [32, 33, 34]);
    equal(second.endReason, "complete");
    equal(receiver.stats.late, 1, "copy 1's late chunk is dropped in copy 2");

    // Stragglers of finished copies are late; silence ends the wait.
    await send(datagram(1, 2));
    await send(datagram(2, 0));
    equal(await receiver.receive({ timeoutMs: 300 }), undefined);
    equal(receiver.stats.late, 4); // copy 2's END came after it was complete
    ok(receiver.stats.duplicates >= 1);
    ok(receiver.stats.invalid >= 1);

    // A copy whose END is lost ends by the idle timeout.
    await send(datagram(3, 0));
    const third = await receiver.receive({ timeoutMs: 5000 });
    ok(third);
    const started = performance.now();
    for await (const _ of third.chunks());
    equal(third.endReason, "idle");
    ok(performance.now() - started >= 250);

    // Chunks reordered behind END (even all of them) still count.
    await send(datagram(4, 2, RawType.END));
    await send(datagram(4, 2));
    await send(datagram(4, 1));
    await send(datagram(4, 0));
    const fourth = await receiver.receive({ timeoutMs: 5000 });
    ok(fourth);
    let bytes = 0;
    for await (const c of fourth.chunks()) bytes += c.bytes.length;
    equal(bytes, 3 * chunk);
    equal(fourth.endReason, "complete");
  } finally {
    socket.close();
  }
});

// ------------------------------------------------------- end to end

interface RunResult {
  server: { code: number; stdout: string; stderr: string };
  client: { code: number; stdout: string; stderr: string };
}

/** Runs one server and one client to completion in `dir`. */
async function runPair(
  dir: string,
  options: {
    transport: string;
    times: number;
    reference: string;
    file: string;
    serverArgs?: string[];
    clientArgs?: string[];
    relay?: Omit<RelayOptions, "targetPort">;
    timeoutMs?: number;
  },
): Promise<RunResult & { relayStats?: LossyRelay["stats"] }> {
  const common = [
    "--times",
    String(options.times),
    "--transport",
    options.transport,
  ];
  await using server = await startRepeatServer(
    options.reference,
    [...common, "--dir", "copies", ...(options.serverArgs ?? [])],
    { cwd: dir, env: SNW_ENV },
  );
  await using relay = options.relay
    ? LossyRelay.start({ ...options.relay, targetPort: server.port })
    : undefined;
  const client = await runRole(
    "client",
    [
      "repeat",
      "127.0.0.1",
      String(relay ? relay.port : server.port),
      options.file,
      ...common,
      ...(options.clientArgs ?? []),
    ],
    { cwd: dir, env: SNW_ENV, timeoutMs: options.timeoutMs ?? 60_000 },
  );
  const result = await server.process.finished(options.timeoutMs ?? 60_000);
  return { server: result, client, relayStats: relay?.stats };
}

for (const transport of TRANSPORTS) {
  Deno.test(`repeat over ${transport}: 3 copies print the exact lines on both sides and are stored intact`, async () => {
    await using dir = await tempDir();
    await writeTestFile(join(dir.path, "xyz.txt"), 5000, 3);
    await writeTestFile(join(dir.path, "reference.txt"), 5000, 3);
    const { server, client } = await runPair(dir.path, {
      transport,
      times: 3,
      reference: "reference.txt",
      file: "xyz.txt",
    });
    equal(client.code, 0, client.stderr);
    equal(server.code, 0, server.stderr);
    assertLines(
      server.stdout,
      expectedServerLines(transport, "xyz.txt", 3),
      "server",
    );
    assertLines(
      client.stdout,
      expectedClientLines("127.0.0.1", "xyz.txt", 3),
      "client",
    );
    const copies = [...Deno.readDirSync(join(dir.path, "copies"))].map((e) =>
      e.name
    ).sort();
    deepEqual(copies, ["001_xyz.txt", "002_xyz.txt", "003_xyz.txt"]);
    const sha = await sha256File(join(dir.path, "xyz.txt"));
    for (const name of copies) {
      equal(await sha256File(join(dir.path, "copies", name)), sha);
    }
  });

  Deno.test(`repeat over ${transport}: 100 copies of a small file, ordinals 1st-100th, average is the mean`, async () => {
    await using dir = await tempDir();
    await writeTestFile(join(dir.path, "xyz.txt"), 1500, 5);
    await writeTestFile(join(dir.path, "reference.txt"), 1500, 5);
    const { server, client } = await runPair(dir.path, {
      transport,
      times: 100,
      reference: "reference.txt",
      file: "xyz.txt",
    });
    equal(client.code, 0, client.stderr);
    equal(server.code, 0, server.stderr);
    assertLines(
      server.stdout,
      expectedServerLines(transport, "xyz.txt", 100),
      "server",
    );
    assertLines(
      client.stdout,
      expectedClientLines("127.0.0.1", "xyz.txt", 100),
      "client",
    );
    for (
      const nth of [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
        "23rd",
        "100th",
      ]
    ) {
      ok(server.stdout.includes(`for the ${nth} time\n`), nth);
    }
    equal(assertAverageIsMean(server.stdout).length, 100);
    equal(assertAverageIsMean(client.stdout).length, 100);
  });

  Deno.test(`repeat over ${transport}: a copy whose file cannot be created is not stored, counts as incorrect, and the run goes on`, async () => {
    await using dir = await tempDir();
    await writeTestFile(join(dir.path, "xyz.txt"), 3000, 1);
    await writeTestFile(join(dir.path, "reference.txt"), 3000, 1);
    await Deno.mkdir(join(dir.path, "copies", "002_xyz.txt"), {
      recursive: true,
    });
    const { server, client } = await runPair(dir.path, {
      transport,
      times: 3,
      reference: "reference.txt",
      file: "xyz.txt",
      serverArgs: ["--json"],
    });
    equal(server.code, 0, server.stderr);
    equal(client.code, 0, client.stderr);
    const summary = JSON.parse(server.stdout);
    equal(summary.incorrect, 1);
    deepEqual(
      summary.copies.map((c: { correct: boolean }) => c.correct),
      [true, false, true],
    );
    equal(
      summary.copies[1].problem,
      'not stored: cannot create "002_xyz.txt": a directory of that name is in the way',
    );
    match(server.stderr, /copy 2: not stored: cannot create "002_xyz\.txt"/);
    deepEqual(
      [...Deno.readDirSync(join(dir.path, "copies"))].map((e) => e.name).sort(),
      ["001_xyz.txt", "002_xyz.txt", "003_xyz.txt"],
    );
    ok(Deno.statSync(join(dir.path, "copies", "002_xyz.txt")).isDirectory);
  });

  Deno.test(`repeat over ${transport}: every copy counts as incorrect when the reference differs`, async () => {
    await using dir = await tempDir();
    await writeTestFile(join(dir.path, "xyz.txt"), 3000, 1);
    await writeTestFile(join(dir.path, "reference.txt"), 3000, 2); // same size, other bytes
    const { server, client } = await runPair(dir.path, {
      transport,
      times: 4,
      reference: "reference.txt",
      file: "xyz.txt",
      serverArgs: ["--json"],
      clientArgs: ["--json"],
    });
    equal(server.code, 0, server.stderr);
    equal(client.code, 0, client.stderr);
    const summary = JSON.parse(server.stdout);
    equal(summary.incorrect, 4);
    equal(summary.errorPercent, 100);
    equal(summary.copies.length, 4);
    for (const copy of summary.copies) {
      equal(copy.correct, false);
      equal(copy.received, 3000);
    }
    const sent = JSON.parse(client.stdout);
    equal(sent.copies.length, 4);
    equal(sent.receipts.correct, 0);
    equal(sent.receipts.incorrect + sent.receipts.missing, 4);
    if (transport !== "udp") equal(sent.receipts.incorrect, 4);
    const mean = sent.copies.reduce((a: number, c: { ms: number }) =>
      a + c.ms, 0) / 4;
    ok(Math.abs(mean - sent.averageMs) <= 0.0005 + 1e-9);
  });
}

/**
 * A UDP relay on 127.0.0.1 in front of a raw-udp repeat server that drops
 * every datagram of copy `lost` and forwards the rest; the server's
 * receipts go back to the client socket that sent last (one per copy).
 */
function copyDroppingRelay(serverPort: number, lost: number) {
  const socket = Deno.listenDatagram({
    transport: "udp",
    hostname: "127.0.0.1",
    port: 0,
  });
  const server: Deno.NetAddr = {
    transport: "udp",
    hostname: "127.0.0.1",
    port: serverPort,
  };
  const stats = { dropped: 0 };
  const copyOf = (bytes: Uint8Array) => {
    try {
      return decodeRawDatagram(bytes).seq;
    } catch {
      return undefined; // not a raw datagram: the server judges it
    }
  };
  const relaying = (async () => {
    let client: Deno.Addr | undefined;
    try {
      while (true) {
        const [bytes, from] = await socket.receive();
        if ((from as Deno.NetAddr).port === serverPort) {
          if (client) await socket.send(bytes, client);
          continue;
        }
        client = from;
        if (copyOf(bytes) === lost) stats.dropped++;
        else await socket.send(bytes, server);
      }
    } catch {
      // closed
    }
  })();
  return {
    port: (socket.addr as Deno.NetAddr).port,
    stats,
    async [Symbol.asyncDispose]() {
      socket.close();
      await relaying;
    },
  };
}

Deno.test("raw udp: a copy of which no datagram arrives gets the line I never received file “xyz” for the nth time, and counts as incorrect", async () => {
  await using dir = await tempDir();
  await writeTestFile(join(dir.path, "f.bin"), 3000, 7);
  const common = ["--times", "3", "--transport", "udp"];
  await using server = await startRepeatServer(
    "f.bin",
    [...common, "--dir", "copies", "--idle-timeout", "300"],
    { cwd: dir.path },
  );
  await using relay = copyDroppingRelay(server.port, 2);
  const sent = await runRole("client", [
    "repeat",
    "127.0.0.1",
    String(relay.port),
    "f.bin",
    ...common,
    "--idle-timeout",
    "100",
  ], { cwd: dir.path, timeoutMs: 30_000 });
  equal(sent.code, 0, sent.stderr);
  match(sent.stderr, /^client: copy 2: no receipt from /m);
  ok(relay.stats.dropped > 0, "copy 2 was sent, and dropped");
  const done = await server.process.finished(30_000);
  equal(done.code, 0, done.stderr);
  const expected = expectedServerLines("udp", "f.bin", 3, 1);
  // Copy 2's starting, finishing and time lines become the one line.
  expected.splice(5, 3, /^I never received file “f\.bin” for the 2nd time$/);
  assertLines(done.stdout, expected, "server");
  equal(assertAverageIsMean(done.stdout).length, 2);
  const copies = [...Deno.readDirSync(join(dir.path, "copies"))]
    .map((entry) => entry.name).sort();
  deepEqual(copies, ["001_f.bin", "003_f.bin"]);
  const sha = await sha256File(join(dir.path, "f.bin"));
  for (const name of copies) {
    equal(await sha256File(join(dir.path, "copies", name)), sha, name);
  }
});

Deno.test("raw udp through the relay at 20% loss: errors > 0, counted right, and the run ends", async () => {
  await using dir = await tempDir();
  await writeTestFile(join(dir.path, "xyz.txt"), 20_000, 8);
  await writeTestFile(join(dir.path, "reference.txt"), 20_000, 8);
  const started = performance.now();
  const { server, client, relayStats } = await runPair(dir.path, {
    transport: "udp",
    times: 10,
    reference: "reference.txt",
    file: "xyz.txt",
    serverArgs: ["--json", "--idle-timeout", "200"],
    clientArgs: ["--json", "--idle-timeout", "200"],
    relay: { drop: 0.2, duplicate: 0.02, reorder: 0.02, seed: 11 },
    timeoutMs: 45_000,
  });
  ok(performance.now() - started < 45_000);
  equal(server.code, 0, server.stderr);
  equal(client.code, 0, client.stderr);
  ok(relayStats && relayStats.dropped > 0);
  const summary = JSON.parse(server.stdout);
  equal(summary.copies.length, 10);
  deepEqual(summary.copies.map((c: { copy: number }) => c.copy), [
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
  ]);
  const incorrect =
    summary.copies.filter((c: { correct: boolean }) => !c.correct).length;
  ok(incorrect > 0, "raw udp at 20% loss has errors");
  equal(summary.incorrect, incorrect);
  equal(summary.errorPercent, incorrect * 10);
  // Never miscounted: a copy is "correct" exactly when its stored bytes are.
  const sha = await sha256File(join(dir.path, "reference.txt"));
  for (const copy of summary.copies) {
    if (copy.lost) continue;
    const stored = await sha256File(join(dir.path, "copies", copy.storedAs));
    equal(stored === sha, copy.correct, `copy ${copy.copy}`);
    equal(copy.correct, copy.received === 20_000, `copy ${copy.copy}`);
  }
  const sent = JSON.parse(client.stdout);
  equal(sent.copies.length, 10);
});

Deno.test("snw through the relay at 10% loss: 0 of N incorrect", async () => {
  await using dir = await tempDir();
  await writeTestFile(join(dir.path, "xyz.txt"), 20_000, 9);
  await writeTestFile(join(dir.path, "reference.txt"), 20_000, 9);
  const { server, client, relayStats } = await runPair(dir.path, {
    transport: "snw",
    times: 5,
    reference: "reference.txt",
    file: "xyz.txt",
    relay: { drop: 0.1, duplicate: 0.02, reorder: 0.02, seed: 12 },
    timeoutMs: 60_000,
  });
  equal(client.code, 0, client.stderr);
  equal(server.code, 0, server.stderr);
  ok(relayStats && relayStats.dropped > 0);
  assertLines(
    server.stdout,
    expectedServerLines("snw", "xyz.txt", 5, 0),
    "server",
  );
  assertLines(
    client.stdout,
    expectedClientLines("127.0.0.1", "xyz.txt", 5),
    "client",
  );
  assertAverageIsMean(server.stdout);
});

Deno.test("repeat: usage errors exit 2, a missing reference or file exits 1", async () => {
  await using dir = await tempDir();
  const badTransport = await runRole("server", [
    "repeat",
    "0",
    "ref",
    "--transport",
    "quic",
  ], { cwd: dir.path });
  equal(badTransport.code, 2);
  ok(
    badTransport.stderr.includes('invalid --transport "quic"'),
    badTransport.stderr,
  );
  const badTimes = await runRole("client", [
    "repeat",
    "127.0.0.1",
    "9",
    "f",
    "--times",
    "0",
  ], { cwd: dir.path });
  equal(badTimes.code, 2);
  const emptyHost = await runRole("client", ["repeat", "", "9", "f"], {
    cwd: dir.path,
  });
  equal(emptyHost.code, 2);
  ok(emptyHost.stderr.includes("empty <host>"), emptyHost.stderr);
  const noReference = await runRole("server", ["repeat", "0", "missing.txt"], {
    cwd: dir.path,
  });
  equal(noReference.code, 1);
  ok(
    noReference.stderr.includes('Cannot read reference file "missing.txt"'),
    noReference.stderr,
  );
  const noFile = await runRole("client", [
    "repeat",
    "127.0.0.1",
    "9",
    "missing.txt",
  ], { cwd: dir.path });
  equal(noFile.code, 1);
  ok(noFile.stderr.includes('Cannot read "missing.txt"'), noFile.stderr);
});

Deno.test("repeat server: a stop signal mid-copy ends the run with exit 1 and a line, and leaves no temporary file (tcp, snw, udp)", async () => {
  await using dir = await tempDir();
  await writeTestFile(join(dir.path, "ref.bin"), 20_000_000, 6);
  const copies = join(dir.path, "copies");
  for (const transport of ["tcp", "snw", "udp"]) {
    await Deno.remove(copies, { recursive: true }).catch(() => {});
    const args = ["--times", "3", "--transport", transport];
    await using server = await startRepeatServer(
      "ref.bin",
      [...args, "--dir", "copies"],
      { cwd: dir.path },
    );
    await using client = startRole("client", [
      "repeat",
      "127.0.0.1",
      String(server.port),
      "ref.bin",
      ...args,
    ], { cwd: dir.path });
    const parts = () => {
      try {
        return [...Deno.readDirSync(copies)].filter((entry) =>
          entry.name.includes(".part-")
        ).length;
      } catch {
        return 0; // not made yet
      }
    };
    const deadline = Date.now() + 20_000;
    while (parts() === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    client.kill("SIGSTOP"); // the copy stays under way
    ok(parts() > 0, `${transport}: a copy under way`);
    server.process.kill("SIGTERM");
    const done = await server.process.finished();
    equal(done.code, 1, `${transport}: ${done.stderr}`);
    match(
      done.stderr,
      /^server: interrupted after [0-2] of 3 copies$/m,
      transport,
    );
    equal(parts(), 0, `${transport}: temporary files left`);
    // Nothing more is said of the copy the stop cut short.
    ok(!/broken after|not stored/.test(done.stderr), done.stderr);
    client.kill("SIGKILL");
  }
});

Deno.test("repeat server: a stop signal while it hashes the reference ends it at once (exit 1)", async () => {
  await using dir = await tempDir();
  using big = await Deno.open(join(dir.path, "big.bin"), {
    write: true,
    create: true,
  });
  await big.truncate(8 * 1024 ** 3); // sparse: seconds to hash, no disk used
  await using server = startRole("server", ["repeat", "0", "big.bin"], {
    cwd: dir.path,
  });
  // Its stop handler in place, and the hash under way.
  const pid = server.child.pid;
  const path = await Deno.realPath(join(dir.path, "big.bin"));
  await waitForSignalHandler(pid, "SIGTERM");
  await pollUntil(
    () => readPosition(pid, path) > 0,
    10_000,
    "the server to read big.bin",
  );
  const started = Date.now();
  server.kill("SIGTERM");
  const done = await server.finished(30_000);
  equal(done.code, 1, done.stderr);
  equal(done.stderr, "server: interrupted before the run started\n");
  ok(Date.now() - started < 2_000, `ended after ${Date.now() - started} ms`);
});

/**
 * How far process `pid` has read into the file at `path` (the position of
 * its descriptor of it, from `/proc/<pid>/fdinfo`), or -1 while it has none.
 */
function readPosition(pid: number, path: string): number {
  try {
    for (const fd of Deno.readDirSync(`/proc/${pid}/fd`)) {
      const link = `/proc/${pid}/fd/${fd.name}`;
      if (Deno.readLinkSync(link) !== path) continue;
      const info = Deno.readTextFileSync(`/proc/${pid}/fdinfo/${fd.name}`);
      return Number(info.match(/^pos:\s*(\d+)$/m)?.[1] ?? -1);
    }
  } catch {
    // gone, or a descriptor closed while listed: look again
  }
  return -1;
}

Deno.test("repeat client over udp: copies without a receipt are said on stderr; none for the first 5 stops the run with exit 1", async () => {
  await using dir = await tempDir();
  await writeTestFile(join(dir.path, "f.bin"), 3000, 2);
  // A port that takes datagrams and never answers.
  const silent = Deno.listenDatagram({
    transport: "udp",
    hostname: "127.0.0.1",
    port: 0,
  });
  const port = (silent.addr as Deno.NetAddr).port;
  const run = (times: number) =>
    runRole("client", [
      "repeat",
      "127.0.0.1",
      String(port),
      "f.bin",
      "--times",
      String(times),
      "--transport",
      "udp",
      "--idle-timeout",
      "50",
    ], { cwd: dir.path, timeoutMs: 20_000 });
  try {
    const stopped = await run(10);
    equal(stopped.code, 1, stopped.stderr);
    equal(stopped.stdout.match(/^I am finishing sending file/gm)?.length, 5);
    for (const n of [1, 2, 3, 4, 5]) {
      ok(
        stopped.stderr.includes(
          `client: copy ${n}: no receipt from 127.0.0.1:${port} (udp)`,
        ),
        stopped.stderr,
      );
    }
    ok(
      stopped.stderr.includes(
        `client: no receipt for any of the first 5 copies from 127.0.0.1:${port} (udp): no receiver there, or every receipt was lost; stopping before the other 5\n`,
      ),
      stopped.stderr,
    );
    ok(!stopped.stdout.includes("I am done"), stopped.stdout);
    // A shorter run goes to its end, and fails there.
    const short = await run(1);
    equal(short.code, 1, short.stderr);
    ok(
      short.stderr.endsWith(
        `client: no receipt for the only copy from 127.0.0.1:${port} (udp): no receiver there, or every receipt was lost\n`,
      ),
      short.stderr,
    );
  } finally {
    silent.close();
  }
});

Deno.test("repeat over tcp and snw: a peer that connects and sends nothing holds up no copy and is not timed into one", async () => {
  await using dir = await tempDir();
  await writeTestFile(join(dir.path, "f.bin"), 5000, 3);
  for (const transport of ["tcp", "snw"] as const) {
    const common = ["--times", "2", "--transport", transport];
    // A peer that held up the run would do so for its idle timeout, 10 s:
    // well past the bounds below, which leave a busy machine 8 s to start
    // the client and run it.
    await using server = await startRepeatServer(
      "f.bin",
      [...common, "--dir", "copies", "--idle-timeout", "10000"],
      { cwd: dir.path, env: SNW_ENV },
    );
    const at = { hostname: "127.0.0.1", port: server.port };
    // The silent peer comes first and is accepted before the client.
    const silent = transport === "tcp"
      ? await Deno.connect(at)
      : await transportByName("snw").connect(at);
    using _closeSilent = {
      [Symbol.dispose]: () => silent.close(),
    };
    await new Promise((resolve) => setTimeout(resolve, 200));
    const started = Date.now();
    const client = await runRepeatClient(server.port, common, dir.path);
    equal(client.code, 0, `${transport}: ${client.stderr}`);
    const done = await server.process.finished(30_000);
    const ms = Date.now() - started;
    equal(done.code, 0, `${transport}: ${done.stderr}`);
    ok(ms < 8_000, `${transport}: the run took ${ms} ms`);
    const times = [...done.stdout.matchAll(/to receive .* time is: ([\d.]+)/g)]
      .map((match) => Number(match[1]));
    equal(times.length, 2, done.stdout);
    ok(times.every((t) => t < 5_000), `${transport}: ${times.join(", ")} ms`);
  }
});

/**
 * Runs `client repeat 127.0.0.1 <port> f.bin ...args` in `cwd` with a 3 s
 * SNW give-up timeout, bounded by 30 s.
 */
function runRepeatClient(port: number, args: string[], cwd: string) {
  return runRole("client", [
    "repeat",
    "127.0.0.1",
    String(port),
    "f.bin",
    ...args,
  ], { cwd, env: SNW_ENV, timeoutMs: 30_000 });
}

/**
 * Opens `sessions` snw sessions to the server at `port` that announce 100
 * bytes and send none, paced so that the server's socket buffer drops few.
 * Each session the server opened gives `Did not receive data. Terminating.`
 * and a `server: ignored …` line on its stderr (~120 bytes).
 */
async function floodStalledSessions(port: number, sessions: number) {
  const socket = Deno.listenDatagram({
    transport: "udp",
    hostname: "127.0.0.1",
    port: 0,
  });
  try {
    const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
    const text = new TextEncoder();
    for (let i = 0; i < sessions; i++) {
      if (i % 25 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      const id = 0x10000 + i;
      await socket.send(
        encodeSnwPacket(SnwType.OPEN, id, 0, text.encode("")),
        to,
      );
      await socket.send(
        encodeSnwPacket(SnwType.LEN, id, 1, text.encode("LEN:100")),
        to,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 3_000)); // given up
  } finally {
    socket.close();
  }
}

Deno.test("repeat over snw: give-up lines for a flood of stalled sessions cannot stop the server while its stderr is not read, nor keep it from exiting after the run", async () => {
  // 3000 stalled sessions: far more stderr than a pipe holds (64 KiB).
  await using dir = await tempDir();
  await writeTestFile(join(dir.path, "f.bin"), 5000, 3);
  const common = ["--times", "1", "--transport", "snw"];
  // Stderr read after the run (every line arrives), or never (the server
  // still exits by itself, giving the unread warnings the exit's 2 s).
  for (const stderrRead of ["after the run", "never"] as const) {
    await using server = await startRepeatServer(
      "f.bin",
      [...common, "--dir", "copies"],
      { cwd: dir.path, env: { SOCKKIT_SNW_TIMEOUT_MS: "300" } },
    );
    const stderr = server.process.stderr;
    stderr.pause();
    try {
      await floodStalledSessions(server.port, 3000);
      const client = await runRepeatClient(server.port, common, dir.path);
      equal(client.code, 0, client.stderr);
      if (stderrRead === "never") {
        await server.process.stdout.waitFor("I am done\n");
        const status = await exitStatusWithin(server.process, 10_000);
        equal(status?.code, 0, "the server did not exit after its run");
        continue;
      }
    } finally {
      stderr.resume();
    }
    const done = await server.process.finished(30_000);
    equal(done.code, 0, done.stderr.slice(-500));
    // Sessions still open when the run ended close without a give-up line,
    // a flood may lose OPENs on a busy machine, and the server holds at
    // most 256 sessions at once (the listener keeps 256 more and drops the
    // oldest): 1 024 of 3 000 were given up in three runs here. What counts
    // is that stderr was overfull, more than a pipe holds.
    const giveUps =
      [...done.stderr.matchAll(/^Did not receive data\. Terminating\.$/gm)]
        .length;
    ok(giveUps >= 512, `${giveUps} give-up lines`);
    ok(done.stderr.length > 64 * 1024, `${done.stderr.length} bytes`);
  }
});

Deno.test("repeat server: a stop signal while its stderr is full and unread ends it within the exit's 2 s wait (exit 1)", async () => {
  await using dir = await tempDir();
  await writeTestFile(join(dir.path, "f.bin"), 5000, 3);
  await using server = await startRepeatServer(
    "f.bin",
    ["--times", "1", "--transport", "snw", "--dir", "copies"],
    { cwd: dir.path, env: { SOCKKIT_SNW_TIMEOUT_MS: "300" } },
  );
  server.process.stderr.pause();
  await floodStalledSessions(server.port, 3000);
  await assertStopsWithin(server.process, 1, 5_000);
});

Deno.test("repeat server: after a full run it waits (past 2 s) for its summary to be read, and a stop signal still ends that wait", async () => {
  await using dir = await tempDir();
  await writeTestFile(join(dir.path, "f.bin"), 100, 3);
  const common = ["--times", "700", "--transport", "tcp"]; // > 64 KiB of lines
  await using server = await startRepeatServer(
    "f.bin",
    [...common, "--dir", "copies"],
    { cwd: dir.path },
  );
  server.process.stdout.pause();
  let exited = false;
  server.process.child.status.then(() => exited = true);
  const client = await runRole("client", [
    "repeat",
    "127.0.0.1",
    String(server.port),
    "f.bin",
    ...common,
  ], { cwd: dir.path, timeoutMs: 60_000 });
  equal(client.code, 0, client.stderr);
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  equal(exited, false, "the summary was not read: the server waits");
  await assertStopsWithin(server.process, 0, 5_000);
});

/**
 * Sends SIGTERM to a process whose output is paused and checks that it
 * exits with `code` within `withinMs` (waiting at most 10 s); then reads
 * its output again.
 */
async function assertStopsWithin(
  process: RoleProcess,
  code: number,
  withinMs: number,
): Promise<void> {
  const started = Date.now();
  process.kill("SIGTERM");
  const status = await exitStatusWithin(process, 10_000);
  const ms = Date.now() - started;
  process.stdout.resume();
  process.stderr.resume();
  equal(status?.code, code, `still running ${ms} ms after SIGTERM`);
  ok(ms < withinMs, `exited ${ms} ms after SIGTERM`);
}

/** The process's exit status, or `undefined` if it still runs after `ms`. */
async function exitStatusWithin(
  process: RoleProcess,
  ms: number,
): Promise<Deno.CommandStatus | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      process.child.status,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("repeat over tcp: more silent peers than the server has file descriptors delay the run but neither end it nor spoil a copy", async () => {
  await using dir = await tempDir();
  await writeTestFile(join(dir.path, "f.bin"), 3000, 3);
  // The server with 64 descriptors, so 100 silent peers cannot all be held.
  await using server = startRole("server", [
    "repeat",
    "0",
    "f.bin",
    "--times",
    "2",
    "--dir",
    "copies",
    "--idle-timeout",
    "1000",
  ], { cwd: dir.path, fdLimit: 64 });
  const port = Number(
    (await server.stdout.waitFor(/Listening on [\d.]+:(\d+) \(tcp\)\n/))[1],
  );
  const strays: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 100; i++) {
      strays.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
    const client = startRole("client", [
      "repeat",
      "127.0.0.1",
      String(port),
      "f.bin",
      "--times",
      "2",
      "--idle-timeout",
      "20000",
    ], { cwd: dir.path });
    // And 40 more behind the client (the listen queue holds them all):
    // they must not take the descriptors its copies need.
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (let i = 0; i < 40; i++) {
      strays.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
    const sent = await client.finished(40_000);
    equal(sent.code, 0, sent.stderr);
    const done = await server.finished(40_000);
    equal(done.code, 0, done.stderr);
    match(done.stdout, /^0 of 2 incorrect \(0%\)$/m);
    match(done.stderr, /server: accept failed: Too many open files/);
  } finally {
    for (const conn of strays) conn.close();
  }
});

/** Connections waiting in the accept queue of the TCP listener on `port`. */
async function acceptQueue(port: number): Promise<number> {
  let queued = 0;
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = await Deno.readTextFile(table).catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 5 || fields[3] !== "0A") continue; // LISTEN
      if (parseInt(fields[1].split(":")[1], 16) !== port) continue;
      queued += parseInt(fields[4].split(":")[1], 16);
    }
  }
  return queued;
}

Deno.test("repeat over tcp: at most 256 silent peers are held at once, the rest wait in the listen queue, and the run still completes", async () => {
  await using dir = await tempDir();
  await writeTestFile(join(dir.path, "f.bin"), 3000, 5);
  // No held peer times out while the test connects and counts, however
  // long that takes on a busy machine: the peers leave by closing.
  await using server = await startRepeatServer("f.bin", [
    "--times",
    "1",
    "--dir",
    "copies",
    "--idle-timeout",
    "30000",
  ], { cwd: dir.path });
  const strays: Deno.Conn[] = [];
  const queueBecomes = async (count: number) => {
    await pollUntil(
      async () => (await acceptQueue(server.port)) === count,
      10_000,
      `${count} connections in the accept queue`,
    ).catch(() => {});
    const queued = await acceptQueue(server.port);
    equal(queued, count, `${queued} connections in the accept queue`);
  };
  try {
    for (let i = 0; i < 300; i++) {
      strays.push(
        await Deno.connect({ hostname: "127.0.0.1", port: server.port }),
      );
    }
    await queueBecomes(300 - 256);
    // The held ones leave, the queued ones get their turn, and with those
    // 44 held the real copy goes through.
    for (const conn of strays.splice(0, 256)) conn.close();
    await queueBecomes(0);
    const sent = await runRepeatClient(server.port, ["--times", "1"], dir.path);
    equal(sent.code, 0, sent.stderr);
    const done = await server.process.finished(40_000);
    equal(done.code, 0, done.stderr);
    match(done.stdout, /^0 of 1 incorrect \(0%\)$/m);
  } finally {
    for (const conn of strays) conn.close();
  }
});

Deno.test("repeat over tcp: stray and reset connections are ignored and use up no copy number", async () => {
  await using dir = await tempDir();
  await writeTestFile(join(dir.path, "xyz.txt"), 2000, 4);
  await writeTestFile(join(dir.path, "reference.txt"), 2000, 4);
  await using server = await startRepeatServer(
    "reference.txt",
    ["--times", "2", "--dir", "copies"],
    { cwd: dir.path },
  );
  const strays = [
    new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"), // absurd size
    new Uint8Array([0, 0, 0, 0, 0, 0, 0, 5, 104, 101, 108, 108, 111]), // not a copy header
    new Uint8Array(0), // connects and closes
  ];
  for (const bytes of strays) {
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    await conn.write(bytes).catch(() => 0);
    conn.close();
  }
  // And two reset before the server could accept them (its accept() fails
  // for those): not a reason to end the run.
  server.process.kill("SIGSTOP");
  try {
    await resetQueuedConnections(server.port, 2);
  } finally {
    server.process.kill("SIGCONT");
  }
  const client = await runRole(
    "client",
    ["repeat", "127.0.0.1", String(server.port), "xyz.txt", "--times", "2"],
    { cwd: dir.path, timeoutMs: 30_000 },
  );
  equal(client.code, 0, client.stderr);
  const result = await server.process.finished(30_000);
  equal(result.code, 0, result.stderr);
  assertLines(
    result.stdout,
    expectedServerLines("tcp", "xyz.txt", 2),
    "server",
  );
  equal(
    result.stderr.match(/ignored a connection from 127\.0\.0\.1/g)?.length,
    3,
    result.stderr,
  );
});

Deno.test("repeat server: a peer's name with control characters is printed escaped, so it cannot forge lines", async () => {
  await using dir = await tempDir();
  await writeTestFile(join(dir.path, "ref.txt"), 3, 4);
  await using server = await startRepeatServer(
    "ref.txt",
    ["--times", "1", "--dir", "copies"],
    { cwd: dir.path },
  );
  const name = "a\x1b[2Jb\nI am done";
  const header = encodeRepeatHeader({ copy: 1, total: 1, size: 3, name });
  const body = new Uint8Array(8 + header.length + 3); // tcp: a size, then bytes
  new DataView(body.buffer).setBigUint64(0, BigInt(header.length + 3));
  body.set(header, 8);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await conn.write(body);
  const result = await server.process.finished(30_000);
  conn.close();
  equal(result.code, 0, result.stderr);
  ok(
    // deno-lint-ignore no-control-regex -- finding them is the point
    !/[\x00-\x08\x0b-\x1f]/.test(result.stdout + result.stderr),
    "raw control characters",
  );
  match(
    result.stdout,
    /receiving file “a\\x1b\[2Jb\\x0aI am done” for the 1st time/,
  );
  equal(result.stdout.match(/^I am done$/gm)?.length, 1, result.stdout);
});

Deno.test("repeat server: a copy queued behind a peer that sent its header and stalled is not timed with that wait", async () => {
  await using dir = await tempDir();
  await writeTestFile(join(dir.path, "f.bin"), 3000, 4);
  // Copy 1 holds the turn until the test ends it, well before this timeout.
  await using server = await startRepeatServer(
    "f.bin",
    ["--times", "2", "--dir", "copies", "--idle-timeout", "20000"],
    { cwd: dir.path },
  );
  // Copy 1: a header announcing 3000 bytes, then nothing.
  const header = encodeRepeatHeader({
    copy: 1,
    total: 2,
    size: 3000,
    name: "f.bin",
  });
  const start = new Uint8Array(8 + header.length);
  new DataView(start.buffer).setBigUint64(0, BigInt(header.length + 3000));
  start.set(header, 8);
  const stalled = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.port,
  });
  let closed = false;
  try {
    await stalled.write(start);
    await server.process.stdout.waitFor("for the 1st time");
    // Copy 2 connects, and the server has accepted it ...
    await using client = startRole("client", [
      "repeat",
      "127.0.0.1",
      String(server.port),
      "f.bin",
      "--times",
      "1",
    ], { cwd: dir.path });
    await client.stdout.waitFor("I am sending file");
    await pollUntil(
      async () => (await acceptQueue(server.port)) === 0,
      10_000,
      "the server to accept copy 2",
    );
    // ... and waits this long for its turn, until copy 1's peer leaves.
    const waitMs = 1_500;
    await new Promise((resolve) => setTimeout(resolve, waitMs));
    stalled.close();
    closed = true;
    const sent = await client.finished(30_000);
    equal(sent.code, 0, sent.stderr);
    const result = await server.process.finished(30_000);
    equal(result.code, 0, result.stderr);
    const second = /for 2nd time is: ([\d.]+)$/m.exec(result.stdout);
    ok(second, result.stdout);
    ok(Number(second[1]) < waitMs / 2, `copy 2 took ${second[1]} ms`);
    match(result.stdout, /^1 of 2 incorrect \(50%\)$/m);
  } finally {
    if (!closed) stalled.close();
  }
});

Deno.test("repeat client: a host name is resolved, and every connecting line shows its IP address (SPEC §2)", async () => {
  await using dir = await tempDir();
  await writeTestFile(join(dir.path, "f.bin"), 2000, 6);
  await using server = await startRepeatServer(
    "f.bin",
    ["--times", "2", "--dir", "copies"],
    { cwd: dir.path },
  );
  const sent = await runRole("client", [
    "repeat",
    "localhost",
    String(server.port),
    "f.bin",
    "--times",
    "2",
  ], { cwd: dir.path, timeoutMs: 30_000 });
  equal(sent.code, 0, sent.stderr);
  assertLines(
    sent.stdout,
    expectedClientLines("127.0.0.1", "f.bin", 2),
    "client",
  );
  const done = await server.process.finished(30_000);
  equal(done.code, 0, done.stderr);
  match(done.stdout, /^0 of 2 incorrect \(0%\)$/m);
});

Deno.test("repeat client: a host that does not resolve is one line and exit 1, before anything is sent", async () => {
  await using dir = await tempDir();
  await writeTestFile(join(dir.path, "f.bin"), 100, 6);
  // A label over 63 bytes: the resolver refuses the name itself and sends
  // no query (a plain unknown name would go to the configured DNS server).
  const host = `${"x".repeat(64)}.invalid`;
  const result = await runRole("client", [
    "repeat",
    host,
    "9",
    "f.bin",
  ], { cwd: dir.path, timeoutMs: 10_000 });
  equal(result.code, 1, result.stderr);
  equal(result.stdout, "");
  match(result.stderr, new RegExp(`^client: Cannot resolve "${host}": .+\n$`));
});

Deno.test("repeat client: a name whose stored copies (<n>_<name>) would pass 255 bytes is refused before anything is sent", async () => {
  await using dir = await tempDir();
  const name = "n".repeat(252); // 3 digits + "_" + 252 = 256 bytes
  await Deno.writeTextFile(join(dir.path, name), "x");
  const result = await runRole("client", [
    "repeat",
    "127.0.0.1",
    "9",
    name,
    "--times",
    "2",
  ], { cwd: dir.path, timeoutMs: 20_000 });
  equal(result.code, 1);
  match(
    result.stderr,
    /would store its copies as "002_…", 256 bytes, over the 255-byte limit/,
  );
  equal(copyName(2, 2, "n".repeat(251)).length, 255); // the longest that fits
});

Deno.test("copy store: close removes the temporary files of copies under way and refuses later ones", async () => {
  await using dir = await tempDir();
  const store = await CopyStore.create(dir.path, 10);
  const first = await store.open(1, "a.bin");
  await first.writer.write(new Uint8Array(1000));
  const done = await store.open(2, "b.bin");
  await done.writer.write(new Uint8Array(10));
  await done.writer.finish(); // stored before the stop: it stays
  const opening = store.open(3, "c.bin"); // under way when the stop comes
  await store.close();
  equal((await opening).refused, "the server is stopping");
  equal((await store.open(4, "d.bin")).refused, "the server is stopping");
  deepEqual(
    [...Deno.readDirSync(dir.path)].map((entry) => entry.name),
    ["002_b.bin"],
  );
});
