/**
 * Tests of the servers' event-line writer: whole lines in pipe-sized writes,
 * the bound on what waits for a slow reader (segments held until written),
 * kept lines, failing and non-blocking streams, the bounded flush at exit,
 * and one order for stdout and stderr on one pipe (a child process). The
 * chat test "a stdout and stderr nobody reads" runs it against real pipes.
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

Deno.test("event lines: in order, whole lines, at most 4 KiB per write, partial writes continued", async () => {
  const sink = new HeldSink();
  const lines = new EventLines(sink);
  const expected = Array.from({ length: 2000 }, (_, i) => `line ${i}`);
  for (const line of expected) lines.write(line);
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
  const more = new EventLines(slow);
  for (const line of expected.slice(0, 50)) more.write(line);
  equal(await more.flush(5_000), true);
  equal(slow.text, expected.slice(0, 50).map((line) => line + "\n").join(""));
});

Deno.test("event lines: past the bound (4 KiB segments held until written) lines are dropped, counted and noted; a kept line and a lone long line are not", async () => {
  const sink = new HeldSink();
  const lines = new EventLines(sink, 2 * 4096);
  const line = (i: number) => `${i}`.padEnd(99, "."); // 100 bytes a line
  // 40 lines fill a 4 KiB segment (the first is in flight from the start):
  // two segments take lines 0-79, the rest must wait for room.
  for (let i = 0; i < 100; i++) lines.write(line(i));
  equal(lines.dropped, 20);
  lines.write("kept", true);
  equal(lines.dropped, 20, "a kept line is never dropped");
  sink.release();
  equal(await lines.flush(5_000), true);
  lines.write("x".repeat(100_000)); // alone in the queue: taken whole
  equal(await lines.flush(5_000), true);
  lines.write("after");
  equal(await lines.flush(5_000), true);
  deepEqual(sink.text.split("\n"), [
    ...Array.from({ length: 80 }, (_, i) => line(i)),
    "(20 lines dropped: output was not being read)",
    "kept",
    "x".repeat(100_000),
    "after",
    "",
  ]);
  equal(lines.dropped, 20);
});

Deno.test("event lines: a failing stream is given up quietly; a full non-blocking pipe is retried", async () => {
  let calls = 0;
  const closed = new EventLines({
    write() {
      calls++;
      return Promise.reject(new Deno.errors.BrokenPipe("closed"));
    },
  });
  closed.write("one");
  equal(await closed.flush(1_000), true);
  closed.write("two");
  equal(await closed.flush(1_000), true);
  equal(calls, 1, "nothing is written to a failed stream after its failure");

  let wouldBlock = 3;
  let text = "";
  const nonBlocking = new EventLines({
    write(p) {
      if (wouldBlock-- > 0) {
        return Promise.reject(new Deno.errors.WouldBlock("EAGAIN"));
      }
      text += new TextDecoder().decode(p);
      return Promise.resolve(p.length);
    },
  });
  nonBlocking.write("a");
  nonBlocking.write("b");
  equal(await nonBlocking.flush(5_000), true);
  nonBlocking.write("c");
  equal(await nonBlocking.flush(5_000), true);
  equal(text, "a\nb\nc\n", "EAGAIN is waited out, nothing lost");
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

Deno.test({
  name:
    "event lines: stdout and stderr on one pipe (2>&1) share one queue and keep their order past a full pipe",
  ignore: Deno.build.os !== "linux", // tells a full pipe by /proc
  async fn() {
    const script = new URL("./_helpers/print_event_lines.ts", import.meta.url)
      .pathname;
    const pairs = 10_000; // ~130 KB: twice what the pipe holds
    const child = new Deno.Command("sh", {
      args: [
        "-c",
        `exec "$0" run --allow-read "${script}" ${pairs} 2>&1`,
        Deno
          .execPath(),
      ],
      stdout: "piped",
      stderr: "null",
      env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    }).spawn();
    // Not read until the child's writer waits on the full pipe: the rest of
    // its lines are then in the queue, behind it.
    const full = await waitForPipeWriter(child.pid, 20_000);
    const output = await new Response(child.stdout).text();
    equal((await child.status).code, 0);
    ok(full, "the child never waited on a full pipe");
    const expected = Array.from(
      { length: pairs },
      (_, i) => `out ${i}\nerr ${i}\n`,
    ).join("");
    ok(
      output === expected,
      `out of order from ${firstDifference(output, expected)}`,
    );
  },
});

/**
 * Waits until a thread of process `pid` is blocked writing to a pipe that has
 * no room (its kernel wait channel is `pipe_write`, `anon_pipe_write` on
 * newer kernels), at most `timeoutMs`.
 *
 * @returns Whether it was seen before the timeout or the process's end.
 */
async function waitForPipeWriter(
  pid: number,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    let tasks: Deno.DirEntry[];
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) return false;
      tasks = [...Deno.readDirSync(`/proc/${pid}/task`)];
    } catch {
      return false; // exited
    }
    for (const task of tasks) {
      try {
        const wchan = Deno.readTextFileSync(
          `/proc/${pid}/task/${task.name}/wchan`,
        );
        if (/pipe_write/.test(wchan)) return true;
      } catch {
        // that thread ended
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return false;
}

/** Where two texts first differ, with a little of each. */
function firstDifference(a: string, b: string): string {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return `${i}: ${JSON.stringify(a.slice(i, i + 30))} vs ${
    JSON.stringify(b.slice(i, i + 30))
  }`;
}
