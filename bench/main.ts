/**
 * `make bench` / `deno task bench`: performance figures, each as a ratio
 * against a reference measured in the same run, so they compare across
 * machines. The reference is a plain TCP copy between two processes on
 * 127.0.0.1 (`tcp` transport, same file). Area benches (stream, upload,
 * chat, repeat) add their own lines when present.
 *
 * Options: `--size-mib N` (default 32) and `--runs N` (default 3; the
 * median is reported).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { writeTestFile } from "../tests/_helpers/files.ts";
import { throughput } from "./demo.ts";
import { transferBetweenProcesses } from "./transport_demo.ts";

/**
 * The median of some numbers.
 *
 * @param values At least one number.
 * @returns The median.
 */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function transportBench(
  sizeMiB: number,
  runs: number,
): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "sockkit-bench-" });
  try {
    const path = `${dir}/bench.bin`;
    const bytes = sizeMiB * 1024 * 1024;
    await writeTestFile(path, bytes, 7);
    const times: Record<string, number> = {};
    for (const transport of ["tcp", "snw"]) {
      const samples: number[] = [];
      for (let i = 0; i < runs; i++) {
        const r = await transferBetweenProcesses(transport, path);
        if (r.sentSha256 !== r.receivedSha256) {
          throw new Error(`${transport}: SHA-256 mismatch`);
        }
        samples.push(r.ms);
      }
      times[transport] = median(samples);
    }
    return [
      `transport tcp (reference): ${sizeMiB} MiB in ${
        times.tcp.toFixed(0)
      } ms, ${throughput(bytes, times.tcp)}`,
      `transport snw: ${sizeMiB} MiB in ${times.snw.toFixed(0)} ms, ${
        throughput(bytes, times.snw)
      } = ${(times.tcp / times.snw).toFixed(3)}x tcp throughput`,
    ];
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Area benches that may be present; each returns printable lines. */
const AREA_BENCHES: [string, string][] = [
  ["./stream_bench.ts", "runStreamBench"],
  ["./upload_bench.ts", "runUploadBench"],
  ["./repeat_bench.ts", "runRepeatBench"],
  ["./chat_bench.ts", "runChatBench"],
];

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "size-mib": { type: "string", default: "32" },
      runs: { type: "string", default: "3" },
    },
  });
  const sizeMiB = Number(values["size-mib"]);
  const runs = Number(values.runs);
  console.log(`sockkit bench (median of ${runs} runs where repeated)`);
  for (const line of await transportBench(sizeMiB, runs)) console.log(line);
  for (const [path, name] of AREA_BENCHES) {
    let bench: (() => Promise<string[]>) | undefined;
    try {
      const module = await import(path);
      bench = module[name];
    } catch {
      continue;
    }
    if (!bench) continue;
    for (const line of await bench()) console.log(line);
  }
}
