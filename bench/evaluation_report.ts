/**
 * Pure rendering of evaluation results (SPEC §7): the assignment's two
 * tables (rows TCP/SNW × columns File 1..4, delay in sec and throughput in
 * bps), a table with medians and spread for every configuration, the CSV
 * of every run, the three SVG plots and the markdown report that embeds
 * them. Records in, text out.
 *
 * @module
 */

import { summarize, type Summary } from "./capture_metrics.ts";
import { formatSi, lineChartSvg } from "./svg_plot.ts";

/** Where a run's numbers come from. */
export type MetricSource = "capture" | "program";

/** One measured `get` of an uncached file. */
export interface RunRecord {
  /** `tcp` or `snw`. */
  transport: "tcp" | "snw";
  /** Datagram loss applied by the relay, in percent (0 without one). */
  lossPercent: number;
  /** Whether the lossy relay was on the path (both hops). */
  relayed: boolean;
  /** File size in bytes. */
  sizeBytes: number;
  /** Repetition number, from 1. */
  run: number;
  /** `capture` (tshark timestamps) or `program` (wall clock of the command). */
  source: MetricSource;
  /** Overall delay in seconds (from `source`). */
  delaySec: number;
  /** Throughput in bits per second (from `source`). */
  throughputBps: number;
  /** Packets captured (0 without a capture). */
  packets: number;
  /** Bytes on the wire captured (0 without a capture). */
  wireBytes: number;
  /** Wall clock from typing `get` to the client's response line, seconds. */
  programDelaySec: number;
  /** File bits / delay: useful bits per second. */
  goodputBps: number;
  /** The capture file holding this run, relative to the results folder. */
  pcap: string;
}

/** The four file sizes of the assignment's tables (KB = 1024 bytes). */
export const TABLE_SIZES = [16, 32, 48, 62].map((kb) => kb * 1024);

/**
 * Names a size the way the tables do (`16 KB`, `1 MiB`).
 *
 * @example
 * ```ts
 * import { sizeLabel } from "./evaluation_report.ts";
 * console.log(sizeLabel(16384), sizeLabel(10485760)); // 16 KB 10 MiB
 * ```
 *
 * @param bytes The size.
 * @returns The label.
 */
