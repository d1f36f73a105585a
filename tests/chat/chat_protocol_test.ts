/**
 * Unit tests of the chat codec (protocol/chat_protocol.ts), the user input
 * parser and the stdin line splitter: exact wire bytes, awkward chunk
 * boundaries, limits, and a seeded fuzz.
 */

import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { createHash } from "node:crypto";
import { concatBytes } from "../_helpers/bytes.ts";
import {
  ChatDecoder,
  type ChatDecoderOptions,
  type ChatEvent,
  type ChatMessage,
  ChatProtocolError,
  encodeFile,
  encodeFileHeader,
  encodeMessage,
  MAX_MESSAGE_BYTES,
  messageText,
  savedFileName,
  savedNameProblem,
  sortUsernames,
  usernameProblem,
} from "../../protocol/chat_protocol.ts";
import { parseUserInput } from "../../roles/chat/user_input.ts";
import { inputLines } from "../../roles/chat/input_lines.ts";
import { seededRandom as random } from "../../bench/seeded_random.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const bytesOf = (value: string) => new TextEncoder().encode(value);

const concat = concatBytes;

/** Simplified view of events: file data concatenated per file. */
type Decoded =
  | { kind: "message"; message: ChatMessage }
  | {
    kind: "file";
    type: string;
    users: string[];
    fileName: string;
    content: Uint8Array;
  };

/** Feeds `chunks` one by one and collects the decoded messages and files. */
function decodeChunks(
  chunks: Uint8Array[],
  options?: ChatDecoderOptions,
): { decoded: Decoded[]; atBoundary: boolean } {
  const decoder = new ChatDecoder(options);
  const decoded: Decoded[] = [];
  let file:
    | { header: Decoded & { kind: "file" }; parts: Uint8Array[] }
    | undefined;
  for (const chunk of chunks) {
    decoder.push(chunk);
    for (let event = decoder.next(); event; event = decoder.next()) {
      handle(event);
    }
  }
  function handle(event: ChatEvent): void {
    switch (event.kind) {
      case "message":
        decoded.push(event);
        break;
      case "file-start":
        file = {
          header: {
            kind: "file",
            type: event.header.type,
            users: event.header.users,
            fileName: event.header.fileName,
            content: new Uint8Array(0),
          },
          parts: [],
        };
        equal(event.header.size >= 0, true);
        break;
      case "file-data":
        ok(file);
        file.parts.push(event.bytes.slice());
        break;
      case "file-end":
        ok(file);
        file.header.content = concat(file.parts);
        decoded.push(file.header);
        file = undefined;
        break;
    }
  }
  return { decoded, atBoundary: decoder.atBoundary };
}

function splitEvery(bytes: Uint8Array, size: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) {
    chunks.push(bytes.subarray(i, i + size));
  }
  return chunks;
}

function splitRandomly(bytes: Uint8Array, next: () => number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let i = 0;
  while (i < bytes.length) {
    const size = 1 + Math.floor(next() * 40);
    chunks.push(bytes.subarray(i, i + size));
    i += size;
  }
  return chunks;
}

const SAMPLE_MESSAGES: ChatMessage[] = [
  { type: "join", username: "client1" },
  { type: "disconnect", username: "client1" },
  { type: "request_users_list" },
  { type: "err_unknown_message" },
  { type: "err_server_full" },
  { type: "err_username_unavailable" },
  { type: "response_users_list", users: ["client1", "client2"] },
  { type: "send_message", users: ["client2"], text: "hello!" },
  { type: "forward_message", users: ["client1"], text: "hello!" },
  {
    type: "send_message",
    users: ["a", "b", "a"],
    text: "  spaced  out\ttext ✓ ",
  },
];

const BINARY = new Uint8Array([0, 10, 13, 32, 255, 0, 0x0a, 0x20, 0x80, 7]);

