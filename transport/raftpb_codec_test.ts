import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import * as pb from "../proto/gen/etcd/raftpb/raft_pb.ts";
import {
  type ConfChange,
  ConfChangeType,
  EntryType,
  type Message,
  MessageType,
} from "../raft/types.ts";
import { newMessage } from "../raft/message.ts";
import {
  confStateFromProto,
  decodeConfChange,
  encodeConfChange,
  messageFromProto,
  messageToProto,
  RaftpbDecodeError,
} from "./raftpb_codec.ts";

const capitalized = (name: string) => name[0].toUpperCase() + name.slice(1);

Deno.test("raft's enums name the same values as raftpb's", () => {
  const pbMessageTypes = pb.MessageType as unknown as Record<string, number>;
  for (const [name, value] of Object.entries(MessageType)) {
    strictEqual(pbMessageTypes[`Msg${capitalized(name)}`], value, name);
  }
  const pbEntryTypes = pb.EntryType as unknown as Record<string, number>;
  for (const [name, value] of Object.entries(EntryType)) {
    strictEqual(pbEntryTypes[`Entry${capitalized(name)}`], value, name);
  }
  const pbChangeTypes = pb.ConfChangeType as unknown as Record<string, number>;
  for (const [name, value] of Object.entries(ConfChangeType)) {
    strictEqual(pbChangeTypes[`ConfChange${capitalized(name)}`], value, name);
  }
});

Deno.test("messages convert to protobuf and back unchanged", () => {
  const message: Message = {
    type: MessageType.snap,
    to: 0xffff_ffff_ffff_fffen,
    from: 7n,
    term: 9,
    logTerm: 8,
    index: Number.MAX_SAFE_INTEGER,
    entries: [
      { term: 8, index: 41, type: EntryType.normal, data: new Uint8Array([1, 2]) },
      { term: 9, index: 42, type: EntryType.confChange, data: new Uint8Array() },
    ],
    commit: 40,
    snapshot: {
      metadata: { index: 40, term: 8, confState: { voters: [1n, 7n], learners: [9n] } },
      data: new Uint8Array([5]),
    },
    reject: true,
    rejectHint: 3,
    context: new Uint8Array([0xca, 0xfe]),
  };
  deepStrictEqual(messageFromProto(messageToProto(message)), message);
});

Deno.test("a snapshot left out stays null, a present empty one stays present", () => {
  const base = newMessage({ type: MessageType.app, to: 2n, from: 1n, term: 1 });
  strictEqual(messageFromProto(messageToProto(base)).snapshot, null);
  const empty = {
    ...base,
    snapshot: {
      metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } },
      data: new Uint8Array(),
    },
  };
  deepStrictEqual(messageFromProto(messageToProto(empty)).snapshot, empty.snapshot);
});

Deno.test("joint configurations are refused", () => {
  throws(
    () => confStateFromProto(create(pb.ConfStateSchema, { voters: [1n], votersOutgoing: [2n] })),
    RaftpbDecodeError,
  );
  throws(
    () => confStateFromProto(create(pb.ConfStateSchema, { voters: [1n], autoLeave: true })),
    RaftpbDecodeError,
  );
});

Deno.test("conf changes round trip; unknown change types are refused", () => {
  const change: ConfChange = {
    id: 0x8000_0000_0000_0001n,
    type: ConfChangeType.addLearnerNode,
    nodeId: 12n,
    context: new TextEncoder().encode('{"name":"n4"}'),
  };
  deepStrictEqual(decodeConfChange(encodeConfChange(change)), change);
  // field 2 (type), varint 9: not a ConfChangeType
  throws(() => decodeConfChange(new Uint8Array([0x10, 9])), /unknown conf change type 9/);
  throws(() => decodeConfChange(new Uint8Array([0xff])), RaftpbDecodeError);
});
