/**
 * SnwSender (transport/snw_sender.ts) and ByteStreamBatcher
 * (transport/byte_stream_batcher.ts) on their own, without sockets: the
 * two halves of SNW's per-packet path.
 */

import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { concatBytes } from "./_helpers/bytes.ts";
import {
  BATCHED_STREAM_CHUNK_BYTES,
  ByteStreamBatcher,
} from "../transport/byte_stream_batcher.ts";
import { RtoEstimator } from "../transport/rto.ts";
import {
  decodeSnwPacket,
  encodeLenPayload,
  encodeSnwPacket,
  SNW_WORDS,
  SnwType,
} from "../transport/snw_packet.ts";
import { SnwSender } from "../transport/snw_sender.ts";
import { TransferTimeoutError } from "../transport/errors.ts";
import { createSnwTransport } from "../transport/snw.ts";

/**
 * A source that yields `sizes` bytes per chunk from ONE reused buffer,
 * overwriting it as soon as the next chunk is asked for (as a file reader
 * reading into its buffer would).
 */
function reusedBufferSource(
  sizes: number[],
): AsyncIterator<Uint8Array> & { closed: boolean } {
  const buffer = new Uint8Array(Math.max(...sizes));
  let value = 0;
  let index = 0;
  return {
    closed: false,
    next() {
      if (index === sizes.length) {
        return Promise.resolve({ done: true, value: undefined });
      }
      const size = sizes[index++];
      for (let i = 0; i < size; i++) buffer[i] = value++ & 0xff;
      return Promise.resolve({ done: false, value: buffer.subarray(0, size) });
    },
    return() {
      this.closed = true;
      return Promise.resolve({ done: true, value: undefined });
    },
  };
}

function expectedBytes(total: number): Uint8Array {
  return Uint8Array.from({ length: total }, (_, i) => i & 0xff);
}

interface Harness {
  sender: SnwSender;
  sent: { seq: number; payload: Uint8Array; at: number }[];
  closed: () => boolean;
}

/**
 * A sender whose peer answers every DATA packet at once (on a later
 * task), except the transmissions `drop` returns true for.
 */
function harness(
  sizes: number[],
  options: {
    chunkSize?: number;
    drop?: (seq: number, attempt: number) => boolean;
    /** Answers a DATA packet (default: `sender.answer(seq)`). */
    answer?: (sender: SnwSender, seq: number) => void;
    timeoutMs?: number;
    rto?: RtoEstimator;
  } = {},
): Harness {
  const sent: Harness["sent"] = [];
  const attempts = new Map<number, number>();
  const chunks = reusedBufferSource(sizes);
  const size = sizes.reduce((a, b) => a + b, 0);
  const sender: SnwSender = new SnwSender({
    session: 9,
    first: {
      datagram: encodeSnwPacket(SnwType.LEN, 9, 1, encodeLenPayload(size)),
      seq: 1,
    },
    firstSeq: 2,
    chunkSize: options.chunkSize ?? 1000,
    size,
    chunks,
    timeoutMs: options.timeoutMs ?? 1000,
    rto: options.rto ?? new RtoEstimator(),
    transmit: (datagram) => {
      const packet = decodeSnwPacket(datagram);
      if (packet.type === SnwType.LEN) {
        equal(packet.seq, 1);
        setTimeout(() => sender.answer(packet.seq), 0);
        return Promise.resolve();
      }
      equal(packet.type, SnwType.DATA);
      const attempt = (attempts.get(packet.seq) ?? 0) + 1;
      attempts.set(packet.seq, attempt);
      sent.push({
        seq: packet.seq,
        payload: packet.payload.slice(),
        at: performance.now(),
      });
      if (!options.drop?.(packet.seq, attempt)) {
        const answer = options.answer ??
          ((sender: SnwSender, seq: number) => sender.answer(seq));
        setTimeout(() => answer(sender, packet.seq), 0);
      }
      return Promise.resolve();
    },
    giveUp: () => new TransferTimeoutError("gave up"),
  });
  return { sender, sent, closed: () => chunks.closed };
}

