/**
 * The Transport interface, exercised identically over tcp and snw, plus the
 * SNW specifics: the lossy relay, give-up messages, no seq wrap, flow
 * control, many sessions on one port.
 */

import { createHash } from "node:crypto";
import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { join } from "node:path";
import { LossyRelay, parseRelayArgs, RELAY_USAGE } from "../bench/relay.ts";
import { UsageError } from "../roles/cli.ts";
import { seededRandom } from "../bench/seeded_random.ts";
import {
  createSnwTransport,
  decodeSnwPacket,
  encodeLenPayload,
  encodeSnwPacket,
  type IncomingTransfer,
  registerDirectReader,
  SNW_WORDS,
  SnwChannelAcceptor,
  SnwListener,
  type SnwPacket,
  SnwType,
  tcpTransport,
  transferChunks,
  TransferSizeError,
  TransferTimeoutError,
  type Transport,
  type TransportConn,
} from "../transport/mod.ts";
import { concatBytes } from "./_helpers/bytes.ts";
import { within } from "./_helpers/within.ts";
import { tempDir } from "./_helpers/files.ts";
import { runRole } from "./_helpers/role_process.ts";

const HOST = "127.0.0.1";

function pattern(size: number, seed: number): Uint8Array {
  const random = seededRandom(seed);
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (random() * 256) | 0;
  return bytes;
}

function digest(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Reads a whole transfer, by `transferChunks` (BYOB on tcp) or plainly. */
async function readAll(
  readable: ReadableStream<Uint8Array>,
  reuse = false,
) {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of reuse ? transferChunks(readable) : readable) {
    parts.push(chunk.slice());
    total += chunk.length;
  }
  const all = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  return all;
}

/** Yields `bytes` in uneven pieces, as files and sockets do. */
async function* uneven(bytes: Uint8Array, seed: number) {
  const random = seededRandom(seed);
  let offset = 0;
  while (offset < bytes.length) {
    const n = 1 + Math.floor(random() * 5000);
    yield bytes.subarray(offset, offset + n);
    offset += n;
    if (random() < 0.05) await Promise.resolve();
  }
}

const fastSnw = createSnwTransport({ timeoutMs: 3000 });
const TRANSPORTS: Transport[] = [tcpTransport, fastSnw];

/**
 * How the next transfer `conn` receives ends within `ms` (well under the
 * snw give-up timeout): the error its receive() or its reading failed with,
 * or a description of what happened instead.
 */
async function receiveOutcome(
  conn: TransportConn,
  ms: number,
): Promise<unknown> {
  const receiving = (async () => {
    const incoming = await conn.receive();
    const bytes = await readAll(incoming.readable);
    return `a whole transfer of ${bytes.length} bytes`;
  })().catch((error) => error);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`nothing within ${ms} ms`), ms);
  });
  try {
    return await Promise.race([receiving, late]);
  } finally {
    clearTimeout(timer);
  }
}

for (const transport of TRANSPORTS) {
  Deno.test(`${transport.name}: transfers of edge sizes in both directions, SHA-256 equal`, async () => {
    using listener = transport.listen({ hostname: HOST, port: 0 });
    const sizes = [0, 1, 999, 1000, 1001, 2000, 65537, 5 * 1024 * 1024];
    const server = (async () => {
      await using conn = await listener.accept();
      for (const size of sizes) {
        const incoming = await conn.receive();
        equal(incoming.size, size);
        const bytes = await readAll(incoming.readable, true);
        equal(digest(bytes), digest(pattern(size, size)));
        // Echo it back, as the other direction of the same connection.
        await conn.send(bytes.length, uneven(bytes, 3));
      }
    })();
    await using conn = await transport.connect({
      hostname: HOST,
      port: listener.addr.port,
    });
    for (const size of sizes) {
      const bytes = pattern(size, size);
      await conn.send(size, uneven(bytes, size));
      const echo = await conn.receive();
      equal(echo.size, size);
      equal(digest(await readAll(echo.readable)), digest(bytes));
    }
    await server;
  });

  Deno.test(`${transport.name}: a source that falls short or runs over is refused, and the receiving end's transfer fails at once`, async () => {
    using listener = transport.listen({ hostname: HOST, port: 0 });
    const accepted = listener.accept();
    await using conn = await transport.connect({
      hostname: HOST,
      port: listener.addr.port,
    });
    await using peer = await accepted;
    await rejects(conn.send(10, new Uint8Array(11)), TransferSizeError);
    const over = await receiveOutcome(peer, 2000);
    ok(over instanceof Error, `after a source that ran over: ${over}`);
    await using conn2 = await transport.connect({
      hostname: HOST,
      port: listener.addr.port,
    });
    await using peer2 = await listener.accept();
    await rejects(conn2.send(10, new Uint8Array(9)), TransferSizeError);
    const short = await receiveOutcome(peer2, 2000);
    ok(short instanceof Error, `after a source that fell short: ${short}`);
  });

  Deno.test(`${transport.name}: data channel paired with a TCP control connection`, async () => {
    using control = Deno.listen({ hostname: HOST, port: 0 });
    using acceptor = transport.channels({
      hostname: HOST,
      port: control.addr.port,
    });
    const body = pattern(300_000, 9);
    const server = (async () => {
      using tcp = await control.accept();
      await using channel = await acceptor.accept(tcp, "tag-1");
      const incoming = await channel.receive();
      equal(digest(await readAll(incoming.readable)), digest(body));
      await channel.send(5, new TextEncoder().encode("thank"));
    })();
    using tcp = await Deno.connect({ hostname: HOST, port: control.addr.port });
    await using channel = await transport.openChannel(tcp, "tag-1");
    await channel.send(body.length, body);
    const reply = await channel.receive();
    equal(new TextDecoder().decode(await readAll(reply.readable)), "thank");
    await server;
  });

  Deno.test(`${transport.name}: many concurrent connections on one port`, async () => {
    using listener = transport.listen({ hostname: HOST, port: 0 });
    const count = 12;
    const server = (async () => {
      const conns: TransportConn[] = [];
      for (let i = 0; i < count; i++) conns.push(await listener.accept());
      return await Promise.all(conns.map(async (conn) => {
        const incoming = await conn.receive();
        const hash = digest(await readAll(incoming.readable));
        await conn[Symbol.asyncDispose]();
        return hash;
      }));
    })();
    const bodies = Array.from(
      { length: count },
      (_, i) => pattern(50_000 + i * 1000, 100 + i),
    );
    await Promise.all(bodies.map(async (body) => {
      await using conn = await transport.connect({
        hostname: HOST,
        port: listener.addr.port,
      });
      await conn.send(body.length, body);
    }));
    const got = (await server).sort();
    const want = bodies.map(digest).sort();
    deepEqual(got, want);
  });
}

