/**
 * Command-line options shared by the streaming GET/PUT/DEL server and
 * client: `--block-size`, `--idle-timeout` and `--dir`, with their defaults
 * and validation.
 *
 * @module
 */

import { MAX_TIMEOUT_SEC, parseDurationMs, UsageError } from "../cli.ts";
import { DEFAULT_BLOCK_SIZE } from "../../protocol/stream_protocol.ts";

/** Default idle timeout in seconds: a peer silent this long is dropped. */
export const DEFAULT_IDLE_TIMEOUT_SEC = 30;

/** Largest accepted `--block-size` (16 MiB). */
export const MAX_BLOCK_SIZE = 16 * 1024 * 1024;

/**
 * Parses `--block-size`.
 *
 * @example
 * ```ts
 * import { parseBlockSize } from "./stream_options.ts";
 * console.log(parseBlockSize(undefined), parseBlockSize("65536")); // 1024 65536
 * ```
 *
 * @param text The option value, or `undefined` for the default (1024).
 * @returns Bytes per block.
 * @throws {UsageError} When not an integer in 1..16 MiB.
 */
export function parseBlockSize(text: string | undefined): number {
  if (text === undefined) return DEFAULT_BLOCK_SIZE;
  const value = /^\d{1,9}$/.test(text) ? Number(text) : NaN;
  if (!(value >= 1 && value <= MAX_BLOCK_SIZE)) {
    throw new UsageError(
      `invalid --block-size "${text}": must be an integer in 1-${MAX_BLOCK_SIZE}`,
    );
  }
  return value;
}

/**
 * Parses `--idle-timeout` (seconds, fractions allowed; 0 disables it).
 *
 * @example
 * ```ts
 * import { parseIdleTimeout } from "./stream_options.ts";
 * console.log(parseIdleTimeout(undefined), parseIdleTimeout("1.5")); // 30000 1500
 * ```
 *
 * @param text The option value, or `undefined` for the default (30 s).
 * @param option The option's name, for the error (another timeout in
 * seconds, such as `--ready-timeout`, parses the same way).
 * @returns Milliseconds; `Infinity` when disabled.
 * @throws {UsageError} When not a non-negative number.
 */
export function parseIdleTimeout(
  text: string | undefined,
  option = "--idle-timeout",
): number {
  if (text === undefined) return DEFAULT_IDLE_TIMEOUT_SEC * 1000;
  const ms = parseDurationMs(text, "s");
  if (ms === undefined) {
    throw new UsageError(
      `invalid ${option} "${text}": must be a number of seconds from 0.001 to ${MAX_TIMEOUT_SEC} (0 = no bound)`,
    );
  }
  return ms === 0 ? Infinity : ms;
}

/**
 * Makes `dir` when it is missing (as the other roles do with theirs) and
 * checks that it is a directory.
 *
 * @param dir The directory files are served from or stored in.
 * @returns `dir`.
 * @throws {Error} When it cannot be made or is not a directory.
 */
export async function prepareDirectory(dir: string): Promise<string> {
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (cause) {
    if (!(cause instanceof Deno.errors.AlreadyExists)) {
      throw new Error(
        `Cannot use directory "${dir}": ${
          cause instanceof Error ? cause.message : String(cause)
        }`,
        { cause },
      );
    }
  }
  const info = await Deno.stat(dir);
  if (!info.isDirectory) {
    throw new Error(`Cannot use directory "${dir}": not a directory`);
  }
  return dir;
}
