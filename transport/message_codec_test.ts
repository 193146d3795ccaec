import { deepStrictEqual, rejects, strictEqual, throws } from "node:assert/strict";
import { AssertionError } from "../internal/assert.ts";
import { BodyTooLargeError } from "../internal/bounded_reader.ts";
import { EntryType, type Message, MessageType } from "../raft/types.ts";
import { ByteReader, TruncatedStreamError } from "./byte_reader.ts";
import {
  decodeMessage,
  encodeFrame,
  encodeMessage,
  FrameTooLargeError,
  isLinkHeartbeat,
  linkHeartbeatBytes,
  readFrame,
  readFramedMessage,
} from "./message_codec.ts";
import { RaftpbDecodeError } from "./raftpb_codec.ts";

function message(overrides: Partial<Message> = {}): Message {
  return {
    type: MessageType.app,
    to: 2n,
    from: 1n,
    term: 3,
    logTerm: 2,
    index: 10,
    entries: [{ term: 3, index: 11, type: EntryType.normal, data: new Uint8Array([42]) }],
    commit: 9,
    snapshot: null,
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(),
    ...overrides,
  };
}

/** A stream of `bytes` cut into `chunkBytes` pieces, counting how many pieces were pulled. */
function chunked(bytes: Uint8Array, chunkBytes: number, pulls = { count: 0 }) {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      pulls.count++;
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(at, at + chunkBytes));
      at += chunkBytes;
    },
  }, { highWaterMark: 0 });
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

Deno.test("messages encode with raftpb's field numbers and decode back", () => {
  const heartbeat = message({
    type: MessageType.heartbeat,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 5,
  });
  // type=8 (field 1), to=2 (field 2), from=1 (field 3), term=3 (field 4), commit=5 (field 8)
  deepStrictEqual(
    encodeMessage(heartbeat),
    new Uint8Array([0x08, 8, 0x10, 2, 0x18, 1, 0x20, 3, 0x40, 5]),
  );
  deepStrictEqual(decodeMessage(encodeMessage(heartbeat)), heartbeat);
  const app = message({ to: 0xffff_ffff_ffff_ffffn, index: Number.MAX_SAFE_INTEGER });
  deepStrictEqual(decodeMessage(encodeMessage(app)), app);
});

Deno.test("the link heartbeat is a zero MsgHeartbeat that readers can tell apart", () => {
  deepStrictEqual(linkHeartbeatBytes, new Uint8Array([0x08, 8]));
  strictEqual(isLinkHeartbeat(decodeMessage(linkHeartbeatBytes)), true);
  strictEqual(isLinkHeartbeat(message({ type: MessageType.heartbeat })), false);
});

Deno.test("decoding refuses what raft cannot hold", async (t) => {
  await t.step("an unknown message type", () => {
    throws(() => decodeMessage(new Uint8Array([0x08, 99])), /unknown message type 99/);
  });
  await t.step("an unknown entry type", () => {
    // entries (field 7): an Entry whose Type (field 1) is 5
    throws(() => decodeMessage(new Uint8Array([0x3a, 2, 0x08, 5])), /unknown entry type 5/);
  });
  await t.step("an index past the safe integers", () => {
    // index (field 6) = 2^53
    const bytes = new Uint8Array([0x30, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]);
    throws(() => decodeMessage(bytes), /index 9007199254740992/);
  });
  await t.step("garbage and truncated protobuf", () => {
    throws(() => decodeMessage(new Uint8Array([0xff, 0xff, 0xff])), RaftpbDecodeError);
    const whole = encodeMessage(message());
    throws(() => decodeMessage(whole.subarray(0, whole.length - 1)), RaftpbDecodeError);
  });
});

Deno.test("encoding asserts that raft's numbers fit", () => {
  throws(() => encodeMessage(message({ index: -1 })), AssertionError);
  throws(() => encodeMessage(message({ type: 42 as MessageType })), AssertionError);
});

Deno.test("frames are read back in order across any chunking", async () => {
  const messages = Array.from({ length: 20 }, (_, i) => message({ index: i, commit: i }));
  const stream = concat(...messages.map((m) => encodeFrame(encodeMessage(m))));
  for (const chunkBytes of [1, 7, 64, stream.length]) {
    const reader = new ByteReader(chunked(stream, chunkBytes));
    const read: Message[] = [];
    for (let m; (m = await readFramedMessage(reader, 1024)) !== null;) read.push(m);
    deepStrictEqual(read, messages, `chunks of ${chunkBytes}`);
  }
});

Deno.test("a truncated frame is an error, a clean end is not", async () => {
  const frame = encodeFrame(encodeMessage(message()));
  strictEqual(await readFrame(new ByteReader(chunked(new Uint8Array(), 8)), 1024), null);
  await rejects(
    readFrame(new ByteReader(chunked(frame.subarray(0, 5), 2)), 1024),
    TruncatedStreamError,
  );
  await rejects(
    readFrame(new ByteReader(chunked(frame.subarray(0, 8), 8)), 1024),
    TruncatedStreamError,
  );
  await rejects(
    readFrame(new ByteReader(chunked(frame.subarray(0, frame.length - 1), 3)), 1024),
    TruncatedStreamError,
  );
});

Deno.test("an oversized frame length is refused before its bytes are read", async () => {
  const header = new Uint8Array(8);
  new DataView(header.buffer).setBigUint64(0, 1n << 62n);
  const pulls = { count: 0 };
  const stream = chunked(concat(header, new Uint8Array(1 << 20)), 8, pulls);
  await rejects(readFrame(new ByteReader(stream), 1 << 20), FrameTooLargeError);
  strictEqual(pulls.count, 1, "only the header was pulled");
  const justOver = encodeFrame(new Uint8Array(1025));
  await rejects(readFrame(new ByteReader(chunked(justOver, 64)), 1024), FrameTooLargeError);
  deepStrictEqual(
    await readFrame(new ByteReader(chunked(encodeFrame(new Uint8Array(1024)), 64)), 1024),
    new Uint8Array(1024),
  );
});

Deno.test("a garbage frame payload is a decode error", async () => {
  const reader = new ByteReader(chunked(encodeFrame(new Uint8Array([0xff, 0xff])), 4));
  await rejects(readFramedMessage(reader, 1024), RaftpbDecodeError);
});

Deno.test("the rest of a stream after a frame is handed on, bounded", async () => {
  const head = encodeFrame(encodeMessage(message()));
  const tail = Uint8Array.from({ length: 1000 }, (_, i) => i % 251);
  const reader = new ByteReader(chunked(concat(head, tail), 37));
  await readFramedMessage(reader, 1024);
  const rest = new Uint8Array(await new Response(reader.rest(1000)).arrayBuffer());
  deepStrictEqual(rest, tail);

  const capped = new ByteReader(chunked(concat(head, tail), 37));
  await readFramedMessage(capped, 1024);
  await rejects(new Response(capped.rest(999)).arrayBuffer(), BodyTooLargeError);
  strictEqual(capped.overCap, true);
});
