/**
 * `make evaluate` / `deno task evaluate` (SPEC §7): TCP vs stop-and-wait on
 * real packet captures.
 *
 * For each configuration — `tcp` and `snw` direct, and `snw` through the
 * seeded lossy relay on both hops at each loss rate — it starts the real
 * origin, cache and client on 127.0.0.1, uploads fresh files (not measured),
 * then captures the `get` of each file (never cached: every name is new)
 * with tshark on `lo`, filtered on the origin's and the cache's ports, and
 * computes per `get` the overall delay (last − first packet) and the
 * throughput (bits on the wire / delay). Without tshark it says so and uses
 * the programs' own timing instead, labelled as such everywhere.
 *
 * ```sh
 * deno run --allow-net --allow-read --allow-write --allow-env --allow-run --allow-sys \
 *   bench/evaluate.ts [--quick] [--runs N] [--out DIR] [--no-capture]
 *   [--sizes 16K,32K,48K,62K,1M,10M] [--loss 0,5,10,20] [--loss-sizes 62K,1M]
 *   [--from-csv results/runs.csv]
 * ```
 *
 * `--from-csv` re-renders tables, plots and report from an earlier
 * runs.csv without measuring.
 *
 * Exit codes: 0 done, 1 a run failed, 2 usage error.
 *
 * @module
 */

import { join } from "node:path";
import { parseCommandLine } from "../roles/cli.ts";
import { writeTestFile } from "../tests/_helpers/files.ts";
import {
  type CapturedPacket,
  getMetrics,
  msToNs,
  splitByWindows,
  type TimeWindow,
} from "./capture_metrics.ts";
import {
  aggregateRuns,
  assignmentTables,
  detailTable,
  type MetricSource,
  parseRunsCsv,
  renderPlots,
  renderReport,
  type ReportContext,
  type RunRecord,
  runsCsv,
  sizeLabel,
} from "./evaluation_report.ts";
import { FileServiceRig } from "./file_service_rig.ts";
import {
  interruptCaptures,
  PacketCapture,
  probeTshark,
  readCapturedPackets,
  SNAPLEN,
} from "./packet_capture.ts";

/** Settings of one evaluation. */
export interface EvaluationOptions {
  /** Results folder (created; its report, CSV, SVGs and pcap/ are replaced). */
  out: string;
  /** Repetitions per configuration and size. */
  runs: number;
  /** File sizes of the direct TCP and SNW runs, bytes. */
  sizes: number[];
  /** Loss rates of the relayed SNW runs, percent (empty: none). */
  lossPercents: number[];
  /** File sizes of the relayed runs, bytes. */
  lossSizes: number[];
  /** Use program timing even when tshark is available. */
  noCapture: boolean;
  /** Whether this is `--quick` (noted in the report). */
  quick: boolean;
  /** Re-render from this runs.csv instead of measuring. */
  fromCsv?: string;
  /** Progress lines (default: stdout). */
  log?: (line: string) => void;
}

/** What {@linkcode runEvaluation} produced. */
export interface EvaluationResult {
  /** Every run. */
  runs: RunRecord[];
  /** Where the numbers come from. */
  source: MetricSource;
  /** Why there is no capture, if there is none. */
  fallbackReason?: string;
  /** Files written, relative to `out`. */
  files: string[];
}

/** A usage error of the command line. */
export class EvaluateUsageError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong.
   */
  constructor(message: string) {
    super(message);
    this.name = "EvaluateUsageError";
  }
}

/** Time between two measured commands, so their packets never mix. */
const GAP_MS = 400;
/** Packets after the client's response still belong to the get (FIN, CLOSE). */
const TAIL_MS = 250;
/** Packets just before the command was written (clock skew margin). */
const LEAD_MS = 50;
/** A 1-byte file fetched before each capture (see `runEvaluation`). */
const WARM_UP = "warm-up.bin";
/** SNW give-up timeout for the evaluation (long: 20% loss on two hops). */
const SNW_TIMEOUT_MS = "10000";

/** The largest file size of a run (its file is written to a temporary folder). */
const MAX_SIZE = 1024 ** 3;

/**
 * Parses a size list such as `16K,32K,1M` (K = 1024, M = 1024²).
 *
 * @example
 * ```ts
 * import { parseSizes } from "./evaluate.ts";
 * console.log(parseSizes("16K,1M")); // [ 16384, 1048576 ]
 * ```
 *
 * @param text The list.
 * @returns Sizes in bytes.
 * @throws {EvaluateUsageError} On a bad entry (0 or over 1024M), or an
 *   empty list.
 */
