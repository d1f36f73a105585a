/**
 * One side of a measured transfer, run as its own process so that each
 * side's time and peak memory are its own. Every mode prints one result
 * line, ending with the process's peak RSS in KiB (`VmHWM`).
 *
 * ```sh
 * transfer_peer.ts receive <tcp|snw|raw|raw-file|udp>
 *                                               # prints "listening <port>", then
 *                                               # "received <bytes> <sha256> <rssKiB>"
 * transfer_peer.ts send <tcp|snw|raw|raw-file|udp> <port> <file>
 *                                               # "start", then "sent <bytes> <ms> <rssKiB>"
 * transfer_peer.ts receive-count <kind>         # as receive, counting bytes without hashing:
 *                                               # "received <bytes> - <rssKiB>"
 * transfer_peer.ts send <kind> <port> memory:<bytes>
 *                                               # as send, from a 1 MiB buffer in memory
 * transfer_peer.ts udp-echo                     # "listening <port>"; answers each datagram with "ACK"
 * transfer_peer.ts udp-ping <port> <payload> <bytes>
 *                                               # "sent <bytes> <ms> <rssKiB>"
 * ```
 *
 * `raw` is the reference for TCP: a plain TCP copy (write the file into a
 * socket, read until EOF) with the same hashing on the receiving side;
 * `raw-file` also writes what it receives to a file, as a downloading
 * client must.
 * `udp` is the reference for SNW: plain stop-and-wait over UDP (one
 * datagram of SNW's chunk size, one 25-byte answer) with the same file
 * reading and hashing, and none of SNW's headers, checksums, timers or
 * sessions.
 * `memory:<bytes>` and `receive-count` measure a transport alone, doing
 * what the UDP ping-pong does: bytes from memory, counted on arrival.
 *
 * @module
 */

import { createHash } from "node:crypto";
import {
  SNW_DEFAULT_CHUNK_SIZE,
  transferChunks,
  transportByName,
} from "../transport/mod.ts";

const READ_SIZE = 1024 * 1024;

/**
 * The peak resident set size of this process, from `/proc/self/status`.
 *
 * @returns KiB, or 0 where `/proc` is unavailable.
 */
export function peakRssKiB(): number {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/**
 * Reads a file in 1 MiB pieces (Deno's small async reads are slow), one read
 * ahead into the other of two buffers, as the file service's sender does: a
 * chunk stays valid until the next is asked for, and the read of the next
 * overlaps the sending of this one.
 */
async function* fileChunks(path: string): AsyncGenerator<Uint8Array> {
  using file = await Deno.open(path);
  const buffers = [new Uint8Array(READ_SIZE), new Uint8Array(READ_SIZE)];
  let turn = 0;
  const readNext = async () => {
    const buffer = buffers[turn++ % 2];
    const n = await file.read(buffer);
    return n === null ? null : buffer.subarray(0, n);
  };
  let next = readNext();
  while (true) {
    const chunk = await next;
    if (chunk === null) return;
    next = readNext();
    next.catch(() => {}); // surfaced when awaited
    yield chunk;
  }
}

/** A file's chunks, or `memory:<bytes>`: that many bytes from one buffer. */
async function sourceOf(
  from: string,
): Promise<{ bytes: number; chunks: () => AsyncGenerator<Uint8Array> }> {
  const memory = /^memory:(\d+)$/.exec(from);
  if (!memory) {
    return {
      bytes: (await Deno.stat(from)).size,
      chunks: () => fileChunks(from),
    };
  }
  const bytes = Number(memory[1]);
  const block = new Uint8Array(READ_SIZE);
  crypto.getRandomValues(block.subarray(0, 65536));
  async function* chunks(): AsyncGenerator<Uint8Array> {
    for (let sent = 0; sent < bytes; sent += block.length) {
      yield block.subarray(0, Math.min(block.length, bytes - sent));
    }
  }
  return { bytes, chunks };
}

async function receive(kind: string, hashing = true): Promise<string> {
  const hash = createHash("sha256");
  let bytes = 0;
  if (kind === "raw" || kind === "raw-file") {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    console.log(`listening ${listener.addr.port}`);
    using conn = await listener.accept();
    const path = kind === "raw-file" ? await Deno.makeTempFile() : undefined;
    using file = path ? await Deno.open(path, { write: true }) : undefined;
    const buffer = new Uint8Array(1024 * 1024);
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        hash.update(buffer.subarray(0, n));
        bytes += n;
        for (let done = 0; file && done < n;) {
          done += await file.write(buffer.subarray(done, n));
        }
      }
    } finally {
      if (path) await Deno.remove(path);
    }
  } else if (kind === "udp") {
    return await receiveUdp();
  } else {
    using listener = transportByName(kind).listen({
      hostname: "127.0.0.1",
      port: 0,
    });
    console.log(`listening ${listener.addr.port}`);
    await using conn = await listener.accept();
    const incoming = await conn.receive();
    for await (const chunk of transferChunks(incoming.readable)) {
      if (hashing) hash.update(chunk);
      bytes += chunk.length;
    }
  }
  const digest = hashing ? hash.digest("hex") : "-";
  return `received ${bytes} ${digest} ${peakRssKiB()}`;
}

