/** The SNW packet codec: round trips, every rejection, and a seeded fuzz. */

import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { seededRandom } from "../bench/seeded_random.ts";
import {
  crc32,
  decodeLenPayload,
  decodeSnwPacket,
  encodeLenPayload,
  encodeSnwPacket,
  encodeSnwPacketInto,
  HEADER_SIZE,
  isSnwDataPacket,
  MAX_PAYLOAD,
  SNW_WORDS,
  SnwPacketError,
  SnwType,
  tableCrc32,
} from "../transport/mod.ts";

Deno.test("snw packet: round trip keeps type, session, 64-bit seq and payload", () => {
  const payload = new Uint8Array([0, 1, 2, 255, 10, 13]);
  for (
    const seq of [0, 1, 65535, 65536, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]
  ) {
    const packet = decodeSnwPacket(
      encodeSnwPacket(SnwType.DATA, 0xdeadbeef, seq, payload),
    );
    equal(packet.type, SnwType.DATA);
    equal(packet.session, 0xdeadbeef);
    equal(packet.seq, seq);
    equal(packet.payload.join(), payload.join());
  }
});

Deno.test("snw packet: encoding into a reused buffer gives the same datagram, whatever the buffer held", () => {
  const buffer = new Uint8Array(HEADER_SIZE + 1000).fill(0xa5);
  const first = new Uint8Array(1000).fill(7);
  encodeSnwPacketInto(buffer, SnwType.DATA, 9, 41, first);
  // the old packet's header (its CRC among it) and a longer payload remain
  const payload = new Uint8Array([1, 2, 3, 4, 5]);
  const reused = encodeSnwPacketInto(buffer, SnwType.DATA, 9, 42, payload);
  equal(reused.buffer, buffer.buffer);
  equal(
    reused.join(),
    encodeSnwPacket(SnwType.DATA, 9, 42, payload).join(),
  );
  equal(decodeSnwPacket(reused).seq, 42);
  throws(
    () =>
      encodeSnwPacketInto(
        new Uint8Array(HEADER_SIZE + 4),
        SnwType.DATA,
        9,
        43,
        payload,
      ),
    /cannot hold a packet of 27/,
  );
});

Deno.test("snw packet: a seq beyond 2^53 - 1 is rejected, not rounded", () => {
  const bytes = encodeSnwPacket(SnwType.ACK, 1, Number.MAX_SAFE_INTEGER);
  equal(decodeSnwPacket(bytes).seq, Number.MAX_SAFE_INTEGER);
  // seq = 2^53: the high word becomes 0x00200000; the CRC is made to match
  const view = new DataView(bytes.buffer);
  view.setUint32(8, 2 ** 21);
  view.setUint32(12, 0);
  view.setUint32(18, 0);
  view.setUint32(18, crc32(bytes));
  throws(() => decodeSnwPacket(bytes), /seq out of range/);
});

Deno.test("snw packet: LEN, ACK, FIN, CLOSE and WAIT stay readable as ASCII in the datagram", () => {
  const text = (bytes: Uint8Array) => new TextDecoder("latin1").decode(bytes);
  const len = encodeSnwPacket(SnwType.LEN, 1, 1, encodeLenPayload(12345));
  ok(text(len).includes("LEN:12345"));
  equal(decodeLenPayload(decodeSnwPacket(len).payload), 12345);
  const ack = encodeSnwPacket(
    SnwType.ACK,
    1,
    1,
    new TextEncoder().encode("ACK"),
  );
  ok(text(ack).endsWith("ACK"));
  for (const word of ["FIN", "CLOSE", "WAIT"] as const) {
    const bytes = encodeSnwPacket(SnwType[word], 1, 7, SNW_WORDS[word]);
    ok(text(bytes).endsWith(word));
    const packet = decodeSnwPacket(bytes);
    equal(packet.type, SnwType[word]);
    equal(packet.seq, 7);
  }
  equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
});