Deno.test("snw sender: cuts any chunking into full packets, in order, from a source that reuses its buffer", async () => {
  // 9007 bytes; the first chunk ends exactly with a packet cut from it
  const sizes = [1000, 1, 999, 2500, 7, 1000, 3000, 500];
  const total = sizes.reduce((a, b) => a + b, 0);
  const { sender, sent } = harness(sizes);
  sender.start();
  await sender.done;
  deepEqual(sent.map((p) => p.seq), sent.map((_, i) => i + 2));
  deepEqual(
    sent.map((p) => p.payload.length),
    [...Array(Math.floor(total / 1000)).fill(1000), total % 1000],
  );
  deepEqual(concatBytes(sent.map((p) => p.payload)), expectedBytes(total));
  equal(sender.nextSeq, 2 + sent.length);
});

Deno.test("snw sender: a lost packet is sent again after the RTO, and only it", async () => {
  const rto = new RtoEstimator({ initialMs: 30, minMs: 30, maxMs: 30 });
  const { sender, sent } = harness([5000], {
    rto,
    drop: (seq, attempt) => seq === 4 && attempt === 1,
  });
  sender.start();
  await sender.done;
  const tries = sent.filter((p) => p.seq === 4);
  equal(tries.length, 2);
  const gap = tries[1].at - tries[0].at;
  ok(gap >= 29, `retransmitted after ${gap} ms, before the 30 ms RTO`);
  equal(sent.length, 6); // five packets, one of them twice
  deepEqual(
    concatBytes(
      sent.filter((p) => p !== tries[0]).map((p) => p.payload),
    ),
    expectedBytes(5000),
  );
});

/** An estimator that records the round-trip samples it is fed. */
class RecordingRto extends RtoEstimator {
  readonly samples: number[] = [];
  override sample(rttMs: number): void {
    this.samples.push(rttMs);
    super.sample(rttMs);
  }
}

Deno.test("snw sender: Karn's rule: the answer of a retransmitted packet leaves the RTO estimator as it was, the answer of a packet sent once is a sample", async () => {
  // The RTO is held at 50 ms, so only the dropped packet is sent again.
  const rto = new RecordingRto({ initialMs: 50, minMs: 50, maxMs: 50 });
  const answers: {
    seq: number;
    retransmitted: boolean;
    samples: number;
    before: [number | undefined, number];
    after: [number | undefined, number];
  }[] = [];
  const { sender, sent } = harness([4000], {
    rto,
    drop: (seq, attempt) => seq === 3 && attempt === 1,
    answer: (sender, seq) => {
      const retransmitted = sent.filter((p) => p.seq === seq).length > 1;
      const samples = rto.samples.length;
      const before: [number | undefined, number] = [rto.srtt, rto.rto];
      sender.answer(seq);
      answers.push({
        seq,
        retransmitted,
        samples: rto.samples.length - samples,
        before,
        after: [rto.srtt, rto.rto],
      });
    },
  });
  sender.start();
  await sender.done;
  const third = answers.find((a) => a.seq === 3);
  ok(third?.retransmitted, "packet 3 was answered only once sent again");
  equal(third.samples, 0, "the answer of packet 3 was taken as a sample");
  deepEqual(third.after, third.before, "the estimate moved");
  for (const { seq, retransmitted, samples } of answers) {
    equal(samples, retransmitted ? 0 : 1, `samples from the answer of ${seq}`);
  }
  deepEqual([...new Set(answers.map((a) => a.seq))], [2, 3, 4, 5]);
});

Deno.test("snw sender: without answers it gives up after the timeout and closes the source", async () => {
  const rto = new RtoEstimator({ initialMs: 10, minMs: 10, maxMs: 20 });
  const { sender, sent, closed } = harness([1000, 1000, 1000], {
    rto,
    timeoutMs: 120,
    drop: (seq) => seq === 3,
  });
  const started = performance.now();
  sender.start();
  await rejects(sender.done, TransferTimeoutError);
  const elapsed = performance.now() - started;
  ok(elapsed >= 120 && elapsed < 1000, `gave up after ${elapsed} ms`);
  ok(sent.filter((p) => p.seq === 3).length >= 3, "retransmitted meanwhile");
  ok(closed(), "the source was closed");
});

