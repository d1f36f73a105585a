/**
 * The commands a user types at the file-service client's prompt
 * (SPEC §1): `put <file>`, `get <file>`, `quit`. Words are separated by
 * blanks; a file name is one word, or a double-quoted text for a name with
 * blanks (`put "my notes.txt"`). It is a bare name in the client's folder,
 * or a path to a file directly in that folder ({@linkcode nameInFolder}).
 *
 * @module
 */

import { basename, dirname, isAbsolute, resolve } from "node:path";

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
    case "get": {
      const quoted = /^\s*\S+\s+"([^"]+)"\s*$/.exec(line);
      if (quoted) return { type: verb, name: quoted[1] };
      if (rest.length !== 1 || rest[0].startsWith('"')) {
        return {
          type: "invalid",
          message: `Usage: ${verb} <file> (one file name${
            rest.length === 0
              ? ""
              : `; quote a name with spaces: ${verb} "my file.txt"`
          })`,
        };
      }
      return { type: verb, name: rest[0] };
    }
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

/**
 * The bare name that a typed `put`/`get` argument stands for. A name
 * without `/` is itself. A path stands for the base name of a file directly
 * in the client's folder, given absolute or relative to the working
 * directory (the assignment's "full path to a file on the client"); a path
 * anywhere else is refused, as files move only between the roles' folders.
 * Folders are compared as the system resolves them (symbolic links, then
 * `..`), so a path through a link names the file it really names.
 *
 * @example
 * ```ts
 * import { nameInFolder } from "./file_command.ts";
 * import { deepEqual } from "node:assert/strict";
 * const cwd = Deno.cwd();
 * deepEqual(nameInFolder(`${cwd}/a.txt`, ".", cwd), { name: "a.txt" });
 * deepEqual(nameInFolder("a.txt", "client", cwd), { name: "a.txt" });
 * ```
 *
 * @param typed The argument as typed.
 * @param folder The client's folder (`--dir`).
 * @param cwd The working directory, for relative paths.
 * @param realPath Resolves a folder as the system does (`Deno.realPathSync`).
 * @returns The bare name, or why the path cannot be used.
 */
export function nameInFolder(
  typed: string,
  folder: string,
  cwd: string,
  realPath: (path: string) => string = Deno.realPathSync,
): { name: string } | { error: string } {
  if (!typed.includes("/")) return { name: typed };
  const name = basename(typed);
  // Not normalised: `link/..` must go through the link, as the system goes.
  const parent = dirname(isAbsolute(typed) ? typed : `${cwd}/${typed}`);
  const real = (path: string) => {
    try {
      return realPath(path);
    } catch {
      return undefined; // a folder that is not there
    }
  };
  const where = real(parent);
  if (
    typed.endsWith("/") || name === "." || name === ".." ||
    where === undefined || where !== real(resolve(cwd, folder))
  ) {
    return {
      error:
        `not a file in the client's folder "${folder}" (files are put from it and got into it; --dir chooses it)`,
    };
  }
  return { name };
}
