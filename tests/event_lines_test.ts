/**
 * Tests of the servers' event-line writer: one order across stdout and
 * stderr, whole lines in pipe-sized writes, the bound on what waits for a
 * slow reader (in-flight bytes included), failing and non-blocking streams,
 * and the bounded flush at exit. (The chat test "a stdout and stderr nobody
 * reads" runs it against real pipes.)
 *
 * @module
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { EventLines, type LineSink } from "../roles/event_lines.ts";

/** A sink that takes at most `most` bytes per write and can be held. */
class HeldSink implements LineSink {
  text = "";
  /** The size of each write. */
  writes: number[] = [];
  #held = true;
  #waiting: (() => void)[] = [];
  readonly #decoder = new TextDecoder();

  constructor(readonly most = Infinity, held = true) {
    this.#held = held;
  }

  async write(p: Uint8Array): Promise<number> {
    while (this.#held) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
    const n = Math.min(p.length, this.most);
    this.text += this.#decoder.decode(p.subarray(0, n), { stream: true });
    this.writes.push(n);
    return n;
  }

  release(): void {
    this.#held = false;
    for (const wake of this.#waiting.splice(0)) wake();
  }
}

/** Writes into one shared log, as `>log 2>&1` does. */
class SharedLog {
  text = "";
  sink(): LineSink {
    return {
      write: (p) => {
        this.text += new TextDecoder().decode(p);
        return Promise.resolve(p.length);
      },
    };
  }
}

Deno.test("event lines: in order, whole lines, at most 4 KiB per write, partial writes continued", async () => {
  const sink = new HeldSink();
  const lines = new EventLines();
  const expected = Array.from({ length: 2000 }, (_, i) => `line ${i}`);
  for (const line of expected) lines.write(sink, line);
  sink.release();
  equal(await lines.flush(5_000), true);
  equal(sink.text, expected.map((line) => line + "\n").join(""));
  ok(sink.writes.every((n) => n <= 4096), "pipe-sized writes");
  ok(sink.writes.length < 10, `${sink.writes.length} writes, not 2000`);
  let written = 0;
  for (const n of sink.writes) {
    written += n;
    equal(sink.text[written - 1], "\n", "each write ends a line");
  }
  // A sink taking 7 bytes at a time still gets everything, in order.
  const slow = new HeldSink(7, false);
  const more = new EventLines();
  for (const line of expected.slice(0, 50)) more.write(slow, line);
  equal(await more.flush(5_000), true);
  equal(slow.text, expected.slice(0, 50).map((line) => line + "\n").join(""));
});

Deno.test("event lines: stdout and stderr lines keep one order (>log 2>&1)", async () => {
  const log = new SharedLog();
  const out = log.sink();
  const err = log.sink();
  const lines = new EventLines();
  const expected: string[] = [];
  for (let i = 0; i < 500; i++) {
    const [sink, line] = i % 3 === 0
      ? [err, `problem ${i}`]
      : [out, `event ${i}`];
    lines.write(sink, line);
    expected.push(line);
  }
  equal(await lines.flush(5_000), true);
  deepEqual(log.text.split("\n").slice(0, -1), expected);
});

Deno.test("event lines: past the bound (bytes not yet written, in flight too) lines are dropped, counted and noted", async () => {
  const sink = new HeldSink();
  const lines = new EventLines(100);
  lines.write(sink, "first"); // 6 bytes, in flight (held) from now on
  for (let i = 0; i < 20; i++) lines.write(sink, `queued ${i}`); // 9 bytes
  // A line is taken while what waits plus its bound (3 × 8 + 1) stays
  // within 100: 6 + 9 × 7 + 25 = 94 takes the 8th, 6 + 9 × 8 + 25 = 103
  // drops the 9th and the rest.
  equal(lines.dropped, 12);
  sink.release();
  equal(await lines.flush(5_000), true);
  lines.write(sink, "after");
  equal(await lines.flush(5_000), true);
  deepEqual(sink.text.split("\n"), [
    "first",
    ...Array.from({ length: 8 }, (_, i) => `queued ${i}`),
    "(12 lines dropped: output was not being read)",
    "after",
    "",
  ]);
});

Deno.test("event lines: a failing stream is given up quietly, the other goes on; a full non-blocking pipe is retried", async () => {
  let calls = 0;
  const closed: LineSink = {
    write() {
      calls++;
      return Promise.reject(new Deno.errors.BrokenPipe("closed"));
    },
  };
  let wouldBlock = 3;
  let text = "";
  const nonBlocking: LineSink = {
    write(p) {
      if (wouldBlock-- > 0) {
        return Promise.reject(new Deno.errors.WouldBlock("EAGAIN"));
      }
      text += new TextDecoder().decode(p);
      return Promise.resolve(p.length);
    },
  };
  const lines = new EventLines();
  lines.write(closed, "one");
  lines.write(nonBlocking, "a");
  lines.write(closed, "two");
  lines.write(nonBlocking, "b");
  equal(await lines.flush(5_000), true);
  lines.write(closed, "three");
  lines.write(nonBlocking, "c");
  equal(await lines.flush(5_000), true);
  equal(calls, 1, "nothing is written to a failed stream after its failure");
  equal(text, "a\nb\nc\n", "EAGAIN is waited out, nothing lost");
});

Deno.test("event lines: the flush at exit gives up after its bound when nobody reads", async () => {
  const sink = new HeldSink();
  const lines = new EventLines();
  lines.write(sink, "never read");
  const started = performance.now();
  equal(await lines.flush(200), false);
  const ms = performance.now() - started;
  ok(ms >= 150 && ms < 2_000, `flush took ${ms} ms`);
  sink.release(); // let the pending write end within the test
  equal(await lines.flush(1_000), true);
});