for (const drop of [0.1, 0.3]) {
  Deno.test(`snw: through the relay at ${drop * 100}% loss, 5% duplication and reordering, 1% corruption: byte-exact`, async () => {
    using listener = fastSnw.listen({ hostname: HOST, port: 0 });
    await using relay = LossyRelay.start({
      targetPort: listener.addr.port,
      seed: 42,
      drop,
      duplicate: 0.05,
      reorder: 0.05,
      corrupt: 0.01,
      delayMs: 1,
      tcp: false,
    });
    const body = pattern(drop > 0.2 ? 64 * 1024 + 1 : 200 * 1024 + 11, 5);
    const server = (async () => {
      await using conn = await listener.accept();
      const incoming = await conn.receive();
      return digest(await readAll(incoming.readable));
    })();
    await using conn = await fastSnw.connect({
      hostname: HOST,
      port: relay.port,
    });
    await conn.send(body.length, uneven(body, 8));
    equal(await server, digest(body));
    const { dropped, duplicated, reordered, corrupted } = relay.stats;
    ok(
      dropped > 5 && duplicated > 0 && reordered > 0 && corrupted > 0,
      JSON.stringify(relay.stats),
    );
  });
}

Deno.test("snw: sequence numbers do not wrap at 65 535 blocks", async () => {
  const tiny = createSnwTransport({ chunkSize: 8, timeoutMs: 3000 });
  using listener = tiny.listen({ hostname: HOST, port: 0 });
  const body = pattern(8 * 70_000 + 5, 77); // 70 001 DATA packets
  const server = (async () => {
    await using conn = await listener.accept();
    const incoming = await conn.receive();
    return digest(await readAll(incoming.readable));
  })();
  await using conn = await tiny.connect({
    hostname: HOST,
    port: listener.addr.port,
  });
  await conn.send(body.length, body);
  equal(await server, digest(body));
});

/**
 * Sends `body` over `transport` to a reader that waits `pauseMs` before it
 * reads (its receive buffer fills, and the receiver holds its ACK).
 *
 * @returns How long the send took, and whether the bytes arrived intact.
 */
async function sendToLateReader(
  transport: Transport,
  body: Uint8Array,
  pauseMs: number,
): Promise<{ ms: number; intact: boolean }> {
  using listener = transport.listen({ hostname: HOST, port: 0 });
  const server = (async () => {
    await using conn = await listener.accept();
    const incoming = await conn.receive();
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
    return digest(await readAll(incoming.readable));
  })();
  await using conn = await transport.connect({
    hostname: HOST,
    port: listener.addr.port,
  });
  const started = performance.now();
  await conn.send(body.length, body);
  const ms = performance.now() - started;
  return { ms, intact: await server === digest(body) };
}

Deno.test("snw: a slow reader holds the sender back instead of buffering everything", async () => {
  const small = createSnwTransport({
    timeoutMs: 3000,
    receiveBufferBytes: 16 * 1024,
  });
  // The sender must stall at ~16 KiB, not finish.
  const { ms, intact } = await sendToLateReader(
    small,
    pattern(400_000, 12),
    300,
  );
  ok(ms >= 250, `sender was not held back (${ms} ms)`);
  ok(intact);
});

/**
 * A connected snw pair over `transport` with one transfer of `body` under
 * way: the receiving side's transfer, the sender's promise, and how many
 * bytes the receiver has acknowledged so far.
 */
async function snwTransferUnderWay(
  transport: Transport,
  body: Uint8Array,
): Promise<
  AsyncDisposable & {
    incoming: IncomingTransfer;
    sending: Promise<void>;
    acknowledged: () => number;
  }
> {
  const listener = transport.listen({ hostname: HOST, port: 0 });
  const accepting = listener.accept();
  const conn = await transport.connect({
    hostname: HOST,
    port: listener.addr.port,
  });
  const peer = await accepting;
  listener.close();
  let packets = 0;
  const sending = conn.send(body.length, body, {
    onProgress: () => packets++,
  });
  const incoming = await peer.receive();
  return {
    incoming,
    sending,
    acknowledged: () => packets,
    async [Symbol.asyncDispose]() {
      // Closing first: a send still under way then fails instead of hanging.
      await conn[Symbol.asyncDispose]();
      await peer[Symbol.asyncDispose]();
      await sending.catch(() => {});
    },
  };
}

Deno.test("snw: reads smaller than a packet cannot take the receive buffer past its bound", async () => {
  const chunk = 8000;
  const bound = 16_000;
  const snw = createSnwTransport({
    chunkSize: chunk,
    receiveBufferBytes: bound,
    timeoutMs: 3000,
  });
  const body = pattern(160_000, 21);
  await using transfer = await snwTransferUnderWay(snw, body);
  const reader = transfer.incoming.readable.getReader({ mode: "byob" });
  const received: Uint8Array[] = [];
  let read = 0;
  let mostUnread = 0;
  while (true) {
    const { done, value } = await reader.read(new Uint8Array(500));
    if (done) break;
    // A reader that works on each read: packets arrive meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 0));
    received.push(value);
    read += value.length;
    // The first packet (the LEN) carries no payload.
    const acknowledged = Math.min(
      body.length,
      Math.max(0, transfer.acknowledged() - 1) * chunk,
    );
    mostUnread = Math.max(mostUnread, acknowledged - read);
  }
  await transfer.sending;
  equal(digest(concatBytes(received)), digest(body));
  ok(
    mostUnread <= bound + 2 * chunk,
    `${mostUnread} bytes were acknowledged and not yet read`,
  );
});

