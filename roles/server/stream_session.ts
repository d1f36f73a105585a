/**
 * The server side of one streaming GET/PUT/DEL connection: greet, read one
 * request, run it in lock-step, close. It never throws: whatever the client
 * does (garbage, a malformed size, a disconnect or a stall mid-transfer) is
 * logged and the connection is closed, so the server can serve the next one.
 *
 * @module
 */

import {
  errorText,
  parseRequest,
  quote,
  type Request,
  ServerError,
  StreamProtocolError,
  VERBS,
  Word,
} from "../../protocol/stream_protocol.ts";
import { writeAll } from "../../transport/byte_io.ts";
import { confinedPath, unsafeNameReason } from "../file_names.ts";
import { PartialFile } from "../partial_file.ts";
import { StreamConnection } from "../stream/stream_connection.ts";

/**
 * Pause before a `DONE` that would otherwise arrive with what precedes it:
 * the `OK` of an empty upload, the last block of a download. Clients that
 * read each message with one `recv(1024)` would take both as one.
 */
const COURTESY_PAUSE_MS = 50;

function courtesyPause(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, COURTESY_PAUSE_MS));
}

/** Where the server reports what it does (the six `-v` lines) and problems. */
export interface StreamServerLog {
  /** One of the SPEC §5 `-v` lines. */
  info(line: string): void;
  /** A problem with a client (logged under `-v` only, on stderr). */
  problem(line: string): void;
}

/** Options of {@linkcode serveStreamClient}. */
export interface StreamSessionOptions {
  /** The directory files are served from. */
  dir: string;
  /** Bytes per block of file data sent. */
  blockSize: number;
  /** Idle timeout in milliseconds (`Infinity` disables it). */
  idleTimeoutMs: number;
  /** Settle time for requests of unknown length (see StreamConnection). */
  settleMs?: number;
  /** The log. */
  log: StreamServerLog;
  /** Aborting closes the connection (server shutdown). */
  signal?: AbortSignal;
}

/** A request the server refuses with an `ERROR: …` reply. */
class Refusal extends Error {
  constructor(readonly reply: string, readonly detail?: string) {
    super(reply);
    this.name = "Refusal";
  }
}

/** The client sent something that is not the expected next message. */
function unexpected(text: string | null, expected: string): Error {
  return text === null
    ? new StreamProtocolError(
      `client closed the connection instead of sending ${expected}`,
    )
    : new StreamProtocolError(
      `expected ${expected} from the client, got ${quote(text)}`,
    );
}

async function expectWord(
  channel: StreamConnection,
  word: string,
): Promise<void> {
  const text = await channel.readText([word], `waiting for ${word}`);
  if (text !== word) throw unexpected(text, word);
}

function isNotFound(error: unknown): boolean {
  return error instanceof Deno.errors.NotFound;
}

async function sendFile(
  channel: StreamConnection,
  request: Request,
  options: StreamSessionOptions,
): Promise<void> {
  const name = request.fileName;
  let file: Deno.FsFile;
  try {
    const path = confinedPath(options.dir, name);
    const info = await Deno.stat(path);
    if (!info.isFile) throw new Refusal(ServerError.doesNotExist(name));
    file = await Deno.open(path, { read: true });
  } catch (error) {
    if (error instanceof Refusal) throw error;
    if (isNotFound(error) || unsafeNameReason(name) !== undefined) {
      throw new Refusal(ServerError.doesNotExist(name));
    }
    throw new Refusal(ServerError.unableToRead(name));
  }
  try {
    const size = (await file.stat()).size;
    await channel.writeText(Word.OK);
    await expectWord(channel, Word.READY);
    await channel.writeSize(size);
    await expectWord(channel, Word.OK);
    options.log.info(`server sending ${size} bytes`);
    await channel.writeData(file, size, options.blockSize);
    if (size > 0) {
      // A client that reads the data with recv(1024) until it has `size`
      // bytes takes DONE as data when it arrives with the last block (it
      // did every time for 1025 bytes): give it time to read the data first,
      // from when the last block really leaves (Nagle held a short one back
      // for ~40 ms of the pause).
      channel.pushPending();
      await courtesyPause();
    }
    await channel.writeText(Word.DONE);
  } finally {
    file.close();
  }
}

