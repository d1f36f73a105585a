/**
 * Pure metric computation for the evaluation (SPEC §7): parses the
 * `tshark -T fields` output of a capture, splits its packets into the time
 * windows of individual `get` commands, and computes per `get`:
 *
 * - **overall delay** = time of the last packet − time of the first packet;
 * - **throughput** = bits on the wire (the sum of `frame.len` × 8 of every
 *   captured packet, both directions, every hop) / overall delay.
 *
 * No I/O: bytes and strings in, numbers out.
 *
 * @module
 */

/** The `tshark -e` fields {@linkcode parseTsharkFields} expects, in order. */
export const TSHARK_FIELDS = [
  "frame.time_epoch",
  "frame.len",
  "ip.proto",
  "tcp.srcport",
  "tcp.dstport",
  "udp.srcport",
  "udp.dstport",
] as const;

/** One captured packet. */
export interface CapturedPacket {
  /** Capture time, nanoseconds since the Unix epoch. */
  timeNs: bigint;
  /** Bytes on the wire (`frame.len`, link-layer header included). */
  bytes: number;
  /** `tcp`, `udp` or `other`. */
  protocol: "tcp" | "udp" | "other";
  /** Source port (0 when none). */
  srcPort: number;
  /** Destination port (0 when none). */
  dstPort: number;
}

/** A line of tshark output that is not a packet record. */
export class CaptureFormatError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong, with the line number.
   */
  constructor(message: string) {
    super(message);
    this.name = "CaptureFormatError";
  }
}

/**
 * Parses a decimal epoch time (`1795334318.081500699`) into nanoseconds.
 *
 * @example
 * ```ts
 * import { parseEpochNs } from "./capture_metrics.ts";
 * console.log(parseEpochNs("12.5")); // 12500000000n
 * ```
 *
 * @param text Seconds with up to 9 decimals.
 * @returns Nanoseconds.
 * @throws {CaptureFormatError} When `text` is not such a number.
 */
export function parseEpochNs(text: string): bigint {
  const match = /^(\d+)(?:\.(\d{1,9}))?$/.exec(text.trim());
  if (!match) throw new CaptureFormatError(`Invalid time "${text}"`);
  const fraction = (match[2] ?? "").padEnd(9, "0");
  return BigInt(match[1]) * 1_000_000_000n + BigInt(fraction);
}

function port(text: string | undefined): number {
  if (text === undefined || text === "") return 0;
  const value = Number(text.split(",")[0]);
  return Number.isInteger(value) && value >= 0 && value <= 65535 ? value : 0;
}

/**
 * Parses `tshark -T fields -E separator=/t` output with the fields of
 * {@linkcode TSHARK_FIELDS}; blank lines are skipped.
 *
 * @example
 * ```ts
 * import { parseTsharkFields } from "./capture_metrics.ts";
 * const [p] = parseTsharkFields("1.5\t80\t17\t\t\t5000\t6000\n");
 * console.log(p.bytes, p.protocol, p.dstPort); // 80 udp 6000
 * ```
 *
 * @param text The output.
 * @returns The packets, in capture order.
 * @throws {CaptureFormatError} On a line without a valid time and length.
 */
export function parseTsharkFields(text: string): CapturedPacket[] {
  const packets: CapturedPacket[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, "");
    if (line.trim() === "") continue;
    const f = line.split("\t");
    const bytes = Number(f[1]);
    if (f.length < 2 || !Number.isInteger(bytes) || bytes < 0) {
      throw new CaptureFormatError(
        `Line ${i + 1}: expected "<time>\\t<frame.len>...", got "${
          line.slice(0, 80)
        }"`,
      );
    }
    let timeNs: bigint;
    try {
      timeNs = parseEpochNs(f[0]);
    } catch (error) {
      throw new CaptureFormatError(
        `Line ${i + 1}: ${(error as Error).message}`,
      );
    }
    const proto = f[2] ?? "";
    const isTcp = (f[3] ?? "") !== "" || proto === "6";
    const isUdp = !isTcp && ((f[5] ?? "") !== "" || proto === "17");
    packets.push({
      timeNs,
      bytes,
      protocol: isTcp ? "tcp" : isUdp ? "udp" : "other",
      srcPort: port(isTcp ? f[3] : f[5]),
      dstPort: port(isTcp ? f[4] : f[6]),
    });
  }
  return packets;
}

/** A closed time interval, nanoseconds since the epoch. */
export interface TimeWindow {
  /** First instant that belongs to the window. */
  startNs: bigint;
  /** Last instant that belongs to the window. */
  endNs: bigint;
}

