/**
 * Keep-alive control connections (roles/file_service/control_pool.ts)
 * against a scripted TCP peer on 127.0.0.1, and the listening side's loop
 * (control_requests.ts) through the real origin server.
 */

import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import {
  decodeFileServiceMessage,
  decodeFrameLength,
  encodeFileServiceMessage,
  type FileServiceMessage,
} from "../../protocol/file_service.ts";
import { ControlPool } from "../../roles/file_service/control_pool.ts";
import type { ControlChannel } from "../../roles/file_service/file_control.ts";
import { OriginServer } from "../../roles/server/origin_service.ts";
import { readExact, writeAll } from "../../transport/byte_io.ts";
import { ConnectionLostError } from "../../transport/errors.ts";
import { tcpTransport } from "../../transport/tcp.ts";

const SHA = "cd".repeat(32);

async function readMessage(
  conn: Deno.Conn,
): Promise<FileServiceMessage | null> {
  const header = await readExact(conn, new Uint8Array(4));
  if (header === null) return null;
  const payload = await readExact(
    conn,
    new Uint8Array(decodeFrameLength(header)),
  );
  return payload === null ? null : decodeFileServiceMessage(payload);
}

/** How the scripted peer answers each request on a connection. */
type Script = "found" | "ready-then-close";

/** A TCP peer that counts its connections and answers by script. */
class ScriptedPeer implements AsyncDisposable {
  readonly listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  readonly conns = new Set<Deno.Conn>();
  accepted = 0;
  requests = 0;
  script: Script = "found";
  readonly #serving: Promise<void>;
  readonly #handlers = new Set<Promise<void>>();

  constructor() {
    this.#serving = this.#serve();
  }

  get port(): number {
    return this.listener.addr.port;
  }

  /** Closes every accepted connection (as an idle timeout would). */
  closeConnections(): void {
    for (const conn of this.conns) conn.close();
    this.conns.clear();
  }

  async #serve(): Promise<void> {
    for await (const conn of this.listener) {
      this.accepted++;
      this.conns.add(conn);
      const handled = this.#handle(conn).catch(() => {});
      this.#handlers.add(handled);
    }
  }

  async #handle(conn: Deno.Conn): Promise<void> {
    while (true) {
      const request = await readMessage(conn);
      if (request === null) break;
      this.requests++;
      if (this.script === "ready-then-close") {
        await writeAll(conn, encodeFileServiceMessage({ type: "ready" }));
        break;
      }
      await writeAll(
        conn,
        encodeFileServiceMessage({ type: "found", size: 1, sha256: SHA }),
      );
    }
    if (this.conns.delete(conn)) conn.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.listener.close();
    await this.#serving;
    this.closeConnections();
    await Promise.all(this.#handlers);
  }
}

function stat(control: ControlChannel): Promise<number> {
  return (async () => {
    await control.send({ type: "stat", name: "a" });
    return (await control.expect("found")).size;
  })();
}

function pool(port: number, keepMs?: number): ControlPool {
  return new ControlPool({
    hostname: "127.0.0.1",
    port,
    what: "peer",
    connectTimeoutMs: 2000,
    idleMs: 2000,
  }, keepMs);
}

Deno.test("control pool: requests one after another share one connection", async () => {
  await using peer = new ScriptedPeer();
  using connections = pool(peer.port);
  for (let i = 0; i < 3; i++) equal(await connections.use(stat), 1);
  equal(peer.accepted, 1);
  equal(peer.requests, 3);
  equal(connections.idleCount, 1);
  // Two at once need two connections; both are kept for later.
  await Promise.all([connections.use(stat), connections.use(stat)]);
  equal(peer.accepted, 2);
  equal(connections.idleCount, 2);
});

