/**
 * The upload client's transfer (SPEC §3): stream the file's bytes — nothing
 * else — and close gracefully.
 *
 * The file is read in 256 KiB chunks and written to the socket; each socket
 * write call is watched by an {@linkcode IdleWatchdog}, so when the server stops
 * taking data (its receive buffer and ours are full) for longer than the
 * timeout the connection is aborted and the upload fails. After the last
 * byte the client half-closes (`closeWrite`, a TCP FIN) and waits, within the
 * same timeout, for the server to close its side: the upload receiver closes
 * only after the file is stored, so exit code 0 means the server has it.
 *
 * @module
 */

import { IdleWatchdog } from "../upload/upload_watchdog.ts";
import { UploadError } from "./upload_connect.ts";

/** Bytes read from the file per socket write. */
const FILE_CHUNK_BYTES = 256 * 1024;

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Sends everything `source` yields over `conn`, half-closes and waits for the
 * server's close. Closes `conn` in every case.
 *
 * @example
 * ```ts ignore
 * using file = await Deno.open("a.bin");
 * const bytes = await sendUpload(conn, file, 10_000);
 * ```
 *
 * @param conn The connection to the receiver.
 * @param source The file (anything with Deno's `read(p)` shape).
 * @param timeoutMs How long the server may take no data, and how long it may
 *   take to close after the last byte, in milliseconds.
 * @returns The number of bytes sent.
 * @throws {UploadError} On a timeout, a lost connection or a read error.
 */
export async function sendUpload(
  conn: Deno.TcpConn,
  source: { read(p: Uint8Array): Promise<number | null> },
  timeoutMs: number,
): Promise<number> {
  let timedOut = false;
  const watchdog = new IdleWatchdog(timeoutMs, () => {
    timedOut = true;
    try {
      conn.close();
    } catch {
      // already closed
    }
  });
  let sent = 0;
  try {
    const chunk = new Uint8Array(FILE_CHUNK_BYTES);
    while (true) {
      let n: number | null;
      try {
        n = await source.read(chunk);
      } catch (error) {
        throw new UploadError(`cannot read the file: ${describe(error)}`, {
          cause: error,
        });
      }
      if (n === null) break;
      let offset = 0;
      while (offset < n) {
        // Progress is any write the socket accepts, however small.
        watchdog.begin();
        try {
          offset += await conn.write(chunk.subarray(offset, n));
        } catch (error) {
          if (timedOut) {
            throw new UploadError(
              `no send progress for ${timeoutMs} ms after ${
                sent + offset
              } bytes; connection aborted`,
            );
          }
          throw new UploadError(
            `connection lost after ${sent + offset} bytes: ${describe(error)}`,
            { cause: error },
          );
        } finally {
          watchdog.end();
        }
      }
      sent += n;
    }
    await finishGracefully(conn, watchdog, () => timedOut, timeoutMs);
    return sent;
  } finally {
    watchdog[Symbol.dispose]();
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

/** Half-closes and waits for the server's FIN, discarding anything it sends. */
async function finishGracefully(
  conn: Deno.TcpConn,
  watchdog: IdleWatchdog,
  timedOut: () => boolean,
  timeoutMs: number,
): Promise<void> {
  try {
    await conn.closeWrite();
  } catch (error) {
    throw new UploadError(
      `cannot close the connection: ${describe(error)}`,
      { cause: error },
    );
  }
  const sink = new Uint8Array(4096);
  while (true) {
    watchdog.begin();
    try {
      if (await conn.read(sink) === null) return;
    } catch (error) {
      if (timedOut()) {
        throw new UploadError(
          `the server did not close the connection within ${timeoutMs} ms after the last byte`,
        );
      }
      throw new UploadError(
        `connection lost after the last byte: ${describe(error)}`,
        { cause: error },
      );
    } finally {
      watchdog.end();
    }
  }
}