Deno.test("chat codec writes the SPEC §4 example messages byte for byte", () => {
  equal(messageText({ type: "join", username: "client1" }), "join client1");
  equal(
    messageText({ type: "response_users_list", users: ["client1", "client2"] }),
    "response_users_list 2 client1 client2",
  );
  equal(
    messageText({ type: "send_message", users: ["client2"], text: "hello!" }),
    "send_message 1 client2 hello!",
  );
  equal(
    messageText({
      type: "forward_message",
      users: ["client1"],
      text: "hello!",
    }),
    "forward_message 1 client1 hello!",
  );
  deepEqual(
    [...encodeMessage({ type: "join", username: "client1" })],
    [0, 0, 0, 12, ...bytesOf("join client1")],
  );
  deepEqual(
    [...encodeMessage({ type: "err_server_full" })],
    [0, 0, 0, 15, ...bytesOf("err_server_full")],
  );
  const file = encodeFile(
    { type: "send_file", users: ["bob", "carol"], fileName: "a.txt" },
    bytesOf("x\ny"),
  );
  equal(text(file.subarray(4)), "send_file 2 bob carol a.txt x\ny");
  equal(new DataView(file.buffer).getUint32(0), file.length - 4);
  const head = encodeFileHeader({
    type: "forward_file",
    users: ["alice"],
    fileName: "a.txt",
    size: 1000,
  });
  equal(text(head.subarray(4)), "forward_file 1 alice a.txt ");
  equal(new DataView(head.buffer).getUint32(0), head.length - 4 + 1000);
});

Deno.test("chat codec refuses to encode messages that break the rules", () => {
  throws(() => encodeMessage({ type: "join", username: "a b" }), RangeError);
  throws(
    () => encodeMessage({ type: "send_message", users: [], text: "x" }),
    RangeError,
  );
  throws(
    () => encodeMessage({ type: "send_message", users: ["a"], text: "" }),
    RangeError,
  );
  throws(
    () =>
      encodeMessage({ type: "forward_message", users: ["a", "b"], text: "x" }),
    RangeError,
  );
  throws(
    () =>
      encodeFileHeader({
        type: "send_file",
        users: ["a"],
        fileName: "two words",
        size: 1,
      }),
    RangeError,
  );
});

Deno.test("chat decoder reads every message type whole, byte by byte and in random splits", () => {
  const stream = concat(SAMPLE_MESSAGES.map(encodeMessage));
  const expected = SAMPLE_MESSAGES.map((message) => ({
    kind: "message",
    message,
  }));
  const next = random(7);
  for (
    const chunks of [
      [stream],
      splitEvery(stream, 1),
      splitEvery(stream, 3),
      splitRandomly(stream, next),
      splitRandomly(stream, next),
    ]
  ) {
    const { decoded, atBoundary } = decodeChunks(chunks);
    deepEqual(decoded, expected);
    equal(atBoundary, true);
  }
});

Deno.test("chat decoder streams binary file contents (NUL, newlines, 0xff) and keeps framing after them", () => {
  const big = new Uint8Array(100_000).map((_, i) => (i * 7919) & 0xff);
  const stream = concat([
    encodeMessage({ type: "join", username: "alice" }),
    encodeFile(
      { type: "send_file", users: ["bob"], fileName: "b.bin" },
      BINARY,
    ),
    encodeFile(
      { type: "forward_file", users: ["alice"], fileName: "empty" },
      new Uint8Array(0),
    ),
    encodeFile(
      { type: "send_file", users: ["bob", "carol", "bob"], fileName: "big" },
      big,
    ),
    encodeMessage({ type: "request_users_list" }),
  ]);
  const next = random(11);
  for (
    const chunks of [
      [stream],
      splitEvery(stream, 1),
      splitRandomly(stream, next),
      splitEvery(stream, 4096),
    ]
  ) {
    const { decoded } = decodeChunks(chunks);
    equal(decoded.length, 5);
    deepEqual(decoded[1], {
      kind: "file",
      type: "send_file",
      users: ["bob"],
      fileName: "b.bin",
      content: BINARY,
    });
    deepEqual(decoded[2], {
      kind: "file",
      type: "forward_file",
      users: ["alice"],
      fileName: "empty",
      content: new Uint8Array(0),
    });
    const third = decoded[3];
    ok(third.kind === "file");
    deepEqual(third.users, ["bob", "carol", "bob"]);
    equal(
      createHash("sha256").update(third.content).digest("hex"),
      createHash("sha256").update(big).digest("hex"),
    );
    deepEqual(decoded[4], {
      kind: "message",
      message: { type: "request_users_list" },
    });
  }
});

function frameOf(payload: Uint8Array | string, length?: number): Uint8Array {
  const body = typeof payload === "string" ? bytesOf(payload) : payload;
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, length ?? body.length);
  out.set(body, 4);
  return out;
}

function decodeError(
  chunks: Uint8Array[],
  options?: ChatDecoderOptions,
): string {
  try {
    decodeChunks(chunks, options);
  } catch (error) {
    ok(error instanceof ChatProtocolError, `not a ChatProtocolError: ${error}`);
    return error.message;
  }
  throw new Error("decoding succeeded");
}