export function parseSizes(text: string): number[] {
  const items = text.split(",").filter((s) => s.trim() !== "");
  if (items.length === 0) throw new EvaluateUsageError(`no sizes in "${text}"`);
  const sizes = items.map((item) => {
    const m = /^(\d+)([KkMm]?)$/.exec(item.trim());
    if (!m) throw new EvaluateUsageError(`invalid size "${item}"`);
    const unit = m[2].toUpperCase() === "K"
      ? 1024
      : m[2].toUpperCase() === "M"
      ? 1024 * 1024
      : 1;
    const size = Number(m[1]) * unit;
    if (!(size > 0 && size <= MAX_SIZE)) {
      throw new EvaluateUsageError(`invalid size "${item}" (1 byte to 1024M)`);
    }
    return size;
  });
  return once(sizes, (size) => `size ${sizeLabel(size)} is given twice`);
}

/** `values`, refused when one is given twice (each names its runs' files). */
function once(values: number[], twice: (value: number) => string): number[] {
  const seen = new Set<number>();
  for (const value of values) {
    if (seen.has(value)) throw new EvaluateUsageError(twice(value));
    seen.add(value);
  }
  return values;
}

function parseLoss(text: string): number[] {
  const losses = text.split(",").filter((s) => s.trim() !== "").map((item) => {
    const value = Number(item);
    if (!Number.isFinite(value) || value < 0 || value >= 100) {
      throw new EvaluateUsageError(`invalid loss "${item}" (percent 0-99)`);
    }
    return value;
  });
  return once(losses, (loss) => `loss ${loss}% is given twice`);
}

/**
 * Parses the command line.
 *
 * @param args The arguments.
 * @returns The options.
 * @throws {EvaluateUsageError} On a bad option.
 */