Deno.test("snw: two BYOB reads outstanding with a receive buffer no bigger than a packet: the transfer completes", async () => {
  const snw = createSnwTransport({
    chunkSize: 1000,
    receiveBufferBytes: 1000,
    timeoutMs: 1000,
    reportGiveUp: () => {},
  });
  const body = pattern(200_000, 22);
  await using transfer = await snwTransferUnderWay(snw, body);
  const reader = transfer.incoming.readable.getReader({ mode: "byob" });
  const received: Uint8Array[] = [];
  // After a hang, closing the session rejects the reads still pending.
  const read = () => {
    const pending = reader.read(new Uint8Array(1000));
    pending.catch(() => {});
    return pending;
  };
  const reading = (async () => {
    let first = read();
    let second = read();
    while (true) {
      const { done, value } = await first;
      if (done) break;
      received.push(value);
      first = second;
      second = read();
    }
  })();
  reading.catch(() => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), 10_000);
  });
  const outcome = await Promise.race([
    Promise.all([reading, transfer.sending]),
    late,
  ]);
  clearTimeout(timer);
  ok(outcome !== "late", "the transfer hung");
  equal(digest(concatBytes(received)), digest(body));
});

Deno.test("snw: a default reader of a short transfer gets buffers no bigger than the transfer", async () => {
  const body = pattern(1000, 24);
  await using transfer = await snwTransferUnderWay(
    createSnwTransport({ timeoutMs: 3000 }),
    body,
  );
  const reader = transfer.incoming.readable.getReader();
  const received: Uint8Array[] = [];
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    ok(value.buffer.byteLength <= 1000, `${value.buffer.byteLength} bytes`);
    received.push(value);
  }
  await transfer.sending;
  equal(digest(concatBytes(received)), digest(body));
});

Deno.test("snw: a receive buffer no bigger than a packet does not hold back payloads that go straight into a waiting read", async () => {
  const snw = createSnwTransport({
    chunkSize: 1000,
    receiveBufferBytes: 1000,
    timeoutMs: 3000,
  });
  const body = pattern(2_000_000, 23);
  await using transfer = await snwTransferUnderWay(snw, body);
  const started = performance.now();
  const received = await readAll(transfer.incoming.readable);
  await transfer.sending;
  const ms = performance.now() - started;
  equal(digest(received), digest(body));
  // Held ACKs cost a read's turn each (~2 ms): 2000 packets took 4-5 s.
  ok(ms < 2500, `2 MB took ${ms.toFixed(0)} ms`);
});

