/**
 * The evaluation (SPEC §7): metric computation on a synthetic capture with
 * exact numbers, the Lua dissector on a capture made here, and
 * `bench/evaluate.ts --quick` end to end.
 *
 * The capture tests need tshark and permission to capture on `lo`; where
 * either is missing they are ignored and the reason is printed.
 */

import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  CaptureFormatError,
  getMetrics,
  msToNs,
  parseEpochNs,
  parseTsharkFields,
  splitByWindows,
  summarize,
} from "../bench/capture_metrics.ts";
import {
  aggregateRuns,
  assignmentTables,
  CSV_HEADER,
  parseRunsCsv,
  renderPlots,
  type RunRecord,
  runsCsv,
} from "../bench/evaluation_report.ts";
import {
  EvaluateUsageError,
  parseEvaluateArgs,
  parseSizes,
} from "../bench/evaluate.ts";
import {
  PacketCapture,
  probeTshark,
  readCapture,
} from "../bench/packet_capture.ts";
import { lineChartSvg } from "../bench/svg_plot.ts";
import {
  encodeFileServiceMessage,
  type FileServiceMessage,
} from "../protocol/file_service.ts";
import { encodeSnwPacket, SnwType } from "../transport/snw_packet.ts";
import { createSnwTransport } from "../transport/snw.ts";
import { seededRandom } from "../bench/seeded_random.ts";
import { tempDir } from "./_helpers/files.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const LUA = `${ROOT}tools/wireshark/sockkit.lua`;

const probe = await probeTshark();
if (!probe.ok) {
  console.log(
    `evaluate_test: capture tests skipped: ${probe.reason} (install: apt-get install -y tshark, run as root)`,
  );
}
const noCapture = !probe.ok;

// Two gets, 0.4 s apart; times in µs so every number below is exact.
const SYNTHETIC = [
  "1700000000.000000000\t74\t6\t40000\t9000\t\t",
  "1700000000.000250000\t108\t6\t40000\t9000\t\t",
  "1700000000.001000000\t1064\t17\t\t\t50000\t9000",
  "1700000000.001500000\t67\t17\t\t\t9000\t50000",
  "1700000000.002000000\t66\t6\t9000\t40000\t\t",
  "",
  "1700000000.400000000\t74\t6\t40002\t9000\t\t",
  "1700000000.410000000\t1000\t6\t9000\t40002\t\t",
  "1700000000.425000000\t66\t6\t40002\t9000\t\t",
].join("\n");

Deno.test("capture metrics: delay and throughput of each get from a synthetic capture", () => {
  const packets = parseTsharkFields(SYNTHETIC);
  equal(packets.length, 8);
  deepEqual(packets[2], {
    timeNs: 1_700_000_000_001_000_000n,
    bytes: 1064,
    protocol: "udp",
    srcPort: 50000,
    dstPort: 9000,
  });
  equal(packets[0].protocol, "tcp");
  const windows = [
    {
      startNs: msToNs(1_700_000_000_000 - 1),
      endNs: msToNs(1_700_000_000_100),
    },
    { startNs: msToNs(1_700_000_000_300), endNs: msToNs(1_700_000_000_500) },
  ];
  const [first, second] = splitByWindows(packets, windows);
  equal(first.length, 5);
  equal(second.length, 3);
  // get 1: 2 ms, 74+108+1064+67+66 = 1379 bytes = 11032 bits -> 5 516 000 bps
  deepEqual(getMetrics(first), {
    packets: 5,
    bytes: 1379,
    bits: 11032,
    delaySec: 0.002,
    throughputBps: 5_516_000,
  });
  // get 2: 25 ms, 1140 bytes = 9120 bits -> 364 800 bps
  deepEqual(getMetrics(second), {
    packets: 3,
    bytes: 1140,
    bits: 9120,
    delaySec: 0.025,
    throughputBps: 364_800,
  });
  throws(() => getMetrics([]), RangeError);
});

