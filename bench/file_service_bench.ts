/**
 * The file service under load, for `make bench`: put, get (miss) and get
 * (hit) of one large file through the real origin, cache and client
 * processes, per transport, as ratios to a plain TCP copy of the same file
 * measured in the same run (one that writes the received file, as the
 * client must, and one that only hashes it); the 1 KB hit round trip; each
 * role's peak RSS. Each large timed step starts after `sync(1)`; the 1 KB
 * gets run back to back.
 *
 * ```sh
 * deno run -A bench/file_service_bench.ts [--tcp-mib 1024] [--snw-mib 64]
 * ```
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { writeTestFile } from "../tests/_helpers/files.ts";
import { FileServiceRig } from "./file_service_rig.ts";
import { transferBetweenProcesses } from "./transport_demo.ts";

const MiB = 1024 * 1024;

function vmHwmMiB(pid: number): string {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kib = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return `${(kib / 1024).toFixed(1)} MiB`;
  } catch {
    return "n/a";
  }
}

/**
 * Writes all dirty pages back before a timed step (`sync`), so that no step
 * pays for the writeback of the gigabytes an earlier one wrote.
 */
async function flushDisk(): Promise<void> {
  try {
    await new Deno.Command("sync").output();
  } catch {
    // no sync(1): the figures then carry some of that writeback
  }
}

function rate(bytes: number, ms: number): string {
  return `${(bytes / MiB / (ms / 1000)).toFixed(1)} MiB/s`;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/**
 * Runs the file-service bench.
 *
 * @param sizes File size per transport in MiB.
 * @returns Printable lines.
 */
export async function runFileServiceBench(
  sizes: { tcp: number; snw: number } = { tcp: 1024, snw: 64 },
): Promise<string[]> {
  const lines: string[] = [];
  const out = (line: string) => lines.push(line);
  for (const transport of ["tcp", "snw"] as const) {
    const dir = await Deno.makeTempDir({ prefix: "sockkit-fs-bench-" });
    try {
      const bytes = sizes[transport] * MiB;
      const reference = join(dir, "reference.bin");
      await writeTestFile(reference, bytes, 21);
      await flushDisk();
      const raw = await transferBetweenProcesses("raw", reference);
      // the same copy, writing the received file as the client does
      await flushDisk();
      const rawFile = await transferBetweenProcesses("raw-file", reference);
      await using rig = await FileServiceRig.start({
        transport,
        dir,
        commandTimeoutMs: 30 * 60_000,
      });
      await Deno.rename(reference, join(rig.clientDir, "big.bin"));
      const took = async (command: string, flush = false) => {
        if (flush) await flushDisk();
        const t = await rig.command(command);
        return t.endMs - t.startMs;
      };
      const put = await took("put big.bin", true);
      const miss = await took("get big.bin", true);
      const hit = await took("get big.bin", true);
      out(
        `file service ${transport}, ${sizes[transport]} MiB: put ${
          rate(bytes, put)
        }, get miss ${rate(bytes, miss)}, get hit ${rate(bytes, hit)} = ${
          (rawFile.ms / hit).toFixed(3)
        }x a plain TCP copy into a file (${rate(bytes, rawFile.ms)})${
          transport === "tcp"
            ? ` -> target >= 0.8x: ${
              rawFile.ms / hit >= 0.8 ? "met" : "NOT met"
            }`
            : ""
        }; ${(raw.ms / hit).toFixed(3)}x a plain TCP copy that keeps nothing (${
          rate(bytes, raw.ms)
        })`,
      );
      const pids = rig.rolePids;
      out(
        `  peak RSS: origin ${vmHwmMiB(pids.origin)}, cache ${
          vmHwmMiB(pids.cache)
        }, client ${vmHwmMiB(pids.client)}`,
      );
      await Deno.writeTextFile(
        join(rig.clientDir, "small.txt"),
        "x".repeat(1000),
      );
      await took("put small.txt");
      await took("get small.txt");
      const rtts: number[] = [];
      for (let i = 0; i < 200; i++) rtts.push(await took("get small.txt"));
      out(
        `  1 KB get (hit) round trip through the client process: median ${
          percentile(rtts, 0.5).toFixed(1)
        } ms, p90 ${percentile(rtts, 0.9).toFixed(1)} ms (200 gets)`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }
  return lines;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "tcp-mib": { type: "string", default: "1024" },
      "snw-mib": { type: "string", default: "64" },
    },
  });
  const lines = await runFileServiceBench({
    tcp: Number(values["tcp-mib"]),
    snw: Number(values["snw-mib"]),
  });
  for (const line of lines) console.log(line);
}