/**
 * Converts a wall-clock time in milliseconds (for example
 * `performance.timeOrigin + performance.now()`) to epoch nanoseconds.
 *
 * @example
 * ```ts
 * import { msToNs } from "./capture_metrics.ts";
 * console.log(msToNs(1.5)); // 1500000n
 * ```
 *
 * @param ms Milliseconds since the epoch (fractions kept to the µs).
 * @returns Nanoseconds.
 */
export function msToNs(ms: number): bigint {
  return BigInt(Math.round(ms * 1000)) * 1000n;
}

/**
 * Splits packets into windows: each packet goes to the window containing
 * its time; packets outside every window are dropped.
 *
 * @example
 * ```ts
 * import { splitByWindows } from "./capture_metrics.ts";
 * const at = (s: bigint) => ({ timeNs: s, bytes: 1, protocol: "tcp" as const, srcPort: 1, dstPort: 2 });
 * const parts = splitByWindows([at(1n), at(5n), at(9n)], [{ startNs: 0n, endNs: 6n }]);
 * console.log(parts[0].length); // 2
 * ```
 *
 * @param packets The packets.
 * @param windows Non-overlapping windows.
 * @returns One packet list per window, in window order.
 */
export function splitByWindows(
  packets: readonly CapturedPacket[],
  windows: readonly TimeWindow[],
): CapturedPacket[][] {
  return windows.map((w) =>
    packets.filter((p) => p.timeNs >= w.startNs && p.timeNs <= w.endNs)
  );
}

/** What one `get` cost on the wire. */
export interface GetMetrics {
  /** Packets captured. */
  packets: number;
  /** Bytes on the wire (sum of `frame.len`). */
  bytes: number;
  /** Bits on the wire. */
  bits: number;
  /** Last packet time − first packet time, in seconds. */
  delaySec: number;
  /** `bits / delaySec`, bits per second (0 when the delay is 0). */
  throughputBps: number;
}

/**
 * Computes overall delay and throughput of one `get` from its packets.
 *
 * @example
 * ```ts
 * import { getMetrics } from "./capture_metrics.ts";
 * const p = (ns: bigint, bytes: number) => ({ timeNs: ns, bytes, protocol: "udp" as const, srcPort: 1, dstPort: 2 });
 * const m = getMetrics([p(0n, 100), p(500_000_000n, 150)]);
 * console.log(m.delaySec, m.bits, m.throughputBps); // 0.5 2000 4000
 * ```
 *
 * @param packets The packets of the `get` (any order).
 * @returns The metrics.
 * @throws {RangeError} When there are no packets.
 */
export function getMetrics(packets: readonly CapturedPacket[]): GetMetrics {
  if (packets.length === 0) {
    throw new RangeError("No packets captured for this get");
  }
  let first = packets[0].timeNs;
  let last = first;
  let bytes = 0;
  for (const p of packets) {
    if (p.timeNs < first) first = p.timeNs;
    if (p.timeNs > last) last = p.timeNs;
    bytes += p.bytes;
  }
  const delaySec = Number(last - first) / 1e9;
  const bits = bytes * 8;
  return {
    packets: packets.length,
    bytes,
    bits,
    delaySec,
    throughputBps: delaySec > 0 ? bits / delaySec : 0,
  };
}

/** Median and spread of repeated measurements. */
export interface Summary {
  /** Number of values. */
  n: number;
  /** The median (mean of the two middle values for even `n`). */
  median: number;
  /** The smallest value. */
  min: number;
  /** The largest value. */
  max: number;
  /** The arithmetic mean. */
  mean: number;
  /** Sample standard deviation (0 for fewer than two values). */
  stdev: number;
}

/**
 * Summarizes repeated measurements.
 *
 * @example
 * ```ts
 * import { summarize } from "./capture_metrics.ts";
 * console.log(summarize([3, 1, 2, 10]).median); // 2.5
 * ```
 *
 * @param values At least one value.
 * @returns Median, min, max, mean and standard deviation.
 * @throws {RangeError} When `values` is empty.
 */
export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) throw new RangeError("No values to summarize");
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const mid = Math.floor(n / 2);
  const median = n % 2 === 1
    ? sorted[mid]
    : (sorted[mid - 1] + sorted[mid]) / 2;
  const mean = sorted.reduce((a, b) => a + b, 0) / n;
  const variance = n < 2
    ? 0
    : sorted.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
  return {
    n,
    median,
    min: sorted[0],
    max: sorted[n - 1],
    mean,
    stdev: Math.sqrt(variance),
  };
}
