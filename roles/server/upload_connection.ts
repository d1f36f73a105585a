/**
 * One connection of the upload receiver (SPEC §3): every byte the peer sends
 * until it closes its side is the file. Nothing is ever sent back; the
 * receiver closes the connection once the file is in place, so a client that
 * waits for that close knows its upload is stored.
 *
 * The file is streamed through a fixed 64 KiB buffer into a temporary name
 * next to the final one (`.<n>.file.part-<random>`, see
 * {@linkcode PartialFile}) and renamed to `<n>.file` only when complete, so
 * `<n>.file` never exists half-written. When the transfer fails — no data for
 * longer than the idle timeout, the peer resets the connection, the disk
 * fails, or the server shuts down — the temporary file is cut back to the
 * 5 bytes `ERROR` and renamed into place instead: partial input is
 * discarded, and `<n>.file` still exists for every accepted connection.
 *
 * @module
 */

import { PartialFile } from "../partial_file.ts";
import { writeAll } from "../../transport/byte_io.ts";
import { IdleWatchdog } from "../upload/upload_watchdog.ts";

/** The exact content of a failed upload's file (no newline). */
export const UPLOAD_ERROR_MARKER: Uint8Array = new TextEncoder().encode(
  "ERROR",
);

/**
 * Most bytes read from the socket at a time; one buffer per connection. It
 * starts at {@linkcode FIRST_READ_BYTES} and doubles while reads fill it,
 * so that idle connections (thousands may be open) hold little.
 */
const READ_BUFFER_BYTES = 64 * 1024;

/** The read buffer of a new connection. */
const FIRST_READ_BYTES = 4 * 1024;

/** Why an upload ended with the `ERROR` marker. */
export type UploadFailure = "timeout" | "connection" | "disk" | "shutdown";

/** How one connection ended. */
export type UploadOutcome =
  | {
    /** The file was stored under its final name. */
    readonly kind: "saved";
    /** Its size in bytes. */
    readonly bytes: number;
  }
  | {
    /** The final name holds the `ERROR` marker (when it could be written). */
    readonly kind: "failed";
    /** What went wrong. */
    readonly failure: UploadFailure;
    /** A readable explanation. */
    readonly reason: string;
    /** Whether the marker file was written. */
    readonly marked: boolean;
  };

/** Options of {@linkcode receiveUpload}. */
export interface ReceiveUploadOptions {
  /** Abort after this long without data from the peer, in milliseconds. */
  idleTimeoutMs: number;
  /** Aborts the transfer (server shutdown): the file becomes `ERROR`. */
  signal?: AbortSignal;
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Receives one upload: streams everything the peer sends into `finalPath`
 * and closes the connection. Never throws: the outcome says what happened.
 *
 * @example
 * ```ts ignore
 * const outcome = await receiveUpload(conn, "save/1.file", {
 *   idleTimeoutMs: 10_000,
 * });
 * if (outcome.kind === "failed") console.error(outcome.reason);
 * ```
 *
 * @param conn The accepted connection; closed when this resolves.
 * @param finalPath Where the file goes (`<FILE-DIR>/<n>.file`).
 * @param options The idle timeout and a shutdown signal.
 * @returns How the upload ended.
 */
export async function receiveUpload(
  conn: Deno.Conn,
  finalPath: string,
  options: ReceiveUploadOptions,
): Promise<UploadOutcome> {
  let partial: PartialFile;
  try {
    partial = await PartialFile.create(finalPath);
  } catch (error) {
    closeQuietly(conn);
    const marked = await writeMarkerInPlace(finalPath);
    return {
      kind: "failed",
      failure: "disk",
      reason: `cannot create a file next to "${finalPath}": ${describe(error)}`,
      marked,
    };
  }
  let failure: { failure: UploadFailure; reason: string } | undefined;
  const fail = (kind: UploadFailure, reason: string) => {
    failure ??= { failure: kind, reason };
    closeQuietly(conn);
  };
  const watchdog = new IdleWatchdog(
    options.idleTimeoutMs,
    () =>
      fail(
        "timeout",
        `no data for more than ${options.idleTimeoutMs} ms`,
      ),
  );
  const onAbort = () => fail("shutdown", "the server is shutting down");
  const signal = options.signal;
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    if (signal?.aborted) onAbort();
    let buffer = new Uint8Array(FIRST_READ_BYTES);
    let total = 0;
    while (failure === undefined) {
      let n: number | null;
      watchdog.begin();
      try {
        n = await conn.read(buffer);
      } catch (error) {
        fail("connection", `connection failed: ${describe(error)}`);
        break;
      } finally {
        watchdog.end();
      }
      if (n === null || failure !== undefined) break;
      try {
        await writeAll(partial.file, buffer.subarray(0, n));
      } catch (error) {
        fail("disk", `cannot write "${partial.tempPath}": ${describe(error)}`);
        break;
      }
      total += n;
      if (n === buffer.length && buffer.length < READ_BUFFER_BYTES) {
        buffer = new Uint8Array(buffer.length * 2); // data is streaming in
      }
    }
    // Past this point the transfer is decided; a shutdown no longer changes it.
    signal?.removeEventListener("abort", onAbort);
    if (failure === undefined) {
      try {
        await partial.commit();
        return { kind: "saved", bytes: total };
      } catch (error) {
        failure = {
          failure: "disk",
          reason: `cannot store "${finalPath}": ${describe(error)}`,
        };
      }
    }
    const marked = await markFailed(partial);
    return { kind: "failed", ...failure, marked };
  } finally {
    watchdog[Symbol.dispose]();
    signal?.removeEventListener("abort", onAbort);
    closeQuietly(conn);
    await partial.discard();
  }
}

/**
 * Stores the `ERROR` marker as `finalPath` the way an upload is stored: in a
 * temporary file renamed into place, so that a reader never sees the final
 * name empty or half-written (for a connection that ended before it could
 * be received, such as one reset while queued for accept).
 *
 * @param finalPath Where the marker goes (`<dir>/<n>.file`).
 * @returns Whether it was written (best effort: written in place where no
 *   temporary file can be made).
 */
export async function writeErrorMarker(finalPath: string): Promise<boolean> {
  let partial: PartialFile;
  try {
    partial = await PartialFile.create(finalPath);
  } catch {
    return await writeMarkerInPlace(finalPath);
  }
  return await markFailed(partial);
}

/** Replaces the partial content with the marker and renames it into place. */
async function markFailed(partial: PartialFile): Promise<boolean> {
  try {
    await partial.file.truncate(0);
    await partial.file.seek(0, Deno.SeekMode.Start);
    await writeAll(partial.file, UPLOAD_ERROR_MARKER);
    await partial.commit();
    return true;
  } catch {
    await partial.discard();
    await Deno.remove(partial.tempPath).catch(() => {});
    return await writeMarkerInPlace(partial.finalPath);
  }
}

/**
 * The last resort where no temporary file can be made or renamed: the
 * marker written straight to `finalPath`.
 */
function writeMarkerInPlace(finalPath: string): Promise<boolean> {
  return Deno.writeFile(finalPath, UPLOAD_ERROR_MARKER)
    .then(() => true, () => false);
}