async function receiveFile(
  channel: StreamConnection,
  request: Request,
  options: StreamSessionOptions,
): Promise<void> {
  const name = request.fileName;
  let partial: PartialFile;
  try {
    // PartialFile refuses a directory under the name, too.
    partial = await PartialFile.create(confinedPath(options.dir, name));
  } catch {
    throw new Refusal(ServerError.unableToCreate(name));
  }
  await using _discard = partial;
  await channel.writeText(Word.OK);
  let size: number;
  try {
    size = await channel.readSize();
  } catch (error) {
    if (error instanceof StreamProtocolError) {
      throw new Refusal(ServerError.unableToCreate(name), error.message);
    }
    throw error;
  }
  options.log.info(`server receiving ${size} bytes`);
  await channel.writeText(Word.OK);
  let received = 0;
  try {
    await channel.readData(size, async (chunk) => {
      await writeAll(partial.file, chunk);
      received += chunk.length;
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(
      `upload of ${
        quote(name)
      } failed after ${received} of ${size} bytes: ${message}`,
      { cause: error },
    );
  }
  try {
    await partial.commit();
  } catch {
    throw new Refusal(ServerError.unableToCreate(name));
  }
  if (size === 0) {
    // OK and DONE would leave back to back: give clients that read both
    // with recv(1024) a chance to see them apart.
    await courtesyPause();
  }
  await channel.writeText(Word.DONE);
}

async function deleteFile(
  channel: StreamConnection,
  request: Request,
  options: StreamSessionOptions,
): Promise<void> {
  const name = request.fileName;
  if (unsafeNameReason(name) !== undefined) {
    throw new Refusal(ServerError.doesNotExist(name));
  }
  const path = confinedPath(options.dir, name);
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    throw new Refusal(
      isNotFound(error)
        ? ServerError.doesNotExist(name)
        : ServerError.unableToDelete(name),
    );
  }
  if (info.isDirectory) throw new Refusal(ServerError.unableToDelete(name));
  options.log.info(`server deleting file ${name}`);
  try {
    await Deno.remove(path);
  } catch (error) {
    throw new Refusal(
      isNotFound(error)
        ? ServerError.doesNotExist(name)
        : ServerError.unableToDelete(name),
    );
  }
  await channel.writeText(Word.DONE);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Serves one client connection to the end and closes it. Never rejects.
 *
 * @param conn The accepted connection (closed when this resolves).
 * @param options Directory, block size, timeouts and log.
 */
export async function serveStreamClient(
  conn: Deno.Conn,
  options: StreamSessionOptions,
): Promise<void> {
  const peer = conn.remoteAddr as Deno.NetAddr;
  const client = `${peer.hostname}:${peer.port}`;
  const log = options.log;
  log.info(`server connected to client at ${client}`);
  using channel = new StreamConnection(conn, {
    idleTimeoutMs: options.idleTimeoutMs,
    settleMs: options.settleMs,
  });
  const onAbort = () => channel.close();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    await channel.writeText(Word.READY);
    const text = await channel.readText([], "waiting for a request");
    if (text === null) {
      log.problem(
        `server: client ${client} closed the connection without a request`,
      );
      return;
    }
    log.info(`server receiving request: ${text}`);
    const verb = text.split(" ", 1)[0];
    if (!(VERBS as readonly string[]).includes(verb)) {
      throw new Refusal(ServerError.unknownCommand(text));
    }
    let request: Request;
    try {
      request = parseRequest(text);
    } catch (error) {
      throw new Refusal(describe(error));
    }
    switch (request.verb) {
      case "GET":
        await sendFile(channel, request, options);
        break;
      case "PUT":
        await receiveFile(channel, request, options);
        break;
      case "DEL":
        await deleteFile(channel, request, options);
        break;
    }
  } catch (error) {
    if (error instanceof Refusal) {
      const detail = error.detail ? ` (${error.detail})` : "";
      log.problem(
        `server: replying to ${client}: ${errorText(error.reply)}${detail}`,
      );
      try {
        await channel.writeText(errorText(error.reply));
      } catch (writeError) {
        log.problem(`server: client ${client}: ${describe(writeError)}`);
      }
    } else if (error instanceof StreamProtocolError) {
      log.problem(`server: client ${client}: ${error.message}`);
      if (!channel.stalled) {
        await channel.writeText(errorText(error.message)).catch(() => {});
      }
    } else {
      log.problem(`server: client ${client}: ${describe(error)}`);
    }
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
  }
}
