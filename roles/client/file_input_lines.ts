/**
 * Reads the file-service client's input line by line: from a terminal or a
 * pipe alike, `\r\n` or `\n`, a last line without a line break included.
 *
 * @module
 */

/**
 * Yields the lines of a byte stream (without their line breaks).
 *
 * @example
 * ```ts
 * import { inputLines } from "./file_input_lines.ts";
 * const input = ReadableStream.from([new TextEncoder().encode("get a\r\nqu"), new TextEncoder().encode("it")]);
 * for await (const line of inputLines(input)) console.log(line); // "get a", "quit"
 * ```
 *
 * @param input The bytes (stdin).
 * @returns The lines, until the end of the input.
 */
export async function* inputLines(
  input: ReadableStream<Uint8Array>,
): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = "";
  const strip = (line: string) =>
    line.endsWith("\r") ? line.slice(0, -1) : line;
  for await (const chunk of input) {
    pending += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      yield strip(line);
    }
  }
  pending += decoder.decode();
  if (pending !== "") yield strip(pending);
}
