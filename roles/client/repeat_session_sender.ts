/**
 * Sends repeat-transfer copies through the {@linkcode Transport} interface
 * (`tcp`, `snw`): per copy a new connection (session), one transfer holding
 * the copy header and then the file bytes, then the receiver's receipt
 * transfer, then close.
 *
 * @module
 */

import {
  decodeRepeatReceipt,
  encodeRepeatHeader,
  REPEAT_RECEIPT_LENGTH,
  RepeatProtocolError,
  type RepeatReceipt,
} from "../../protocol/repeat_protocol.ts";
import type { Transport } from "../../transport/types.ts";
import {
  type CopySender,
  type CopyToSend,
  fileChunks,
  type SendProgress,
} from "./repeat_copy_sender.ts";

async function* withHeader(
  header: Uint8Array,
  body: AsyncIterable<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  yield header;
  yield* body;
}

/** Sends copies over a {@linkcode Transport}. */
export class SessionCopySender implements CopySender {
  readonly #transport: Transport;
  readonly #hostname: string;
  readonly #port: number;
  readonly #timeoutMs: number;

  /**
   * Creates the sender.
   *
   * @param transport The transport.
   * @param hostname The receiver's IP address.
   * @param port The receiver's port.
   * @param timeoutMs Limit for connecting and for waiting for the receipt.
   */
  constructor(
    transport: Transport,
    hostname: string,
    port: number,
    timeoutMs: number,
  ) {
    this.#transport = transport;
    this.#hostname = hostname;
    this.#port = port;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Sends one copy over a new connection.
   *
   * @param copy The copy.
   * @param progress Line printing.
   * @returns The receipt.
   */
  async send(copy: CopyToSend, progress: SendProgress): Promise<RepeatReceipt> {
    const header = encodeRepeatHeader(copy.header);
    const size = copy.header.size;
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = (what: string) => {
      clearTimeout(timer);
      timer = setTimeout(
        () =>
          controller.abort(
            new Error(`${what} took more than ${this.#timeoutMs} ms`),
          ),
        this.#timeoutMs,
      );
    };
    try {
      arm("connecting");
      const conn = await this.#transport.connect({
        hostname: this.#hostname,
        port: this.#port,
        signal: controller.signal,
      });
      clearTimeout(timer);
      try {
        progress.connected();
        await conn.send(
          header.length + size,
          withHeader(header, fileChunks(copy.file, size)),
        );
        progress.sent();
        arm("waiting for the receipt");
        const transfer = await conn.receive({ signal: controller.signal });
        if (transfer.size !== REPEAT_RECEIPT_LENGTH) {
          await transfer.readable.cancel();
          throw new RepeatProtocolError(
            `expected a receipt, got a transfer of ${transfer.size} bytes`,
          );
        }
        const bytes = new Uint8Array(
          await new Response(transfer.readable).arrayBuffer(),
        );
        return decodeRepeatReceipt(bytes);
      } finally {
        clearTimeout(timer);
        await conn[Symbol.asyncDispose]();
      }
    } catch (error) {
      if (controller.signal.aborted) throw controller.signal.reason;
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }
}
