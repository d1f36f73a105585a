/**
 * Packet captures with tshark for the evaluation: find tshark, capture on
 * the loopback interface with a BPF filter into a pcapng file, and read the
 * packets back as {@linkcode CapturedPacket}s.
 *
 * @module
 */

import {
  type CapturedPacket,
  parseTsharkFields,
  TSHARK_FIELDS,
} from "./capture_metrics.ts";

/** Bytes kept per packet; `frame.len` still records the full size. */
export const SNAPLEN = 256;

/** tshark is missing or cannot capture here. */
export class CaptureUnavailableError extends Error {
  /**
   * Creates the error.
   *
   * @param message Why there is no capture.
   */
  constructor(message: string) {
    super(message);
    this.name = "CaptureUnavailableError";
  }
}

/** The result of {@linkcode probeTshark}. */
export type TsharkProbe =
  | { ok: true; version: string }
  | { ok: false; reason: string };

/**
 * Checks that tshark runs and can capture on `lo` (root or capture
 * capabilities are needed).
 *
 * @param tshark The tshark executable (default `tshark`).
 * @param dir Where the trial capture's file goes (default: the system's
 *   temporary folder).
 * @returns Its version line, or why it cannot be used.
 */
export async function probeTshark(
  tshark = "tshark",
  dir?: string,
): Promise<TsharkProbe> {
  let version: string;
  try {
    const out = await new Deno.Command(tshark, {
      args: ["--version"],
      stdout: "piped",
      stderr: "null",
      stdin: "null",
    }).output();
    if (!out.success) {
      return { ok: false, reason: `"${tshark} --version" failed` };
    }
    version = new TextDecoder().decode(out.stdout).split("\n")[0].trim()
      .replace(/\.$/, "");
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { ok: false, reason: "tshark is not installed" };
    }
    if (error instanceof Deno.errors.NotCapable) {
      return { ok: false, reason: "no --allow-run permission for tshark" };
    }
    return { ok: false, reason: `cannot run tshark: ${error}` };
  }
  const file = await Deno.makeTempFile({ dir, suffix: ".pcapng" });
  try {
    const capture = await PacketCapture.start({
      filter: "udp port 9",
      file,
      tshark,
    });
    await capture.stop();
    // A tshark that could not open the interface may still have said
    // "Capturing on" first; then it wrote no capture file.
    if ((await Deno.stat(file)).size === 0) {
      throw new CaptureUnavailableError("tshark wrote no capture");
    }
  } catch (error) {
    return {
      ok: false,
      reason: `tshark cannot capture on loopback: ${
        (error as Error).message.split("\n")[0]
      }`,
    };
  } finally {
    await Deno.remove(file).catch(() => {});
  }
  return { ok: true, version };
}

/** The first line of tshark's stderr that says what went wrong. */
function firstError(text: string): string {
  return text.split("\n").map((line) => line.trim()).find((line) =>
    line !== "" && !/Running as user|Capturing on/.test(line)
  ) ?? "";
}

/** Options of {@linkcode PacketCapture.start}. */
export interface CaptureOptions {
  /** BPF capture filter, e.g. `tcp port 9000 or udp port 9000`. */
  filter: string;
  /** The pcapng file to write. */
  file: string;
  /** The interface (default `lo`). */
  iface?: string;
  /** The tshark executable (default `tshark`). */
  tshark?: string;
  /** Bytes kept per packet (default {@linkcode SNAPLEN}; 0 = whole packets). */
  snaplen?: number;
  /** Wait after tshark reports the capture started, ms (default 500). */
  settleMs?: number;
  /** How long to wait for the capture to start, ms (default 20 000). */
  startTimeoutMs?: number;
}

/** Every tshark started here and not yet exited. */
const liveCaptures = new Set<Deno.ChildProcess>();

/**
 * Sends SIGINT to every tshark this process started that is still running,
 * including one still starting (for a signal handler about to exit: tshark
 * then flushes its file and exits on its own).
 */
export function interruptCaptures(): void {
  for (const child of liveCaptures) {
    try {
      child.kill("SIGINT");
    } catch { /* already gone */ }
  }
}

