/**
 * The chat server (SPEC §4): accepts clients on TCP, admits up to
 * `MAX_NUM_CLIENTS` joined users with unique names, answers user-list
 * requests, and relays messages and files to the named recipients, printing
 * the assignment's event lines on stdout byte for byte.
 *
 * Robustness: every connection has its own read loop and its own bounded
 * {@linkcode Outbox}, so a slow client delays nobody else (it is
 * disconnected when its queue overflows). Files are spooled to a temporary
 * file ({@linkcode FileSpool}) and streamed to each recipient, so memory
 * stays flat whatever their size. Any malformed or unexpected message gets
 * `err_unknown_message` and a disconnect; abrupt disconnects are cleaned up;
 * a connection that does not join within 10 s is closed.
 *
 * @module
 */

import {
  type ChatEvent,
  type ChatMessage,
  ChatProtocolError,
  encodeFileHeader,
  encodeMessage,
  type FileHeader,
  sortUsernames,
} from "../../protocol/chat_protocol.ts";
import { printError, printLine } from "../cli.ts";
import { unsafeNameReason } from "../file_names.ts";
import { ChatConnection } from "./chat_connection.ts";
import { parseServerArgs, SERVER_HELP } from "./chat_options.ts";
import { FileSpool } from "./file_spool.ts";
import { DEFAULT_OUTBOX_LIMITS, Outbox, type OutboxLimits } from "./outbox.ts";
import { onStopSignal } from "../stop_signals.ts";
import { isLostBeforeAccept } from "../../transport/accept_errors.ts";
import { printEventLine, printEventProblem } from "../event_lines.ts";

/** Options of {@linkcode ChatServer.listen}. */
export interface ChatServerOptions {
  /** Address to listen on. */
  hostname: string;
  /** Port to listen on (0: any free port). */
  port: number;
  /** Most users joined at a time (`MAX_NUM_CLIENTS`). */
  maxClients: number;
  /** Receives the event lines (default: stdout). */
  print?: (line: string) => void;
  /** Receives diagnostics (default: stderr). */
  warn?: (line: string) => void;
  /** How long a connection may stay without joining (default 10 s). */
  joinTimeoutMs?: number;
  /** Most bytes of messages queued to one client (default 8 MiB). */
  maxQueuedBytes?: number;
  /** Most files queued to one client (default 32). */
  maxQueuedFiles?: number;
  /** Most bytes of files queued to one client (default 1 GiB). */
  maxQueuedFileBytes?: number;
}

/** How long a closing connection waits to flush and for the peer's EOF. */
const LINGER_MS = 2_000;
/** Default of {@linkcode ChatServerOptions.joinTimeoutMs}. */
const JOIN_TIMEOUT_MS = 10_000;

/** One joined user. */
interface Member {
  readonly name: string;
  readonly outbox: Outbox;
}

/** One accepted connection. */
/**
 * Limits of a connection's frames before it has joined: a `join` is a few
 * dozen bytes, so nobody can make the server hold a large frame (or a file)
 * without having joined.
 */
const BEFORE_JOIN_LIMITS = { maxMessageBytes: 1024, maxFileBytes: 0 };

/**
 * Fewest connections that may wait to join at once; the bound is twice the
 * user capacity when that is more. Beyond it the oldest is closed, so idle
 * connections cannot take every descriptor and keep real users out.
 */
const MIN_UNJOINED = 64;

interface Peer {
  readonly link: ChatConnection;
  readonly outbox: Outbox;
  /** `host:port` of the peer, names it before it joins. */
  readonly address: string;
  member?: Member;
  upload?: { header: FileHeader; spool?: FileSpool };
}

type Step = "continue" | "end";

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A running chat server.
 *
 * @example
 * ```ts ignore
 * await using server = ChatServer.listen({ hostname: "127.0.0.1", port: 0, maxClients: 10 });
 * const serving = server.serve();
 * // ... clients connect to server.addr.port ...
 * await server.close();
 * await serving;
 * ```
 */
export class ChatServer implements AsyncDisposable {
  readonly #listener: Deno.TcpListener;
  readonly #maxClients: number;
  readonly #print: (line: string) => void;
  readonly #warn: (line: string) => void;
  readonly #joinTimeoutMs: number;
  readonly #limits: OutboxLimits;
  readonly #members = new Map<string, Member>();
  readonly #peers = new Set<Peer>();
  /** Connections that have not joined yet, oldest first. */
  readonly #unjoined = new Set<Peer>();
  readonly #maxUnjoined: number;
  readonly #handlers = new Set<Promise<void>>();
  #closing = false;
  #closed?: Promise<void>;
  /** This server's directory of spooled files, made at the first upload. */
  #spoolDir?: Promise<string>;

