/**
 * Chat benchmark (issue 7, SPEC §4): a `chat server` process with
 * `--max-clients 1000`, and raw protocol clients in this process.
 *
 * 1. join: 1000 users connect and join (100 at a time); a user counts as
 *    joined when a message it sends to itself comes back.
 * 2. fan-out: one user sends one message to all 1000 (itself included),
 *    20 rounds; latency = send → arrival at each recipient (p50/p99/max).
 * 3. chat: 100 users each send 200 messages to the next user, all at once;
 *    messages/second = deliveries / time until the last one arrived.
 *
 * All clients live in one Deno process, so figures include its own
 * per-socket work: they are an upper bound on the server's latency.
 *
 * Standalone: `deno run -A bench/chat_bench.ts [--users N]`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { ChatEvent } from "../protocol/chat_protocol.ts";
import { ChatConnection } from "../roles/chat/chat_connection.ts";
import { type RoleProcess, startRole } from "../tests/_helpers/role_process.ts";

/** Options of {@linkcode runChatBench}. */
export interface ChatBenchOptions {
  /** Users joined (default 1000). */
  users?: number;
  /** Fan-out rounds (default 20). */
  rounds?: number;
  /** Users chatting in the throughput phase (default 100). */
  chatters?: number;
  /** Messages each chatter sends (default 200). */
  messagesPerChatter?: number;
}

type Handler = (peer: number, event: ChatEvent, at: number) => void;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** Current and peak resident memory of a process (Linux only). */
function serverMemory(pid: number): { rss: number; peak: number } | undefined {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kib = (field: string) =>
      Number(status.match(new RegExp(`${field}:\\s+(\\d+) kB`))?.[1] ?? 0);
    return {
      rss: Math.round(kib("VmRSS") / 1024),
      peak: Math.round(kib("VmHWM") / 1024),
    };
  } catch {
    return undefined;
  }
}

async function startServer(maxClients: number): Promise<{
  process: RoleProcess;
  port: number;
}> {
  const process = startRole("chat", [
    "server",
    "-a",
    "127.0.0.1",
    "-p",
    "0",
    "--max-clients",
    String(maxClients),
  ]);
  const match = await process.stderr.waitFor(
    /listening on 127\.0\.0\.1:(\d+)/,
    20_000,
  );
  return { process, port: Number(match[1]) };
}

/** Resolves when `count` calls to the returned `tick` happened. */
function countdown(count: number, what: string, timeoutMs = 60_000) {
  let left = count;
  let done!: () => void;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const finished = new Promise<void>((resolve, reject) => {
    done = resolve;
    timer = setTimeout(
      () => reject(new Error(`chat bench: timed out waiting for ${what}`)),
      timeoutMs,
    );
  }).finally(() => clearTimeout(timer));
  if (count === 0) done();
  return {
    finished,
    tick() {
      if (--left === 0) done();
    },
  };
}

/**
 * Runs the chat benchmark.
 *
 * @param options Sizes (defaults: 1000 users, 20 rounds, 100 chatters × 200).
 * @returns Printable result lines.
 */
export async function runChatBench(
  options: ChatBenchOptions = {},
): Promise<string[]> {
  const users = options.users ?? 1000;
  const rounds = options.rounds ?? 20;
  const chatters = Math.min(options.chatters ?? 100, users);
  const perChatter = options.messagesPerChatter ?? 200;
  const names = Array.from(
    { length: users },
    (_, i) => `u${String(i).padStart(5, "0")}`,
  );
  const server = await startServer(users);
  const links: ChatConnection[] = [];
  const loops: Promise<void>[] = [];
  let handler: Handler = () => {};
  const lines: string[] = [];
  try {
    // 1. Join.
    const joined = countdown(users, "joins");
    handler = (_peer, event) => {
      if (
        event.kind === "message" && event.message.type === "forward_message"
      ) {
        joined.tick();
      }
    };
    const joinStart = performance.now();
    for (let batch = 0; batch < users; batch += 100) {
      await Promise.all(
        names.slice(batch, batch + 100).map(async (name, offset) => {
          const index = batch + offset;
          const conn = await Deno.connect({
            hostname: "127.0.0.1",
            port: server.port,
          });
          conn.setNoDelay(true);
          const link = new ChatConnection(conn);
          links[index] = link;
          loops[index] = (async () => {
            try {
              for (let e = await link.next(); e; e = await link.next()) {
                handler(index, e, performance.now());
              }
            } catch {
              // closed at the end
            }
          })();
          await link.send({ type: "join", username: name });
          await link.send({ type: "send_message", users: [name], text: "j" });
        }),
      );
    }
    await joined.finished;
    const joinMs = performance.now() - joinStart;
    lines.push(
      `chat join: ${users} users joined in ${joinMs.toFixed(0)} ms (${
        (users / joinMs * 1000).toFixed(0)
      } joins/s)`,
    );

    // 2. Fan-out.
    const latencies: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const arrived = countdown(users, `fan-out round ${round}`);
      const text = `fanout ${round}`;
      let sentAt = 0;
      handler = (_peer, event, at) => {
        if (
          event.kind === "message" &&
          event.message.type === "forward_message" &&
          event.message.text === text
        ) {
          latencies.push(at - sentAt);
          arrived.tick();
        }
      };
      sentAt = performance.now();
      await links[0].send({ type: "send_message", users: names, text });
      await arrived.finished;
    }
    latencies.sort((a, b) => a - b);
    const p99 = percentile(latencies, 0.99);
    lines.push(
      `chat fan-out: 1 message to ${users} users × ${rounds} rounds: p50 ${
        percentile(latencies, 0.5).toFixed(1)
      } ms, p99 ${p99.toFixed(1)} ms, max ${
        latencies[latencies.length - 1].toFixed(1)
      } ms (target p99 ≤ 100 ms: ${p99 <= 100 ? "met" : "MISSED"})`,
    );

    const memory = serverMemory(server.process.child.pid);
    if (memory) {
      lines.push(
        `chat server memory with ${users} users: RSS ${memory.rss} MiB (peak ${memory.peak} MiB)`,
      );
    }

    // 3. Sustained chat.
    const total = chatters * perChatter;
    const delivered = countdown(total, "chat deliveries");
    handler = (_peer, event) => {
      if (
        event.kind === "message" &&
        event.message.type === "forward_message" &&
        event.message.text.startsWith("chat ")
      ) {
        delivered.tick();
      }
    };
    const chatStart = performance.now();
    await Promise.all(
      Array.from({ length: chatters }, async (_, i) => {
        const to = [names[(i + 1) % chatters]];
        for (let m = 0; m < perChatter; m++) {
          await links[i].send({
            type: "send_message",
            users: to,
            text: `chat ${i} ${m}`,
          });
        }
      }),
    );
    await delivered.finished;
    const chatMs = performance.now() - chatStart;
    lines.push(
      `chat throughput: ${chatters} clients sent ${total} messages, all delivered in ${
        chatMs.toFixed(0)
      } ms = ${(total / chatMs * 1000).toFixed(0)} messages/s`,
    );
    return lines;
  } finally {
    for (const link of links) link?.close();
    await Promise.all(loops);
    await server.process[Symbol.asyncDispose]();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { users: { type: "string" } },
  });
  const lines = await runChatBench({
    users: values.users ? Number(values.users) : undefined,
  });
  for (const line of lines) console.log(line);
}
