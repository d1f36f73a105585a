/**
 * `make bench` / `deno task bench`: performance figures, each as a ratio
 * against a reference measured in the same run, so they compare across
 * machines. The reference is a plain TCP copy between two processes on
 * 127.0.0.1 (`tcp` transport, same file). Area benches (stream, upload,
 * chat, repeat) add their own lines when present.
 *
 * Options: `--size-mib N` (size of the tcp comparison, default 1024),
 * `--runs N` (default 3; the median is reported) and `--transport-only`
 * (skip the area benches).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { writeTestFile } from "../tests/_helpers/files.ts";
import { sha256File } from "../tests/_helpers/files.ts";
import { throughput } from "./demo.ts";
import {
  transferBetweenProcesses,
  type TransferOptions,
  udpPingPong,
} from "./transport_demo.ts";

const MiB = 1024 * 1024;

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

function mib(kib: number): string {
  return `${(kib / 1024).toFixed(1)} MiB`;
}

/** One timed run's duration and the peak RSS line of its two sides. */
interface Sample {
  ms: number;
  rss: string;
}

/** One transfer between two processes, its hashes checked. */
async function once(
  kind: string,
  path: string,
  options: TransferOptions = {},
): Promise<Sample> {
  const r = await transferBetweenProcesses(kind, path, options);
  if (r.sentSha256 !== r.receivedSha256) {
    throw new Error(`${kind}: SHA-256 mismatch`);
  }
  return {
    ms: r.ms,
    rss: `peak RSS sender ${mib(r.senderRssKiB)}, receiver ${
      mib(r.receiverRssKiB)
    }`,
  };
}

/**
 * Runs every job once per round, `runs` rounds, so that a figure and its
 * reference share the machine's slow and fast spells (on the 2-core VM of
 * the README's figures, the UDP ping-pong measured 8.6 and 13.1 MiB/s in two
 * runs minutes apart), and reports each job's median.
 */
async function interleaved<K extends string>(
  runs: number,
  jobs: Record<K, () => Promise<Sample>>,
): Promise<Record<K, Sample>> {
  const samples = {} as Record<K, Sample[]>;
  for (let round = 0; round < runs; round++) {
    for (const key of Object.keys(jobs) as K[]) {
      (samples[key] ??= []).push(await jobs[key]());
    }
  }
  const result = {} as Record<K, Sample>;
  for (const key of Object.keys(jobs) as K[]) {
    const list = samples[key];
    result[key] = {
      ms: median(list.map((sample) => sample.ms)),
      rss: list[list.length - 1].rss,
    };
  }
  return result;
}

