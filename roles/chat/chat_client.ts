/**
 * The chat client (SPEC §4): joins the server under a username, then reads
 * user input from stdin and messages from the server at the same time.
 *
 * Prints (stdout, byte for byte): `list: <sorted names>`,
 * `msg: <sender>: <message>`, `file: <sender>: <filename>`, `quitting`,
 * `disconnected: server full`, `disconnected: username not available`,
 * `disconnected: server received an unknown command`,
 * `incorrect user input format`, and the `help` text. Local problems (a
 * file that cannot be read or is too large, a message too long, a lost
 * connection) go to stderr as `chat: …` lines.
 *
 * Received files are written to `.<name>.part-<random>` and renamed to
 * `<own username>_<filename>` in the working directory when complete.
 *
 * SIGINT, SIGTERM, SIGHUP and SIGQUIT act as end of input (a second one closes the
 * connection at once); a file still arriving is removed, not left as a
 * `.part-` file.
 *
 * Exit codes: 0 after `quit`, end of input or a stop signal; 1 when the
 * server refused or dropped the client, or the connection failed; 2 for
 * usage errors.
 *
 * @module
 */

import { basename } from "node:path";
import {
  type ChatMessage,
  ChatProtocolError,
  type FileHeader,
  fileNameProblem,
  MAX_FILE_BYTES,
  MAX_TEXT_BYTES,
  savedFileName,
  savedNameProblem,
  sortUsernames,
  usernameProblem,
} from "../../protocol/chat_protocol.ts";
import { writeAll } from "../../transport/byte_io.ts";
import { printError, printLine, UsageError } from "../cli.ts";
import { confinedPath, unsafeNameReason } from "../file_names.ts";
import { PartialFile } from "../partial_file.ts";
import { onStopSignal } from "../stop_signals.ts";
import { ChatConnection } from "./chat_connection.ts";
import { CLIENT_HELP, parseClientArgs } from "./chat_options.ts";
import { inputLines } from "./input_lines.ts";
import { INCORRECT_INPUT, INPUT_HELP, parseUserInput } from "./user_input.ts";

/** Options of {@linkcode ChatClient}. */
export interface ChatClientOptions {
  /** Where received files are saved. */
  directory: string;
  /** Receives the user-facing lines (default: stdout). */
  print?: (line: string) => void;
  /** Receives local error lines (default: stderr). */
  warn?: (line: string) => void;
  /** How long `quit` waits for the server to flush and close (default 3 s). */
  quitDrainMs?: number;
}

/** Bytes read from a local file per chunk sent. */
const FILE_CHUNK = 1024 * 1024;

/** What ended the input side. */
type InputEnd = "quit" | "broken";

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Resolves to `promise`'s value, or `fallback` after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, fallback: T) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function* fileChunks(
  file: Deno.FsFile,
  size: number,
): AsyncGenerator<Uint8Array> {
  const buffer = new Uint8Array(Math.min(FILE_CHUNK, Math.max(size, 1)));
  let left = size;
  while (left > 0) {
    const n = await file.read(
      buffer.subarray(0, Math.min(left, buffer.length)),
    );
    if (n === null) return;
    left -= n;
    yield buffer.subarray(0, n);
  }
}

/** Writing a line to standard output failed (say, a closed pipe). */
class OutputError extends Error {
  /** @param cause The write's error. */
  constructor(cause: unknown) {
    super("cannot write to standard output", { cause });
    this.name = "OutputError";
  }
}

/**
 * One chat session over a connected socket.
 *
 * @example
 * ```ts ignore
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: 15000 });
 * const client = new ChatClient(new ChatConnection(conn), "alice", { directory: "." });
 * const code = await client.run(Deno.stdin.readable);
 * ```
 */
export class ChatClient {
  readonly #link: ChatConnection;
  readonly #username: string;
  readonly #directory: string;
  readonly #print: (line: string) => void;
  readonly #warn: (line: string) => void;
  readonly #quitDrainMs: number;
  #quitting = false;
  #refused = false;
  /** The user's input while {@linkcode ChatClient.run} reads it. */
  #input?: ReadableStreamDefaultReader<Uint8Array>;
  #stops = 0;
  /** The local path of the file being sent, while it is. */
  #sending?: string;

