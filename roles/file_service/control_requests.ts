/**
 * The listening side of a control connection (origin server and cache): it
 * serves requests one after another until the peer closes the connection
 * or stays idle for the idle timeout. A failed request is answered with
 * `ERROR <code> <text>` and ends the connection (the peer connects anew).
 *
 * @module
 */

import type { FileServiceMessage } from "../../protocol/file_service.ts";
import { ConnectionLostError } from "../../transport/errors.ts";
import {
  type ControlChannel,
  ControlTimeoutError,
  describeError,
  errorCodeOf,
} from "./file_control.ts";

/** Serves one request; throws to have it answered with `ERROR`. */
export type ControlRequestHandler = (
  request: FileServiceMessage,
) => Promise<void>;

/** Told about a request that failed (for `--log`). */
export type ControlFailureHandler = (
  request: FileServiceMessage | undefined,
  text: string,
) => void;

/**
 * Serves the requests of one control connection and closes it.
 *
 * @param control The accepted connection.
 * @param handle Serves one request.
 * @param onFailure Told about each failed request (`undefined` when the
 *   first request never arrived or was malformed).
 */
export async function serveControlRequests(
  control: ControlChannel,
  handle: ControlRequestHandler,
  onFailure: ControlFailureHandler,
): Promise<void> {
  let request: FileServiceMessage | undefined;
  try {
    for (let served = 0;; served++) {
      request = undefined;
      try {
        request = await control.receive();
      } catch (error) {
        // Between requests, a close or a long silence ends the connection.
        const idle = error instanceof ConnectionLostError ||
          error instanceof ControlTimeoutError;
        if (served > 0 && idle) return;
        throw error;
      }
      await handle(request);
    }
  } catch (error) {
    const text = describeError(error);
    onFailure(request, text);
    await control.send({ type: "error", code: errorCodeOf(error), text })
      .catch(() => {});
  } finally {
    control.close();
  }
}