/** A raw UDP peer that speaks just enough SNW to misbehave on purpose. */
class RawPeer implements AsyncDisposable {
  readonly socket = Deno.listenDatagram({
    transport: "udp",
    hostname: HOST,
    port: 0,
  });
  get port(): number {
    return (this.socket.addr as Deno.NetAddr).port;
  }
  send(
    type: Parameters<typeof encodeSnwPacket>[0],
    seq: number,
    payload: Uint8Array,
    port: number,
    session = 99,
  ) {
    return this.socket.send(encodeSnwPacket(type, session, seq, payload), {
      transport: "udp",
      hostname: HOST,
      port,
    });
  }
  /** A receive that an earlier {@linkcode nextWithin} gave up waiting for. */
  #pending?: Promise<{ packet: SnwPacket; addr: Deno.NetAddr }>;
  /** The next packet (there is never more than one receive under way). */
  next() {
    const next = this.#pending ?? this.#receive();
    this.#pending = undefined;
    return next;
  }
  /**
   * The next packet, or null if none comes within `ms`; its receive goes on
   * for the next call, so no packet is lost to a receive nobody awaits.
   */
  async nextWithin(ms: number) {
    const next = this.#pending ?? this.#receive();
    this.#pending = next;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), ms);
    });
    try {
      const packet = await Promise.race([next, late]);
      if (packet !== null) this.#pending = undefined;
      return packet;
    } finally {
      clearTimeout(timer);
    }
  }
  async #receive() {
    const [bytes, addr] = await this.socket.receive();
    return { packet: decodeSnwPacket(bytes), addr: addr as Deno.NetAddr };
  }
  async [Symbol.asyncDispose]() {
    this.#pending?.catch(() => {}); // rejected by the close
    this.socket.close();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

/** A packet a {@linkcode RawPeer} got: its type, seq, and when it came. */
interface Answer {
  type: number;
  seq: number;
  at: number;
}

/**
 * What `peer` gets until `count` WAITs have come, or for at most `ms`
 * (a bound for a receiver that does not say WAIT; it is several times
 * what `count` WAITs take).
 */
async function answersUntilWaits(
  peer: RawPeer,
  count: number,
  ms: number,
): Promise<Answer[]> {
  const seen: Answer[] = [];
  const until = performance.now() + ms;
  let waits = 0;
  while (waits < count) {
    const next = await peer.nextWithin(until - performance.now());
    if (next === null) break;
    const { type, seq } = next.packet;
    seen.push({ type, seq, at: performance.now() });
    if (type === SnwType.WAIT) waits++;
  }
  return seen;
}

/**
 * Asserts that `seen` is `count` WAITs for `seq` and nothing else, coming
 * often enough for the sender's give-up timeout (which each WAIT starts
 * again): the median gap between them is under half of `timeoutMs`. The
 * median, not the largest gap nor a count in a fixed time, so that one
 * timer held back on a busy machine does not fail it.
 */
function assertSteadyWaits(
  seen: Answer[],
  seq: number,
  count: number,
  timeoutMs: number,
): void {
  const shown = JSON.stringify(seen.map(({ type, seq }) => [type, seq]));
  ok(
    seen.every((answer) => answer.type === SnwType.WAIT && answer.seq === seq),
    `only WAITs for ${seq} expected: ${shown}`,
  );
  equal(seen.length, count, `too few WAITs: ${shown}`);
  const gaps = seen.slice(1).map((answer, i) => answer.at - seen[i].at)
    .toSorted((a, b) => a - b);
  const median = gaps[Math.floor(gaps.length / 2)];
  ok(
    median < timeoutMs / 2,
    `WAITs too far apart for a ${timeoutMs} ms timeout; gaps (ms): ${
      gaps.map((gap) => gap.toFixed(1)).join(" ")
    }`,
  );
}

/**
 * A {@linkcode RawPeer} that opened a session with a listener of `snw` and
 * sent the LEN of a transfer of `size` bytes (its ACK left unread): the
 * peer, the listener's port, and the accepted side's incoming transfer.
 */
async function rawPeerTransfer(snw: Transport, size: number) {
  const listener = snw.listen({ hostname: HOST, port: 0 });
  const peer = new RawPeer();
  const port = listener.addr.port;
  await peer.send(SnwType.OPEN, 0, new Uint8Array(0), port);
  equal((await peer.next()).packet.type, SnwType.ACK);
  const conn = await listener.accept();
  listener.close();
  await peer.send(SnwType.LEN, 1, encodeLenPayload(size), port);
  const incoming = await conn.receive();
  return {
    peer,
    port,
    incoming,
    async [Symbol.asyncDispose]() {
      await conn[Symbol.asyncDispose]();
      await peer[Symbol.asyncDispose]();
    },
  };
}

/**
 * A listener of `transport` on 127.0.0.1 and both ends of one connection to
 * it; `await using` closes the ends, then the listener.
 */
async function connectedPair(transport: Transport) {
  const listener = transport.listen({ hostname: HOST, port: 0 });
  const accepted = listener.accept();
  const near = await transport.connect({
    hostname: HOST,
    port: listener.addr.port,
  });
  const far = await accepted;
  return {
    near,
    far,
    async [Symbol.asyncDispose]() {
      await far[Symbol.asyncDispose]();
      await near[Symbol.asyncDispose]();
      listener.close();
    },
  };
}

const GIVE_UP_MS = 300;
const reported: string[] = [];
const quick = createSnwTransport({
  timeoutMs: GIVE_UP_MS,
  reportGiveUp: (line) => reported.push(line),
});

/** Asserts that `action` gave up within timeout + 0.5 s, printing `line`. */
async function assertGivesUp(
  line: string,
  action: () => Promise<unknown>,
): Promise<void> {
  reported.length = 0;
  const started = performance.now();
  const error = await action().then(() => undefined, (e) => e);
  const elapsed = performance.now() - started;
  ok(error instanceof TransferTimeoutError, String(error));
  equal(error.message, line);
  deepEqual(reported, [line]);
  ok(elapsed >= GIVE_UP_MS - 20, `gave up too early: ${elapsed} ms`);
  ok(elapsed <= GIVE_UP_MS + 500, `gave up too late: ${elapsed} ms`);
}

Deno.test("snw: sender gives up with exactly 'Did not receive ACK. Terminating.'", async () => {
  await using peer = new RawPeer();
  const opened = (async () => {
    const { packet, addr } = await peer.next();
    equal(packet.type, SnwType.OPEN);
    // Accept the session, then ignore everything.
    await peer.socket.send(
      encodeSnwPacket(SnwType.ACK, packet.session, 0, SNW_WORDS.ACK),
      addr,
    );
  })();
  await using conn = await quick.connect({ hostname: HOST, port: peer.port });
  await opened;
  await assertGivesUp(
    "Did not receive ACK. Terminating.",
    () => conn.send(10, new Uint8Array(10)),
  );
});

async function receiverGiveUp(dataPackets: number, line: string) {
  await using session = await rawPeerTransfer(quick, 5000);
  const { peer, port, incoming } = session;
  for (let i = 0; i < dataPackets; i++) {
    await peer.send(SnwType.DATA, 2 + i, new Uint8Array(1000), port);
  }
  await assertGivesUp(line, () => readAll(incoming.readable));
}

Deno.test("snw: receiver gives up with exactly 'Did not receive data. Terminating.' after LEN alone", async () => {
  await receiverGiveUp(0, "Did not receive data. Terminating.");
});

Deno.test("snw: receiver gives up with exactly 'Data transmission terminated prematurely.' after an ACK", async () => {
  await receiverGiveUp(2, "Data transmission terminated prematurely.");
});

Deno.test("snw: a reader that pauses longer than the give-up timeout does not end the transfer: the receiver answers the held packet with WAIT", async () => {
  const snw = createSnwTransport({
    timeoutMs: 400,
    receiveBufferBytes: 16 * 1024,
    reportGiveUp: () => {},
  });
  // 3.5 give-up timeouts with the buffer full.
  const { ms, intact } = await sendToLateReader(
    snw,
    pattern(100_000, 13),
    1400,
  );
  ok(ms >= 1300, `sender was not held back (${ms} ms)`);
  ok(intact);
});

Deno.test("snw: while its ACK is held for a paused reader, the receiver says WAIT on its own, not only to retransmissions", async () => {
  const timeoutMs = 400;
  const snw = createSnwTransport({
    timeoutMs,
    receiveBufferBytes: 4000,
    reportGiveUp: () => {},
  });
  await using session = await rawPeerTransfer(snw, 100_000);
  const { peer, port, incoming } = session; // nobody reads
  /** The next answer as `[type, seq]`, within a give-up timeout. */
  const answer = async (what: string) => {
    const next = await peer.nextWithin(timeoutMs);
    ok(next, `no answer to ${what} within the give-up timeout`);
    return [next.packet.type, next.packet.seq];
  };
  deepEqual(await answer("the LEN"), [SnwType.ACK, 1]);
  // Stop-and-wait, never sending a packet again, until one is held: it is
  // answered with WAIT instead of ACK, on the receiver's own (every 50 ms).
  // Waiting for the answer itself, not deciding "held" after a fixed wait,
  // so that a late ACK on a busy machine is not taken for a hold.
  let held = -1;
  for (let seq = 2; held < 0; seq++) {
    await peer.send(SnwType.DATA, seq, new Uint8Array(1000), port);
    const [type, answered] = await answer(`DATA ${seq}`);
    equal(answered, seq);
    if (type === SnwType.WAIT) held = seq;
    else equal(type, SnwType.ACK);
  }
  // No retransmission from here: what comes unasked is WAITs, steadily
  // (every 50 ms: five take 250 ms; at most 3 s, 7.5 timeouts).
  assertSteadyWaits(
    await answersUntilWaits(peer, 5, 3000),
    held,
    5,
    timeoutMs,
  );
  await incoming.readable.cancel();
});

Deno.test("snw: a send whose last packet is answered with ACK, not FIN (the receiver wants more bytes), fails instead of ending as if all arrived", async () => {
  const peer = new RawPeer();
  // A receiver that answers everything with ACK, as one whose LEN said more.
  const answering = (async () => {
    while (true) {
      let next;
      try {
        next = await peer.next();
      } catch {
        return; // closed
      }
      const { packet, addr } = next;
      if (packet.type === SnwType.CLOSE) return;
      await peer.socket.send(
        encodeSnwPacket(SnwType.ACK, packet.session, packet.seq, SNW_WORDS.ACK),
        addr,
      );
    }
  })();
  const snw = createSnwTransport({ timeoutMs: 2000 });
  try {
    await using conn = await snw.connect({ hostname: HOST, port: peer.port });
    await rejects(
      conn.send(2500, new Uint8Array(2500)),
      /answered the last packet with ACK, not FIN: it expects more bytes/,
    );
  } finally {
    await peer[Symbol.asyncDispose]();
    await answering;
  }
});

Deno.test("snw: a LEN may start only when it can be received: held with WAIT (on its own too) on a session not yet accepted, and behind one transfer nobody has asked for; its DATA is not taken meanwhile", async () => {
  const snw = createSnwTransport({ timeoutMs: 1000 });
  using listener = snw.listen({ hostname: HOST, port: 0 });
  await using peer = new RawPeer();
  const port = listener.addr.port;
  /** The next answer that is not a WAIT. */
  const nextAnswer = async () => {
    let next = await peer.next();
    while (next.packet.type === SnwType.WAIT) next = await peer.next();
    return [next.packet.type, next.packet.seq];
  };
  /** Five WAITs for `seq` and nothing else, steadily (one per 125 ms). */
  const onlyWaitsFor = async (seq: number) =>
    assertSteadyWaits(await answersUntilWaits(peer, 5, 3000), seq, 5, 1000);
  await peer.send(SnwType.OPEN, 0, new Uint8Array(0), port);
  equal((await peer.next()).packet.type, SnwType.ACK);
  // Not accepted yet: the LEN waits, and so does its DATA.
  await peer.send(SnwType.LEN, 1, encodeLenPayload(3000), port);
  await peer.send(SnwType.DATA, 2, new Uint8Array(1000), port); // not taken
  await onlyWaitsFor(1);
  // Accepted: the transfer may start before its receive() (one ahead).
  await using conn = await listener.accept();
  deepEqual(await nextAnswer(), [SnwType.ACK, 1]);
  for (let seq = 2; seq <= 4; seq++) {
    await peer.send(SnwType.DATA, seq, new Uint8Array(1000).fill(seq), port);
    deepEqual(await nextAnswer(), [seq === 4 ? SnwType.FIN : SnwType.ACK, seq]);
  }
  // A second transfer waits behind the first, which nobody has asked for.
  await peer.send(SnwType.LEN, 5, encodeLenPayload(1), port);
  await onlyWaitsFor(5);
  const first = await conn.receive();
  deepEqual(await nextAnswer(), [SnwType.ACK, 5]); // at once, not at a retry
  equal(first.size, 3000);
  deepEqual(
    await readAll(first.readable),
    concatBytes([2, 3, 4].map((n) => new Uint8Array(1000).fill(n))),
  );
  await peer.send(SnwType.DATA, 6, new Uint8Array([9]), port);
  deepEqual(await nextAnswer(), [SnwType.FIN, 6]);
  deepEqual(
    await readAll((await conn.receive()).readable),
    new Uint8Array([9]),
  );
});

for (const transport of TRANSPORTS) {
  Deno.test(`${transport.name}: both sides may send first and receive after (one transfer ahead each)`, async () => {
    await using pair = await connectedPair(transport);
    const { near: a, far: b } = pair;
    const fromA = crypto.getRandomValues(new Uint8Array(50_000));
    const fromB = crypto.getRandomValues(new Uint8Array(50_000));
    const exchange = async (conn: TransportConn, bytes: Uint8Array) => {
      await conn.send(bytes.length, bytes);
      return await readAll((await conn.receive()).readable);
    };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("hung")), 10_000);
    });
    const [gotA, gotB] = await Promise.race([
      Promise.all([exchange(a, fromA), exchange(b, fromB)]),
      timeout,
    ]).finally(() => clearTimeout(timer));
    deepEqual(gotA, fromB);
    deepEqual(gotB, fromA);
  });
}

