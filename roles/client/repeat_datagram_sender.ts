/**
 * Sends repeat-transfer copies over raw UDP (`transport/udp_raw.ts`): per
 * copy a new UDP socket, the file's chunks back to back (every datagram
 * repeating the copy header as metadata), END, then a bounded wait for the
 * receiver's receipt datagram, then close. Nothing is retransmitted.
 *
 * @module
 */

import {
  decodeRepeatReceipt,
  encodeRepeatHeader,
  RepeatProtocolError,
  type RepeatReceipt,
} from "../../protocol/repeat_protocol.ts";
import { randomStreamId, sendRawTransfer } from "../../transport/udp_raw.ts";
import {
  type CopySender,
  type CopyToSend,
  fileChunks,
  type SendProgress,
} from "./repeat_copy_sender.ts";

/** Sends copies over raw UDP. */
export class DatagramCopySender implements CopySender {
  /** The stream id of this run (every copy carries it). */
  readonly stream: number = randomStreamId();
  readonly #hostname: string;
  readonly #port: number;
  readonly #replyTimeoutMs: number;

  /**
   * Creates the sender.
   *
   * @param hostname The receiver's IP address.
   * @param port The receiver's UDP port.
   * @param replyTimeoutMs How long to wait for each receipt.
   */
  constructor(hostname: string, port: number, replyTimeoutMs: number) {
    this.#hostname = hostname;
    this.#port = port;
    this.#replyTimeoutMs = replyTimeoutMs;
  }

  /**
   * Sends one copy from a new socket.
   *
   * @param copy The copy.
   * @param progress Line printing.
   * @returns The receipt, or `undefined` when it did not arrive in time.
   */
  async send(
    copy: CopyToSend,
    progress: SendProgress,
  ): Promise<RepeatReceipt | undefined> {
    progress.connected();
    const result = await sendRawTransfer({
      hostname: this.#hostname,
      port: this.#port,
      stream: this.stream,
      seq: copy.header.copy,
      meta: encodeRepeatHeader(copy.header),
      size: copy.header.size,
      source: fileChunks(copy.file, copy.header.size),
      replyTimeoutMs: this.#replyTimeoutMs,
      onSent: () => progress.sent(),
    });
    if (!result.reply) return undefined;
    try {
      const receipt = decodeRepeatReceipt(result.reply);
      return receipt.copy === copy.header.copy ? receipt : undefined;
    } catch (error) {
      if (error instanceof RepeatProtocolError) return undefined;
      throw error;
    }
  }
}