Deno.test("snw sender: an unanswered packet is sent again at least every 32nd of the timeout, so a lossy path gets many tries before the give-up", async () => {
  const timeoutMs = 1000;
  const { sender, sent } = harness([3000], {
    timeoutMs,
    drop: (seq) => seq === 3, // never answered
  });
  sender.start();
  await rejects(sender.done, TransferTimeoutError);
  const times = sent.filter((p) => p.seq === 3).map((p) => p.at);
  const gaps = times.slice(1).map((at, i) => at - times[i]);
  // Deno's timers fire up to ~3 ms late, and a busy machine can hold one
  // timer back by tens of ms (a gap of 54 ms in one CI run): the bound is on
  // the gaps' third quartile. Backing off to 250 ms gave ~11 transmissions,
  // most of them 250 ms apart.
  ok(times.length >= 20, `${times.length} transmissions in the timeout`);
  const sorted = gaps.toSorted((a, b) => a - b);
  const thirdQuartile = sorted[Math.floor(sorted.length * 0.75)];
  ok(
    thirdQuartile < timeoutMs / 32 + 15,
    `gaps (ms): ${sorted.map((gap) => gap.toFixed(1)).join(" ")}`,
  );
});

Deno.test("snw sender: a packet its receiver says it holds (WAIT) is sent again less and less often, up to the RTO ceiling", async () => {
  let started = 0;
  const { sender, sent } = harness([3000], {
    timeoutMs: 1000,
    answer: (sender, seq) => {
      if (seq === 3 && performance.now() - started < 1200) sender.wait(seq);
      else sender.answer(seq);
    },
  });
  started = performance.now();
  sender.start();
  await sender.done;
  const tries = sent.filter((p) => p.seq === 3).length;
  // Doubling from the RTO to 250 ms: about a dozen in 1.2 s (the 31 ms of
  // an unanswered packet would make it about forty).
  ok(tries < 20, `${tries} transmissions of the held packet`);
});

Deno.test("snw sender: a WAIT for the outstanding packet starts its give-up timeout again, for as long as WAITs come", async () => {
  const rto = new RtoEstimator({ initialMs: 10, minMs: 10, maxMs: 20 });
  let started = 0;
  let waits = 0;
  const { sender, sent } = harness([3000], {
    rto,
    timeoutMs: 120,
    answer: (sender, seq) => {
      // The receiver holds packet 3 for 400 ms (over three timeouts).
      if (seq === 3 && performance.now() - started < 400) {
        sender.wait(seq);
        waits++;
      } else sender.answer(seq);
    },
  });
  started = performance.now();
  sender.start();
  await sender.done;
  ok(performance.now() - started >= 400, "answered before the hold ended");
  ok(waits >= 10, `${waits} WAITs`);
  deepEqual(
    concatBytes(
      sent.filter((p, i) => sent.findIndex((q) => q.seq === p.seq) === i)
        .map((p) => p.payload),
    ),
    expectedBytes(3000),
  );
});

Deno.test("snw sender: a peer that closes having received the last packet ends the transfer well, otherwise it fails", async () => {
  const whole = harness([1500], { drop: (seq) => seq === 3 });
  whole.sender.start();
  while (!whole.sent.some((p) => p.seq === 3)) {
    await new Promise((r) => setTimeout(r, 1));
  }
  whole.sender.peerClosed(3, new Error("closed"));
  await whole.sender.done;

  const cut = harness([2500], { drop: (seq) => seq === 3 });
  cut.sender.start();
  while (!cut.sent.some((p) => p.seq === 3)) {
    await new Promise((r) => setTimeout(r, 1));
  }
  cut.sender.peerClosed(3, new Error("closed early"));
  await rejects(cut.sender.done, /closed early/);
  ok(cut.closed(), "the source was closed");
});

