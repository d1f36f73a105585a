/**
 * The repeat-transfer sender (SPEC §2, seed 001):
 * `client repeat <host> <port> <file> [--times N] [--transport tcp|udp|snw]
 * [--idle-timeout MS] [--json]`.
 *
 * It resolves `<host>` once to an IP address, then sends the file `N`
 * times, each copy over a new connection (TCP), session (SNW) or socket
 * (raw UDP), and prints the exact lines of the assignment: per copy
 * `I am connecting to server side: <IP>` (every copy connects anew),
 * `I am sending file “xyz” for the nth time`,
 * `I am finishing sending file “xyz” for the nth time` and the time of the
 * copy — from connection setup through the data and the receiver's receipt
 * to the close — then the average and `I am done`. `--json` prints one JSON
 * summary instead.
 *
 * Exit codes: 0 when every copy was sent (whatever the receiver judged),
 * 1 when the file cannot be read, the host not resolved, or a tcp/snw copy
 * fails (the run stops there), 2 on usage errors.
 *
 * @module
 */

import { lookup } from "node:dns/promises";
import { basename } from "node:path";
import {
  EXIT_FAILURE,
  parseCommandLine,
  parsePort,
  printError,
  printLine,
  UsageError,
} from "../cli.ts";
import { unsafeNameReason } from "../file_names.ts";
import { copyName } from "../repeat/copy_names.ts";
import {
  MAX_REPEAT_NAME_BYTES,
  type RepeatReceipt,
} from "../../protocol/repeat_protocol.ts";
import { transportByName } from "../../transport/registry.ts";
import { averageMs, clientLines, roundMs } from "../repeat/repeat_lines.ts";
import {
  parseIdleTimeout,
  parseRepeatTransport,
  parseTimes,
  type RepeatTransportName,
} from "../repeat/repeat_options.ts";
import type { CopySender } from "./repeat_copy_sender.ts";
import { DatagramCopySender } from "./repeat_datagram_sender.ts";
import { SessionCopySender } from "./repeat_session_sender.ts";

/** Parsed arguments of `client repeat`. */
export interface RepeatClientOptions {
  /** The receiver's host name or address. */
  host: string;
  /** The receiver's port. */
  port: number;
  /** The file to send. */
  file: string;
  /** How many copies. */
  times: number;
  /** The transport. */
  transport: RepeatTransportName;
  /** tcp/snw: connect and receipt limit; udp: the receiver's idle timeout. */
  idleTimeoutMs: number;
  /** Print a JSON summary instead of the lines. */
  json: boolean;
}

/**
 * Parses the arguments of `client repeat`.
 *
 * @param args The arguments after `repeat`.
 * @returns The options.
 * @throws {UsageError} On bad arguments.
 */
export function parseRepeatClientArgs(args: string[]): RepeatClientOptions {
  const parsed = parseCommandLine({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      times: { type: "string" },
      transport: { type: "string" },
      "idle-timeout": { type: "string" },
      json: { type: "boolean" },
    },
  });
  const [host, port, file, ...extra] = parsed.positionals;
  if (host === undefined) throw new UsageError("missing <host>");
  if (host.trim() === "") throw new UsageError("empty <host>");
  if (file === undefined) throw new UsageError("missing <file>");
  if (extra.length > 0) throw new UsageError(`unexpected "${extra[0]}"`);
  const transport = parseRepeatTransport(parsed.values.transport);
  return {
    host,
    port: parsePort(port, false),
    file,
    times: parseTimes(parsed.values.times),
    transport,
    idleTimeoutMs: parseIdleTimeout(parsed.values["idle-timeout"], transport),
    json: parsed.values.json ?? false,
  };
}

/**
 * Resolves a host name to one IP address (IPv4 preferred), as the system
 * resolver does (`/etc/hosts` included).
 *
 * @param host A host name or an IP address.
 * @returns The address.
 */