  private constructor(listener: Deno.TcpListener, options: ChatServerOptions) {
    this.#listener = listener;
    this.#maxClients = options.maxClients;
    this.#maxUnjoined = Math.max(MIN_UNJOINED, 2 * options.maxClients);
    this.#print = options.print ?? printEventLine;
    this.#warn = options.warn ?? printEventProblem;
    this.#joinTimeoutMs = options.joinTimeoutMs ?? JOIN_TIMEOUT_MS;
    this.#limits = {
      maxQueuedBytes: options.maxQueuedBytes ??
        DEFAULT_OUTBOX_LIMITS.maxQueuedBytes,
      maxQueuedFiles: options.maxQueuedFiles ??
        DEFAULT_OUTBOX_LIMITS.maxQueuedFiles,
      maxQueuedFileBytes: options.maxQueuedFileBytes ??
        DEFAULT_OUTBOX_LIMITS.maxQueuedFileBytes,
    };
  }

  /**
   * Binds the listening socket.
   *
   * @param options Address, port, limits and output sinks.
   * @returns The server; call {@linkcode ChatServer.serve} to accept clients.
   * @throws {Error} When the address cannot be bound.
   */
  static listen(options: ChatServerOptions): ChatServer {
    let listener: Deno.TcpListener;
    try {
      listener = Deno.listen({
        hostname: options.hostname,
        port: options.port,
        transport: "tcp",
      });
    } catch (error) {
      throw new Error(
        `Cannot listen on ${options.hostname}:${options.port}: ${
          reasonOf(error)
        }`,
        { cause: error },
      );
    }
    return new ChatServer(listener, options);
  }

  /** The address the server listens on. */
  get addr(): Deno.NetAddr {
    return this.#listener.addr;
  }

  /** Names of the users joined right now, sorted. */
  get users(): string[] {
    return sortUsernames(this.#members.keys());
  }

  /**
   * Accepts clients until {@linkcode ChatServer.close}.
   *
   * @returns Resolves when the server is closed and every connection ended.
   */
  async serve(): Promise<void> {
    while (!this.#closing) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#closing || error instanceof Deno.errors.BadResource) break;
        if (isLostBeforeAccept(error)) continue; // that peer is gone already
        this.#warn(`chat server: accept failed: ${reasonOf(error)}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      const handler = this.#serveConnection(conn).catch((error) => {
        this.#warn(`chat server: internal error: ${reasonOf(error)}`);
      });
      this.#handlers.add(handler);
      handler.finally(() => this.#handlers.delete(handler));
    }
    await this.close();
  }

  /**
   * Stops accepting, disconnects every client, waits for them and removes
   * the spooled files (including those of uploads cut off and files still
   * queued to clients).
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
    for (const peer of this.#peers) peer.outbox.close();
    await Promise.all([...this.#handlers]);
    await this.#spoolDir?.then((dir) => Deno.remove(dir, { recursive: true }))
      .catch(() => {});
  }

  /** Closes the server. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** This server's spool directory (made once; again after a failure). */
  #spoolDirectory(): Promise<string> {
    this.#spoolDir ??= Deno.makeTempDir({ prefix: "sockkit-chat-" }).catch(
      (error) => {
        this.#spoolDir = undefined;
        throw error;
      },
    );
    return this.#spoolDir;
  }

  async #serveConnection(conn: Deno.TcpConn): Promise<void> {
    try {
      conn.setNoDelay(true);
    } catch {
      // not fatal
    }
    const remote = conn.remoteAddr as Deno.NetAddr;
    const peer: Peer = {
      link: new ChatConnection(conn, BEFORE_JOIN_LIMITS),
      outbox: new Outbox(conn, this.#limits, (reason) => {
        this.#dropSlow(peer, reason);
      }),
      address: `${remote.hostname}:${remote.port}`,
    };
    this.#peers.add(peer);
    this.#unjoined.add(peer);
    if (this.#unjoined.size > this.#maxUnjoined) {
      const [oldest] = this.#unjoined;
      this.#unjoined.delete(oldest);
      this.#warn(
        `chat server: more than ${this.#maxUnjoined} connections have not joined: closing the oldest (${oldest.address})`,
      );
      oldest.outbox.close();
    }
    const joinTimer = setTimeout(() => {
      if (!peer.member) peer.outbox.close();
    }, this.#joinTimeoutMs);
    let linger = false;
    try {
      while (!peer.outbox.closed) {
        let event: ChatEvent | null;
        try {
          event = await peer.link.next();
        } catch (error) {
          if (error instanceof ChatProtocolError && !peer.outbox.closed) {
            this.#rejectUnknown(peer, error.message);
            linger = true;
          }
          break;
        }
        if (event === null) break;
        if (peer.member) clearTimeout(joinTimer);
        if ((await this.#handleEvent(peer, event)) === "end") {
          linger = true;
          break;
        }
      }
    } finally {
      clearTimeout(joinTimer);
      this.#unjoined.delete(peer);
      peer.upload?.spool?.discard();
      peer.upload = undefined;
      this.#leave(peer, `disconnected: ${peer.member?.name}`);
      if (linger) await this.#linger(peer);
      peer.outbox.close();
      this.#peers.delete(peer);
    }
  }

  /** Flushes what is queued, half-closes, and waits briefly for the peer's EOF. */
  async #linger(peer: Peer): Promise<void> {
    const deadline = setTimeout(() => peer.outbox.close(), LINGER_MS);
    try {
      await peer.outbox.flushed();
      if (peer.outbox.closed) return;
      await peer.link.closeWrite();
      const sink = new Uint8Array(64 * 1024);
      while ((await peer.link.conn.read(sink)) !== null) {
        // discard whatever the peer still sends
      }
    } catch {
      // closed by the deadline, or reset by the peer
    } finally {
      clearTimeout(deadline);
    }
  }

  /** Removes the peer's user (if still joined), printing `line`. */
  #leave(peer: Peer, line: string): void {
    const member = peer.member;
    if (!member || this.#members.get(member.name) !== member) return;
    this.#members.delete(member.name);
    this.#print(line);
  }

  #dropSlow(peer: Peer, reason: string): void {
    const name = peer.member?.name ?? peer.address;
    this.#warn(`chat server: dropping "${name}": ${reason}`);
    this.#leave(peer, `disconnected: ${name}`);
  }

  #rejectUnknown(peer: Peer, reason: string): void {
    const name = peer.member?.name ?? peer.address;
    this.#warn(`chat server: ${name} sent an invalid message: ${reason}`);
    const line = `disconnected: ${name} sent unknown command`;
    if (peer.member && this.#members.get(peer.member.name) === peer.member) {
      this.#leave(peer, line);
    } else {
      this.#print(line);
    }
    peer.upload?.spool?.discard();
    peer.upload = undefined;
    peer.outbox.sendFrame(encodeMessage({ type: "err_unknown_message" }));
  }

  async #handleEvent(peer: Peer, event: ChatEvent): Promise<Step> {
    switch (event.kind) {
      case "message":
        return this.#handleMessage(peer, event.message);
      case "file-start":
        return await this.#startUpload(peer, event.header);
      case "file-data": {
        const upload = peer.upload;
        if (!upload?.spool) return "continue";
        try {
          await upload.spool.write(event.bytes);
        } catch (error) {
          this.#warn(
            `chat server: cannot spool "${upload.header.fileName}" from ${peer.member?.name}: ${
              reasonOf(error)
            }`,
          );
          upload.spool.discard();
          upload.spool = undefined;
        }
        return "continue";
      }
      case "file-end":
        this.#finishUpload(peer);
        return "continue";
    }
  }

  #handleMessage(peer: Peer, message: ChatMessage): Step {
    const member = peer.member;
    if (!member) {
      if (message.type !== "join") {
        this.#rejectUnknown(peer, `${message.type} before join`);
        return "end";
      }
      return this.#join(peer, message.username);
    }
    switch (message.type) {
      case "request_users_list": {
        this.#print(`request_users_list: ${member.name}`);
        const frame = encodeMessage({
          type: "response_users_list",
          users: this.users,
        });
        member.outbox.sendFrame(frame);
        return "continue";
      }
      case "send_message": {
        this.#print(`msg: ${member.name}`);
        const frame = encodeMessage({
          type: "forward_message",
          users: [member.name],
          text: message.text,
        });
        for (const recipient of new Set(message.users)) {
          const target = this.#members.get(recipient);
          if (target) {
            target.outbox.sendFrame(frame);
          } else {
            this.#print(
              `msg: ${member.name} to non-existent user ${recipient}`,
            );
          }
        }
        return "continue";
      }
      case "disconnect":
        if (message.username !== member.name) {
          this.#rejectUnknown(
            peer,
            `disconnect names "${message.username}", not "${member.name}"`,
          );
          return "end";
        }
        this.#leave(peer, `disconnected: ${member.name}`);
        return "end";
      default:
        this.#rejectUnknown(peer, `unexpected ${message.type}`);
        return "end";
    }
  }

  #join(peer: Peer, name: string): Step {
    let refusal: ChatMessage | undefined;
    if (this.#members.size >= this.#maxClients) {
      this.#print("disconnected: server full");
      refusal = { type: "err_server_full" };
    } else if (this.#members.has(name)) {
      this.#print("disconnected: username not available");
      refusal = { type: "err_username_unavailable" };
    }
    if (refusal) {
      peer.outbox.sendFrame(encodeMessage(refusal));
      return "end";
    }
    const member: Member = { name, outbox: peer.outbox };
    this.#members.set(name, member);
    peer.member = member;
    this.#unjoined.delete(peer);
    peer.link.setLimits({}); // the protocol's: messages, files
    this.#print(`join: ${name}`);
    return "continue";
  }

  async #startUpload(peer: Peer, header: FileHeader): Promise<Step> {
    if (!peer.member) {
      this.#rejectUnknown(peer, `${header.type} before join`);
      return "end";
    }
    if (header.type !== "send_file") {
      this.#rejectUnknown(peer, `unexpected ${header.type}`);
      return "end";
    }
    const unsafe = unsafeNameReason(header.fileName);
    if (unsafe) {
      this.#rejectUnknown(peer, `file name "${header.fileName}": ${unsafe}`);
      return "end";
    }
    peer.upload = { header };
    try {
      try {
        peer.upload.spool = await FileSpool.create(
          await this.#spoolDirectory(),
        );
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
        // The spool directory was removed under us (a cleaner of the
        // temporary folder): make a new one.
        this.#spoolDir = undefined;
        peer.upload.spool = await FileSpool.create(
          await this.#spoolDirectory(),
        );
      }
    } catch (error) {
      this.#warn(
        `chat server: cannot spool "${header.fileName}" from ${peer.member.name}: ${
          reasonOf(error)
        }`,
      );
    }
    return "continue";
  }

  #finishUpload(peer: Peer): void {
    const upload = peer.upload;
    const member = peer.member;
    peer.upload = undefined;
    if (!upload || !member) return;
    const { header, spool } = upload;
    this.#print(`file: ${member.name}`);
    spool?.finish();
    const frame = spool &&
      encodeFileHeader({
        type: "forward_file",
        users: [member.name],
        fileName: header.fileName,
        size: spool.size,
      });
    for (const recipient of new Set(header.users)) {
      const target = this.#members.get(recipient);
      if (!target) {
        this.#print(`file: ${member.name} to non-existent user ${recipient}`);
      } else if (spool && frame) {
        target.outbox.sendFile(frame, spool);
      }
    }
    spool?.release();
  }
}

/**
 * Runs `chat server [-p|--port PORT] [-a|--address ADDRESS] [--max-clients N]`
 * until SIGINT/SIGTERM/SIGHUP/SIGQUIT.
 *
 * @param args The arguments after `server`.
 * @returns The exit code.
 */
export async function runChatServer(args: string[]): Promise<number> {
  const options = parseServerArgs(args);
  if (options.help) {
    printLine(SERVER_HELP);
    return 0;
  }
  const server = ChatServer.listen({
    hostname: options.address,
    port: options.port,
    maxClients: options.maxClients,
  });
  const { hostname, port } = server.addr;
  printError(
    `chat server listening on ${hostname}:${port} (max ${options.maxClients} clients)`,
  );
  // Last line of defence: a bug in one connection must not end the server.
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    printEventProblem(
      `chat server: internal error: ${reasonOf(event.reason)}`,
    );
  });
  const forgetSignals = onStopSignal(() => void server.close());
  try {
    await server.serve();
  } finally {
    forgetSignals();
  }
  return 0;
}