Deno.test("snw packet: truncated, oversize, bad-checksum, unknown-type and bad-magic datagrams are rejected", () => {
  const good = encodeSnwPacket(SnwType.DATA, 7, 3, new Uint8Array(100));
  throws(
    () => decodeSnwPacket(good.subarray(0, HEADER_SIZE - 1)),
    SnwPacketError,
  );
  throws(
    () => decodeSnwPacket(good.subarray(0, good.length - 1)),
    SnwPacketError,
  );
  const longer = new Uint8Array(good.length + 1);
  longer.set(good);
  throws(() => decodeSnwPacket(longer), SnwPacketError);
  const flipped = good.slice();
  flipped[HEADER_SIZE + 50] ^= 0x40;
  throws(() => decodeSnwPacket(flipped), /checksum/);
  const unknown = good.slice();
  unknown[3] = 9;
  throws(() => decodeSnwPacket(unknown), /unknown packet type/);
  const magic = good.slice();
  magic[0] = 0x58;
  throws(() => decodeSnwPacket(magic), /magic/);
  throws(
    () => encodeSnwPacket(SnwType.DATA, 1, 1, new Uint8Array(MAX_PAYLOAD + 1)),
    RangeError,
  );
  throws(
    () => decodeLenPayload(new TextEncoder().encode("LEN:-1")),
    SnwPacketError,
  );
  throws(
    () => decodeLenPayload(new TextEncoder().encode("LEN:")),
    SnwPacketError,
  );
});

Deno.test("snw packet: a flipped bit in the CRC, header or payload is a checksum mismatch for every packet type, OPEN and ACK among them", () => {
  const text = new TextEncoder();
  const packets: [string, Uint8Array][] = [
    ["OPEN", encodeSnwPacket(SnwType.OPEN, 5, 0, text.encode("tag-1"))],
    ["OPEN without a tag", encodeSnwPacket(SnwType.OPEN, 5, 0)],
    ["LEN", encodeSnwPacket(SnwType.LEN, 5, 1, encodeLenPayload(3000))],
    ["DATA", encodeSnwPacket(SnwType.DATA, 5, 2, new Uint8Array(50).fill(7))],
    ["ACK", encodeSnwPacket(SnwType.ACK, 5, 2, SNW_WORDS.ACK)],
    ["ACK of an OPEN", encodeSnwPacket(SnwType.ACK, 5, 0, SNW_WORDS.ACK)],
    ["FIN", encodeSnwPacket(SnwType.FIN, 5, 4, SNW_WORDS.FIN)],
    ["CLOSE", encodeSnwPacket(SnwType.CLOSE, 5, 4, SNW_WORDS.CLOSE)],
    ["WAIT", encodeSnwPacket(SnwType.WAIT, 5, 3, SNW_WORDS.WAIT)],
  ];
  // 18 and 21: the CRC's first and last byte; 7: the session; 15: the seq.
  for (const [name, good] of packets) {
    equal(decodeSnwPacket(good).session, 5, name);
    const places = [7, 15, 18, 21];
    if (good.length > HEADER_SIZE) places.push(good.length - 1);
    for (const at of places) {
      const bad = good.slice();
      bad[at] ^= 0x01;
      throws(() => decodeSnwPacket(bad), /checksum/, `${name}, byte ${at}`);
    }
  }
});

Deno.test("snw packet: fuzz — random and mutated datagrams only ever raise SnwPacketError", () => {
  const random = seededRandom(2026);
  const base = encodeSnwPacket(SnwType.LEN, 5, 9, encodeLenPayload(77));
  let accepted = 0;
  for (let i = 0; i < 20_000; i++) {
    let bytes: Uint8Array;
    if (i % 2 === 0) {
      bytes = new Uint8Array(Math.floor(random() * 80));
      for (let j = 0; j < bytes.length; j++) bytes[j] = random() * 256;
    } else {
      bytes = base.slice(0, Math.floor(random() * (base.length + 1)));
      if (bytes.length > 0) {
        bytes[Math.floor(random() * bytes.length)] ^= 1 + random() * 255;
      }
    }
    try {
      decodeSnwPacket(bytes);
      accepted++;
    } catch (error) {
      ok(error instanceof SnwPacketError, String(error));
    }
  }
  equal(accepted, 0, "a corrupted datagram passed the checksum");
});

