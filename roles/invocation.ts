/**
 * The one place where the positional forms of the assignments are resolved
 * to services (SPEC §0). Each executable also accepts an explicit subcommand
 * naming the service; the subcommand is stripped and the rest is passed on
 * unchanged, so `server upload 9000 files` ≡ `server 9000 files`.
 *
 * | form                                                     | service  |
 * | -------------------------------------------------------- | -------- |
 * | `server <port> tcp\|snw`                                 | origin   |
 * | `server <port> <dir>`                                    | upload   |
 * | `server <port> [-v]`                                     | stream   |
 * | `server repeat <port> <reference-file> [...]`            | repeat   |
 * | `client <srvHost> <srvPort> <cacheHost> <cachePort> tcp\|snw` | files |
 * | `client <host> <port> <file>`                            | upload   |
 * | `client <host> <port> GET\|PUT\|DEL <file>`              | stream   |
 * | `client repeat <host> <port> <file> [...]`               | repeat   |
 * | `cache <port> <srvHost> <srvPort> tcp\|snw`              | cache    |
 * | `chat server [...]` / `chat client [...]`                | chat     |
 *
 * Rules for the positional forms, in order, counting only the words that
 * are not options (an option and its value may stand anywhere, e.g.
 * `client h 5000 del -v`):
 * - server: second word `tcp`/`snw` → origin; no second word → stream;
 *   a transport misspelt (`udp`, `TCP`, `Snw`) → a usage error; anything
 *   else is a directory → upload.
 * - client: third word `GET`/`PUT`/`DEL` (any case) and not exactly three
 *   words → stream; fifth word `tcp`/`snw` → files; four or five words with
 *   ports second and fourth (the file service's shape) but no transport
 *   fifth → a usage error naming it; otherwise → upload.
 *
 * A directory literally named `tcp` (or `udp`) is served with the explicit
 * form `server upload <port> tcp`.
 *
 * @module
 */

import { splitArguments, UsageError } from "./cli.ts";

/** Services of the `server` executable. */
export const SERVER_SERVICES = [
  "origin",
  "upload",
  "stream",
  "repeat",
] as const;
/** A service of the `server` executable. */
export type ServerService = typeof SERVER_SERVICES[number];

/** Services of the `client` executable. */
export const CLIENT_SERVICES = ["files", "upload", "stream", "repeat"] as const;
/** A service of the `client` executable. */
export type ClientService = typeof CLIENT_SERVICES[number];

/** A resolved invocation: which service, with which arguments. */
export interface Invocation<S extends string> {
  /** The service to run. */
  service: S;
  /** The arguments for that service (subcommand removed). */
  args: string[];
}

const TRANSPORT_WORDS = new Set(["tcp", "snw"]);
/** Words that can only have been meant as a file-service transport. */
const TRANSPORT_LIKE = /^(tcp|snw|udp)$/i;
const PORT_LIKE = /^\d{1,5}$/;
const STREAM_VERBS = new Set(["GET", "PUT", "DEL"]);

function explicit<S extends string>(
  services: readonly S[],
  args: string[],
): Invocation<S> | undefined {
  const first = args[0] as S;
  return services.includes(first)
    ? { service: first, args: args.slice(1) }
    : undefined;
}

/**
 * Resolves the arguments of the `server` executable.
 *
 * @example
 * ```ts
 * import { resolveServer } from "./invocation.ts";
 * console.log(resolveServer(["9000", "tcp"]).service); // "origin"
 * console.log(resolveServer(["9000", "-v"]).service); // "stream"
 * console.log(resolveServer(["9000", "out"]).service); // "upload"
 * ```
 *
 * @param args The command-line arguments.
 * @returns The service and its arguments.
 * @throws {UsageError} For a misspelt transport (`server 9000 udp`).
 */
export function resolveServer(args: string[]): Invocation<ServerService> {
  const chosen = explicit(SERVER_SERVICES, args);
  if (chosen) return chosen;
  const second = splitArguments(args).positionals[1];
  if (second !== undefined && TRANSPORT_WORDS.has(second)) {
    return { service: "origin", args };
  }
  if (second !== undefined && TRANSPORT_LIKE.test(second)) {
    throw new UsageError(
      `unknown transport "${second}" (tcp|snw); an upload receiver saving into a folder of that name: server upload <port> ${second}`,
    );
  }
  if (second === undefined) return { service: "stream", args };
  return { service: "upload", args };
}

/**
 * Resolves the arguments of the `client` executable.
 *
 * @example
 * ```ts
 * import { resolveClient } from "./invocation.ts";
 * console.log(resolveClient(["h", "1", "GET", "f"]).service); // "stream"
 * console.log(resolveClient(["h", "1", "h", "2", "snw"]).service); // "files"
 * console.log(resolveClient(["h", "1", "f"]).service); // "upload"
 * console.log(resolveClient(["h", "1", "del"]).service); // "upload"
 * console.log(resolveClient(["h", "1", "del", "-v"]).service); // "upload"
 * ```
 *
 * @param args The command-line arguments.
 * @returns The service and its arguments.
 * @throws {UsageError} For the file service's shape without its transport.
 */
export function resolveClient(args: string[]): Invocation<ClientService> {
  const chosen = explicit(CLIENT_SERVICES, args);
  if (chosen) return chosen;
  const words = splitArguments(args).positionals;
  // Three words are the upload form even when the file is named like a
  // verb (`client h 5000 del`): the streaming form always has four.
  if (
    words.length !== 3 && words[2] !== undefined &&
    STREAM_VERBS.has(words[2].toUpperCase())
  ) {
    return { service: "stream", args };
  }
  if (words[4] !== undefined && TRANSPORT_WORDS.has(words[4])) {
    return { service: "files", args };
  }
  if (
    (words.length === 4 || words.length === 5) && PORT_LIKE.test(words[1]) &&
    PORT_LIKE.test(words[3])
  ) {
    throw new UsageError(
      words[4] === undefined
        ? "missing tcp|snw after <cachePort>"
        : `unknown transport "${words[4]}" (tcp|snw)`,
    );
  }
  return { service: "upload", args };
}