Deno.test("chat decoder rejects malformed messages with ChatProtocolError", () => {
  const bad: Array<[string | Uint8Array, RegExp]> = [
    ["hello", /unknown message type "hello"/],
    ["join", /missing username/],
    ["join a b", /unexpected text/],
    ["join " + "x".repeat(33), /longer than 32 bytes/],
    ["join a/b", /path separators/],
    ["request_users_list now", /unexpected text/],
    ["send_message 2 bob hi", /invalid username|missing/],
    ["send_message 0 hi", /user count 0/],
    ["send_message 01 bob hi", /invalid user count/],
    ["send_message 1 bob", /missing message text/],
    ["send_message 1 bob ", /empty text/],
    ["send_message 1  bob hi", /invalid username ""/],
    ["send_message 1 bob a\nb", /control characters/],
    ["forward_message 2 a b hi", /user count 2/],
    ["response_users_list 2 a", /missing username 2 of 2/],
    ["send_file 1 bob", /ends inside the header/],
    ["send_file 1 bob a.txt", /ends inside the header/],
    ["send_file x bob a.txt data", /invalid user count/],
    [new Uint8Array([0x6a, 0x6f, 0x69, 0x6e, 0x20, 0xff]), /not valid UTF-8/],
    ["x".repeat(100), /unknown message type/],
  ];
  for (const [payload, pattern] of bad) {
    const message = decodeError([frameOf(payload)]);
    ok(pattern.test(message), `${String(payload)}: ${message}`);
  }
  ok(/empty frame/.test(decodeError([new Uint8Array(4)])));
});

Deno.test("chat decoder enforces size limits before buffering the payload", () => {
  // A 1 GiB+ length prefix alone is refused: no payload needed.
  ok(/exceeds every limit/.test(
    decodeError([new Uint8Array([0x7f, 0xff, 0xff, 0xff])]),
  ));
  // A non-file message longer than the limit is refused once its type is known.
  const long = frameOf("send_message 1 bob ", MAX_MESSAGE_BYTES + 1);
  ok(/exceeds the 1048576-byte limit/.test(decodeError([long])));
  // File content over the file limit is refused at the header.
  const limits = { maxMessageBytes: 64, maxFileBytes: 10 };
  const file = encodeFile(
    { type: "send_file", users: ["bob"], fileName: "f" },
    new Uint8Array(11),
  );
  ok(/exceed the 10-byte file limit/.test(decodeError([file], limits)));
  // A file header longer than the message limit is refused.
  const header = frameOf(`send_file 1 ${"b".repeat(30)} ${"f".repeat(40)} x`);
  ok(
    /header exceeds the 64-byte limit/.test(
      decodeError([header], { ...limits, maxFileBytes: 1000 }),
    ),
  );
  // Within the limits all is well.
  const fits = encodeFile(
    { type: "send_file", users: ["bob"], fileName: "f" },
    new Uint8Array(10),
  );
  equal(decodeChunks([fits], limits).decoded.length, 1);
});

Deno.test("chat decoder reports a stream that ends inside a frame", () => {
  const frame = encodeMessage({ type: "join", username: "alice" });
  for (const cut of [1, 3, 4, 7, frame.length - 1]) {
    const decoder = new ChatDecoder();
    decoder.push(frame.subarray(0, cut));
    equal(decoder.next(), undefined);
    equal(decoder.atBoundary, false);
    throws(() => decoder.finish(), ChatProtocolError);
  }
  const decoder = new ChatDecoder();
  decoder.push(frame);
  ok(decoder.next());
  decoder.finish();
});

Deno.test("chat decoder survives a seeded fuzz: random, mutated and truncated streams", () => {
  const next = random(0x5b59036c);
  const valid = concat([
    ...SAMPLE_MESSAGES.map(encodeMessage),
    encodeFile(
      { type: "send_file", users: ["bob"], fileName: "b.bin" },
      BINARY,
    ),
  ]);
  const limits = { maxMessageBytes: 4096, maxFileBytes: 4096 };
  let errors = 0;
  for (let round = 0; round < 3000; round++) {
    let stream: Uint8Array;
    const mode = round % 3;
    if (mode === 0) {
      stream = new Uint8Array(1 + Math.floor(next() * 300)).map(() =>
        Math.floor(next() * 256)
      );
    } else if (mode === 1) {
      stream = valid.slice();
      for (let i = 0; i < 1 + next() * 4; i++) {
        stream[Math.floor(next() * stream.length)] = Math.floor(next() * 256);
      }
    } else {
      stream = valid.subarray(0, Math.floor(next() * valid.length));
    }
    const decoder = new ChatDecoder(limits);
    try {
      for (const chunk of splitRandomly(stream, next)) {
        decoder.push(chunk);
        while (decoder.next()) { /* drain */ }
      }
      decoder.finish();
    } catch (error) {
      if (!(error instanceof ChatProtocolError)) throw error;
      errors++;
      // Once failed, the decoder keeps failing the same way.
      throws(() => decoder.next(), ChatProtocolError);
    }
  }
  ok(errors > 1500, `only ${errors} of 3000 fuzzed streams were refused`);
});