export async function resolveAddress(host: string): Promise<string> {
  try {
    return (await lookup(host, { family: 4 })).address;
  } catch {
    return (await lookup(host)).address;
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Over raw udp, a run whose first this many copies all went unanswered
 * stops (exit 1): most likely nobody is receiving, and each copy would wait
 * for its receipt in vain. (At 30% loss, five lost receipts in a row from
 * the start happen in 0.2% of runs.)
 */
const NO_RECEIVER_COPIES = 5;

function openSender(
  options: RepeatClientOptions,
  address: string,
): CopySender {
  if (options.transport === "udp") {
    // Long enough for the receiver to end an incomplete copy by its idle
    // timeout and answer.
    return new DatagramCopySender(
      address,
      options.port,
      2 * options.idleTimeoutMs + 500,
    );
  }
  return new SessionCopySender(
    transportByName(options.transport),
    address,
    options.port,
    options.idleTimeoutMs,
  );
}

/**
 * Runs the repeat-transfer sender.
 *
 * @param args The service's command-line arguments.
 * @returns The exit code.
 */
export async function runRepeatClient(args: string[]): Promise<number> {
  const options = parseRepeatClientArgs(args);
  const name = basename(options.file);
  const unsafe = unsafeNameReason(name);
  if (unsafe || new TextEncoder().encode(name).length > MAX_REPEAT_NAME_BYTES) {
    printError(`client: Cannot send "${name}": ${unsafe ?? "name too long"}`);
    return EXIT_FAILURE;
  }
  // The server stores copies as <n>_<name>: that must fit a file name too.
  const longest = copyName(options.times, options.times, name);
  const stored = new TextEncoder().encode(longest).length;
  if (stored > MAX_REPEAT_NAME_BYTES) {
    printError(
      `client: Cannot send "${name}": the server would store its copies as "${
        longest.slice(0, longest.indexOf("_") + 1)
      }…", ${stored} bytes, over the ${MAX_REPEAT_NAME_BYTES}-byte limit of file names`,
    );
    return EXIT_FAILURE;
  }
  let size: number;
  try {
    const info = await Deno.stat(options.file);
    if (!info.isFile) throw new Error("not a regular file");
    size = info.size;
  } catch (error) {
    printError(`client: Cannot read "${options.file}": ${message(error)}`);
    return EXIT_FAILURE;
  }
  let address: string;
  try {
    address = await resolveAddress(options.host);
  } catch (error) {
    printError(`client: Cannot resolve "${options.host}": ${message(error)}`);
    return EXIT_FAILURE;
  }
  const out = options.json ? () => {} : printLine;
  const sender = openSender(options, address);
  const copies: { copy: number; ms: number; receipt?: RepeatReceipt }[] = [];
  const noReceipts = () => copies.every((c) => !c.receipt);
  /** Why the run failed although each copy went out (udp only). */
  let stopped: string | undefined;
  for (let n = 1; n <= options.times; n++) {
    using file = await Deno.open(options.file, { read: true });
    out(clientLines.connecting(address));
    const started = performance.now();
    let receipt: RepeatReceipt | undefined;
    try {
      receipt = await sender.send(
        { header: { copy: n, total: options.times, size, name }, file },
        {
          connected: () => out(clientLines.sending(name, n)),
          sent: () => out(clientLines.finishing(name, n)),
        },
      );
    } catch (error) {
      printError(
        `client: Cannot send copy ${n} to ${address}:${options.port} (${options.transport}): ${
          message(error)
        }`,
      );
      return EXIT_FAILURE;
    }
    const ms = performance.now() - started;
    copies.push({ copy: n, ms, receipt });
    out(clientLines.time(name, n, ms));
    if (!receipt) {
      // Only raw udp goes on without one (tcp and snw fail the copy).
      printError(
        `client: copy ${n}: no receipt from ${address}:${options.port} (${options.transport}); its time includes the wait for it`,
      );
      if (n === NO_RECEIVER_COPIES && n < options.times && noReceipts()) {
        stopped =
          `no receipt for any of the first ${n} copies from ${address}:${options.port} (${options.transport}): no receiver there, or every receipt was lost; stopping before the other ${
            options.times - n
          }`;
        break;
      }
    }
  }
  if (!stopped && noReceipts() && options.transport === "udp") {
    stopped = `no receipt for ${
      copies.length === 1
        ? "the only copy"
        : `any of the ${copies.length} copies`
    } from ${address}:${options.port} (${options.transport}): no receiver there, or every receipt was lost`;
  }
  const average = averageMs(copies.map((c) => c.ms));
  if (stopped) printError(`client: ${stopped}`);
  else {
    out(clientLines.average(name, average));
    out(clientLines.done());
  }
  if (options.json) {
    const confirmed = copies.filter((c) => c.receipt);
    printLine(JSON.stringify({
      role: "client",
      transport: options.transport,
      host: options.host,
      address,
      port: options.port,
      file: options.file,
      bytes: size,
      times: options.times,
      copies: copies.map((c) => ({
        copy: c.copy,
        ms: roundMs(c.ms),
        receipt: c.receipt
          ? { received: c.receipt.received, correct: c.receipt.correct }
          : null,
      })),
      averageMs: average ?? null,
      receipts: {
        correct: confirmed.filter((c) => c.receipt?.correct).length,
        incorrect: confirmed.filter((c) => !c.receipt?.correct).length,
        missing: copies.length - confirmed.length,
      },
      ...(stopped ? { failed: stopped } : {}),
    }));
  }
  return stopped ? EXIT_FAILURE : 0;
}
