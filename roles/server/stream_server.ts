/**
 * The streaming GET/PUT/DEL server (SPEC §5, seed 004):
 * `server <port> [-v] [--dir DIR] [--block-size N] [--idle-timeout SEC]
 * [--host ADDR]`.
 *
 * It serves one client at a time, forever: the next client waits in the
 * listen backlog. With `-v` it prints exactly the six lines of SPEC §5 on
 * stdout (and problems with clients on stderr); without `-v` it prints
 * nothing at all. SIGINT/SIGTERM/SIGHUP/SIGQUIT end it with exit status 0 after discarding
 * an upload in progress.
 *
 * @module
 */

import { parseCommandLine, parsePort, printable, UsageError } from "../cli.ts";
import {
  parseBlockSize,
  parseIdleTimeout,
  prepareDirectory,
} from "../stream/stream_options.ts";
import { serveStreamClient, type StreamServerLog } from "./stream_session.ts";
import { onStopSignal } from "../stop_signals.ts";
import { isLostBeforeAccept } from "../../transport/accept_errors.ts";
import { printEventLine, printEventProblem } from "../event_lines.ts";
import { removeAbandonedPartials } from "../partial_file.ts";

/** Options of {@linkcode serveStream}. */
export interface StreamServerOptions {
  /** The listening socket. */
  listener: Deno.Listener;
  /** The directory files are served from. */
  dir: string;
  /** Bytes per block of file data sent. */
  blockSize: number;
  /** Idle timeout in milliseconds (`Infinity` disables it). */
  idleTimeoutMs: number;
  /** The log (no-ops without `-v`). */
  log: StreamServerLog;
  /** Stops the server: closes the listener and the current connection. */
  signal?: AbortSignal;
}

/** A log that prints nothing (the server without `-v`). */
export const silentLog: StreamServerLog = {
  info() {},
  problem() {},
};

/** A log that prints `-v` lines on stdout and problems on stderr. */
export const verboseLog: StreamServerLog = {
  info: (line) => printEventLine(printable(line)),
  problem: (line) => printEventProblem(printable(line)),
};

/**
 * Accepts and serves clients one at a time until `signal` aborts or the
 * listener closes.
 *
 * @param options Listener, directory, block size, timeouts, log, signal.
 */
export async function serveStream(options: StreamServerOptions): Promise<void> {
  const { listener, signal, log } = options;
  const port = (listener.addr as Deno.NetAddr).port;
  const onAbort = () => {
    try {
      listener.close();
    } catch {
      // already closed
    }
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    while (!signal?.aborted) {
      log.info(`server waiting on port ${port}`);
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (signal?.aborted || error instanceof Deno.errors.BadResource) break;
        if (isLostBeforeAccept(error)) continue;
        log.problem(
          `server: accept failed: ${
            error instanceof Error ? error.message : error
          }`,
        );
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      await serveStreamClient(conn, { ...options, signal });
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

function listen(hostname: string, port: number): Deno.Listener {
  try {
    return Deno.listen({ hostname, port });
  } catch (error) {
    const reason = error instanceof Deno.errors.AddrInUse
      ? "address already in use"
      : error instanceof Error
      ? error.message
      : String(error);
    throw new Error(`Cannot listen on ${hostname}:${port}: ${reason}`, {
      cause: error,
    });
  }
}

/**
 * Runs the streaming GET/PUT/DEL server until SIGINT, SIGTERM, SIGHUP or SIGQUIT.
 *
 * @param args `<port> [-v] [--dir DIR] [--block-size N] [--idle-timeout SEC] [--host ADDR]`.
 * @returns The exit code (0 after a signal).
 * @throws {UsageError} For bad arguments.
 */
export async function runStreamServer(args: string[]): Promise<number> {
  const parsed = parseCommandLine({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      verbose: { type: "boolean", short: "v" },
      dir: { type: "string" },
      "block-size": { type: "string" },
      "idle-timeout": { type: "string" },
      host: { type: "string" },
    },
  });
  const { values, positionals } = parsed;
  if (positionals.length > 1) {
    throw new UsageError(`unexpected argument "${positionals[1]}"`);
  }
  const port = parsePort(positionals[0], true);
  const blockSize = parseBlockSize(values["block-size"]);
  const idleTimeoutMs = parseIdleTimeout(values["idle-timeout"]);
  const dir = await prepareDirectory(values.dir ?? ".");
  const listener = listen(values.host ?? "0.0.0.0", port);
  await removeAbandonedPartials(dir);
  const stop = new AbortController();
  const forgetSignals = onStopSignal(() => stop.abort());
  try {
    await serveStream({
      listener,
      dir,
      blockSize,
      idleTimeoutMs,
      log: values.verbose ? verboseLog : silentLog,
      signal: stop.signal,
    });
  } finally {
    forgetSignals();
    try {
      listener.close();
    } catch {
      // closed by the signal
    }
  }
  return 0;
}