Deno.test("capture metrics: epoch parsing, summaries and malformed lines", () => {
  equal(parseEpochNs("1.000000001"), 1_000_000_001n);
  equal(parseEpochNs("42"), 42_000_000_000n);
  throws(() => parseEpochNs("1e9"), CaptureFormatError);
  deepEqual(summarize([5, 1, 3]), {
    n: 3,
    median: 3,
    min: 1,
    max: 5,
    mean: 3,
    stdev: 2,
  });
  equal(summarize([4, 1, 3, 2]).median, 2.5);
  throws(() => parseTsharkFields("not a packet\n"), CaptureFormatError);
  throws(() => parseTsharkFields("1.0\tabc\n"), CaptureFormatError);
  // seeded fuzz: garbage either parses or fails with CaptureFormatError
  const random = seededRandom(8);
  const alphabet = "0123456789.\t\n-e ,x";
  for (let i = 0; i < 2000; i++) {
    let text = "";
    const n = Math.floor(random() * 40);
    for (let j = 0; j < n; j++) {
      text += alphabet[Math.floor(random() * alphabet.length)];
    }
    try {
      parseTsharkFields(text);
    } catch (error) {
      ok(error instanceof CaptureFormatError, `${error} for ${text}`);
    }
  }
});

function run(
  transport: "tcp" | "snw",
  sizeBytes: number,
  delaySec: number,
  wireBytes: number,
  runNo = 1,
): RunRecord {
  return {
    transport,
    lossPercent: 0,
    relayed: false,
    sizeBytes,
    run: runNo,
    source: "capture",
    delaySec,
    throughputBps: (wireBytes * 8) / delaySec,
    packets: 10,
    wireBytes,
    programDelaySec: delaySec + 0.001,
    goodputBps: (sizeBytes * 8) / delaySec,
    pcap: "pcap/x.pcapng",
  };
}

Deno.test("evaluation report: the assignment's tables, CSV and plots", () => {
  const runs = [
    run("tcp", 16384, 0.01, 40000, 1),
    run("tcp", 16384, 0.03, 40000, 2),
    run("tcp", 16384, 0.02, 40000, 3),
    run("snw", 16384, 0.05, 50000),
    run("snw", 65536 - 2048, 0.1, 150000),
  ];
  const tables = assignmentTables(aggregateRuns(runs));
  equal(
    tables,
    [
      "**Delay (sec)**",
      "",
      "|  | File 1 (16 KB) | File 2 (32 KB) | File 3 (48 KB) | File 4 (62 KB) |",
      "|---|---:|---:|---:|---:|",
      "| TCP | 0.02000 | - | - | - |",
      "| SNW | 0.05000 | - | - | 0.1000 |",
      "",
      "**Throughput (bps)**",
      "",
      "|  | File 1 (16 KB) | File 2 (32 KB) | File 3 (48 KB) | File 4 (62 KB) |",
      "|---|---:|---:|---:|---:|",
      "| TCP | 16,000,000 | - | - | - |",
      "| SNW | 8,000,000 | - | - | 12,000,000 |",
      "",
    ].join("\n"),
  );
  const csv = runsCsv(runs).split("\n");
  equal(csv[0], CSV_HEADER);
  equal(
    csv[1],
    "tcp,false,0,16384,1,capture,0.010000000,32000000,10,40000,0.011000,13107200,pcap/x.pcapng",
  );
  equal(csv.length, runs.length + 2);
  deepEqual(
    parseRunsCsv(runsCsv(runs)).map((r) => [r.transport, r.delaySec, r.run]),
    runs.map((r) => [r.transport, r.delaySec, r.run]),
  );
  throws(() => parseRunsCsv("a,b\n"), SyntaxError);
  const plots = renderPlots(aggregateRuns(runs));
  for (const svg of Object.values(plots)) {
    match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    match(svg, /<\/svg>\n$/);
  }
  match(plots["delay_vs_size.svg"], /<polyline/);
  deepEqual(parseSizes("16K,62K,1M,10"), [16384, 63488, 1048576, 10]);
  equal(parseSizes("1024M")[0], 1024 ** 3);
  for (const bad of [",,,", "", "0", "1025M", "99999999999999999999K", "1G"]) {
    throws(() => parseSizes(bad), EvaluateUsageError, `"${bad}"`);
  }
  // A size or loss given twice would reuse one run's files: refused.
  throws(() => parseSizes("16K,16384"), /size 16 KB is given twice/);
  throws(
    () => parseEvaluateArgs(["--loss", "5,05"]),
    /loss 5% is given twice/,
  );
  throws(
    () => parseEvaluateArgs(["--loss", "-5"]),
    (error) =>
      error instanceof EvaluateUsageError &&
      error.message === 'invalid loss "-5" (percent 0-99)',
  );
  const svg = lineChartSvg({
    title: "a < b",
    xLabel: "x",
    yLabel: "y",
    series: [{ name: "s&t", points: [{ x: 1, y: 1, low: 0.5, high: 2 }] }],
  });
  match(svg, /a &lt; b/);
  match(svg, /s&amp;t/);
});

