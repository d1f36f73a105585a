/**
 * The upload client's transfer (SPEC §3): stream the file's bytes — nothing
 * else — and close gracefully.
 *
 * The file is read in 256 KiB chunks and written to the socket in 64 KiB
 * pieces; each write is watched by an {@linkcode IdleWatchdog}, so when the
 * server stops taking data (its receive buffer and ours are full) for longer
 * than the timeout the upload fails. After the last byte the client
 * half-closes (a TCP `FIN`) and waits, within the same timeout, for the
 * server to close its side: the upload receiver closes only after the file is
 * stored, so exit code 0 means the server has it.
 *
 * A failure after the connection was made (a timeout, a read error, a stop
 * signal) resets the connection instead (`RST`): the receiver must not take
 * the bytes sent so far for the whole file (see `upload_socket.ts`).
 *
 * @module
 */

import { IdleWatchdog } from "../upload/upload_watchdog.ts";
import { UploadError } from "./upload_connect.ts";
import { describeSocketError, type UploadSocket } from "./upload_socket.ts";

/** Bytes read from the file per read. */
const FILE_CHUNK_BYTES = 256 * 1024;

/** Bytes per socket write: a write that waits is a wait for the server. */
const WRITE_BYTES = 64 * 1024;

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Sends everything `source` yields over `conn`, half-closes and waits for the
 * server's close. On any failure the connection is reset, never closed
 * gracefully.
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
  conn: UploadSocket,
  source: { read(p: Uint8Array): Promise<number | null> },
  timeoutMs: number,
): Promise<number> {
  let timedOut = false;
  using watchdog = new IdleWatchdog(timeoutMs, () => {
    timedOut = true;
    conn.reset();
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
      for (let offset = 0; offset < n; offset += WRITE_BYTES) {
        const end = Math.min(n, offset + WRITE_BYTES);
        watchdog.begin();
        try {
          await conn.write(chunk.subarray(offset, end));
        } catch (error) {
          if (timedOut) {
            throw new UploadError(
              `no send progress for ${timeoutMs} ms after ${
                sent + offset
              } bytes; connection aborted`,
            );
          }
          throw new UploadError(
            `connection lost after ${sent + offset} bytes: ${
              describeSocketError(error)
            }`,
            { cause: error },
          );
        } finally {
          watchdog.end();
        }
      }
      sent += n;
    }
    watchdog.begin();
    try {
      await conn.finish();
    } catch (error) {
      if (timedOut) {
        throw new UploadError(
          `the server did not close the connection within ${timeoutMs} ms after the last byte`,
        );
      }
      throw new UploadError(
        `connection lost after the last byte: ${describeSocketError(error)}`,
        { cause: error },
      );
    } finally {
      watchdog.end();
    }
    return sent;
  } catch (error) {
    conn.reset();
    throw error;
  }
}