export function parseEvaluateArgs(args: string[]): EvaluationOptions {
  let values;
  try {
    ({ values } = parseCommandLine({
      args,
      options: {
        quick: { type: "boolean" },
        runs: { type: "string" },
        out: { type: "string" },
        sizes: { type: "string" },
        loss: { type: "string" },
        "loss-sizes": { type: "string" },
        "no-capture": { type: "boolean" },
        "from-csv": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new EvaluateUsageError((error as Error).message.split("\n")[0]);
  }
  if (values.help) throw new EvaluateUsageError("help");
  const quick = values.quick === true;
  const runs = values.runs === undefined
    ? (quick ? 2 : 5)
    : Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > 100) {
    throw new EvaluateUsageError(`invalid --runs "${values.runs}" (1-100)`);
  }
  return {
    out: values.out ?? "results",
    runs,
    sizes: parseSizes(
      values.sizes ?? (quick ? "16K" : "16K,32K,48K,62K,1M,10M"),
    ),
    lossPercents: parseLoss(values.loss ?? (quick ? "" : "0,5,10,20")),
    lossSizes: parseSizes(values["loss-sizes"] ?? (quick ? "16K" : "62K,1M")),
    noCapture: values["no-capture"] === true,
    quick,
    fromCsv: values["from-csv"],
  };
}

/** The usage text. */
export const EVALUATE_USAGE =
  "usage: evaluate [--quick] [--runs N] [--out DIR] [--no-capture] [--sizes 16K,32K,48K,62K,1M,10M] [--loss 0,5,10,20] [--loss-sizes 62K,1M] [--from-csv FILE]";

interface Configuration {
  transport: "tcp" | "snw";
  lossPercent?: number;
}

function configSlug(c: Configuration): string {
  return c.lossPercent === undefined
    ? c.transport
    : `${c.transport}-relay-loss${String(c.lossPercent).padStart(2, "0")}`;
}

function sizeSlug(size: number): string {
  return sizeLabel(size).replace(" ", "");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs the evaluation and writes the results folder.
 *
 * @param options What to measure and where to write.
 * @returns The runs and the files written.
 */
export async function runEvaluation(
  options: EvaluationOptions,
): Promise<EvaluationResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const work = await Deno.makeTempDir({ prefix: "sockkit-evaluate-" });
  activeWorkDirs.add(work); // removed on a signal, with the probe's file
  const dropWork = async () => {
    await Deno.remove(work, { recursive: true }).catch(() => {});
    activeWorkDirs.delete(work);
  };
  let probe: Awaited<ReturnType<typeof probeTshark>>;
  let source: MetricSource;
  let fallbackReason: string | undefined;
  const pcapDir = join(options.out, "pcap");
  try {
    probe = options.noCapture
      ? { ok: false, reason: "--no-capture was given" }
      : await probeTshark("tshark", work);
    source = probe.ok ? "capture" : "program";
    fallbackReason = probe.ok ? undefined : probe.reason;
    if (probe.ok) {
      log(`capturing with ${probe.version}`);
    } else {
      log(
        `NO PACKET CAPTURE: ${probe.reason}; falling back to the programs' own timing (labelled "program" in every output)`,
      );
    }
    await Deno.mkdir(options.out, { recursive: true });
    await Deno.remove(pcapDir, { recursive: true }).catch(() => {});
    if (source === "capture") await Deno.mkdir(pcapDir, { recursive: true });
  } catch (error) {
    await dropWork();
    throw error;
  }
  const configurations: Array<Configuration & { sizes: number[] }> = [
    { transport: "tcp", sizes: options.sizes },
    { transport: "snw", sizes: options.sizes },
    ...options.lossPercents.map((lossPercent) => ({
      transport: "snw" as const,
      lossPercent,
      sizes: options.lossSizes,
    })),
  ];
  const runs: RunRecord[] = [];
  try {
    for (const config of configurations) {
      if (config.sizes.length === 0) continue;
      const slug = configSlug(config);
      log(`== ${slug}`);
      if (stopping) throw new Error("interrupted");
      const started = FileServiceRig.start({
        transport: config.transport,
        dir: join(work, slug),
        relayDrop: config.lossPercent === undefined
          ? undefined
          : config.lossPercent / 100,
        seed: 1000 + (config.lossPercent ?? 0),
        env: { SOCKKIT_SNW_TIMEOUT_MS: SNW_TIMEOUT_MS },
      });
      startingRigs.add(started);
      await using rig = await started.finally(() =>
        startingRigs.delete(started)
      );
      activeRigs.add(rig);
      // The client, cache and origin keep their control connections between
      // commands: a get of this file just before each capture makes every
      // measured get find them open (like for like: no TCP handshake in the
      // first run only).
      await writeTestFile(join(rig.clientDir, WARM_UP), 1, 1);
      await rig.command(`put ${WARM_UP}`);
      for (const size of config.sizes) {
        const names: string[] = [];
        for (let run = 1; run <= options.runs; run++) {
          const name = `${slug}-${sizeSlug(size)}-run${run}.bin`;
          await writeTestFile(
            join(rig.clientDir, name),
            size,
            run * 7919 + size,
          );
          await rig.command(`put ${name}`);
          names.push(name);
        }
        await rig.command(`get ${WARM_UP}`);
        const pcap = `pcap/${slug}-${sizeSlug(size)}.pcapng`;
        const capture = source === "capture"
          ? await PacketCapture.start({
            filter: `port ${rig.originPort} or port ${rig.cachePort}`,
            file: join(options.out, pcap),
            // whole packets for small files (SNW CRCs verifiable), headers
            // and control messages only for big ones
            snaplen: size <= 64 * 1024 ? 0 : SNAPLEN,
          })
          : undefined;
        const timings = [];
        try {
          for (const name of names) {
            await sleep(GAP_MS);
            const timing = await rig.command(`get ${name}`);
            if (timing.response !== "File delivered from origin.") {
              throw new Error(
                `get ${name}: expected "File delivered from origin.", got "${timing.response}"`,
              );
            }
            timings.push(timing);
          }
        } finally {
          await capture?.stop(TAIL_MS + 100);
        }
        let perRun: CapturedPacket[][] = [];
        if (capture) {
          const packets = await readCapturedPackets(capture.file);
          const windows: TimeWindow[] = timings.map((t) => ({
            startNs: msToNs(t.startMs - LEAD_MS),
            endNs: msToNs(t.endMs + TAIL_MS),
          }));
          perRun = splitByWindows(packets, windows);
        }
        timings.forEach((t, i) => {
          const programDelaySec = (t.endMs - t.startMs) / 1000;
          const m = capture ? getMetrics(perRun[i]) : undefined;
          const delaySec = m ? m.delaySec : programDelaySec;
          const record: RunRecord = {
            transport: config.transport,
            lossPercent: config.lossPercent ?? 0,
            relayed: config.lossPercent !== undefined,
            sizeBytes: size,
            run: i + 1,
            source,
            delaySec,
            throughputBps: m ? m.throughputBps : (size * 8) / delaySec,
            packets: m?.packets ?? 0,
            wireBytes: m?.bytes ?? 0,
            programDelaySec,
            goodputBps: (size * 8) / delaySec,
            pcap: capture ? pcap : "",
          };
          runs.push(record);
          log(
            `${slug} ${sizeLabel(size)} run ${i + 1}: delay ${
              delaySec.toFixed(6)
            } s, throughput ${Math.round(record.throughputBps)} bps (${source}${
              m ? `, ${m.packets} packets, ${m.bytes} bytes` : ""
            })`,
          );
        });
        for (const name of names) {
          await Deno.remove(join(rig.clientDir, name)).catch(() => {});
        }
      }
      activeRigs.delete(rig);
    }
  } finally {
    await dropWork();
  }
  const files = await writeResults(options.out, runs, {
    date: new Date().toISOString(),
    source,
    fallbackReason,
    tshark: probe.ok ? probe.version : undefined,
    runs: options.runs,
    quick: options.quick,
    notes: [],
  });
  return { runs, source, fallbackReason, files };
}

/**
 * Writes runs.csv, tables.md, the SVG plots and report.md.
 *
 * @param out The results folder.
 * @param runs Every run.
 * @param context For the report (standard notes are added).
 * @returns The files written, relative to `out`.
 */
export async function writeResults(
  out: string,
  runs: RunRecord[],
  context: ReportContext,
): Promise<string[]> {
  await Deno.mkdir(out, { recursive: true });
  const aggregates = aggregateRuns(runs);
  const files: string[] = [];
  const write = async (name: string, text: string) => {
    await Deno.writeTextFile(join(out, name), text);
    files.push(name);
  };
  await write("runs.csv", runsCsv(runs));
  await write(
    "tables.md",
    `${
      context.source === "program"
        ? `> Program timing, NOT a packet capture (${context.fallbackReason}).\n\n`
        : ""
    }${assignmentTables(aggregates)}\n${detailTable(aggregates)}`,
  );
  for (const [name, svg] of Object.entries(renderPlots(aggregates))) {
    await write(name, svg);
  }
  await write(
    "report.md",
    renderReport(runs, {
      ...context,
      notes: [
        ...context.notes,
        `Host: ${Deno.build.target}, Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} CPU(s).`,
        `Every \`get\` is of a file the cache has never seen (a fresh name per run); uploads happen before the capture starts. SNW: 1000-byte chunks, give-up timeout ${SNW_TIMEOUT_MS} ms (SOCKKIT_SNW_TIMEOUT_MS).`,
        "Relayed runs: the seeded lossy relay (bench/relay.ts) sits in front of the cache and in front of the origin and drops that share of datagrams in both directions; TCP control traffic passes it unchanged.",
      ],
    }),
  );
  return files;
}

/**
 * Re-renders tables, plots and report from an earlier runs.csv (no
 * measurement).
 *
 * @param csvPath The runs.csv.
 * @param out The results folder.
 * @returns The runs and the files written.
 */
export async function rerenderFromCsv(
  csvPath: string,
  out: string,
): Promise<EvaluationResult> {
  const runs = parseRunsCsv(await Deno.readTextFile(csvPath));
  if (runs.length === 0) throw new Error(`"${csvPath}" holds no runs`);
  const source = runs[0].source;
  const fallbackReason = source === "program"
    ? "re-rendered from program-timing runs"
    : undefined;
  const files = await writeResults(out, runs, {
    date: new Date().toISOString(),
    source,
    fallbackReason,
    runs: Math.max(...runs.map((r) => r.run)),
    quick: false,
    notes: [`Re-rendered from \`${csvPath}\` (${runs.length} runs).`],
  });
  return { runs, source, fallbackReason, files };
}

/**
 * What a run has going, undone on SIGINT/SIGTERM so that nothing outlives
 * us: the rigs' roles, the temporary folders (and the tshark captures, see
 * `interruptCaptures`).
 */
const activeRigs = new Set<FileServiceRig>();
/** Rigs whose roles are still starting (a signal then waits for them). */
const startingRigs = new Set<Promise<FileServiceRig>>();
const activeWorkDirs = new Set<string>();
/** A signal came: no new rig is started, and the run's own error is moot. */
let stopping = false;

function stopOnSignal(): void {
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    console.error(
      "evaluate: interrupted, stopping the roles and captures",
    );
    interruptCaptures();
    // A rig started just before the signal is stopped too, once its roles
    // are up (else they would outlive us and refill the folder removed).
    for (const started of await Promise.allSettled([...startingRigs])) {
      if (started.status === "fulfilled") activeRigs.add(started.value);
    }
    await Promise.allSettled([...activeRigs].map((rig) => rig.close()));
    for (const dir of activeWorkDirs) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

async function main(args: string[]): Promise<number> {
  let options: EvaluationOptions;
  try {
    options = parseEvaluateArgs(args);
  } catch (error) {
    if (error instanceof EvaluateUsageError) {
      if (error.message === "help") {
        console.log(EVALUATE_USAGE);
        return 0;
      }
      console.error(`evaluate: ${error.message}\n${EVALUATE_USAGE}`);
      return 2;
    }
    throw error;
  }
  stopOnSignal();
  try {
    const result = options.fromCsv
      ? await rerenderFromCsv(options.fromCsv, options.out)
      : await runEvaluation(options);
    console.log(
      `\n${
        assignmentTables(aggregateRuns(result.runs))
      }\nwrote ${result.files.length} files${
        result.source === "capture" ? " and pcap/" : ""
      } to ${options.out}/ (report: ${join(options.out, "report.md")})`,
    );
    return 0;
  } catch (error) {
    if (stopping) return await new Promise<never>(() => {}); // the signal exits
    console.error(`evaluate: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