/** Issue 2's transport figures: (a) tcp vs raw copy, (b) snw vs UDP ping-pong, (c) loss, (d) RSS. */
async function transportBench(
  sizeMiB: number,
  runs: number,
): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "sockkit-bench-" });
  const lines: string[] = [];
  const out = (line: string) => {
    console.log(line);
    lines.push(line);
  };
  try {
    const big = `${dir}/big.bin`;
    const bytes = sizeMiB * MiB;
    await writeTestFile(big, bytes, 7);
    const sha256 = await sha256File(big);
    const { raw, tcp } = await interleaved(runs, {
      raw: () => once("raw", big, { sha256 }),
      tcp: () => once("tcp", big, { sha256 }),
    });
    out(
      `(a) plain TCP copy (reference): ${sizeMiB} MiB in ${
        raw.ms.toFixed(0)
      } ms, ${throughput(bytes, raw.ms)}; ${raw.rss}`,
    );
    out(
      `(a) tcp transport: ${sizeMiB} MiB in ${tcp.ms.toFixed(0)} ms, ${
        throughput(bytes, tcp.ms)
      } = ${(raw.ms / tcp.ms).toFixed(3)}x the plain copy; ${tcp.rss}`,
    );
    for (const [chunk, size] of [[1000, 16], [64000, 256]]) {
      const path = `${dir}/snw-${chunk}.bin`;
      await writeTestFile(path, size * MiB, 8);
      const env = { SOCKKIT_SNW_CHUNK_SIZE: String(chunk) };
      const { snw, alone, udp, pingPong } = await interleaved(runs, {
        snw: () => once("snw", path, { env }),
        alone: () => once("snw", path, { env, memory: true }),
        udp: () => once("udp", path, { env }),
        pingPong: async () => ({
          ms: await udpPingPong(chunk, size * MiB),
          rss: "",
        }),
      });
      const ping = pingPong.ms;
      out(
        `(b) snw ${chunk} B chunks: ${size} MiB in ${snw.ms.toFixed(0)} ms, ${
          throughput(size * MiB, snw.ms)
        } = ${(ping / snw.ms).toFixed(3)}x a raw UDP ping-pong (${
          throughput(size * MiB, ping)
        }: one ${chunk} B datagram and one answer at a time) -> target >= 0.85x: ${
          ping / snw.ms >= 0.85 ? "met" : "NOT met"
        }; ${
          (udp.ms / snw.ms).toFixed(3)
        }x plain UDP stop-and-wait doing the same job as SNW here (${
          throughput(size * MiB, udp.ms)
        }: file read, SHA-256 of what arrives); ${snw.rss}`,
      );
      out(
        `(b) snw ${chunk} B chunks, the transport alone (from memory, counted on arrival, as the ping-pong does): ${
          throughput(size * MiB, alone.ms)
        } = ${
          (ping / alone.ms).toFixed(3)
        }x the ping-pong -> target >= 0.85x: ${
          ping / alone.ms >= 0.85 ? "met" : "NOT met"
        }; ${alone.rss}`,
      );
    }
    // (d) over a long run: a process that moves small packets for minutes
    // is where memory could creep (one run; ~90 s per GiB at 1000 B).
    const long = await once("snw", big, {
      sha256,
      env: { SOCKKIT_SNW_CHUNK_SIZE: "1000" },
    });
    out(
      `(d) snw 1000 B chunks, ${sizeMiB} MiB (one run): ${
        throughput(bytes, long.ms)
      }; ${long.rss} -> target <= 64 MiB each`,
    );
    // The same long run with plain UDP stop-and-wait peers (same file
    // reading and hashing, none of SNW): what the runtime itself needs.
    const floor = await once("udp", big, {
      sha256,
      env: { SOCKKIT_SNW_CHUNK_SIZE: "1000" },
    });
    out(
      `(d) reference: plain UDP stop-and-wait, 1000 B, ${sizeMiB} MiB (one run): ${
        throughput(bytes, floor.ms)
      }; ${floor.rss}`,
    );
    const lossy = `${dir}/lossy.bin`;
    await writeTestFile(lossy, 2 * MiB, 9);
    const viaRelay = (drop: number) => ({
      relay: { seed: 11, drop, tcp: false },
    });
    const { clean, lost } = await interleaved(runs, {
      clean: () => once("snw", lossy, viaRelay(0)),
      lost: () => once("snw", lossy, viaRelay(0.1)),
    });
    out(
      `(c) snw through the relay, 2 MiB: lossless ${
        throughput(2 * MiB, clean.ms)
      }, 10% loss ${throughput(2 * MiB, lost.ms)} = ${
        (clean.ms / lost.ms).toFixed(3)
      }x lossless -> target >= 0.3x: ${
        clean.ms / lost.ms >= 0.3 ? "met" : "NOT met"
      }`,
    );
    return lines;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Area benches that may be present; each returns printable lines. */
const AREA_BENCHES: [string, string][] = [
  ["./file_service_bench.ts", "runFileServiceBench"],
  ["./stream_bench.ts", "runStreamBench"],
  ["./upload_bench.ts", "runUploadBench"],
  ["./repeat_bench.ts", "runRepeatBench"],
  ["./chat_bench.ts", "runChatBench"],
];

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "size-mib": { type: "string", default: "1024" },
      runs: { type: "string", default: "3" },
      "transport-only": { type: "boolean", default: false },
    },
  });
  const sizeMiB = Number(values["size-mib"]);
  const runs = Number(values.runs);
  console.log(
    `sockkit bench (median of ${runs} runs where repeated; each figure's runs interleaved with its reference's)`,
  );
  await transportBench(sizeMiB, runs);
  for (const [path, name] of values["transport-only"] ? [] : AREA_BENCHES) {
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
