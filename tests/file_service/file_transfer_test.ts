/**
 * sendFile / receiveFile (roles/file_service/file_transfer.ts) over real
 * tcp and snw connections on 127.0.0.1: sizes around the 1 MiB write buffer
 * and the 64 KiB synchronous-write bound arrive byte-exact, hashed.
 */

import { createHash } from "node:crypto";
import { equal, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import {
  receiveFile,
  sendFile,
} from "../../roles/file_service/file_transfer.ts";
import { LossyRelay } from "../../bench/relay.ts";
import { transportByName } from "../../transport/registry.ts";
import type {
  Transport,
  TransportConn,
  TransportListener,
} from "../../transport/types.ts";
import { sha256File, tempDir, writeTestFile } from "../_helpers/files.ts";

const MiB = 1024 * 1024;
const SIZES = [0, 1, 65_536, 65_537, MiB - 1, MiB, MiB + 7, 2 * MiB];

/**
 * A connection over `listener` (to `port`: the listener's, or a relay's in
 * front of it): the connecting and the accepted side.
 */
async function connectedPair(
  transport: Transport,
  listener: TransportListener,
  port = listener.addr.port,
): Promise<[TransportConn, TransportConn]> {
  const accepted = listener.accept();
  const connected = await transport.connect({ hostname: "127.0.0.1", port });
  return [connected, await accepted];
}

for (const name of ["tcp", "snw"] as const) {
  Deno.test(`file transfer over ${name}: sizes around the write buffers arrive byte-exact`, async () => {
    const transport = transportByName(name);
    await using dir = await tempDir("sockkit-file-transfer-");
    using listener = transport.listen({ hostname: "127.0.0.1", port: 0 });
    for (const size of SIZES) {
      const source = join(dir.path, `in-${size}`);
      const target = join(dir.path, `out-${size}`);
      await writeTestFile(source, size, size % 251);
      const [connected, accepted] = await connectedPair(transport, listener);
      await using sender = connected;
      await using receiver = accepted;
      using input = await Deno.open(source, { read: true });
      using output = await Deno.open(target, { write: true, create: true });
      const [sent, received] = await Promise.all([
        sendFile(sender, input, size, { idleMs: 10_000 }),
        receiveFile(receiver, output, { idleMs: 10_000 }),
      ]);
      const digest = await sha256File(source);
      equal(sent, digest, `sent ${size}`);
      equal(received.size, size);
      equal(received.sha256, digest, `received ${size}`);
      equal(await sha256File(target), digest, `written ${size}`);
    }
  });
}

Deno.test("file transfer: a transfer that is not a byte stream is gathered into the same writes", async () => {
  // The Transport interface promises a ReadableStream, not a byte stream:
  // odd-sized chunks across the 1 MiB write buffer, from a default stream.
  const size = MiB + 70_001;
  const chunk = (i: number) =>
    Uint8Array.from(
      { length: Math.min(9_973, size - i) },
      (_, k) => (i + k) % 253,
    );
  let offset = 0;
  const readable = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= size) return controller.close();
      const bytes = chunk(offset);
      offset += bytes.length;
      controller.enqueue(bytes);
    },
  });
  const channel = {
    receive: () => Promise.resolve({ size, readable }),
    close: () => {},
  } as unknown as TransportConn;
  await using dir = await tempDir("sockkit-file-transfer-");
  const target = join(dir.path, "out");
  const expected = createHash("sha256");
  for (let i = 0; i < size;) {
    const bytes = chunk(i);
    expected.update(bytes);
    i += bytes.length;
  }
  const digest = expected.digest("hex");
  {
    using output = await Deno.open(target, { write: true, create: true });
    const received = await receiveFile(channel, output, { idleMs: 10_000 });
    equal(received.size, size);
    equal(received.sha256, digest);
  }
  equal(await sha256File(target), digest);
});

Deno.test("file transfer: a file shorter than announced fails naming how many bytes are missing", async () => {
  const transport = transportByName("tcp");
  await using dir = await tempDir("sockkit-file-transfer-");
  using listener = transport.listen({ hostname: "127.0.0.1", port: 0 });
  const source = join(dir.path, "short");
  await writeTestFile(source, 3 * MiB + 5, 1); // announced: 8 MiB
  const [connected, accepted] = await connectedPair(transport, listener);
  await using sender = connected;
  await using receiver = accepted;
  using input = await Deno.open(source, { read: true });
  using output = await Deno.open(join(dir.path, "out"), {
    write: true,
    create: true,
  });
  const receiving = receiveFile(receiver, output, { idleMs: 10_000 });
  receiving.catch(() => {});
  await rejects(
    sendFile(sender, input, 8 * MiB, { idleMs: 10_000 }),
    new RegExp(`^RangeError: The file ended ${5 * MiB - 5} bytes early`),
  );
  sender.close();
  await rejects(receiving);
});

Deno.test("file transfer over snw: a slow link that keeps making progress is not taken for a stall", async () => {
  const transport = transportByName("snw");
  await using dir = await tempDir("sockkit-file-transfer-");
  using listener = transport.listen({ hostname: "127.0.0.1", port: 0 });
  // Every datagram delayed by up to 6 ms: ~6 ms per 1000-byte packet.
  await using relay = LossyRelay.start({
    targetPort: listener.addr.port,
    delayMs: 6,
    seed: 11,
  });
  const size = 256 * 1024; // one read of the file, ~1.5 s on this link
  const source = join(dir.path, "slow");
  const target = join(dir.path, "slow-out");
  await writeTestFile(source, size, 9);
  const [connected, accepted] = await connectedPair(
    transport,
    listener,
    relay.port,
  );
  await using sender = connected;
  await using receiver = accepted;
  using input = await Deno.open(source, { read: true });
  using output = await Deno.open(target, { write: true, create: true });
  const idleMs = 400;
  const started = performance.now();
  const [sent, received] = await Promise.all([
    sendFile(sender, input, size, { idleMs }),
    receiveFile(receiver, output, { idleMs }),
  ]);
  const took = performance.now() - started;
  ok(took > 2 * idleMs, `took ${took.toFixed(0)} ms: longer than the timeout`);
  const digest = await sha256File(source);
  equal(sent, digest);
  equal(received.sha256, digest);
  equal(await sha256File(target), digest);
});
