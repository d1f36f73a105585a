/**
 * The commands a user types at the file-service client's prompt
 * (SPEC §1): `put <file>`, `get <file>`, `quit`. Words are separated by
 * blanks; a file name is one word (a bare name in the role's directory).
 *
 * @module
 */

/** One parsed input line. */
export type FileCommand =
  | { type: "put"; name: string }
  | { type: "get"; name: string }
  | { type: "quit" }
  | { type: "empty" }
  | { type: "invalid"; message: string };

/** The commands, for help and error messages. */
export const COMMAND_FORMS = "put <file>, get <file>, quit";

/**
 * Parses one line typed at the prompt.
 *
 * @example
 * ```ts
 * import { parseFileCommand } from "./file_command.ts";
 * console.log(parseFileCommand("put test.txt")); // { type: "put", name: "test.txt" }
 * console.log(parseFileCommand("  quit ")); // { type: "quit" }
 * ```
 *
 * @param line The line without its line break.
 * @returns The command, `empty` for a blank line, or `invalid` with a message.
 */
export function parseFileCommand(line: string): FileCommand {
  const words = line.trim().split(/\s+/).filter((word) => word !== "");
  if (words.length === 0) return { type: "empty" };
  const [verb, ...rest] = words;
  switch (verb) {
    case "put":
    case "get":
      if (rest.length !== 1) {
        return {
          type: "invalid",
          message: `Usage: ${verb} <file> (one file name${
            rest.length === 0 ? "" : ", without spaces"
          })`,
        };
      }
      return { type: verb, name: rest[0] };
    case "quit":
      if (rest.length !== 0) {
        return { type: "invalid", message: "Usage: quit (no arguments)" };
      }
      return { type: "quit" };
    default:
      return {
        type: "invalid",
        message: `Unknown command "${verb}" (commands: ${COMMAND_FORMS})`,
      };
  }
}