Deno.test("snw: a receive() whose signal is already aborted takes nothing: the transfer goes to the next receive()", async () => {
  const snw = createSnwTransport();
  await using pair = await connectedPair(snw);
  const { near: sender, far: receiver } = pair;
  const aborted = AbortSignal.abort(new Error("gave up"));
  // One transfer ahead (taken without a receive()), one held behind it.
  await sender.send(3, new Uint8Array([1, 2, 3]));
  const second = sender.send(2, new Uint8Array([4, 5]));
  await rejects(receiver.receive({ signal: aborted }), /gave up/);
  deepEqual(
    await readAll((await receiver.receive()).readable),
    new Uint8Array([1, 2, 3]),
  );
  await rejects(receiver.receive({ signal: aborted }), /gave up/);
  deepEqual(
    await readAll((await receiver.receive()).readable),
    new Uint8Array([4, 5]),
  );
  await second;
});

Deno.test("snw: transfers sent back to back wait for their receiver: one taken only after twice the give-up timeout arrives intact", async () => {
  const snw = createSnwTransport({ timeoutMs: 300 });
  await using pair = await connectedPair(snw);
  const { near: sender, far: receiver } = pair;
  const first = crypto.getRandomValues(new Uint8Array(10_000));
  const second = crypto.getRandomValues(new Uint8Array(10_000));
  const sending = (async () => {
    await sender.send(first.length, first);
    await sender.send(second.length, second);
  })();
  deepEqual(await readAll((await receiver.receive()).readable), first);
  await new Promise((resolve) => setTimeout(resolve, 700));
  deepEqual(await readAll((await receiver.receive()).readable), second);
  await sending;
});