Deno.test("snw sender: answerDatagram takes the outstanding packet's answer datagram (ACK, FIN for the last), and nothing else", async () => {
  const answer =
    (type: typeof SnwType.ACK | typeof SnwType.FIN) =>
    (session: number, seq: number) =>
      encodeSnwPacket(
        type,
        session,
        seq,
        type === SnwType.FIN ? SNW_WORDS.FIN : SNW_WORDS.ACK,
      );
  const refused: string[] = [];
  const { sender, sent } = harness([3500], {
    answer: (sender, seq) => {
      const last = seq === 5; // 3500 bytes in packets 2, 3, 4 and 5
      const right = answer(last ? SnwType.FIN : SnwType.ACK);
      const other = answer(last ? SnwType.ACK : SnwType.FIN);
      const corrupt = right(9, seq);
      corrupt[21] ^= 1; // its CRC
      const wrong: [string, Uint8Array][] = [
        ["the other word", other(9, seq)],
        ["the previous seq", right(9, seq - 1)],
        ["the next seq", right(9, seq + 1)],
        ["another session", right(10, seq)],
        ["a corrupt CRC", corrupt],
        ["a longer datagram", concatBytes([right(9, seq), new Uint8Array(1)])],
      ];
      for (const [what, datagram] of wrong) {
        if (sender.answerDatagram(datagram)) refused.push(`${what} (${seq})`);
      }
      ok(sender.answerDatagram(right(9, seq)), `the answer of ${seq}`);
      equal(sender.answerDatagram(right(9, seq)), false, "a duplicate");
    },
  });
  sender.start();
  await sender.done;
  deepEqual(refused, [], "taken as the answer");
  deepEqual(sent.map((p) => p.seq), [2, 3, 4, 5]);
  deepEqual(concatBytes(sent.map((p) => p.payload)), expectedBytes(3500));
});

Deno.test("snw sender: the last packet answered with ACK (the receiver wants more bytes), or another with FIN (it wants fewer), fails the transfer", async () => {
  for (const [word, at] of [["ACK", 5], ["FIN", 3]] as const) {
    const { sender } = harness([3500], {
      answer: (sender, seq) => {
        if (seq === at) sender.answer(seq, word === "FIN");
        else sender.answer(seq, seq === 5);
      },
    });
    sender.start();
    await rejects(
      sender.done,
      word === "ACK" ? /expects more bytes than were sent/ : /expects fewer/,
    );
  }
  // the words the receiver should use: done
  const { sender } = harness([3500], {
    answer: (sender, seq) => sender.answer(seq, seq === 5),
  });
  sender.start();
  await sender.done;
});

/** A byte stream fed by a batcher, as SNW makes it. */
function batchedStream(
  options?: { flushMs?: number; batchBytes?: number; stageBytes?: number },
) {
  let batcher!: ByteStreamBatcher;
  const readable = new ReadableStream({
    type: "bytes",
    autoAllocateChunkSize: BATCHED_STREAM_CHUNK_BYTES,
    start: (controller) => {
      batcher = new ByteStreamBatcher(controller, options);
    },
    pull: () => batcher.pull(),
  }, { highWaterMark: 0 });
  return { batcher, readable };
}

/** A byte stream fed by a batcher, and its BYOB reader. */
function batched(
  options?: { flushMs?: number; batchBytes?: number; stageBytes?: number },
) {
  const { batcher, readable } = batchedStream(options);
  return { batcher, reader: readable.getReader({ mode: "byob" }) };
}

/** Reads a BYOB reader to its end, `size` bytes at a time. */
async function readAll(
  reader: ReadableStreamBYOBReader,
  size: number,
): Promise<number[]> {
  const out: number[] = [];
  while (true) {
    const { done, value } = await reader.read(new Uint8Array(size));
    if (done) return out;
    out.push(...value);
  }
}

Deno.test("byte stream batcher: small payloads complete one read per batch, large ones a read each", async () => {
  const { batcher, reader } = batched({ flushMs: 1000, batchBytes: 4000 });
  let read = reader.read(new Uint8Array(65536));
  for (let i = 0; i < 4; i++) batcher.push(new Uint8Array(1000).fill(i));
  const first = await read;
  equal(first.value?.length, 4000); // one read for four payloads
  equal(first.value?.[3999], 3);
  read = reader.read(new Uint8Array(first.value!.buffer));
  batcher.push(new Uint8Array(5000).fill(7));
  equal((await read).value?.length, 5000);
});

