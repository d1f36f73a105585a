/**
 * The exact output lines of the repeat transfer (SPEC §2), for both the
 * receiver (`server repeat`) and the sender (`client repeat`), and the
 * arithmetic behind them: English ordinals, millisecond formatting, the
 * average of the printed times and the error rate.
 *
 * The file name is quoted with the typographic quotes “ (U+201C) and
 * ” (U+201D), byte for byte as the assignment prints them.
 *
 * @module
 */

import { printable } from "../cli.ts";

/** Opening typographic quote (U+201C). */
export const OPEN_QUOTE = "\u201c";
/** Closing typographic quote (U+201D). */
export const CLOSE_QUOTE = "\u201d";

/**
 * The English ordinal of a positive integer.
 *
 * @example
 * ```ts
 * import { ordinal } from "./repeat_lines.ts";
 * import { equal } from "node:assert/strict";
 * equal(ordinal(1), "1st");
 * equal(ordinal(12), "12th");
 * equal(ordinal(22), "22nd");
 * equal(ordinal(113), "113th");
 * ```
 *
 * @param n The number (1, 2, 3, …).
 * @returns `1st`, `2nd`, `3rd`, `4th`, `11th`, `21st`, …
 */
export function ordinal(n: number): string {
  const lastTwo = n % 100;
  if (lastTwo >= 11 && lastTwo <= 13) return `${n}th`;
  switch (n % 10) {
    case 1:
      return `${n}st`;
    case 2:
      return `${n}nd`;
    case 3:
      return `${n}rd`;
    default:
      return `${n}th`;
  }
}

/**
 * Rounds a duration to the microsecond, the precision every printed time
 * has.
 *
 * @param ms A duration in milliseconds.
 * @returns The duration rounded to 3 decimals.
 */
export function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/**
 * Formats a duration as printed: milliseconds with 3 decimals.
 *
 * @param ms A duration in milliseconds.
 * @returns For example `12.345`.
 */
export function formatMs(ms: number): string {
  return roundMs(ms).toFixed(3);
}

/**
 * The average of printed times: the mean of the *rounded* values, so the
 * printed average is exactly the mean of the printed per-copy times (to its
 * own rounding).
 *
 * @param times Per-copy durations in ms.
 * @returns The mean rounded to 3 decimals, or `undefined` for no times.
 */
export function averageMs(times: readonly number[]): number | undefined {
  if (times.length === 0) return undefined;
  let sum = 0;
  for (const ms of times) sum += roundMs(ms);
  return roundMs(sum / times.length);
}

/**
 * The error rate as a percentage with at most 2 decimals.
 *
 * @param incorrect Incorrect copies.
 * @param total All copies.
 * @returns For example `0`, `3`, `33.33`.
 */
export function errorPercent(incorrect: number, total: number): number {
  return total === 0 ? 0 : Math.round((incorrect / total) * 10000) / 100;
}

/** A name in quotes, its control characters escaped (it may be a peer's). */
function quoted(name: string): string {
  return `${OPEN_QUOTE}${printable(name)}${CLOSE_QUOTE}`;
}

/** The receiver's lines (SPEC §2). */
export const serverLines = {
  /** @returns `I am ready for any client side request` */
  ready: (): string => "I am ready for any client side request",
  /**
   * @param name File name.
   * @param n Copy number.
   * @returns The "starting receiving" line.
   */
  starting: (name: string, n: number): string =>
    `I am starting receiving file ${quoted(name)} for the ${ordinal(n)} time`,
  /**
   * @param name File name.
   * @param n Copy number.
   * @returns The "finishing receiving" line.
   */
  finishing: (name: string, n: number): string =>
    `I am finishing receiving file ${quoted(name)} for the ${ordinal(n)} time`,
  /**
   * @param name File name.
   * @param n Copy number.
   * @param ms Duration.
   * @returns The per-copy time line.
   */
  time: (name: string, n: number, ms: number): string =>
    `The time used in millisecond to receive ${quoted(name)} for ${
      ordinal(n)
    } time is: ${formatMs(ms)}`,
  /**
   * @param name File name.
   * @param n Copy number.
   * @returns The line for a copy of which not one datagram arrived (udp).
   */
  lost: (name: string, n: number): string =>
    `I never received file ${quoted(name)} for the ${ordinal(n)} time`,
  /**
   * @param name File name.
   * @param ms The average, or `undefined` when no copy was received.
   * @returns The average line.
   */
  average: (name: string, ms: number | undefined): string =>
    `The average time to receive file ${quoted(name)} in millisecond is: ${
      ms === undefined ? "n/a" : formatMs(ms)
    }`,
  /**
   * @param incorrect Incorrect copies.
   * @param total All copies.
   * @returns `<k> of <N> incorrect (<p>%)`
   */
  errors: (incorrect: number, total: number): string =>
    `${incorrect} of ${total} incorrect (${errorPercent(incorrect, total)}%)`,
  /** @returns `I am done` */
  done: (): string => "I am done",
} as const;

/** The sender's lines (SPEC §2). */
export const clientLines = {
  /**
   * @param address The server's IP address.
   * @returns The connecting line.
   */
  connecting: (address: string): string =>
    `I am connecting to server side: ${address}`,
  /**
   * @param name File name.
   * @param n Copy number.
   * @returns The "sending" line.
   */
  sending: (name: string, n: number): string =>
    `I am sending file ${quoted(name)} for the ${ordinal(n)} time`,
  /**
   * @param name File name.
   * @param n Copy number.
   * @returns The "finishing sending" line.
   */
  finishing: (name: string, n: number): string =>
    `I am finishing sending file ${quoted(name)} for the ${ordinal(n)} time`,
  /**
   * @param name File name.
   * @param n Copy number.
   * @param ms Duration.
   * @returns The per-copy time line.
   */
  time: (name: string, n: number, ms: number): string =>
    `The time used in millisecond to send ${quoted(name)} for ${
      ordinal(n)
    } time is: ${formatMs(ms)}`,
  /**
   * @param name File name.
   * @param ms The average.
   * @returns The average line.
   */
  average: (name: string, ms: number | undefined): string =>
    `The average time to send file ${quoted(name)} in millisecond is: ${
      ms === undefined ? "n/a" : formatMs(ms)
    }`,
  /** @returns `I am done` */
  done: (): string => "I am done",
} as const;