Deno.test("snw: a peer that sends on without waiting for a held ACK gets nothing more accepted; the receive buffer bound holds", async () => {
  const bound = 16 * 1024;
  const snw = createSnwTransport({
    timeoutMs: 5000,
    receiveBufferBytes: bound,
  });
  const size = 400_000;
  await using session = await rawPeerTransfer(snw, size);
  const { peer, port, incoming } = session; // nobody reads yet
  // Every DATA at once, never waiting for an answer (paced only so that the
  // socket's receive buffer does not overflow).
  for (let seq = 2; seq < 2 + size / 1000 - 1; seq++) {
    await peer.send(SnwType.DATA, seq, new Uint8Array(1000), port);
    if (seq % 8 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
  // What a reader finds queued, reading until nothing more comes in 200 ms.
  const reader = incoming.readable.getReader();
  let queued = 0;
  while (true) {
    const timeout = new Promise<null>((resolve) =>
      setTimeout(() => resolve(null), 200)
    );
    const read = await Promise.race([reader.read(), timeout]);
    if (read === null || read.done) break;
    queued += read.value.length;
  }
  ok(queued <= bound + 2 * 1000, `${queued} bytes were queued`);
  ok(queued >= bound, `only ${queued} bytes were queued`);
  reader.releaseLock();
});

for (const transport of TRANSPORTS) {
  Deno.test(`${transport.name}: a peer that dies mid-transfer gives an error, never a hang`, async () => {
    using listener = transport.listen({ hostname: HOST, port: 0 });
    const accepted = listener.accept();
    const conn = await transport.connect({
      hostname: HOST,
      port: listener.addr.port,
    });
    await using peer = await accepted;
    const incoming = peer.receive();
    // Announce 1 MiB, send 100 KiB, then die.
    async function* partial() {
      yield new Uint8Array(100 * 1024);
      await conn[Symbol.asyncDispose]();
      yield new Uint8Array(1);
    }
    const sending = conn.send(1024 * 1024, partial()).catch((e) => e);
    const transfer = await incoming;
    const started = performance.now();
    const error = await readAll(transfer.readable).then(
      () => undefined,
      (e) => e,
    );
    ok(error instanceof Error, "the reader saw the transfer end cleanly");
    ok(performance.now() - started < 5000);
    ok((await sending) instanceof Error);
  });
}

Deno.test("snw: corrupt and foreign datagrams are ignored, the session goes on", async () => {
  using listener = fastSnw.listen({ hostname: HOST, port: 0 });
  ok(listener instanceof SnwListener);
  await using peer = new RawPeer();
  const port = listener.addr.port;
  const to = { transport: "udp", hostname: HOST, port } as const;
  await peer.socket.send(new TextEncoder().encode("hello?"), to);
  // An OPEN of a session of its own (6) with a broken CRC: taken, it would
  // be answered with ACK 0 and its session queued for accept().
  const bad = encodeSnwPacket(SnwType.OPEN, 6, 0, new Uint8Array(0));
  bad[bad.length - 1] ^= 0xff; // breaks the CRC
  await peer.socket.send(bad, to);
  const firstAnswer = peer.next();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const quiet = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), 200);
  });
  const early = await Promise.race([firstAnswer, quiet]);
  clearTimeout(timer);
  equal(early, null, `the corrupt OPEN was answered: ${JSON.stringify(early)}`);
  equal(listener.queued, 0, "the corrupt OPEN's session was queued");
  // The listener goes on: a valid OPEN (session 5) is the first answered,
  // and the only session queued.
  await peer.send(SnwType.OPEN, 0, new Uint8Array(0), port, 5);
  const ack = await firstAnswer;
  equal(ack.packet.type, SnwType.ACK);
  equal(ack.packet.session, 5);
  equal(listener.queued, 1);
  await using conn = await listener.accept();
  equal(conn.remoteAddr.port, peer.port);
  equal(listener.queued, 0);
});

