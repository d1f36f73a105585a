/**
 * Tests of the servers' event-line writer: order, batching, the bound on what
 * waits for a slow stdout, a failing stdout and the bounded flush at exit.
 * (The chat test "a stdout nobody reads" runs it against a real pipe.)
 *
 * @module
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { EventLines, type LineSink } from "../roles/event_lines.ts";

/** A sink that takes at most `most` bytes per write and can be held. */
class HeldSink implements LineSink {
  text = "";
  writes = 0;
  #held = true;
  #waiting: (() => void)[] = [];
  readonly #decoder = new TextDecoder();

  constructor(readonly most = Infinity) {}

  async write(p: Uint8Array): Promise<number> {
    while (this.#held) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
    const n = Math.min(p.length, this.most);
    this.text += this.#decoder.decode(p.subarray(0, n), { stream: true });
    this.writes++;
    return n;
  }

  release(): void {
    this.#held = false;
    for (const wake of this.#waiting.splice(0)) wake();
  }
}

Deno.test("event lines: written in order, many lines per write, partial writes continued", async () => {
  const sink = new HeldSink(7);
  const lines = new EventLines(sink);
  const expected = Array.from({ length: 100 }, (_, i) => `line ${i}`);
  for (const line of expected) lines.write(line);
  sink.release();
  equal(await lines.flush(5_000), true);
  equal(sink.text, expected.map((line) => line + "\n").join(""));
  // Line 0 alone (the writer took it at once), then the other 99 as one
  // batch, 7 bytes per call: a write per line would take more calls.
  const total = sink.text.length;
  equal(sink.writes, 1 + Math.ceil((total - 7) / 7));
  equal(lines.dropped, 0);
});

Deno.test("event lines: past the bound lines are dropped, counted, and noted where they were", async () => {
  const sink = new HeldSink();
  const lines = new EventLines(sink, 40);
  lines.write("first"); // taken by the writer at once (held in write)
  for (let i = 0; i < 10; i++) lines.write(`queued ${i}`); // 9 bytes each
  equal(lines.dropped, 6, "4 × 9 bytes fit in 40, the other 6 do not");
  sink.release();
  equal(await lines.flush(5_000), true);
  lines.write("after");
  equal(await lines.flush(5_000), true);
  deepEqual(sink.text.split("\n"), [
    "first",
    "queued 0",
    "queued 1",
    "queued 2",
    "queued 3",
    "(6 lines dropped: output was not being read)",
    "after",
    "",
  ]);
});

Deno.test("event lines: a failing stdout never throws to the server; later lines are dropped quietly", async () => {
  let calls = 0;
  const lines = new EventLines({
    write() {
      calls++;
      return Promise.reject(new Deno.errors.BrokenPipe("closed"));
    },
  });
  lines.write("one");
  equal(await lines.flush(1_000), true);
  lines.write("two");
  equal(await lines.flush(1_000), true);
  equal(calls, 1, "nothing is written after the failure");
});

Deno.test("event lines: the flush at exit gives up after its bound when nobody reads", async () => {
  const sink = new HeldSink();
  const lines = new EventLines(sink);
  lines.write("never read");
  const started = performance.now();
  equal(await lines.flush(200), false);
  const ms = performance.now() - started;
  ok(ms >= 150 && ms < 2_000, `flush took ${ms} ms`);
  sink.release(); // let the pending write end within the test
  equal(await lines.flush(1_000), true);
});