async function sendFrames(
  conn: Deno.Conn,
  messages: FileServiceMessage[],
): Promise<void> {
  for (const m of messages) await conn.write(encodeFileServiceMessage(m));
}

async function readSome(conn: Deno.Conn, bytes: number): Promise<void> {
  const buffer = new Uint8Array(bytes);
  let got = 0;
  while (got < bytes) {
    const n = await conn.read(buffer.subarray(got));
    if (n === null) throw new Error("closed early");
    got += n;
  }
}

Deno.test({
  name:
    "wireshark dissector decodes SNW packets and file-service control messages",
  ignore: noCapture,
  async fn() {
    await using dir = await tempDir("sockkit-dissector-");
    const file = `${dir.path}/dissector.pcapng`;
    const snw = createSnwTransport({ timeoutMs: 5000 });
    const listener = snw.listen({ hostname: "127.0.0.1", port: 0 });
    const tcpListener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const snwPort = listener.addr.port;
    const tcpPort = tcpListener.addr.port;
    const capture = await PacketCapture.start({
      filter: `port ${snwPort} or port ${tcpPort}`,
      file,
      snaplen: 0,
    });
    const sha = "ab".repeat(32);
    try {
      // SNW: one 2500-byte transfer (LEN, DATA 1000/1000/500, ACKs, FIN).
      const accepted = listener.accept();
      const client = await snw.connect({
        hostname: "127.0.0.1",
        port: snwPort,
      });
      const server = await accepted;
      const incoming = server.receive();
      await client.send(2500, new Uint8Array(2500).fill(7));
      const transfer = await incoming;
      for await (const _ of transfer.readable) { /* drain */ }
      client.close();
      server.close();
      // A corrupted SNW datagram (CRC mismatch).
      const bad = encodeSnwPacket(
        SnwType.ACK,
        0x1234,
        99,
        new TextEncoder().encode("ACK"),
      );
      bad[bad.length - 1] ^= 0xff;
      const udp = Deno.listenDatagram({
        transport: "udp",
        hostname: "127.0.0.1",
        port: 0,
      });
      try {
        await udp.send(bad, {
          transport: "udp",
          hostname: "127.0.0.1",
          port: snwPort,
        });
      } finally {
        udp.close();
      }
      // File-service control over TCP with a tcp-transport transfer inside.
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: tcpPort });
      const peer = await tcpListener.accept();
      try {
        conn.setNoDelay(true);
        peer.setNoDelay(true);
        await sendFrames(conn, [{ type: "get", tag: "t1", name: "notes.txt" }]);
        await readSome(peer, 4 + "GET t1 notes.txt".length);
        const header = new Uint8Array(8);
        new DataView(header.buffer).setBigUint64(0, 5n);
        const reply = [
          encodeFileServiceMessage({ type: "found", size: 5, sha256: sha }),
          header,
          new TextEncoder().encode("hello"),
          encodeFileServiceMessage({
            type: "ok",
            text: "File delivered from origin.",
          }),
        ];
        for (const part of reply) await peer.write(part);
        await readSome(conn, reply.reduce((n, p) => n + p.length, 0));
      } finally {
        conn.close();
        peer.close();
      }
    } finally {
      await capture.stop(300);
      listener.close();
      tcpListener.close();
    }
    const snwFields = await readCapture(file, [
      "-X",
      `lua_script:${LUA}`,
      "-Y",
      "sockkit_snw",
      "-T",
      "fields",
      "-E",
      "separator=|",
      "-e",
      "sockkit_snw.type",
      "-e",
      "sockkit_snw.seq",
      "-e",
      "sockkit_snw.len",
      "-e",
      "sockkit_snw.crc.status",
      "-e",
      "sockkit_snw.token",
      "-e",
      "sockkit_snw.transfer_size",
    ]);
    const rows = snwFields.trim().split("\n").map((l) => l.split("|"));
    const has = (row: string[]) =>
      rows.some((r) => row.every((v, i) => r[i] === v));
    ok(has(["1", "0", "0", "good", "", ""]), `OPEN missing in\n${snwFields}`);
    ok(
      has(["2", "1", "8", "good", "LEN", "2500"]),
      `LEN missing in\n${snwFields}`,
    );
    ok(
      has(["3", "2", "1000", "good", "", ""]),
      `DATA 2 missing in\n${snwFields}`,
    );
    ok(
      has(["3", "4", "500", "good", "", ""]),
      `DATA 4 missing in\n${snwFields}`,
    );
    ok(
      has(["4", "3", "3", "good", "ACK", ""]),
      `ACK 3 missing in\n${snwFields}`,
    );
    ok(has(["5", "4", "3", "good", "FIN", ""]), `FIN missing in\n${snwFields}`);
    ok(has(["6"]), `CLOSE missing in\n${snwFields}`);
    ok(
      rows.some((r) => r[0] === "4" && r[1] === "99" && r[3].startsWith("bad")),
      `bad CRC not flagged in\n${snwFields}`,
    );
    const fsText = await readCapture(file, [
      "-X",
      `lua_script:${LUA}`,
      "-Y",
      "sockkit_fs",
      "-T",
      "fields",
      "-E",
      "separator=|",
      "-E",
      "aggregator=;",
      "-e",
      "sockkit_fs.verb",
      "-e",
      "sockkit_fs.name",
      "-e",
      "sockkit_fs.size",
      "-e",
      "sockkit_fs.text",
      "-e",
      "sockkit_fs.transfer_size",
      "-e",
      "sockkit_fs.data_len",
    ]);
    match(fsText, /GET\|notes\.txt\|/);
    match(fsText, /FOUND\|\|5\|/);
    match(fsText, /\|5\|/);
    match(fsText, /OK\|\|\|File delivered from origin\.\|/);
    const summary = await readCapture(file, ["-X", `lua_script:${LUA}`]);
    match(summary, /SNW .*LEN seq=1 session=0x[0-9a-f]{8} len=8 LEN:2500/);
    match(summary, /SOCKKIT .*FOUND 5 a/);
  },
});

