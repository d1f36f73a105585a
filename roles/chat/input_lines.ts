/**
 * Splits a byte stream (the chat client's stdin) into text lines, with a
 * bound on line length so that a runaway input cannot exhaust memory.
 *
 * @module
 */

/** Longest line kept, in UTF-16 code units; longer lines yield `null`. */
export const MAX_INPUT_LINE = 1024 * 1024;

/**
 * Reads lines (without `\n` or a trailing `\r`) until end of stream. A last
 * line without a line break is yielded too.
 *
 * @example
 * ```ts
 * import { inputLines } from "./input_lines.ts";
 * const bytes = new TextEncoder().encode("list\r\nquit");
 * const reader = ReadableStream.from([bytes]).getReader();
 * for await (const line of inputLines(reader)) console.log(line); // "list", "quit"
 * ```
 *
 * @param reader The byte source (its owner may cancel it to stop early).
 * @param maxLine Longest line kept.
 * @returns The lines; `null` stands for a line that was too long.
 */
export async function* inputLines(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  maxLine = MAX_INPUT_LINE,
): AsyncGenerator<string | null> {
  const decoder = new TextDecoder();
  let pending = "";
  let overlong = false;
  const finishLine = (line: string): string | null => {
    if (overlong) {
      overlong = false;
      return null;
    }
    return line.endsWith("\r") ? line.slice(0, -1) : line;
  };
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    pending += decoder.decode(value, { stream: true });
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      yield finishLine(line);
    }
    if (pending.length > maxLine) {
      overlong = true;
      pending = "";
    }
  }
  pending += decoder.decode();
  if (pending.length > 0 || overlong) yield finishLine(pending);
}