Deno.test("usernames: no whitespace, no separators, at most 32 bytes; lists sort by code point", () => {
  equal(usernameProblem("client_1"), undefined);
  equal(usernameProblem("zoë"), undefined);
  ok(usernameProblem(""));
  ok(usernameProblem("a\tb"));
  ok(usernameProblem("../x"));
  ok(usernameProblem("é".repeat(17)));
  // Names that would look like another: zero-width, bidi override, C1.
  for (const name of ["a\u200bb", "\u202eelina", "bob\u2060", "a\u0085b"]) {
    equal(
      usernameProblem(name),
      "invisible or format characters are not allowed",
      JSON.stringify(name),
    );
  }
  deepEqual(sortUsernames(["bob", "Alice", "alice", "_x", "10", "9"]), [
    "10",
    "9",
    "Alice",
    "_x",
    "alice",
    "bob",
  ]);
});

Deno.test("user input: the five forms, counts that must match, and everything else invalid", () => {
  deepEqual(parseUserInput("msg 2 client_1 client_2 Hello my friends!"), {
    kind: "msg",
    users: ["client_1", "client_2"],
    text: "Hello my friends!",
  });
  deepEqual(parseUserInput("  msg  1\tbob   keep   inner  spaces  "), {
    kind: "msg",
    users: ["bob"],
    text: "keep   inner  spaces",
  });
  deepEqual(parseUserInput("msg 2 bob bob hi"), {
    kind: "msg",
    users: ["bob", "bob"],
    text: "hi",
  });
  deepEqual(parseUserInput("file 2 bob carol dir/a.txt"), {
    kind: "file",
    users: ["bob", "carol"],
    path: "dir/a.txt",
  });
  deepEqual(parseUserInput("list"), { kind: "list" });
  deepEqual(parseUserInput("help"), { kind: "help" });
  deepEqual(parseUserInput("quit"), { kind: "quit" });
  equal(parseUserInput("msg 1 bob " + "x".repeat(70_000)).kind, "too-long");
  for (
    const line of [
      "",
      "   ",
      "hello",
      "LIST",
      "list extra",
      "quit now",
      "msg",
      "msg bob hi",
      "msg 0 hi",
      "msg -1 bob hi",
      "msg 2 bob hi",
      "msg 1 bob",
      "msg 1 bob    ",
      "msg 3 a b c",
      "msg 1 a/b hi",
      "file 1 bob",
      "file 2 bob a.txt",
      "file 1 bob a.txt b.txt",
      "file x bob a.txt",
    ]
  ) {
    deepEqual(parseUserInput(line), { kind: "invalid" }, JSON.stringify(line));
  }
});

Deno.test("input lines: CRLF, a last line without newline, and over-long lines", async () => {
  const read = async (parts: string[], max?: number) => {
    const reader = ReadableStream.from(parts.map(bytesOf)).getReader();
    const lines: Array<string | null> = [];
    for await (const line of inputLines(reader, max)) lines.push(line);
    return lines;
  };
  deepEqual(await read(["li", "st\r\nmsg 1 a hi\n", "quit"]), [
    "list",
    "msg 1 a hi",
    "quit",
  ]);
  deepEqual(await read(["a\n", "x".repeat(50), "y".repeat(50), "\nb\n"], 60), [
    "a",
    null,
    "b",
  ]);
  deepEqual(await read([]), []);
});

Deno.test("chat protocol: a file name every recipient can save as <user>_<name> within 255 bytes, counted in UTF-8", () => {
  equal(savedFileName("bob", "a.txt"), "bob_a.txt");
  const fits = "x".repeat(251); // "bob_" + 251 = 255 bytes
  equal(savedNameProblem(["bob"], fits), undefined);
  equal(
    savedNameProblem(["bob", "carol"], fits),
    'carol would save it as "carol_…", 257 bytes, over the 255-byte limit of file names',
  );
  // 83 three-byte characters: 249 bytes, 253 with "bob_"; "é" adds 2 more
  const wide = "€".repeat(83);
  equal(savedNameProblem(["bob"], wide), undefined);
  ok(savedNameProblem(["bob"], `${wide}éé`)?.includes("257 bytes"));
});
