/**
 * The repeat-transfer receiver (SPEC §2, seed 001):
 * `server repeat <port> <reference-file> [--times N] [--transport tcp|udp|snw]
 * [--dir DIR] [--idle-timeout MS] [--json]`.
 *
 * It listens, receives `N` copies of a file (one connection or session per
 * copy), stores each under its own name in `DIR`, compares each with the
 * reference file by SHA-256, times each receipt from connection setup to
 * close, prints the exact lines of the assignment plus the error count and
 * rate, and exits 0 after copy `N` (a measurement with incorrect copies is
 * still a successful run). A stop signal ends the run early: the copy under
 * way is not stored (no temporary file is left), `server: interrupted after
 * <k> of <N> copies` goes to stderr, exit 1. Before the lines it prints where it listens:
 * `Listening on <address>:<port> (<transport>)` — on stdout, or on stderr
 * with `--json`, whose stdout is one JSON summary only.
 *
 * @module
 */

import { basename } from "node:path";
import {
  EXIT_FAILURE,
  parseCommandLine,
  parsePort,
  printable,
  printError,
  UsageError,
} from "../cli.ts";
import { transportByName } from "../../transport/registry.ts";
import type { CopyEvent, CopyReceiver } from "./repeat_copy_receiver.ts";
import {
  CopyStore,
  hashFile,
  type ReferenceFile,
} from "./repeat_copy_store.ts";
import { DatagramCopyReceiver } from "./repeat_datagram_receiver.ts";
import {
  averageMs,
  errorPercent,
  roundMs,
  serverLines,
} from "../repeat/repeat_lines.ts";
import {
  DEFAULT_COPY_DIR,
  parseIdleTimeout,
  parseRepeatTransport,
  parseTimes,
  type RepeatTransportName,
} from "../repeat/repeat_options.ts";
import { SessionCopyReceiver } from "./repeat_session_receiver.ts";
import { type StopWatch, watchStopSignals } from "../stop_signals.ts";
import {
  flushResultLines,
  printEventLine,
  printEventProblem,
  printResultLine,
} from "../event_lines.ts";

/** Parsed arguments of `server repeat`. */
export interface RepeatServerOptions {
  /** Port to listen on (0 picks one). */
  port: number;
  /** The reference file. */
  reference: string;
  /** How many copies. */
  times: number;
  /** The transport. */
  transport: RepeatTransportName;
  /** Where copies are stored. */
  dir: string;
  /** Idle timeout in ms. */
  idleTimeoutMs: number;
  /** Print a JSON summary instead of the lines. */
  json: boolean;
}

/**
 * Parses the arguments of `server repeat`.
 *
 * @param args The arguments after `repeat`.
 * @returns The options.
 * @throws {UsageError} On bad arguments.
 */
export function parseRepeatServerArgs(args: string[]): RepeatServerOptions {
  const parsed = parseCommandLine({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      times: { type: "string" },
      transport: { type: "string" },
      dir: { type: "string" },
      "idle-timeout": { type: "string" },
      json: { type: "boolean" },
    },
  });
  const [port, reference, ...extra] = parsed.positionals;
  if (reference === undefined) throw new UsageError("missing <reference-file>");
  if (extra.length > 0) throw new UsageError(`unexpected "${extra[0]}"`);
  const transport = parseRepeatTransport(parsed.values.transport);
  return {
    port: parsePort(port),
    reference,
    times: parseTimes(parsed.values.times),
    transport,
    dir: parsed.values.dir ?? DEFAULT_COPY_DIR,
    idleTimeoutMs: parseIdleTimeout(parsed.values["idle-timeout"], transport),
    json: parsed.values.json ?? false,
  };
}

function openReceiver(
  options: RepeatServerOptions,
  store: CopyStore,
  reference: ReferenceFile,
): CopyReceiver {
  if (options.transport === "udp") {
    return new DatagramCopyReceiver({
      port: options.port,
      store,
      reference,
      idleTimeoutMs: options.idleTimeoutMs,
      runTimeoutMs: Math.max(5 * options.idleTimeoutMs, 5000),
      fallbackName: basename(options.reference),
    });
  }
  return new SessionCopyReceiver({
    transport: transportByName(options.transport, {
      reportGiveUp: printEventProblem,
    }),
    port: options.port,
    store,
    reference,
    idleTimeoutMs: options.idleTimeoutMs,
  });
}

