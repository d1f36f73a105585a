/**
 * Repeat-transfer bench (SPEC §2, issue 6): the average time per copy of
 * 1 KiB, 1 MiB and 100 MiB files sent N times over `tcp`, raw `udp` and
 * `snw`, between real `server repeat` and `client repeat` processes on
 * 127.0.0.1 (`--json` on both sides), as one markdown table. Each time is
 * the receiver's average per copy (connection setup + data + close, as the
 * assignment counts it); the ratio is against `tcp` in the same run, so
 * the figures compare across machines; raw udp also shows its incorrect
 * copies (it has no recovery, so a fast sender overruns the receiver).
 *
 * Run standalone: `deno run -A bench/repeat_bench.ts [--quick]` (`--quick`
 * skips the 100 MiB row).
 *
 * @module
 */

import { join } from "node:path";
import { writeTestFile } from "../tests/_helpers/files.ts";
import { runRole, startRole } from "../tests/_helpers/role_process.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const TRANSPORTS = ["tcp", "udp", "snw"] as const;

/** One row of the bench: a file size and how many copies. */
export interface RepeatBenchRow {
  /** Label, e.g. `1 KiB`. */
  label: string;
  /** File size in bytes. */
  bytes: number;
  /** Copies per transport. */
  times: number;
}

/** The rows of the full bench. */
export const REPEAT_BENCH_ROWS: readonly RepeatBenchRow[] = [
  { label: "1 KiB", bytes: KiB, times: 100 },
  { label: "1 MiB", bytes: MiB, times: 10 },
  { label: "100 MiB", bytes: 100 * MiB, times: 2 },
];

interface Measured {
  serverMs: number;
  clientMs: number;
  incorrect: number;
  times: number;
}

async function measure(
  dir: string,
  transport: string,
  file: string,
  times: number,
): Promise<Measured> {
  const common = ["--times", String(times), "--transport", transport, "--json"];
  await using server = startRole(
    "server",
    ["repeat", "0", file, "--dir", `copies-${transport}`, ...common],
    { cwd: dir },
  );
  const match = await server.stderr.waitFor(/Listening on .*:(\d+) \(/, 30_000);
  const client = await runRole(
    "client",
    ["repeat", "127.0.0.1", match[1], file, ...common],
    { cwd: dir, timeoutMs: 900_000 },
  );
  if (client.code !== 0) {
    throw new Error(`client repeat over ${transport}: ${client.stderr}`);
  }
  const done = await server.finished(120_000);
  if (done.code !== 0) {
    throw new Error(`server repeat over ${transport}: ${done.stderr}`);
  }
  const received = JSON.parse(done.stdout);
  const sent = JSON.parse(client.stdout);
  await Deno.remove(join(dir, `copies-${transport}`), { recursive: true });
  return {
    serverMs: received.averageMs ?? NaN,
    clientMs: sent.averageMs,
    incorrect: received.incorrect,
    times,
  };
}

function cell(m: Measured, tcp: Measured, showErrors: boolean): string {
  const ratio = (m.serverMs / tcp.serverMs).toFixed(2);
  const errors = showErrors ? `, ${m.incorrect}/${m.times} incorrect` : "";
  return `${m.serverMs.toFixed(3)} (${ratio}x${errors})`;
}

/**
 * Runs the bench.
 *
 * @param rows Which file sizes (default {@linkcode REPEAT_BENCH_ROWS}).
 * @returns The table lines.
 */
export async function runRepeatBench(
  rows: readonly RepeatBenchRow[] = REPEAT_BENCH_ROWS,
): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "sockkit-repeat-bench-" });
  try {
    const lines = [
      "repeat transfer: average ms per copy at the receiver (setup + data + close), ratio to tcp",
      "",
      "| file | copies | tcp | udp (raw, no recovery) | snw |",
      "|---|---:|---:|---:|---:|",
    ];
    for (const row of rows) {
      const file = `bench-${row.bytes}.bin`;
      await writeTestFile(join(dir, file), row.bytes, 6);
      const results: Record<string, Measured> = {};
      for (const transport of TRANSPORTS) {
        results[transport] = await measure(dir, transport, file, row.times);
      }
      const tcp = results.tcp;
      lines.push(
        `| ${row.label} | ${row.times} | ${
          tcp.serverMs.toFixed(3)
        } (1.00x, ${tcp.incorrect}/${row.times} incorrect) | ${
          cell(results.udp, tcp, true)
        } | ${cell(results.snw, tcp, true)} |`,
      );
      await Deno.remove(join(dir, file));
    }
    return lines;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  const rows = quick ? REPEAT_BENCH_ROWS.slice(0, 2) : REPEAT_BENCH_ROWS;
  for (const line of await runRepeatBench(rows)) console.log(line);
}
