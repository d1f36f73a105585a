/**
 * Helpers of the repeat-transfer tests: start `server repeat` and wait for
 * its port, the expected exact lines of both sides, and checks on the
 * printed times.
 *
 * @module
 */

import { equal, ok } from "node:assert/strict";
import { type RoleProcess, startRole } from "../_helpers/role_process.ts";
import { ordinal } from "../../roles/repeat/repeat_lines.ts";

/** A `<ms>` value as printed: digits, a point, three decimals. */
export const MS = String.raw`\d+\.\d{3}`;

/** Escapes text for a regular expression. */
function esc(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** A started `server repeat` and its port. */
export interface RepeatServer extends AsyncDisposable {
  /** The process. */
  process: RoleProcess;
  /** The port it listens on (TCP or UDP). */
  port: number;
}

/**
 * Starts `server repeat 0 <reference> ...args` and waits for its listening
 * line (stdout, or stderr with `--json`).
 *
 * @param reference The reference file.
 * @param args Further arguments.
 * @param options Working directory and environment.
 * @returns The server; `await using` kills it.
 */
export async function startRepeatServer(
  reference: string,
  args: string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<RepeatServer> {
  const process = startRole("server", ["repeat", "0", reference, ...args], {
    cwd: options.cwd,
    env: options.env,
  });
  try {
    const stream = args.includes("--json") ? process.stderr : process.stdout;
    const match = await stream.waitFor(
      /Listening on [\d.:a-f]+:(\d+) \((tcp|udp|snw)\)\n/,
      20_000,
    );
    return {
      process,
      port: Number(match[1]),
      [Symbol.asyncDispose]: () => process[Symbol.asyncDispose](),
    };
  } catch (error) {
    await process[Symbol.asyncDispose]();
    throw error;
  }
}

/**
 * The receiver's expected stdout for `times` copies that all arrived, as
 * regular expressions (one per line).
 *
 * @param transport The transport name in the listening line.
 * @param name The file name.
 * @param times Copies.
 * @param incorrect Expected incorrect copies.
 * @returns One pattern per line.
 */
export function expectedServerLines(
  transport: string,
  name: string,
  times: number,
  incorrect = 0,
): RegExp[] {
  const q = `\u201c${esc(name)}\u201d`;
  const lines = [
    String.raw`Listening on 0\.0\.0\.0:\d+ \(${transport}\)`,
    "I am ready for any client side request",
  ];
  for (let n = 1; n <= times; n++) {
    const nth = ordinal(n);
    lines.push(
      `I am starting receiving file ${q} for the ${nth} time`,
      `I am finishing receiving file ${q} for the ${nth} time`,
      `The time used in millisecond to receive ${q} for ${nth} time is: ${MS}`,
    );
  }
  const percent = Math.round(incorrect / times * 10000) / 100;
  lines.push(
    `The average time to receive file ${q} in millisecond is: ${MS}`,
    esc(`${incorrect} of ${times} incorrect (${percent}%)`),
    "I am done",
  );
  return lines.map((line) => new RegExp(`^${line}$`));
}

/**
 * The sender's expected stdout for `times` copies.
 *
 * @param address The server address in the connecting line.
 * @param name The file name.
 * @param times Copies.
 * @returns One pattern per line.
 */
export function expectedClientLines(
  address: string,
  name: string,
  times: number,
): RegExp[] {
  const q = `\u201c${esc(name)}\u201d`;
  const lines: string[] = [];
  for (let n = 1; n <= times; n++) {
    const nth = ordinal(n);
    lines.push(
      esc(`I am connecting to server side: ${address}`),
      `I am sending file ${q} for the ${nth} time`,
      `I am finishing sending file ${q} for the ${nth} time`,
      `The time used in millisecond to send ${q} for ${nth} time is: ${MS}`,
    );
  }
  lines.push(
    `The average time to send file ${q} in millisecond is: ${MS}`,
    "I am done",
  );
  return lines.map((line) => new RegExp(`^${line}$`));
}

/**
 * Asserts that `stdout` has exactly the expected lines.
 *
 * @param stdout The output.
 * @param expected One pattern per line.
 * @param what Names the output in messages.
 */
export function assertLines(
  stdout: string,
  expected: RegExp[],
  what: string,
): void {
  const lines = stdout.split("\n");
  equal(lines.pop(), "", `${what}: output ends with a newline`);
  for (let i = 0; i < Math.max(lines.length, expected.length); i++) {
    ok(
      lines[i] !== undefined && expected[i]?.test(lines[i]),
      `${what} line ${i + 1}: ${JSON.stringify(lines[i])} !~ ${expected[i]}`,
    );
  }
}

/**
 * Asserts that the printed average equals the mean of the printed per-copy
 * times (to the printed precision), and returns the per-copy times.
 *
 * @param stdout The output of either side.
 * @returns The per-copy times as printed.
 */
export function assertAverageIsMean(stdout: string): number[] {
  const times = [...stdout.matchAll(/ time is: (\d+\.\d{3})$/gm)].map((m) =>
    Number(m[1])
  );
  const average = stdout.match(/ in millisecond is: (\d+\.\d{3})$/m);
  ok(times.length > 0 && average, "per-copy times and an average printed");
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  ok(
    Math.abs(mean - Number(average[1])) <= 0.0005 + 1e-9,
    `average ${average[1]} is the mean ${mean} of ${times.length} times`,
  );
  return times;
}
