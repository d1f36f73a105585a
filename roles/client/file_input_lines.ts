/**
 * Reads the file-service client's input line by line: from a terminal or a
 * pipe alike, `\r\n` or `\n`, a last line without a line break included.
 *
 * @module
 */

/** The longest line taken as a command, in characters (64 Ki). */
export const MAX_LINE_CHARS = 64 * 1024;

/**
 * Stands, in {@linkcode inputLines}, for a line longer than its bound: the
 * line is dropped as it arrives, never held whole.
 */
export const LINE_TOO_LONG: unique symbol = Symbol("line too long");

/**
 * Yields the lines of a byte stream (without their line breaks); a line
 * longer than `maxChars` is dropped and yields {@linkcode LINE_TOO_LONG}.
 *
 * @example
 * ```ts
 * import { inputLines } from "./file_input_lines.ts";
 * const input = ReadableStream.from([new TextEncoder().encode("get a\r\nqu"), new TextEncoder().encode("it")]);
 * for await (const line of inputLines(input)) console.log(line); // "get a", "quit"
 * ```
 *
 * @param input The bytes (stdin).
 * @param maxChars The longest line kept.
 * @returns The lines, until the end of the input.
 */
export async function* inputLines(
  input: ReadableStream<Uint8Array>,
  maxChars: number = MAX_LINE_CHARS,
): AsyncGenerator<string | typeof LINE_TOO_LONG> {
  const decoder = new TextDecoder();
  let pending = "";
  /** The line under way is over the bound: drop it up to its line break. */
  let dropping = false;
  const strip = (line: string) =>
    line.endsWith("\r") ? line.slice(0, -1) : line;
  const take = (line: string) => {
    const stripped = strip(line);
    return dropping || stripped.length > maxChars ? LINE_TOO_LONG : stripped;
  };
  for await (const chunk of input) {
    pending += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const line = take(pending.slice(0, newline));
      dropping = false;
      pending = pending.slice(newline + 1);
      yield line;
    }
    if (pending.length > maxChars + 1) { // + 1: a "\r" before the "\n"
      dropping = true;
      pending = "";
    }
  }
  pending += decoder.decode();
  if (dropping || pending !== "") yield take(pending);
}