async function send(kind: string, port: number, from: string): Promise<string> {
  const { bytes, chunks } = await sourceOf(from);
  console.log("start");
  const started = performance.now();
  if (kind === "raw" || kind === "raw-file") {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    for await (const chunk of chunks()) {
      let offset = 0;
      while (offset < chunk.length) {
        offset += await conn.write(chunk.subarray(offset));
      }
    }
  } else if (kind === "udp") {
    await sendUdp(port, chunks(), bytes);
  } else {
    await using conn = await transportByName(kind).connect({
      hostname: "127.0.0.1",
      port,
    });
    await conn.send(bytes, chunks());
  }
  const ms = performance.now() - started;
  return `sent ${bytes} ${ms.toFixed(1)} ${peakRssKiB()}`;
}

/** A UDP socket on 127.0.0.1 with a free port. */
function loopbackDatagram(): Deno.DatagramConn {
  return Deno.listenDatagram({
    transport: "udp",
    hostname: "127.0.0.1",
    port: 0,
  });
}

/** Bytes of a datagram's header in the `udp` reference (as many as SNW's). */
const UDP_HEADER = 22;

/** Payload bytes per datagram in the `udp` reference (SNW's chunk size). */
function udpPayload(): number {
  return Number(
    Deno.env.get("SOCKKIT_SNW_CHUNK_SIZE") ?? SNW_DEFAULT_CHUNK_SIZE,
  );
}

/**
 * The `udp` reference receiver: plain stop-and-wait over UDP doing the same
 * job as an SNW receiver (hash every payload, answer each datagram with a
 * 25-byte ACK) without any of SNW's reliability. The first datagram
 * carries the size; loopback loses nothing at this pace.
 */
async function receiveUdp(): Promise<string> {
  const socket = loopbackDatagram();
  console.log(`listening ${(socket.addr as Deno.NetAddr).port}`);
  const ack = new Uint8Array(25);
  const buffer = new Uint8Array(65536);
  const hash = createHash("sha256");
  const [first, peer] = await socket.receive(buffer);
  const size = Number(new DataView(first.buffer).getBigUint64(UDP_HEADER));
  void socket.send(ack, peer);
  let bytes = 0;
  while (bytes < size) {
    const [datagram] = await socket.receive(buffer);
    void socket.send(ack, peer);
    hash.update(datagram.subarray(UDP_HEADER));
    bytes += datagram.length - UDP_HEADER;
  }
  socket.close();
  return `received ${bytes} ${hash.digest("hex")} ${peakRssKiB()}`;
}

/** The `udp` reference sender: see {@linkcode receiveUdp}. */
async function sendUdp(
  port: number,
  chunks: AsyncIterable<Uint8Array>,
  size: number,
) {
  const socket = loopbackDatagram();
  const peer: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
  const payload = udpPayload();
  const datagram = new Uint8Array(UDP_HEADER + payload);
  const answer = new Uint8Array(64);
  new DataView(datagram.buffer).setBigUint64(UDP_HEADER, BigInt(size));
  void socket.send(datagram.subarray(0, UDP_HEADER + 8), peer);
  await socket.receive(answer);
  for await (const chunk of chunks) {
    for (let offset = 0; offset < chunk.length; offset += payload) {
      const piece = chunk.subarray(offset, offset + payload);
      datagram.set(piece, UDP_HEADER);
      void socket.send(datagram.subarray(0, UDP_HEADER + piece.length), peer);
      await socket.receive(answer);
    }
  }
  socket.close();
}

async function udpEcho(): Promise<void> {
  const socket = loopbackDatagram();
  console.log(`listening ${(socket.addr as Deno.NetAddr).port}`);
  const ack = new TextEncoder().encode("ACK");
  const buffer = new Uint8Array(65536); // reused, as SNW's receiver does
  while (true) {
    const [, addr] = await socket.receive(buffer);
    await socket.send(ack, addr);
  }
}

async function udpPing(
  port: number,
  payload: number,
  total: number,
): Promise<string> {
  const socket = loopbackDatagram();
  const peer: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
  const datagram = new Uint8Array(payload + 22); // as big as an SNW packet
  const answer = new Uint8Array(64); // reused: no allocation per answer
  console.log("start");
  const started = performance.now();
  for (let sent = 0; sent < total; sent += payload) {
    await socket.send(datagram, peer);
    await socket.receive(answer);
  }
  const ms = performance.now() - started;
  socket.close();
  return `sent ${total} ${ms.toFixed(1)} ${peakRssKiB()}`;
}

if (import.meta.main) {
  const [mode, a, b, c] = Deno.args;
  switch (mode) {
    case "receive":
      console.log(await receive(a ?? "tcp"));
      break;
    case "send":
      console.log(await send(a, Number(b), c));
      break;
    case "receive-count":
      console.log(await receive(a ?? "tcp", false));
      break;
    case "udp-echo":
      await udpEcho();
      break;
    case "udp-ping":
      console.log(await udpPing(Number(a), Number(b), Number(c)));
      break;
    default:
      console.error(
        "usage: transfer_peer.ts receive|receive-count|send|udp-echo|udp-ping ...",
      );
      Deno.exit(2);
  }
}