Deno.test("snw: an executable prints the give-up line on stderr (default reporter)", async () => {
  // A UDP socket that never answers: the OPEN goes unacknowledged.
  await using peer = new RawPeer();
  await using dir = await tempDir();
  const file = join(dir.path, "f.bin");
  await Deno.writeFile(file, new Uint8Array(10));
  const result = await runRole("client", [
    "repeat",
    "127.0.0.1",
    String(peer.port),
    file,
    "--transport",
    "snw",
    "--times",
    "1",
  ], { env: { SOCKKIT_SNW_TIMEOUT_MS: "300" }, timeoutMs: 20_000 });
  ok(result.code !== 0);
  ok(
    result.stderr.split("\n").includes("Did not receive ACK. Terminating."),
    result.stderr,
  );
  // The command's own error says where the unanswered OPEN went.
  ok(
    result.stderr.includes(
      `(no answer to the session's OPEN from 127.0.0.1 UDP port ${peer.port}: is an snw peer there?)`,
    ),
    result.stderr,
  );
});

Deno.test("snw: a bad tuning variable is a clear error of the command, not a crash", async () => {
  await using dir = await tempDir();
  const file = join(dir.path, "f.bin");
  await Deno.writeFile(file, new Uint8Array(10));
  const result = await runRole(
    "client",
    ["repeat", "127.0.0.1", "9", file, "--transport", "snw", "--times", "1"],
    { env: { SOCKKIT_SNW_CHUNK_SIZE: "abc" }, timeoutMs: 20_000 },
  );
  equal(result.code, 1, result.stderr);
  ok(
    result.stderr.includes(
      'SOCKKIT_SNW_CHUNK_SIZE must be a positive number, not "abc"',
    ),
    result.stderr,
  );
  ok(!result.stderr.includes("    at "), "no stack trace");
});

Deno.test("transferChunks: leaving the loop early cancels the transfer, the sender fails instead of hanging", async () => {
  await using pair = await connectedPair(tcpTransport);
  const { near: conn, far: peer } = pair;
  const size = 64 * 1024 * 1024;
  const sending = conn.send(size, new Uint8Array(size)).then(
    () => undefined,
    (e) => e,
  );
  const incoming = await peer.receive();
  for await (const chunk of transferChunks(incoming.readable)) {
    ok(chunk.length > 0);
    break;
  }
  ok((await sending) instanceof Error, "the sender should see the cancel");
});

Deno.test("transferChunks: a stream with a registered direct reader is read through it, and cancelled when left early", async () => {
  let cancelled = false;
  const readable = new ReadableStream<Uint8Array>({
    pull: () => Promise.reject(new Error("the stream itself was read")),
    cancel: () => {
      cancelled = true;
    },
  }, { highWaterMark: 0 }); // nothing read ahead, as the transports' streams
  const parts = [[1, 2, 3], [4], [5, 6]];
  let next = 0;
  registerDirectReader(readable, (buffer) => {
    const part = parts[next++];
    if (!part) return Promise.resolve(null);
    buffer.set(part);
    return Promise.resolve(part.length);
  });
  const seen: number[][] = [];
  for await (const chunk of transferChunks(readable, 8)) seen.push([...chunk]);
  deepEqual(seen, parts);
  equal(cancelled, false);
  next = 0;
  for await (const _ of transferChunks(readable, 8)) break;
  equal(cancelled, true, "left early: the stream is cancelled");
});

Deno.test("relay command line: help, defaults, and bad values as usage errors", () => {
  equal(parseRelayArgs(["--help"]), "help");
  equal(parseRelayArgs(["-h"]), "help");
  deepEqual(parseRelayArgs(["--target-port", "9000", "--drop", "0.1"]), {
    targetPort: 9000,
    targetHost: "127.0.0.1",
    port: 0,
    seed: 1,
    drop: 0.1,
    duplicate: 0,
    reorder: 0,
    corrupt: 0,
    delayMs: 0,
  });
  for (
    const args of [
      [],
      ["--target-port", "x"],
      ["--target-port", "9", "--drop", "2"],
      ["--target-port", "9", "--corrupt", "-0.1"],
      ["--target-port", "9", "--delay-ms", "soon"],
      ["--target-port", "9", "--seed", "1.5"],
      ["--bogus"],
    ]
  ) {
    throws(() => parseRelayArgs(args), UsageError, args.join(" "));
  }
});

Deno.test("relay command line: --help exits 0, a bad value exits 2 with the reason and usage, good options start it", async () => {
  const relay = (args: string[], stdout: "piped" | "null" = "piped") =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--unstable-net",
        new URL("../bench/relay.ts", import.meta.url).pathname,
        ...args,
      ],
      stdout,
      stderr: "piped",
      env: { NO_COLOR: "1" },
    });
  const help = await relay(["--help"]).output();
  equal(help.code, 0);
  equal(new TextDecoder().decode(help.stdout), `${RELAY_USAGE}\n`);
  const bad = await relay(["--target-port", "9", "--drop", "2"]).output();
  equal(bad.code, 2);
  const stderr = new TextDecoder().decode(bad.stderr);
  ok(stderr.startsWith("relay: "), stderr);
  equal(stderr.split("\n")[1], RELAY_USAGE.split("\n")[0]);
  const target = Deno.listenDatagram({
    transport: "udp",
    hostname: HOST,
    port: 0,
  });
  const targetPort = (target.addr as Deno.NetAddr).port;
  const sender = Deno.listenDatagram({
    transport: "udp",
    hostname: HOST,
    port: 0,
  });
  const child = relay(["--target-port", String(targetPort)]).spawn();
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    const { value } = await within(
      reader.read(),
      20_000,
      "the relay's listening line",
    );
    const port =
      /^relay listening on 127\.0\.0\.1:(\d+) -> 127\.0\.0\.1:(\d+)\n/
        .exec(value ?? "");
    ok(port, value);
    equal(Number(port[2]), targetPort);
    await reader.cancel();
    // It forwards what it gets.
    await sender.send(new TextEncoder().encode("hi"), {
      transport: "udp",
      hostname: HOST,
      port: Number(port[1]),
    });
    const [bytes] = await within(
      target.receive(),
      5000,
      "the relay to forward a datagram",
    );
    equal(new TextDecoder().decode(bytes), "hi");
  } finally {
    child.kill();
    await child.status;
    await child.stderr.cancel();
    target.close();
    sender.close();
  }
});