export function sizeLabel(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) {
    return `${bytes / (1024 * 1024)} MiB`;
  }
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KB`;
  return `${bytes} B`;
}

/**
 * Formats seconds for a table cell (4 significant digits).
 *
 * @param sec Seconds.
 * @returns The text.
 */
export function formatSeconds(sec: number): string {
  return sec >= 100 ? sec.toFixed(1) : sec.toPrecision(4);
}

/**
 * Formats bits per second for a table cell (whole bps with thousands
 * separators, as the assignment asks for bps).
 *
 * @param bps Bits per second.
 * @returns The text.
 */
export function formatBps(bps: number): string {
  return Math.round(bps).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

function label(transport: "tcp" | "snw"): string {
  return transport.toUpperCase();
}

function configKey(r: RunRecord): string {
  return `${r.transport}|${r.relayed ? r.lossPercent : "direct"}`;
}

function configName(
  r: { transport: "tcp" | "snw"; relayed: boolean; lossPercent: number },
): string {
  return r.relayed
    ? `${label(r.transport)} via relay, ${r.lossPercent}% loss`
    : label(r.transport);
}

/** Runs of one configuration and size, summarized. */
export interface Aggregate {
  /** The transport. */
  transport: "tcp" | "snw";
  /** Whether the relay was on the path. */
  relayed: boolean;
  /** Loss in percent. */
  lossPercent: number;
  /** File size in bytes. */
  sizeBytes: number;
  /** Where the numbers come from. */
  source: MetricSource;
  /** Delay, seconds. */
  delay: Summary;
  /** Throughput, bps. */
  throughput: Summary;
  /** Goodput (file bits / delay), bps. */
  goodput: Summary;
}

/**
 * Groups runs by transport, relay/loss and size and summarizes each group.
 *
 * @param runs Every run.
 * @returns One aggregate per group, in first-seen order.
 */
export function aggregateRuns(runs: readonly RunRecord[]): Aggregate[] {
  const groups = new Map<string, RunRecord[]>();
  for (const r of runs) {
    const key = `${configKey(r)}|${r.sizeBytes}`;
    const list = groups.get(key) ?? [];
    list.push(r);
    groups.set(key, list);
  }
  return [...groups.values()].map((list) => ({
    transport: list[0].transport,
    relayed: list[0].relayed,
    lossPercent: list[0].lossPercent,
    sizeBytes: list[0].sizeBytes,
    source: list[0].source,
    delay: summarize(list.map((r) => r.delaySec)),
    throughput: summarize(list.map((r) => r.throughputBps)),
    goodput: summarize(list.map((r) => r.goodputBps)),
  }));
}

function find(
  aggregates: readonly Aggregate[],
  transport: "tcp" | "snw",
  size: number,
): Aggregate | undefined {
  return aggregates.find((a) =>
    a.transport === transport && !a.relayed && a.sizeBytes === size
  );
}

/**
 * The assignment's two tables as markdown: `Delay (sec)` and
 * `Throughput (bps)`, rows TCP and SNW, columns File 1..4 (16, 32, 48,
 * 62 KB), medians of the direct (relay-free) runs; `-` where not measured.
 *
 * @param aggregates From {@linkcode aggregateRuns}.
 * @returns Markdown text.
 */
export function assignmentTables(aggregates: readonly Aggregate[]): string {
  const header = `|  | ${
    TABLE_SIZES.map((s, i) => `File ${i + 1} (${sizeLabel(s)})`).join(" | ")
  } |\n|---|${TABLE_SIZES.map(() => "---:").join("|")}|`;
  const row = (
    transport: "tcp" | "snw",
    cell: (a: Aggregate) => string,
  ) =>
    `| ${label(transport)} | ${
      TABLE_SIZES.map((s) => {
        const a = find(aggregates, transport, s);
        return a ? cell(a) : "-";
      }).join(" | ")
    } |`;
  return [
    "**Delay (sec)**",
    "",
    header,
    row("tcp", (a) => formatSeconds(a.delay.median)),
    row("snw", (a) => formatSeconds(a.delay.median)),
    "",
    "**Throughput (bps)**",
    "",
    header,
    row("tcp", (a) => formatBps(a.throughput.median)),
    row("snw", (a) => formatBps(a.throughput.median)),
    "",
  ].join("\n");
}

/**
 * Every configuration and size with median, min–max and n, as markdown.
 *
 * @param aggregates From {@linkcode aggregateRuns}.
 * @returns Markdown text.
 */
export function detailTable(aggregates: readonly Aggregate[]): string {
  const lines = [
    "| configuration | file | n | delay median (s) | delay min–max (s) | throughput median (bps) | throughput min–max (bps) | goodput median (bps) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const a of aggregates) {
    const name = configName(a);
    lines.push(
      `| ${name} | ${sizeLabel(a.sizeBytes)} | ${a.delay.n} | ${
        formatSeconds(a.delay.median)
      } | ${formatSeconds(a.delay.min)}–${formatSeconds(a.delay.max)} | ${
        formatBps(a.throughput.median)
      } | ${formatBps(a.throughput.min)}–${formatBps(a.throughput.max)} | ${
        formatBps(a.goodput.median)
      } |`,
    );
  }
  return lines.join("\n") + "\n";
}

/** The CSV header of {@linkcode runsCsv}. */
export const CSV_HEADER =
  "transport,relayed,loss_percent,size_bytes,run,source,delay_sec,throughput_bps,packets,wire_bytes,program_delay_sec,goodput_bps,pcap";

/**
 * Every run as CSV (one header line, one line per run).
 *
 * @param runs The runs.
 * @returns CSV text.
 */
export function runsCsv(runs: readonly RunRecord[]): string {
  const lines = [CSV_HEADER];
  for (const r of runs) {
    lines.push(
      [
        r.transport,
        r.relayed,
        r.lossPercent,
        r.sizeBytes,
        r.run,
        r.source,
        r.delaySec.toFixed(9),
        r.throughputBps.toFixed(0),
        r.packets,
        r.wireBytes,
        r.programDelaySec.toFixed(6),
        r.goodputBps.toFixed(0),
        r.pcap,
      ].join(","),
    );
  }
  return lines.join("\n") + "\n";
}

/**
 * Reads back the CSV written by {@linkcode runsCsv}.
 *
 * @example
 * ```ts
 * import { parseRunsCsv, runsCsv } from "./evaluation_report.ts";
 * console.log(parseRunsCsv(runsCsv([])).length); // 0
 * ```
 *
 * @param text The CSV.
 * @returns The runs.
 * @throws {SyntaxError} When the header or a line does not fit.
 */
export function parseRunsCsv(text: string): RunRecord[] {
  const lines = text.trim().split("\n");
  if (lines[0] !== CSV_HEADER) {
    throw new SyntaxError("Not a runs.csv of the evaluation (header differs)");
  }
  return lines.slice(1).filter((l) => l !== "").map((line, i) => {
    const f = line.split(",");
    const numbers = [f[2], f[3], f[4], f[6], f[7], f[8], f[9], f[10], f[11]]
      .map(Number);
    if (
      f.length !== 13 || (f[0] !== "tcp" && f[0] !== "snw") ||
      (f[5] !== "capture" && f[5] !== "program") ||
      numbers.some((n) => !Number.isFinite(n))
    ) {
      throw new SyntaxError(`runs.csv line ${i + 2} is malformed: "${line}"`);
    }
    return {
      transport: f[0],
      relayed: f[1] === "true",
      lossPercent: numbers[0],
      sizeBytes: numbers[1],
      run: numbers[2],
      source: f[5],
      delaySec: numbers[3],
      throughputBps: numbers[4],
      packets: numbers[5],
      wireBytes: numbers[6],
      programDelaySec: numbers[7],
      goodputBps: numbers[8],
      pcap: f[12],
    };
  });
}

/** The plots, by file name. */
export interface Plots {
  /** `delay_vs_size.svg`. */
  "delay_vs_size.svg": string;
  /** `throughput_vs_size.svg`. */
  "throughput_vs_size.svg": string;
  /** `snw_goodput_vs_loss.svg`. */
  "snw_goodput_vs_loss.svg": string;
}

/**
 * Renders delay vs size, throughput vs size (direct runs, medians with
 * min–max bars) and SNW goodput vs loss rate (relayed runs, one series per
 * size).
 *
 * @param aggregates From {@linkcode aggregateRuns}.
 * @returns The SVG texts.
 */
export function renderPlots(aggregates: readonly Aggregate[]): Plots {
  const direct = aggregates.filter((a) => !a.relayed);
  const bySize = (pick: (a: Aggregate) => Summary) =>
    (["tcp", "snw"] as const).map((t) => ({
      name: label(t),
      points: direct.filter((a) => a.transport === t).map((a) => ({
        x: a.sizeBytes,
        y: pick(a).median,
        low: pick(a).min,
        high: pick(a).max,
      })),
    })).filter((s) => s.points.length > 0);
  const relayed = aggregates.filter((a) => a.relayed && a.transport === "snw");
  const sizes = [...new Set(relayed.map((a) => a.sizeBytes))].sort((a, b) =>
    a - b
  );
  const source = aggregates[0]?.source === "program"
    ? " (program timing, no capture)"
    : "";
  const allSizes = direct.map((a) => a.sizeBytes);
  const sizeTicks = [16, 64, 256, 1024, 4096, 16384].map((kb) => kb * 1024)
    .filter((t) =>
      allSizes.length > 0 && t <= Math.max(...allSizes) * 2 &&
      t >= Math.min(...allSizes) / 2
    );
  const bytesLabel = (v: number) =>
    v >= 1024 * 1024
      ? `${Number((v / 1048576).toPrecision(3))} MiB`
      : `${Number((v / 1024).toPrecision(3))} KB`;
  return {
    "delay_vs_size.svg": lineChartSvg({
      title: `Overall delay of one uncached get${source}`,
      xLabel: "file size",
      yLabel: "delay (s), median with min–max",
      series: bySize((a) => a.delay),
      logX: true,
      logY: true,
      xTicks: sizeTicks,
      formatX: bytesLabel,
      formatY: (v) => `${formatSi(v)}s`,
    }),
    "throughput_vs_size.svg": lineChartSvg({
      title: `Throughput of one uncached get${source}`,
      xLabel: "file size",
      yLabel: "throughput (bps), median with min–max",
      series: bySize((a) => a.throughput),
      logX: true,
      logY: true,
      xTicks: sizeTicks,
      formatX: bytesLabel,
      formatY: (v) => `${formatSi(v)}bps`,
    }),
    "snw_goodput_vs_loss.svg": lineChartSvg({
      title: `SNW goodput vs datagram loss (relay on both hops)${source}`,
      xLabel: "loss rate (%)",
      yLabel: "goodput (bps), median with min–max",
      series: sizes.map((size) => ({
        name: sizeLabel(size),
        points: relayed.filter((a) => a.sizeBytes === size).map((a) => ({
          x: a.lossPercent,
          y: a.goodput.median,
          low: a.goodput.min,
          high: a.goodput.max,
        })),
      })),
      logY: true,
      formatX: (v) => `${v}%`,
      formatY: (v) => `${formatSi(v)}bps`,
    }),
  };
}

/** What the report says about how it was made. */
export interface ReportContext {
  /** When the evaluation ran (ISO text). */
  date: string;
  /** Where the numbers come from. */
  source: MetricSource;
  /** Why there is no capture, when `source` is `program`. */
  fallbackReason?: string;
  /** tshark's version line, when used. */
  tshark?: string;
  /** Repetitions per configuration and size. */
  runs: number;
  /** Whether `--quick` was given. */
  quick: boolean;
  /** Free-form lines (host, Deno version, SNW settings). */
  notes: string[];
}

/**
 * The markdown report: method, the two tables, the detail table, the
 * plots (embedded as images) and where the raw data is.
 *
 * @param runs Every run.
 * @param context How the evaluation ran.
 * @returns Markdown text.
 */
export function renderReport(
  runs: readonly RunRecord[],
  context: ReportContext,
): string {
  const aggregates = aggregateRuns(runs);
  const method = context.source === "capture"
    ? [
      `Source: **packet capture** (${
        context.tshark ?? "tshark"
      }) on the loopback interface, capture filter on the origin's and the cache's ports (TCP and UDP).`,
      "Overall delay = time of the last captured packet − time of the first captured packet of one `get` of an uncached file (client → cache → origin and back, control and data).",
      "Throughput = bits on the wire (sum of `frame.len` × 8: loopback link header, IP, TCP/UDP headers and payload, both directions, both hops) / overall delay.",
    ]
    : [
      `Source: **program timing — no packet capture** (${
        context.fallbackReason ?? "tshark unavailable"
      }).`,
      "Overall delay = wall-clock time from typing `get <file>` into the client to the client printing `Server response: …`.",
      "Throughput = file bits / that delay (goodput: headers and control messages are not counted).",
    ];
  const plots = [
    "![delay vs size](delay_vs_size.svg)",
    "![throughput vs size](throughput_vs_size.svg)",
  ];
  if (aggregates.some((a) => a.relayed)) {
    plots.push("![SNW goodput vs loss](snw_goodput_vs_loss.svg)");
  }
  return [
    "# sockkit evaluation: TCP vs stop-and-wait (SNW)",
    "",
    `Generated ${context.date}${
      context.quick ? " in **quick mode**" : ""
    }; ${context.runs} run(s) per configuration and size, medians shown.`,
    "",
    ...method.map((line) => `- ${line}`),
    ...context.notes.map((line) => `- ${line}`),
    "",
    "## Assignment tables (medians, direct runs)",
    "",
    assignmentTables(aggregates),
    "## Every configuration",
    "",
    detailTable(aggregates),
    "## Plots",
    "",
    ...plots.flatMap((p) => [p, ""]),
    "## Raw data",
    "",
    "- `runs.csv`: every run (one line per `get`).",
    context.source === "capture"
      ? "- `pcap/`: the captures (whole packets for files up to 64 KB, the first 256 bytes of each packet for larger ones; `frame.len` always keeps the full size). Open them with the dissector: see docs/wireshark.md."
      : "- no captures (see above).",
    "",
  ].join("\n");
}