  /**
   * Creates the session.
   *
   * @param link The connection to the server (owned).
   * @param username This user's name (already validated).
   * @param options Output sinks and the download directory.
   */
  constructor(
    link: ChatConnection,
    username: string,
    options: ChatClientOptions,
  ) {
    this.#link = link;
    this.#username = username;
    this.#directory = options.directory;
    const print = options.print ?? printLine;
    this.#print = (line) => {
      try {
        print(line);
      } catch (error) {
        throw new OutputError(error);
      }
    };
    this.#warn = options.warn ?? printError;
    this.#quitDrainMs = options.quitDrainMs ?? 3_000;
  }

  /**
   * Joins, then serves user input and server messages until `quit`, end of
   * input, or the server ends the session.
   *
   * @param input The user's input (stdin).
   * @returns The exit code.
   */
  async run(input: ReadableStream<Uint8Array>): Promise<number> {
    const reader = this.#input = input.getReader();
    if (this.#stops > 0) reader.cancel().catch(() => {});
    let received: Promise<number> | undefined;
    try {
      try {
        await this.#link.send({ type: "join", username: this.#username });
      } catch (error) {
        this.#warn(`chat: cannot join: ${reasonOf(error)}`);
        return 1;
      }
      received = this.#receive();
      const typed = this.#readInput(reader);
      const first = await Promise.race([
        received.then((code) => ({ server: code })),
        typed.then((end) => ({ input: end })),
      ]);
      if (this.#stops > 1) {
        // Stopped at once (a second signal) while a file was being sent.
        this.#print("quitting");
        return 0;
      }
      if ("server" in first) return first.server;
      if (first.input === "broken") {
        // The server's reason (if any) is still arriving on the receive side.
        return Math.max(1, await within(received, this.#quitDrainMs, 1));
      }
      this.#quitting = true;
      try {
        await this.#link.send({ type: "disconnect", username: this.#username });
        await this.#link.closeWrite();
        // The server flushes what it queued for us, then closes.
        await within(received, this.#quitDrainMs, 0);
      } catch {
        // the server is gone already: quitting anyway
      }
      if (this.#refused) return 1;
      this.#print("quitting");
      return 0;
    } finally {
      reader.cancel().catch(() => {});
      this.#link.close();
      await received;
    }
  }

  /**
   * Stops the session (a stop signal): the first call ends the user's input,
   * so the client quits as at end of input (a file being sent is finished
   * first; one still arriving gets the quit's drain time); a second call
   * closes the connection at once. A file that has not fully arrived is
   * removed either way.
   */
  stop(): void {
    if (this.#stops++ === 0) {
      this.#input?.cancel().catch(() => {});
      return;
    }
    this.#quitting = true;
    if (this.#sending !== undefined) {
      this.#warn(`chat: "${this.#sending}" was not sent: interrupted`);
    }
    this.#link.close();
  }

  async #readInput(
    reader: ReadableStreamDefaultReader<Uint8Array>,
  ): Promise<InputEnd> {
    try {
      for await (const line of inputLines(reader)) {
        if (line === null) {
          this.#print(INCORRECT_INPUT);
          continue;
        }
        const input = parseUserInput(line);
        switch (input.kind) {
          case "invalid":
            this.#print(INCORRECT_INPUT);
            break;
          case "too-long":
            this.#warn(
              `chat: message not sent: ${input.bytes} bytes exceed the ${MAX_TEXT_BYTES}-byte limit`,
            );
            break;
          case "help":
            this.#print(INPUT_HELP);
            break;
          case "quit":
            return "quit";
          case "list":
            await this.#link.send({ type: "request_users_list" });
            break;
          case "msg":
            await this.#link.send({
              type: "send_message",
              users: input.users,
              text: input.text,
            });
            break;
          case "file":
            await this.#sendFile(input.users, input.path);
            break;
        }
      }
      return "quit";
    } catch (error) {
      if (!this.#quitting) {
        this.#warn(`chat: cannot send to the server: ${reasonOf(error)}`);
      }
      return "broken";
    }
  }

  /** Sends a local file; local problems are reported and nothing is sent. */
  async #sendFile(users: string[], path: string): Promise<void> {
    const fileName = basename(path);
    const problem = unsafeNameReason(fileName) ?? fileNameProblem(fileName) ??
      savedNameProblem(users, fileName);
    if (problem) {
      this.#warn(`chat: cannot send "${path}": ${problem}`);
      return;
    }
    let file: Deno.FsFile;
    try {
      // Checked before opening: opening a FIFO waits for a writer, and the
      // client would hang there.
      if (!(await Deno.stat(path)).isFile) {
        this.#warn(`chat: cannot send "${path}": not a regular file`);
        return;
      }
      file = await Deno.open(path, { read: true });
    } catch (error) {
      const why = error instanceof Deno.errors.NotFound
        ? "no such file"
        : reasonOf(error);
      this.#warn(`chat: cannot send "${path}": ${why}`);
      return;
    }
    try {
      const info = await file.stat();
      if (!info.isFile) {
        this.#warn(`chat: cannot send "${path}": not a regular file`);
        return;
      }
      if (info.size > MAX_FILE_BYTES) {
        this.#warn(
          `chat: cannot send "${path}": ${info.size} bytes exceed the ${MAX_FILE_BYTES}-byte file limit`,
        );
        return;
      }
      const header: FileHeader = {
        type: "send_file",
        users,
        fileName,
        size: info.size,
      };
      // Any failure from here on leaves the stream mid-frame: the caller
      // treats the connection as broken.
      this.#sending = path;
      await this.#link.sendFile(header, fileChunks(file, info.size));
    } finally {
      this.#sending = undefined;
      file.close();
    }
  }

  /** Receives until the server closes, refuses us, or the link fails. */
  async #receive(): Promise<number> {
    let download:
      | { sender: string; fileName: string; file?: PartialFile }
      | undefined;
    try {
      while (true) {
        const event = await this.#link.next();
        if (event === null) {
          if (this.#quitting) return 0;
          this.#warn("chat: the server closed the connection");
          return 1;
        }
        switch (event.kind) {
          case "message": {
            const code = this.#onMessage(event.message);
            if (code !== undefined) return code;
            break;
          }
          case "file-start": {
            const { header } = event;
            if (header.type !== "forward_file") {
              this.#warn(`chat: the server sent an unexpected ${header.type}`);
              return 1;
            }
            download = { sender: header.users[0], fileName: header.fileName };
            try {
              download.file = await PartialFile.create(
                confinedPath(
                  this.#directory,
                  savedFileName(this.#username, header.fileName),
                ),
              );
            } catch (error) {
              this.#warn(
                `chat: cannot save "${header.fileName}" from ${download.sender}: ${
                  reasonOf(error)
                }`,
              );
            }
            break;
          }
          case "file-data":
            if (download?.file) {
              try {
                await writeAll(download.file.file, event.bytes);
              } catch (error) {
                this.#warn(
                  `chat: cannot save "${download.fileName}" from ${download.sender}: ${
                    reasonOf(error)
                  }`,
                );
                await download.file.discard();
                download.file = undefined;
              }
            }
            break;
          case "file-end":
            if (download?.file) {
              const { sender, fileName, file } = download;
              download = undefined;
              try {
                await file.commit();
                this.#print(`file: ${sender}: ${fileName}`);
              } catch (error) {
                this.#warn(
                  `chat: cannot save "${fileName}": ${reasonOf(error)}`,
                );
                await file.discard();
              }
            }
            download = undefined;
            break;
        }
      }
    } catch (error) {
      if (this.#quitting) return 0;
      if (error instanceof ChatProtocolError) {
        this.#warn(
          `chat: the server sent an invalid message: ${error.message}`,
        );
      } else if (error instanceof OutputError) {
        this.#warn(
          `chat: cannot write to standard output: ${reasonOf(error.cause)}`,
        );
      } else {
        this.#warn(`chat: connection to the server lost: ${reasonOf(error)}`);
      }
      return 1;
    } finally {
      await download?.file?.discard();
    }
  }

  /** Handles one whole message; returns an exit code when the session ends. */
  #onMessage(message: ChatMessage): number | undefined {
    switch (message.type) {
      case "response_users_list":
        this.#print(`list: ${sortUsernames(message.users).join(" ")}`);
        return undefined;
      case "forward_message":
        this.#print(`msg: ${message.users[0]}: ${message.text}`);
        return undefined;
      case "err_unknown_message":
        return this.#refuse("disconnected: server received an unknown command");
      case "err_server_full":
        return this.#refuse("disconnected: server full");
      case "err_username_unavailable":
        return this.#refuse("disconnected: username not available");
      default:
        this.#warn(`chat: the server sent an unexpected ${message.type}`);
        return 1;
    }
  }

  #refuse(line: string): number {
    this.#refused = true;
    this.#print(line);
    return 1;
  }
}

/**
 * Runs `chat client -u|--user NAME [-p|--port PORT] [-a|--address ADDRESS]`.
 *
 * @param args The arguments after `client`.
 * @returns The exit code.
 */
export async function runChatClient(args: string[]): Promise<number> {
  const options = parseClientArgs(args);
  if (options.help) {
    printLine(CLIENT_HELP);
    return 0;
  }
  if (options.user === undefined) {
    printLine("Missing Username.");
    printLine(CLIENT_HELP);
    return 1;
  }
  const problem = usernameProblem(options.user);
  if (problem) {
    throw new UsageError(`invalid username "${options.user}": ${problem}`);
  }
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({
      hostname: options.address,
      port: options.port,
      transport: "tcp",
    });
  } catch (error) {
    printError(
      `chat: cannot connect to ${options.address}:${options.port}: ${
        reasonOf(error)
      }`,
    );
    return 1;
  }
  try {
    conn.setNoDelay(true);
  } catch {
    // not fatal
  }
  const client = new ChatClient(new ChatConnection(conn), options.user, {
    directory: Deno.cwd(),
  });
  const forgetSignals = onStopSignal(() => client.stop());
  try {
    return await client.run(Deno.stdin.readable);
  } finally {
    forgetSignals();
  }
}