/** A running tshark capture; `stop()` ends it and flushes the file. */
export class PacketCapture {
  readonly #child: Deno.ChildProcess;
  readonly #stderr: Promise<string>;
  /** The pcapng file being written. */
  readonly file: string;

  private constructor(
    child: Deno.ChildProcess,
    stderr: Promise<string>,
    file: string,
  ) {
    this.#child = child;
    this.#stderr = stderr;
    this.file = file;
  }

  /**
   * Starts tshark and waits until it reports that it is capturing.
   *
   * @param options Filter, file, interface.
   * @returns The running capture.
   * @throws {CaptureUnavailableError} When tshark exits or does not start
   *   capturing in time (its stderr is in the message).
   */
  static async start(options: CaptureOptions): Promise<PacketCapture> {
    const child = new Deno.Command(options.tshark ?? "tshark", {
      args: [
        "-i",
        options.iface ?? "lo",
        "-f",
        options.filter,
        "-s",
        String(options.snaplen ?? SNAPLEN),
        "-q",
        "-w",
        options.file,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    liveCaptures.add(child);
    child.status.finally(() => liveCaptures.delete(child));
    let text = "";
    let wake: () => void = () => {};
    const stderr = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of child.stderr) {
        text += decoder.decode(chunk, { stream: true });
        wake();
      }
      return text;
    })();
    const status = child.status.then((s) => s);
    const deadline = Date.now() + (options.startTimeoutMs ?? 20_000);
    let exited = false;
    status.then(() => {
      exited = true;
      wake();
    });
    while (!/Capturing on/.test(text)) {
      if (exited || Date.now() > deadline) {
        if (!exited) {
          try {
            child.kill("SIGKILL");
          } catch { /* gone */ }
        }
        await status;
        const errors = firstError(await stderr);
        throw new CaptureUnavailableError(
          exited
            ? `tshark exited: ${errors || "no message"}`
            : `tshark did not start capturing: ${errors || "no message"}`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, 200);
      });
      clearTimeout(timer);
    }
    // tshark reports "Capturing on" slightly before the filter is attached,
    // and, without the right to capture, just before it gives up.
    await new Promise((resolve) =>
      setTimeout(resolve, options.settleMs ?? 500)
    );
    if (exited) {
      const errors = firstError(await stderr);
      throw new CaptureUnavailableError(
        `tshark exited: ${errors || "no message"}`,
      );
    }
    return new PacketCapture(child, stderr, options.file);
  }

  /**
   * Stops the capture (SIGINT) after a short settle time and waits for
   * tshark to flush and exit.
   *
   * @param settleMs Time left for the last packets, ms (default 200).
   */
  async stop(settleMs = 200): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    try {
      this.#child.kill("SIGINT");
    } catch { /* already gone */ }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        try {
          this.#child.kill("SIGKILL");
        } catch { /* gone */ }
        resolve();
      }, 10_000);
    });
    await Promise.race([this.#child.status, killed]);
    clearTimeout(timer);
    await this.#child.status;
    await this.#stderr;
  }
}

/**
 * Runs `tshark -r` on a capture and returns its output.
 *
 * @param file The capture.
 * @param args Extra arguments (fields, display filter, `-X lua_script:...`).
 * @param tshark The tshark executable.
 * @returns tshark's stdout.
 * @throws {Error} When tshark fails (its stderr is in the message).
 */
export async function readCapture(
  file: string,
  args: string[],
  tshark = "tshark",
): Promise<string> {
  const out = await new Deno.Command(tshark, {
    args: ["-r", file, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `tshark -r ${file} failed: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/**
 * Reads every packet of a capture with the fields the metrics need.
 *
 * @param file The capture.
 * @param tshark The tshark executable.
 * @returns The packets, in capture order.
 */
export async function readCapturedPackets(
  file: string,
  tshark = "tshark",
): Promise<CapturedPacket[]> {
  const text = await readCapture(file, [
    "-T",
    "fields",
    "-E",
    "separator=/t",
    ...TSHARK_FIELDS.flatMap((f) => ["-e", f]),
  ], tshark);
  return parseTsharkFields(text);
}