Deno.test({
  name:
    "evaluate --quick measures one small file per transport and writes the results",
  async fn() {
    await using dir = await tempDir("sockkit-evaluate-test-");
    const out = `${dir.path}/results`;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-run",
        "--allow-sys",
        `${ROOT}bench/evaluate.ts`,
        "--quick",
        "--out",
        out,
      ],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 50_000);
    const result = await child.output();
    clearTimeout(timer);
    const stdout = new TextDecoder().decode(result.stdout);
    const stderr = new TextDecoder().decode(result.stderr);
    equal(result.code, 0, `${stdout}\n${stderr}`);
    const csv = (await Deno.readTextFile(`${out}/runs.csv`)).trim().split("\n");
    equal(csv.length, 1 + 2 * 2, csv.join("\n")); // 2 transports x 2 runs
    const source = noCapture ? "program" : "capture";
    for (const line of csv.slice(1)) {
      const f = line.split(",");
      ok(f[0] === "tcp" || f[0] === "snw", line);
      equal(f[3], "16384");
      equal(f[5], source);
      ok(Number(f[6]) > 0 && Number(f[6]) < 30, `delay in ${line}`);
      ok(Number(f[7]) > 0, `throughput in ${line}`);
      if (!noCapture) {
        ok(Number(f[8]) >= 10, `packets in ${line}`);
        // at least the file itself crossed two hops
        ok(Number(f[9]) > 2 * 16384, `wire bytes in ${line}`);
      }
    }
    const report = await Deno.readTextFile(`${out}/report.md`);
    match(report, /\| TCP \| [0-9.]+ \| - \| - \| - \|/);
    match(report, /\| SNW \| [0-9,]+ \| - \| - \| - \|/);
    match(report, /!\[delay vs size\]\(delay_vs_size\.svg\)/);
    if (noCapture) {
      match(report, /program timing — no packet capture/);
    } else {
      match(report, /packet capture/);
      const pcaps = [...Deno.readDirSync(`${out}/pcap`)].map((e) => e.name)
        .sort();
      deepEqual(pcaps, ["snw-16KB.pcapng", "tcp-16KB.pcapng"]);
    }
    for (const svg of ["delay_vs_size.svg", "throughput_vs_size.svg"]) {
      match(await Deno.readTextFile(`${out}/${svg}`), /<svg[\s\S]*<\/svg>/);
    }
  },
});