Deno.test("byte stream batcher: a partial batch completes its read after flushMs, or at close", async () => {
  const { batcher, reader } = batched({ flushMs: 20 });
  const started = performance.now();
  const read = reader.read(new Uint8Array(65536));
  batcher.push(new Uint8Array([1, 2, 3]));
  const { value } = await read;
  const waited = performance.now() - started;
  deepEqual([...value!], [1, 2, 3]);
  ok(waited >= 15, `completed after ${waited} ms, not batched`);
  const last = reader.read(new Uint8Array(value!.buffer));
  batcher.push(new Uint8Array([4]));
  batcher.close();
  deepEqual([...(await last).value!], [4]);
  equal((await reader.read(new Uint8Array(8))).done, true);
});

Deno.test("byte stream batcher: what does not fit the pending read is queued after it, nothing lost", async () => {
  const { batcher, reader } = batched({ flushMs: 1000 });
  const read = reader.read(new Uint8Array(10));
  batcher.push(new Uint8Array([1, 2, 3, 4, 5, 6]));
  batcher.push(new Uint8Array([7, 8, 9, 10, 11, 12])); // 12 > 10
  batcher.close();
  const out: number[] = [...(await read).value!];
  out.push(...await readAll(reader, 10));
  deepEqual(out, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
});

Deno.test("byte stream batcher: payloads that arrive between reads wait in the stage, in order, and count against its room", async () => {
  const { batcher, reader } = batched({ flushMs: 1000, stageBytes: 16 });
  equal(batcher.room, 16);
  batcher.push(Uint8Array.from([1, 2, 3, 4, 5, 6])); // no read pending
  batcher.push(Uint8Array.from([7, 8, 9, 10, 11, 12]));
  equal(batcher.room, 4);
  // A read smaller than the stage takes its oldest bytes; the rest waits.
  deepEqual([...(await reader.read(new Uint8Array(4))).value!], [1, 2, 3, 4]);
  equal(batcher.room, 8);
  for (let i = 13; i < 40; i += 3) {
    batcher.push(Uint8Array.from([i, i + 1, i + 2]));
  }
  ok(batcher.room < 0); // past the bound: the transport holds its ACK first
  const rest = reader.read(new Uint8Array(5));
  deepEqual([...(await rest).value!], [5, 6, 7, 8, 9]);
  batcher.close(); // with bytes staged: the stream ends after them
  deepEqual(
    await readAll(reader, 7),
    Array.from({ length: 30 }, (_, i) => i + 10),
  );
});

Deno.test("byte stream batcher: the stage wraps around its end and grows past its bound without losing or reordering a byte", async () => {
  // The ring starts at the first payload's size here (its bound, 16, is
  // smaller) and doubles as far as the bound plus one largest payload
  // (16 + 64 KiB), or further when more arrives.
  const { batcher, reader } = batched({ flushMs: 1000, stageBytes: 16 });
  const sent: number[] = [];
  let next = 0;
  const push = (length: number) => {
    const payload = Uint8Array.from({ length }, () => next++ % 251);
    sent.push(...payload);
    batcher.push(payload);
  };
  const received: number[] = [];
  const read = async (size: number) => {
    const { value } = await reader.read(new Uint8Array(size));
    received.push(...value!);
  };
  push(40_000); // staged at the ring's start
  await read(30_000);
  push(40_000); // 10 000 + 40 000 staged, the new one across the ring's end
  await read(45_000); // a read across the ring's end
  push(60_000); // 5 000 + 60 000 staged, across the end again
  push(10_000); // more than the ring holds: it grows, the wrapped bytes moved
  batcher.close();
  received.push(...await readAll(reader, 64 * 1024));
  equal(received.length, sent.length);
  ok(received.every((byte, i) => byte === sent[i]), "bytes out of order");
});

Deno.test("byte stream batcher: the stage of a short stream is no bigger than its bound", () => {
  // 200 streams with 1000 bytes each waiting unread: ~200 KB of stages, not
  // 200 of 64 KiB (12.8 MB).
  const streams = [];
  const before = Deno.memoryUsage().external;
  for (let i = 0; i < 200; i++) {
    const stream = batched({ stageBytes: 1000 });
    stream.batcher.push(new Uint8Array(1000));
    streams.push(stream);
  }
  const grown = Deno.memoryUsage().external - before;
  ok(grown < 4_000_000, `${grown} bytes for 200 stages of 1000`);
  for (const { batcher } of streams) batcher.error(new Error("done"));
});

Deno.test("byte stream batcher: a pending read too small for a payload takes what fits, the rest is staged", async () => {
  const { batcher, reader } = batched({ flushMs: 1000 });
  // A first read, so that the stream has started and calls pull() for the
  // next one at once, before the payload arrives.
  const first = reader.read(new Uint8Array(1));
  batcher.push(Uint8Array.from([0]));
  deepEqual([...(await first).value!], [0]);
  const read = reader.read(new Uint8Array(4));
  batcher.push(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
  deepEqual([...(await read).value!], [1, 2, 3, 4]);
  batcher.close();
  deepEqual(await readAll(reader, 4), [5, 6, 7, 8, 9, 10]);
});

Deno.test("byte stream batcher: a default reader gets every byte too, staged or not", async () => {
  const { batcher, readable } = batchedStream({ flushMs: 1 });
  batcher.push(Uint8Array.from([1, 2]));
  const reader = readable.getReader();
  deepEqual([...(await reader.read()).value!], [1, 2]);
  const read = reader.read(); // pending: the payload goes into its buffer
  batcher.push(Uint8Array.from([3]));
  deepEqual([...(await read).value!], [3]);
  batcher.push(Uint8Array.from([4, 5]));
  batcher.close();
  deepEqual([...(await reader.read()).value!], [4, 5]);
  equal((await reader.read()).done, true);
});

Deno.test("byte stream batcher: an error drops what is staged and fails the next read", async () => {
  const { batcher, reader } = batched({ flushMs: 1000 });
  batcher.push(Uint8Array.from([1, 2, 3]));
  batcher.error(new Error("peer gone"));
  batcher.push(Uint8Array.from([4])); // after the end: ignored
  await rejects(reader.read(new Uint8Array(8)), /peer gone/);
});

Deno.test("byte stream batcher: closing while a read is pending with no bytes ends that read as done", async () => {
  const { batcher, reader } = batched({ flushMs: 1000 });
  const read = reader.read(new Uint8Array(16));
  batcher.close();
  const timeout = new Promise<"pending">((resolve) => {
    const timer = setTimeout(() => resolve("pending"), 500);
    read.finally(() => clearTimeout(timer));
  });
  const result = await Promise.race([read, timeout]);
  ok(result !== "pending", "the read was left pending after close");
  equal(result.done, true);
});

Deno.test("snw: aborting a send mid-transfer rejects it with the reason at once and closes the session", async () => {
  const snw = createSnwTransport({ timeoutMs: 2000 });
  using listener = snw.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = listener.accept();
  await using conn = await snw.connect({
    hostname: "127.0.0.1",
    port: listener.addr.port,
  });
  await using peer = await accepting;
  const incoming = peer.receive();
  let release!: () => void;
  const stalled = new Promise<void>((resolve) => release = resolve);
  async function* slowSource() {
    yield new Uint8Array(3000);
    await stalled; // the source stalls: no packet is outstanding
    yield new Uint8Array(3000);
  }
  const controller = new AbortController();
  const sending = conn.send(6000, slowSource(), { signal: controller.signal });
  const transfer = await incoming;
  const reading = (async () => {
    for await (const _ of transfer.readable) { /* drain */ }
  })().catch((error) => error);
  await new Promise((r) => setTimeout(r, 50));
  const started = performance.now();
  controller.abort(new Error("stop now"));
  await rejects(sending, /stop now/);
  ok(performance.now() - started < 500, "rejected at once");
  release();
  await rejects(conn.send(1, new Uint8Array(1)));
  ok(
    (await reading) instanceof Error,
    "the receiver's stream ends in an error",
  );
});
