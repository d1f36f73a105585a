/**
 * What the repeat-transfer sender needs from "something that sends one
 * copy", so its main loop is the same over every transport: the
 * {@linkcode Transport} interface (`tcp`, `snw`) in
 * `repeat_session_sender.ts` and raw UDP in `repeat_datagram_sender.ts`.
 *
 * @module
 */

import type {
  RepeatHeader,
  RepeatReceipt,
} from "../../protocol/repeat_protocol.ts";

/** Bytes read from the file per call. */
const FILE_READ = 256 * 1024;

/** One copy to send. */
export interface CopyToSend {
  /** The copy header (copy number, total, size, name). */
  header: RepeatHeader;
  /** The open file, positioned at its start. */
  file: Deno.FsFile;
}

/** Called while a copy is sent, to print its lines in time. */
export interface SendProgress {
  /** The connection (session, socket) is set up; data follows. */
  connected(): void;
  /** All data is handed over; the receipt and the close follow. */
  sent(): void;
}

/** Sends copies, each over a new connection, session or socket. */
export interface CopySender {
  /**
   * Sends one copy: set up, send header and bytes, wait for the receipt,
   * close.
   *
   * @param copy The copy.
   * @param progress Line printing.
   * @returns The receiver's receipt, or `undefined` when none arrived
   *   (raw UDP only).
   */
  send(
    copy: CopyToSend,
    progress: SendProgress,
  ): Promise<RepeatReceipt | undefined>;
}

/**
 * Reads a file in large blocks (a fresh buffer per block, so a transport may
 * hold on to a chunk), stopping at `size` bytes.
 *
 * @param file The open file.
 * @param size How many bytes to yield at most.
 * @returns The blocks.
 */
export async function* fileChunks(
  file: Deno.FsFile,
  size: number,
): AsyncGenerator<Uint8Array> {
  let left = size;
  while (left > 0) {
    const buffer = new Uint8Array(Math.min(FILE_READ, left));
    const n = await file.read(buffer);
    if (n === null) return;
    left -= n;
    yield buffer.subarray(0, n);
  }
}