/**
 * An SNW channel acceptor next to a TCP control listener, and a raw UDP
 * socket that sends it OPENs and records the type of each answer.
 */
function acceptorAndRawPeer() {
  const snw = createSnwTransport();
  const control = Deno.listen({ hostname: HOST, port: 0 });
  const acceptor = snw.channels({ hostname: HOST, port: control.addr.port });
  ok(acceptor instanceof SnwChannelAcceptor);
  const socket = Deno.listenDatagram({
    transport: "udp",
    hostname: HOST,
    port: 0,
  });
  const target: Deno.NetAddr = {
    transport: "udp",
    hostname: HOST,
    port: control.addr.port,
  };
  const answers: number[] = [];
  const reading = (async () => {
    const buffer = new Uint8Array(65536);
    while (true) {
      try {
        const [bytes] = await socket.receive(buffer);
        answers.push(decodeSnwPacket(bytes).type);
      } catch {
        return; // closed
      }
    }
  })();
  return {
    snw,
    control,
    acceptor,
    answers,
    /** Sends an OPEN of `session` with `tag` from the raw socket. */
    open: (session: number, tag: Uint8Array) =>
      socket.send(encodeSnwPacket(SnwType.OPEN, session, 0, tag), target),
    async [Symbol.asyncDispose]() {
      acceptor.close();
      socket.close();
      control.close();
      await reading;
    },
  };
}

Deno.test("snw acceptor: an OPEN flood keeps at most 256 unclaimed sessions, drops the oldest without CLOSEs, ignores oversize tags", async () => {
  await using peer = acceptorAndRawPeer();
  const { snw, control, acceptor, answers, open } = peer;
  // An oversize tag (more than 64 bytes) is not a channel: no answer.
  await open(1, new Uint8Array(65).fill(0x61));
  // In bursts of 50, each answered before the next (so that the socket's
  // receive buffer never overflows: that would be loss, not the cap).
  for (let burst = 0; burst < 6; burst++) {
    for (let i = burst * 50; i < (burst + 1) * 50; i++) {
      await open(1000 + i, new TextEncoder().encode(`flood-${i}`));
    }
    const deadline = Date.now() + 5_000;
    while (answers.length < (burst + 1) * 50 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 100)); // any late CLOSE
  equal(acceptor.unclaimed, 256);
  deepEqual(
    answers,
    Array(300).fill(SnwType.ACK),
    "one ACK per flood OPEN, none for the oversize tag, no CLOSE",
  );
  // A real channel still gets through.
  const real = (async () => {
    using tcp = await control.accept();
    await using channel = await acceptor.accept(tcp, "real");
    const incoming = await channel.receive();
    equal(new TextDecoder().decode(await readAll(incoming.readable)), "ok");
  })();
  {
    using tcp = await Deno.connect({ hostname: HOST, port: control.addr.port });
    await using channel = await snw.openChannel(tcp, "real");
    await channel.send(2, new TextEncoder().encode("ok"));
    await real;
  }
});

Deno.test("snw acceptor: a second OPEN with a tag still unclaimed replaces the first, which is dropped without a CLOSE", async () => {
  await using peer = acceptorAndRawPeer();
  const { snw, control, acceptor, answers, open } = peer;
  await open(7, new TextEncoder().encode("dup"));
  const deadline = Date.now() + 5_000;
  while (answers.length === 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  deepEqual(answers, [SnwType.ACK]);
  equal(acceptor.unclaimed, 1);
  using client = await Deno.connect({
    hostname: HOST,
    port: control.addr.port,
  });
  using server = await control.accept();
  await using opened = await snw.openChannel(client, "dup");
  equal(acceptor.unclaimed, 1, "replaced, not added");
  await using accepted = await acceptor.accept(server, "dup");
  equal(acceptor.unclaimed, 0);
  const [, received] = await Promise.all([
    opened.send(2, new TextEncoder().encode("ok")),
    accepted.receive().then((incoming) => readAll(incoming.readable)),
  ]);
  equal(new TextDecoder().decode(received), "ok");
  await new Promise((resolve) => setTimeout(resolve, 100)); // any late CLOSE
  deepEqual(answers, [SnwType.ACK], "the replaced session got no CLOSE");
});

Deno.test("snw listener: an OPEN flood keeps at most 256 sessions waiting to be accepted, dropping the oldest without CLOSEs", async () => {
  const snw = createSnwTransport();
  const listener = snw.listen({ hostname: HOST, port: 0 });
  ok(listener instanceof SnwListener);
  await using peer = new RawPeer();
  const answers: number[] = [];
  // In bursts of 50, each answered before the next (so that the socket's
  // receive buffer never overflows: that would be loss, not the cap).
  for (let burst = 0; burst < 6; burst++) {
    for (let i = burst * 50; i < (burst + 1) * 50; i++) {
      await peer.send(
        SnwType.OPEN,
        0,
        new Uint8Array(0),
        listener.addr.port,
        1000 + i,
      );
    }
    for (let i = 0; i < 50; i++) answers.push((await peer.next()).packet.type);
  }
  equal(listener.queued, 256);
  deepEqual(answers, Array(300).fill(SnwType.ACK));
  // The oldest were dropped without a word; the newest is still accepted.
  const late = await Promise.race([
    peer.next().then(({ packet }) => packet.type),
    new Promise((resolve) => setTimeout(() => resolve("none"), 200)),
  ]);
  equal(late, "none", "a CLOSE was sent to a flood source");
  const accepted: TransportConn[] = [];
  for (let i = 0; i < 256; i++) accepted.push(await listener.accept());
  equal(listener.queued, 0);
  equal((accepted[255] as { session?: number }).session, 1299);
  equal((accepted[0] as { session?: number }).session, 1044);
  listener.close();
  await Promise.all(accepted.map((conn) => conn[Symbol.asyncDispose]()));
});