/**
 * Runs the repeat-transfer receiver.
 *
 * @param args The service's command-line arguments.
 * @returns The exit code: 0 after the run (whatever its error rate), 1 when
 *   the reference cannot be read, the port cannot be bound, or a stop
 *   signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) ended the run early.
 */
export async function runRepeatServer(args: string[]): Promise<number> {
  const options = parseRepeatServerArgs(args);
  // A stop signal ends the run where it is: the copy under way is not
  // stored (its temporary file is removed), nothing more is printed about
  // it, and the run counts as failed.
  using stop = watchStopSignals();
  return await runUntil(options, stop);
}

async function runUntil(
  options: RepeatServerOptions,
  stop: StopWatch,
): Promise<number> {
  const stopped = () => stop.signal !== undefined;
  let reference: ReferenceFile;
  try {
    const hashing = hashFile(options.reference);
    hashing.catch(() => {}); // after a stop it settles unread
    const hashed = await Promise.race([hashing, stop.stopped]);
    if (hashed === undefined) {
      printError("server: interrupted before the run started");
      return EXIT_FAILURE;
    }
    reference = hashed;
  } catch (error) {
    printError(
      `server: Cannot read reference file "${options.reference}": ${
        error instanceof Error ? error.message : String(error)
      }`,
    );
    return EXIT_FAILURE;
  }
  const store = await CopyStore.create(options.dir, options.times);
  const out = options.json ? () => {} : printEventLine;
  await using receiver = openReceiver(options, store, reference);
  const where =
    `Listening on ${receiver.addr.hostname}:${receiver.addr.port} (${options.transport})`;
  (options.json ? printEventProblem : printEventLine)(where);
  out(serverLines.ready());

  const events: CopyEvent[] = [];
  let displayName = basename(options.reference);
  let named = false;
  const copies = receiver.copies(options.times, {
    started: (n, name) => stopped() || out(serverLines.starting(name, n)),
    finished: (n, name) => stopped() || out(serverLines.finishing(name, n)),
    warn: (message) =>
      stopped() || printEventProblem(`server: ${printable(message)}`),
  });
  while (true) {
    const pending = copies.next();
    pending.catch(() => {}); // after a stop it settles unread
    const next = await Promise.race([pending, stop.stopped]);
    if (next === undefined) {
      await store.close();
      // Queued behind the warnings printed before it (the exit waits 2 s).
      printEventProblem(
        `server: interrupted after ${events.length} of ${options.times} copies`,
      );
      return EXIT_FAILURE;
    }
    if (next.done) break;
    const event = next.value;
    events.push(event);
    if (event.kind === "lost") {
      out(serverLines.lost(event.name, event.number));
      continue;
    }
    const copy = event.copy;
    if (!named) {
      displayName = copy.name;
      named = true;
    }
    out(serverLines.time(copy.name, copy.number, copy.ms));
  }

  const times = events.flatMap((e) => e.kind === "received" ? [e.copy.ms] : []);
  const average = averageMs(times);
  const incorrect =
    events.filter((e) => e.kind === "lost" || !e.copy.correct).length;
  // The summary is the run's result: never dropped for a slow reader.
  const result = options.json ? () => {} : printResultLine;
  result(serverLines.average(displayName, average));
  result(serverLines.errors(incorrect, options.times));
  result(serverLines.done());
  if (options.json) {
    printResultLine(JSON.stringify({
      role: "server",
      transport: options.transport,
      port: receiver.addr.port,
      reference: options.reference,
      referenceBytes: reference.size,
      dir: options.dir,
      times: options.times,
      copies: events.map((e) =>
        e.kind === "lost"
          ? { copy: e.number, name: e.name, lost: true, correct: false }
          : {
            copy: e.copy.number,
            name: e.copy.name,
            announced: e.copy.announced,
            received: e.copy.received,
            ms: roundMs(e.copy.ms),
            correct: e.copy.correct,
            storedAs: e.copy.storedAs ?? null,
            problem: e.copy.problem ?? null,
          }
      ),
      averageMs: average ?? null,
      incorrect,
      errorPercent: errorPercent(incorrect, options.times),
    }));
  }
  // Wait for a slow reader to take it (stdout only: warnings queued on an
  // unread stderr get the exit's 2 s), or for a stop signal.
  await Promise.race([flushResultLines(), stop.stopped]);
  return 0;
}