Deno.test("crc32: the native and the table implementation agree", () => {
  const random = seededRandom(9);
  for (const size of [0, 1, 7, 1000, 65485]) {
    const bytes = new Uint8Array(size).map(() => random() * 256);
    equal(crc32(bytes), tableCrc32(bytes));
    equal(
      crc32(bytes.subarray(size >> 1), crc32(bytes.subarray(0, size >> 1))),
      tableCrc32(bytes),
    );
  }
});

Deno.test("snw packet: decoding leaves the datagram's bytes as they were, valid or not", () => {
  const good = encodeSnwPacket(
    SnwType.DATA,
    5,
    77,
    new Uint8Array(300).fill(9),
  );
  const before = good.slice();
  decodeSnwPacket(good);
  deepEqual(good, before);
  const bad = good.slice();
  bad[100] ^= 1;
  const badBefore = bad.slice();
  throws(() => decodeSnwPacket(bad), SnwPacketError);
  deepEqual(bad, badBefore);
});

Deno.test("snw packet: isSnwDataPacket accepts only the intact DATA packet of that session and seq, and leaves the bytes as they were", () => {
  const seq = 2 ** 32 + 5; // the high half of the seq counts too
  const good = encodeSnwPacket(
    SnwType.DATA,
    7,
    seq,
    new Uint8Array(100).fill(3),
  );
  const before = good.slice();
  equal(isSnwDataPacket(good, 7, seq), true);
  deepEqual(good, before);
  equal(isSnwDataPacket(good, 8, seq), false, "another session");
  equal(isSnwDataPacket(good, 7, seq + 1), false, "another seq");
  equal(isSnwDataPacket(good, 7, 5), false, "the same low 32 bits");
  equal(isSnwDataPacket(good, 7, seq + 2 ** 32), false, "the same low 32 bits");
  const ack = encodeSnwPacket(SnwType.ACK, 7, seq, new Uint8Array(100).fill(3));
  equal(isSnwDataPacket(ack, 7, seq), false, "not DATA");
  equal(isSnwDataPacket(good.subarray(0, good.length - 1), 7, seq), false);
  equal(isSnwDataPacket(good.subarray(0, HEADER_SIZE - 1), 7, seq), false);
  for (let at = 0; at < good.length; at++) {
    const bad = good.slice();
    bad[at] ^= 0x10;
    equal(isSnwDataPacket(bad, 7, seq), false, `byte ${at} flipped`);
    equal(bad[at], good[at] ^ 0x10, "the bytes are left as they were");
  }
  deepEqual(good, before);
});

Deno.test("snw packet: fuzz — isSnwDataPacket agrees with decodeSnwPacket", () => {
  const random = seededRandom(2027);
  const base = encodeSnwPacket(SnwType.DATA, 5, 9, new Uint8Array(40).fill(1));
  let accepted = 0;
  for (let i = 0; i < 20_000; i++) {
    const bytes = base.slice(0, base.length - Math.floor(random() * 3));
    if (i % 4 !== 0) {
      bytes[Math.floor(random() * bytes.length)] ^= 1 + random() * 255;
    }
    let decoded = false;
    try {
      const packet = decodeSnwPacket(bytes);
      decoded = packet.type === SnwType.DATA && packet.session === 5 &&
        packet.seq === 9;
    } catch {
      // rejected
    }
    equal(isSnwDataPacket(bytes, 5, 9), decoded, `datagram ${i}`);
    if (decoded) accepted++;
  }
  ok(accepted > 1000, `only ${accepted} intact datagrams were tried`);
});
