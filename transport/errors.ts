/**
 * Error classes of the transports, for conditions callers catch.
 *
 * @module
 */

/** The peer stopped making progress for the transport's timeout. */
export class TransferTimeoutError extends Error {
  /**
   * Creates the instance.
   *
   * @param message What happened; for SNW exactly one of the SPEC §6 lines.
   * @param options Standard error options.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TransferTimeoutError";
  }
}

/** A source yielded more or fewer bytes than the size announced for it. */
export class TransferSizeError extends RangeError {
  /**
   * Creates the instance.
   *
   * @param announced The size announced to the peer.
   * @param actual The number of bytes the source yielded (at least).
   */
  constructor(readonly announced: number, readonly actual: number) {
    super(
      `Cannot send transfer: source ${
        actual > announced ? "yielded more than" : "ended before"
      } the announced ${announced} bytes (got ${actual})`,
    );
    this.name = "TransferSizeError";
  }
}

/** The peer closed or reset the connection in the middle of a transfer. */
export class ConnectionLostError extends Error {
  /**
   * Creates the instance.
   *
   * @param message What was interrupted.
   * @param options Standard error options.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectionLostError";
  }
}
