/**
 * The interactive file-service client (SPEC §1):
 *
 * ```
 * client <srvHost> <srvPort> <cacheHost> <cachePort> tcp|snw [--dir DIR]
 *        [--timeout SEC] [--connect-timeout SEC]
 * client files <srvHost> <srvPort> <cacheHost> <cachePort> tcp|snw [...]
 * ```
 *
 * It prompts `Enter command: ` (no newline) and runs `put <file>`,
 * `get <file>` and `quit`; end of input is `quit`. Files are read from and
 * saved to `--dir` (default `./client`, created); a path to a file directly
 * in that folder (absolute, or relative to the working directory) stands
 * for its name, and `put "my file.txt"` quotes a name with blanks. When
 * stdin is not a terminal, each command read is echoed after the prompt, so
 * the output of a piped session reads exactly like the interactive
 * transcript. A failed
 * command prints one `Error: ...` line on stderr and the session goes on.
 * SIGINT, SIGTERM, SIGHUP or SIGQUIT at the prompt ends the session as end of input
 * does; during a command it interrupts the command (a download's temporary
 * file is removed), prints `Error: interrupted` and exits 1.
 * Exit code 0 after `quit`, 2 on bad arguments.
 *
 * @module
 */

import { printable, printError, printLine } from "../cli.ts";
import { nameInFolder, parseFileCommand } from "./file_command.ts";
import {
  inputLines,
  LINE_TOO_LONG,
  MAX_LINE_CHARS,
} from "./file_input_lines.ts";
import {
  DEFAULT_CONNECT_TIMEOUT_SEC,
  DEFAULT_TIMEOUT_SEC,
  parsePeerPort,
  parseRoleArgs,
  parseSeconds,
  parseTransport,
  roleDirectory,
} from "../file_service/file_options.ts";
import { FileServiceClient } from "./file_session.ts";
import { describeError } from "../file_service/file_control.ts";
import { type StopWatch, watchStopSignals } from "../stop_signals.ts";
import { removeAbandonedPartials } from "../partial_file.ts";

/** The prompt, printed without a newline. */
export const PROMPT = "Enter command: ";

const encoder = new TextEncoder();

function write(text: string): void {
  const bytes = encoder.encode(text);
  let offset = 0;
  while (offset < bytes.length) {
    offset += Deno.stdout.writeSync(bytes.subarray(offset));
  }
}

/**
 * Runs the interactive client until `quit` or end of input.
 *
 * @param args `<srvHost> <srvPort> <cacheHost> <cachePort> tcp|snw` and options.
 * @returns The exit code.
 */
export async function runFileClient(args: string[]): Promise<number> {
  const { positionals, values } = parseRoleArgs(args, [
    "<srvHost>",
    "<srvPort>",
    "<cacheHost>",
    "<cachePort>",
    "tcp|snw",
  ]);
  const [serverHost, serverPort, cacheHost, cachePort, transportName] =
    positionals;
  const dir = await roleDirectory(values.dir, "client");
  await removeAbandonedPartials(dir);
  await using client = new FileServiceClient({
    transport: parseTransport(transportName),
    server: {
      hostname: serverHost,
      port: parsePeerPort(serverPort, "<srvPort>"),
    },
    cache: {
      hostname: cacheHost,
      port: parsePeerPort(cachePort, "<cachePort>"),
    },
    idleMs: parseSeconds(values.timeout, "timeout", DEFAULT_TIMEOUT_SEC),
    connectTimeoutMs: parseSeconds(
      values["connect-timeout"],
      "connect-timeout",
      DEFAULT_CONNECT_TIMEOUT_SEC,
    ),
    dir,
    onAwaitingServer: () => printLine("Awaiting server response."),
  });
  // A stop signal at the prompt ends the session as end of input does; one
  // during a command interrupts it (a download's temporary file is removed)
  // and the client exits 1.
  using stop = watchStopSignals(() => client.interrupt());
  return await runSession(client, dir, stop);
}

/** The prompt loop; returns the exit code. */
async function runSession(
  client: FileServiceClient,
  dir: string,
  stop: StopWatch,
): Promise<number> {
  const echo = !Deno.stdin.isTerminal();
  const lines = inputLines(Deno.stdin.readable);
  while (true) {
    write(PROMPT);
    const next = await Promise.race([lines.next(), stop.stopped]);
    if (next === undefined || next.done) {
      write("\n");
      break;
    }
    if (next.value === LINE_TOO_LONG) {
      if (echo) write("\n");
      printError(
        `Error: Line too long (over ${MAX_LINE_CHARS} characters): ignored`,
      );
      continue;
    }
    // Echoed as the error lines quote it: control bytes cannot drive the
    // terminal that shows a piped session's transcript.
    if (echo) write(`${printable(next.value)}\n`);
    const command = parseFileCommand(next.value);
    if (command.type === "quit") break;
    if (command.type === "empty") continue;
    if (command.type === "invalid") {
      printError(`Error: ${command.message}`);
      continue;
    }
    const target = nameInFolder(command.name, dir, Deno.cwd());
    if ("error" in target) {
      printError(
        `Error: Cannot ${command.type} "${
          printable(command.name)
        }": ${target.error}`,
      );
      continue;
    }
    try {
      const text = command.type === "put"
        ? await client.put(target.name)
        : await client.get(target.name);
      // The servers' words: shown so that they cannot drive the terminal.
      printLine(`Server response: ${printable(text)}`);
    } catch (error) {
      if (stop.signal) {
        printError("Error: interrupted");
        return 1;
      }
      printError(`Error: ${printable(describeError(error))}`);
    }
  }
  printLine("Exiting program!");
  return 0;
}