Deno.test('tshark check: a tshark that says "Capturing on" and then may not capture is found out', async () => {
  await using dir = await tempDir("sockkit-fake-tshark-");
  // What an unprivileged tshark does: the start line, then the refusal.
  const fake = `${dir.path}/tshark`;
  await Deno.writeTextFile(
    fake,
    `#!/bin/sh
if [ "$1" = --version ]; then echo "TShark (Wireshark) 9.9.9."; exit 0; fi
echo "Capturing on 'Loopback: lo'" >&2
sleep 0.1
echo 'tshark: You do not have permission to capture on device "lo".' >&2
exit 1
`,
  );
  await Deno.chmod(fake, 0o755);
  const probe = await probeTshark(fake, dir.path);
  equal(probe.ok, false);
  match(
    probe.ok ? "" : probe.reason,
    /^tshark cannot capture on loopback: tshark exited: tshark: You do not have permission to capture on device "lo"\.$/,
  );
  // Its trial capture file went into the folder given, and is gone.
  deepEqual([...Deno.readDirSync(dir.path)].map((e) => e.name), ["tshark"]);
});

Deno.test("evaluate: SIGINT while its roles start stops them, removes its temporary folder and exits 130", async () => {
  await using dir = await tempDir("sockkit-evaluate-signal-");
  const tmp = `${dir.path}/tmp`;
  await Deno.mkdir(tmp);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}bench/evaluate.ts`,
      "--no-capture",
      "--sizes",
      "16K",
      "--runs",
      "100",
      "--out",
      `${dir.path}/results`,
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", TMPDIR: tmp },
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 50_000);
  try {
    // Interrupt while the first rig's roles start (a rig not yet running
    // must be stopped too, or its roles outlive the run).
    const lines = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    let seen = "";
    while (!/== tcp\n/.test(seen)) {
      const { done, value } = await lines.read();
      if (done) throw new Error(`evaluate ended early: ${seen}`);
      seen += value;
    }
    const [work] = [...Deno.readDirSync(tmp)].map((entry) => entry.name);
    ok(work?.startsWith("sockkit-evaluate-"), `temporary folder: ${work}`);
    child.kill("SIGINT");
    await lines.cancel();
    const status = await child.status;
    const stderr = new TextDecoder().decode(
      await new Response(child.stderr).arrayBuffer(),
    );
    equal(status.code, 130, stderr);
    match(stderr, /evaluate: interrupted, stopping the roles and captures/);
    deepEqual(
      [...Deno.readDirSync(tmp)].map((entry) => entry.name),
      [],
      `left in TMPDIR (${stderr})`,
    );
    // No role still runs from the removed folder.
    const running = [...Deno.readDirSync("/proc")]
      .filter((entry) => /^\d+$/.test(entry.name))
      .filter((entry) => {
        try {
          return Deno.readTextFileSync(`/proc/${entry.name}/cmdline`)
            .includes(work);
        } catch {
          return false; // ended meanwhile
        }
      });
    deepEqual(running.map((entry) => entry.name), [], "roles still running");
  } finally {
    clearTimeout(timer);
  }
});
