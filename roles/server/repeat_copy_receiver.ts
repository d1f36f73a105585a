/**
 * What the repeat-transfer receiver needs from "something that receives
 * copies", so its main loop is the same over every transport: the
 * {@linkcode Transport} interface (`tcp`, `snw`) in
 * `repeat_session_receiver.ts` and raw UDP in
 * `repeat_datagram_receiver.ts`.
 *
 * @module
 */

/** The result of one copy that (at least partly) arrived. */
export interface ReceivedCopy {
  /** The copy number, from 1. */
  number: number;
  /** The file name the sender gave. */
  name: string;
  /** The file size the sender announced. */
  announced: number;
  /** File bytes received. */
  received: number;
  /** Time from connection setup (first datagram) to close, in ms. */
  ms: number;
  /** Whether the stored copy equals the reference file. */
  correct: boolean;
  /** The copy's file name in the store, when stored. */
  storedAs?: string;
  /** Why the copy is incorrect beyond its content, if it is known. */
  problem?: string;
}

/** One copy of the run, in order of copy numbers. */
export type CopyEvent =
  | { kind: "received"; copy: ReceivedCopy }
  | { kind: "lost"; number: number; name: string };

/** Called while a copy is being received, to print its lines in time. */
export interface CopyProgress {
  /**
   * The copy's header arrived.
   *
   * @param n The copy number.
   * @param name The file name.
   */
  started(n: number, name: string): void;
  /**
   * The copy's bytes are stored and compared (before the receipt is sent
   * and the connection closed).
   *
   * @param n The copy number.
   * @param name The file name.
   */
  finished(n: number, name: string): void;
  /**
   * Something went wrong that does not stop the run.
   *
   * @param message One line.
   */
  warn(message: string): void;
}

/** Receives the copies of one run. */
export interface CopyReceiver extends AsyncDisposable {
  /** The bound address. */
  readonly addr: Deno.NetAddr;
  /**
   * Receives copies 1 to `total`, one at a time.
   *
   * @param total How many copies the run has.
   * @param progress Line printing and warnings.
   * @returns The copies in order; ends after copy `total`.
   */
  copies(total: number, progress: CopyProgress): AsyncGenerator<CopyEvent>;
}
