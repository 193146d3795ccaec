import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { SeededRandom, seedFromEnv } from "../internal/seeded_random.ts";
import { MessageSchema } from "../proto/gen/etcd/raftpb/raft_pb.ts";
import { newMessage } from "../raft/message.ts";
import { type Entry, EntryType, type Message, MessageType } from "../raft/types.ts";
import { messageFromProto, messageToProto, RaftpbDecodeError } from "./raftpb_codec.ts";
import { decodeMessageBytes, decodeMessageFast, encodeMessageBytes } from "./raftpb_wire.ts";

const seed = seedFromEnv("RAFTPB_WIRE_SEED");
const messageTypes = Object.values(MessageType);
const entryTypes = Object.values(EntryType);

/** The reference encoding: raftpb_codec's mapping, then protobuf-es. */
const referenceEncode = (m: Message) => toBinary(MessageSchema, messageToProto(m));

/** The reference decoding, as a value or the error message it throws. */
function referenceDecode(bytes: Uint8Array): Message | string {
  let proto;
  try {
    proto = fromBinary(MessageSchema, bytes);
  } catch (cause) {
    return `malformed raft message: ${(cause as Error).message}`;
  }
  try {
    return messageFromProto(proto);
  } catch (err) {
    ok(err instanceof RaftpbDecodeError, String(err));
    return err.message;
  }
}

function decodeOrError(bytes: Uint8Array): Message | string {
  try {
    return decodeMessageBytes(bytes);
  } catch (err) {
    ok(err instanceof RaftpbDecodeError, String(err));
    return err.message;
  }
}

/** A number of raft's, biased towards zero (field left out) and the varint length limits. */
function number(random: SeededRandom): number {
  switch (random.int(6)) {
    case 0:
      return 0;
    case 1:
      return random.int(128);
    case 2:
      return 2 ** (7 * (1 + random.int(7))) - 1 + random.int(2);
    case 3:
      return Number.MAX_SAFE_INTEGER - random.int(3);
    default:
      return random.int(1_000_000);
  }
}

function id(random: SeededRandom): bigint {
  switch (random.int(4)) {
    case 0:
      return 0n;
    case 1:
      return BigInt(random.int(1000));
    case 2:
      return (1n << 64n) - 1n - BigInt(random.int(3));
    default:
      // Member IDs are random 64-bit values, mostly past 2^53.
      return BigInt.asUintN(64, (BigInt(random.int(2 ** 32)) << 32n) | BigInt(random.int(2 ** 32)));
  }
}

function entry(random: SeededRandom): Entry {
  return {
    term: number(random),
    index: number(random),
    type: random.pick(entryTypes),
    data: random.chance(0.2) ? new Uint8Array(0) : random.bytes(random.int(300)),
  };
}

function message(random: SeededRandom): Message {
  return {
    type: random.pick(messageTypes),
    to: id(random),
    from: id(random),
    term: number(random),
    logTerm: number(random),
    index: number(random),
    entries: Array.from({ length: random.chance(0.5) ? 0 : random.int(5) }, () => entry(random)),
    commit: number(random),
    snapshot: null,
    reject: random.chance(0.3),
    rejectHint: number(random),
    context: random.chance(0.7) ? new Uint8Array(0) : random.bytes(1 + random.int(20)),
  };
}

Deno.test(`raftpb wire: messages encode as the reference does and decode back without it (seed ${seed})`, () => {
  const random = new SeededRandom(seed);
  for (let i = 0; i < 2000; i++) {
    const m = message(random);
    const bytes = encodeMessageBytes(m);
    deepStrictEqual(bytes, referenceEncode(m), `message ${i}`);
    const fast = decodeMessageFast(bytes);
    ok(fast !== undefined, `message ${i} needed the reference decoder`);
    deepStrictEqual(fast, m, `message ${i}`);
    deepStrictEqual(decodeMessageBytes(bytes), referenceDecode(bytes), `message ${i}`);
  }
});

Deno.test(`raftpb wire: damaged bytes decode as the reference decodes them (seed ${seed})`, () => {
  const random = new SeededRandom(seed);
  let differentFromOriginal = 0;
  for (let i = 0; i < 5000; i++) {
    const original = encodeMessageBytes(message(random));
    let bytes: Uint8Array;
    switch (random.int(4)) {
      case 0: // a flipped byte
        bytes = original.slice();
        if (bytes.length > 0) bytes[random.int(bytes.length)] = random.int(256);
        break;
      case 1: // cut short
        bytes = original.slice(0, random.int(original.length + 1));
        break;
      case 2: // a random byte inserted
        bytes = new Uint8Array(original.length + 1);
        {
          const at = random.int(original.length + 1);
          bytes.set(original.subarray(0, at));
          bytes[at] = random.int(256);
          bytes.set(original.subarray(at), at + 1);
        }
        break;
      default: // random garbage
        bytes = random.bytes(random.int(40));
    }
    const expected = referenceDecode(bytes);
    if (typeof expected === "string") differentFromOriginal++;
    deepStrictEqual(decodeOrError(bytes), expected, `case ${i}: ${bytes}`);
  }
  // The damage must reach the error paths too, or this test checks little.
  ok(differentFromOriginal > 1000, `${differentFromOriginal} of 5000 were refused`);
});

Deno.test("raftpb wire: what the fast decoder leaves to the reference path", () => {
  const m = newMessage({
    type: MessageType.app,
    to: 2n,
    from: 1n,
    term: 3,
    logTerm: 3,
    index: 10,
    entries: [{ term: 3, index: 11, type: EntryType.normal, data: new Uint8Array([1, 2, 3]) }],
    commit: 9,
  });
  const bytes = encodeMessageBytes(m);
  const withField = (...extra: number[]) => new Uint8Array([...bytes, ...extra]);

  // A snapshot goes through the reference path both ways.
  const snap: Message = {
    ...m,
    type: MessageType.snap,
    entries: [],
    snapshot: {
      metadata: { index: 10, term: 3, confState: { voters: [1n, 2n], learners: [] } },
      data: new Uint8Array([9]),
    },
  };
  const snapBytes = encodeMessageBytes(snap);
  deepStrictEqual(snapBytes, referenceEncode(snap));
  strictEqual(decodeMessageFast(snapBytes), undefined);
  deepStrictEqual(decodeMessageBytes(snapBytes), snap);

  // An unknown field (13, varint) is skipped, as protobuf does.
  strictEqual(decodeMessageFast(withField(13 << 3, 5)), undefined);
  deepStrictEqual(decodeMessageBytes(withField(13 << 3, 5)), m);

  // A repeated scalar field: the last one wins.
  deepStrictEqual(decodeMessageBytes(withField(4 << 3, 7)), { ...m, term: 7 });

  // Values raft cannot hold are refused with the reference path's words.
  throws(() => decodeMessageBytes(withField(1 << 3, 19)), /unknown message type 19/);
  throws(
    () => decodeMessageBytes(withField(4 << 3, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10)),
    /term 9007199254740992 is larger than raft can hold/,
  );
  throws(() => decodeMessageBytes(withField(7 << 3 | 2, 2, 1 << 3, 7)), /unknown entry type 7/);
  throws(() => decodeMessageBytes(withField(2 << 3)), RaftpbDecodeError);
});
