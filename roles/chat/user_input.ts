/**
 * The chat client's user input language (SPEC §4): parses one typed line
 * into an action, and holds the `help` text. Pure — no I/O.
 *
 * | input                                    | action                        |
 * | ---------------------------------------- | ----------------------------- |
 * | `msg <n> <u1> … <un> <message>`          | send `<message>` to the users |
 * | `list`                                   | ask for the connected users   |
 * | `file <n> <u1> … <un> <filename>`        | send a file to the users      |
 * | `help`                                   | print the input forms         |
 * | `quit`                                   | leave the chat                |
 *
 * Words are separated by any run of spaces or tabs. `<n>` is a decimal
 * count from 1 that must match the number of names given; each name must be
 * a valid username. The message is the rest of the line after the last
 * name, with surrounding whitespace removed (inner spacing is kept). A
 * `file` line has exactly one word after the names. Anything else is
 * `invalid` (the client prints `incorrect user input format`).
 *
 * @module
 */

import {
  MAX_LIST_USERS,
  MAX_TEXT_BYTES,
  textProblem,
  usernameProblem,
} from "../../protocol/chat_protocol.ts";

/** One parsed input line. */
export type UserInput =
  | { kind: "msg"; users: string[]; text: string }
  | { kind: "file"; users: string[]; path: string }
  | { kind: "list" }
  | { kind: "help" }
  | { kind: "quit" }
  | { kind: "too-long"; bytes: number }
  | { kind: "invalid" };

/** What the client prints for any input that matches no form. */
export const INCORRECT_INPUT = "incorrect user input format";

/** The `help` text: every input form. */
export const INPUT_HELP: string = [
  "msg <number_of_users> <username1> <username2> ... <message>  send a message to the named users",
  "list  list the connected users",
  "file <number_of_users> <username1> <username2> ... <file_name>  send a file to the named users",
  "help  print this help",
  "quit  leave the chat",
].join("\n");

const WORD = /\S+/g;

/**
 * Parses one line typed by the user.
 *
 * @example
 * ```ts
 * import { parseUserInput } from "./user_input.ts";
 * console.log(parseUserInput("msg 2 client_1 client_2 Hello my friends!"));
 * // { kind: "msg", users: ["client_1", "client_2"], text: "Hello my friends!" }
 * console.log(parseUserInput("msg 3 a b hi").kind); // "invalid"
 * ```
 *
 * @param line The line, without its line break.
 * @returns The action.
 */
export function parseUserInput(line: string): UserInput {
  const words = [...line.matchAll(WORD)];
  const command = words[0]?.[0];
  if (command === "list" || command === "help" || command === "quit") {
    return words.length === 1 ? { kind: command } : { kind: "invalid" };
  }
  if (command !== "msg" && command !== "file") return { kind: "invalid" };
  const countWord = words[1]?.[0] ?? "";
  if (!/^[1-9][0-9]{0,5}$/.test(countWord)) return { kind: "invalid" };
  const count = Number(countWord);
  if (count > MAX_LIST_USERS || words.length < count + 3) {
    return { kind: "invalid" };
  }
  const users = words.slice(2, 2 + count).map((match) => match[0]);
  if (users.some((user) => usernameProblem(user) !== undefined)) {
    return { kind: "invalid" };
  }
  if (command === "file") {
    if (words.length !== count + 3) return { kind: "invalid" };
    return { kind: "file", users, path: words[count + 2][0] };
  }
  const lastName = words[count + 1];
  const text = line.slice(lastName.index + lastName[0].length).trim();
  const bytes = new TextEncoder().encode(text).length;
  if (bytes > MAX_TEXT_BYTES) return { kind: "too-long", bytes };
  if (textProblem(text) !== undefined) return { kind: "invalid" };
  return { kind: "msg", users, text };
}