Deno.test("control pool: an idle connection is closed when its keep time is up, not left half-open until the next request", async () => {
  await using peer = new ScriptedPeer();
  using connections = pool(peer.port, 200);
  equal(await connections.use(stat), 1);
  equal(connections.idleCount, 1);
  equal(peer.conns.size, 1);
  const deadline = Date.now() + 2000;
  while (peer.conns.size > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  equal(peer.conns.size, 0, "the peer saw the kept connection close");
  equal(connections.idleCount, 0);
  // The next request connects anew.
  equal(await connections.use(stat), 1);
  equal(peer.accepted, 2);
});

Deno.test("control pool: a connection the peer closed while idle is replaced without an error", async () => {
  await using peer = new ScriptedPeer();
  using connections = pool(peer.port);
  equal(await connections.use(stat), 1);
  peer.closeConnections();
  equal(await connections.use(stat), 1);
  equal(peer.accepted, 2);
  equal(peer.requests, 2);
});

Deno.test("control pool: a request that was answered is never retried, and its connection is dropped", async () => {
  await using peer = new ScriptedPeer();
  using connections = pool(peer.port);
  equal(await connections.use(stat), 1);
  peer.script = "ready-then-close";
  await rejects(
    connections.use(async (control) => {
      await control.send({ type: "put", tag: "t", size: 1, name: "a" });
      await control.expect("ready");
      return await control.expect("ok");
    }),
    ConnectionLostError,
  );
  equal(peer.accepted, 1, "no second attempt");
  equal(peer.requests, 2);
  equal(connections.idleCount, 0);
  // A failure in the work itself also drops the connection.
  peer.script = "found";
  await rejects(
    connections.use(async (control) => {
      await stat(control);
      throw new RangeError("the caller's own failure");
    }),
    RangeError,
  );
  equal(connections.idleCount, 0);
  equal(peer.accepted, 2);
});

Deno.test("control pool: a kept connection to a peer that has gone is retried once, then reported unreachable", async () => {
  const peer = new ScriptedPeer();
  using connections = pool(peer.port);
  equal(await connections.use(stat), 1);
  equal(connections.idleCount, 1);
  await peer[Symbol.asyncDispose]();
  await rejects(
    connections.use(stat),
    /Cannot reach the peer at 127\.0\.0\.1:\d+: connection refused/,
  );
  equal(connections.idleCount, 0);
});

Deno.test("control pool: an unreachable peer is reported, closed pools keep nothing", async () => {
  const peer = new ScriptedPeer();
  const port = peer.port;
  await peer[Symbol.asyncDispose]();
  using dead = pool(port);
  await rejects(dead.use(stat), /Cannot reach the peer at 127\.0\.0\.1:\d+/);
  await using live = new ScriptedPeer();
  const closed = pool(live.port);
  closed.close();
  equal(await closed.use(stat), 1);
  equal(closed.idleCount, 0);
});

Deno.test("origin server: one connection serves requests until the peer stops; an ERROR ends it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sockkit-keepalive-" });
  const origin = await OriginServer.start({
    transport: tcpTransport,
    port: 0,
    hostname: "127.0.0.1",
    dir,
    idleMs: 300,
  });
  try {
    await Deno.writeTextFile(`${dir}/a.txt`, "hello\n");
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: origin.port,
    });
    try {
      for (let i = 0; i < 3; i++) {
        await writeAll(
          conn,
          encodeFileServiceMessage({ type: "stat", name: "a.txt" }),
        );
        const found = await readMessage(conn);
        equal(found?.type, "found");
        equal(found?.type === "found" && found.size, 6);
      }
      // A get on the same connection: FOUND, the tcp transfer, OK.
      await writeAll(
        conn,
        encodeFileServiceMessage({ type: "get", tag: "t1", name: "a.txt" }),
      );
      equal((await readMessage(conn))?.type, "found");
      const size = await readExact(conn, new Uint8Array(8));
      equal(new DataView(size!.buffer).getBigUint64(0), 6n);
      deepEqual(
        new TextDecoder().decode((await readExact(conn, new Uint8Array(6)))!),
        "hello\n",
      );
      equal((await readMessage(conn))?.type, "ok");
      await writeAll(
        conn,
        encodeFileServiceMessage({ type: "stat", name: "no.txt" }),
      );
      const error = await readMessage(conn);
      equal(error?.type === "error" && error.code, "not-found");
      equal(await readMessage(conn), null, "closed after the ERROR");
    } finally {
      conn.close();
    }
    // An idle connection is closed quietly after the idle timeout.
    const idle = await Deno.connect({
      hostname: "127.0.0.1",
      port: origin.port,
    });
    try {
      await writeAll(
        idle,
        encodeFileServiceMessage({ type: "stat", name: "a.txt" }),
      );
      equal((await readMessage(idle))?.type, "found");
      const started = performance.now();
      equal(await readMessage(idle), null);
      const waited = performance.now() - started;
      ok(waited >= 250 && waited < 2000, `closed after ${waited} ms`);
    } finally {
      idle.close();
    }
  } finally {
    origin.close();
    await origin.finished;
    await Deno.remove(dir, { recursive: true });
  }
});
