/**
 * Conversion between raft's plain types (`raft/types.ts`) and the raftpb protobuf messages,
 * the one place that maps them (the WAL has its own fixed layout, see `wal/codec.ts`).
 *
 * Encoding trusts its input: a raft value that cannot be represented (a negative index, an
 * unknown message type) is a bug and fails an assertion. Decoding trusts nothing: anything
 * that is not a value raft can hold throws {@linkcode RaftpbDecodeError}, so a peer's bad
 * bytes become a 400 or a dropped frame, never a confused state machine.
 *
 * Only fields that differ from their zero value are written, so a link heartbeat is two bytes
 * and a MsgApp carries no empty snapshot.
 *
 * @module
 */
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import * as pb from "../proto/gen/etcd/raftpb/raft_pb.ts";
import { assert } from "../internal/assert.ts";
import type {
  ConfChange,
  ConfChangeType,
  ConfState,
  Entry,
  Message,
  MessageType,
  Snapshot,
} from "../raft/types.ts";

/** Thrown when bytes from a peer are not a raftpb value raft can accept. */
export class RaftpbDecodeError extends Error {
  /** Describes what was wrong with the bytes. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RaftpbDecodeError";
  }
}

/** The largest raftpb.MessageType value this build knows. */
const maxMessageType = pb.MessageType.MsgPreVoteResp;
/** The largest raftpb.EntryType value this build knows. */
const maxEntryType = pb.EntryType.EntryConfChangeV2;
/** The largest raftpb.ConfChangeType value this build knows. */
const maxConfChangeType = pb.ConfChangeType.ConfChangeAddLearnerNode;
const maxU64 = (1n << 64n) - 1n;

function u64(value: number, what: string): bigint {
  assert(Number.isSafeInteger(value) && value >= 0, `raftpb: ${what} ${value} is not a u64`);
  return BigInt(value);
}

function id(value: bigint, what: string): bigint {
  assert(value >= 0n && value <= maxU64, `raftpb: ${what} ${value} is not a u64`);
  return value;
}

function safeNumber(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new RaftpbDecodeError(`${what} ${value} is larger than raft can hold`);
  }
  return Number(value);
}

/**
 * A proto2 enum field holding a value this build does not know is kept among the unknown
 * fields (closed enums), leaving the field at its default: find it there so the value is
 * rejected rather than silently read as the default.
 */
function unknownEnumValue(
  message: { $unknown?: { no: number; data: Uint8Array }[] },
  fieldNumber: number,
): bigint | undefined {
  const field = message.$unknown?.find((f) => f.no === fieldNumber);
  if (field === undefined) return undefined;
  let value = 0n;
  let shift = 0n;
  for (const byte of field.data) {
    value |= BigInt(byte & 0x7f) << shift;
    shift += 7n;
    if ((byte & 0x80) === 0) break;
  }
  return value;
}

/** Converts a raft entry to its protobuf message. */
export function entryToProto(entry: Entry): pb.Entry {
  assert(
    Number.isInteger(entry.type) && entry.type >= 0 && entry.type <= maxEntryType,
    `raftpb: entry type ${entry.type} is unknown`,
  );
  const init: MessageInitShape<typeof pb.EntrySchema> = {};
  if (entry.type !== 0) init.Type = entry.type;
  if (entry.term !== 0) init.Term = u64(entry.term, "entry term");
  if (entry.index !== 0) init.Index = u64(entry.index, "entry index");
  if (entry.data.length > 0) init.Data = entry.data;
  return create(pb.EntrySchema, init);
}

/** Converts a protobuf entry to raft's; throws {@linkcode RaftpbDecodeError}. */
export function entryFromProto(entry: pb.Entry): Entry {
  const unknownType = unknownEnumValue(entry, 1);
  if (unknownType !== undefined) throw new RaftpbDecodeError(`unknown entry type ${unknownType}`);
  return {
    term: safeNumber(entry.Term, "entry term"),
    index: safeNumber(entry.Index, "entry index"),
    type: entry.Type,
    data: entry.Data,
  };
}

/** Converts a raft configuration to its protobuf message. */
export function confStateToProto(state: ConfState): pb.ConfState {
  return create(pb.ConfStateSchema, {
    voters: state.voters.map((v) => id(v, "voter")),
    learners: state.learners.map((l) => id(l, "learner")),
  });
}

/**
 * Converts a protobuf configuration to raft's. Joint configurations (raft thesis §4.3) are
 * rejected: raft here changes membership one member at a time (thesis §4.1) and has nowhere to
 * keep an outgoing configuration.
 */
export function confStateFromProto(state: pb.ConfState): ConfState {
  if (state.votersOutgoing.length > 0 || state.learnersNext.length > 0 || state.autoLeave) {
    throw new RaftpbDecodeError("joint consensus configurations are not supported");
  }
  return { voters: [...state.voters], learners: [...state.learners] };
}

/** Converts a raft snapshot to its protobuf message. */
export function snapshotToProto(snapshot: Snapshot): pb.Snapshot {
  const meta = snapshot.metadata;
  const metadata: MessageInitShape<typeof pb.SnapshotMetadataSchema> = {
    confState: confStateToProto(meta.confState),
  };
  if (meta.index !== 0) metadata.index = u64(meta.index, "snapshot index");
  if (meta.term !== 0) metadata.term = u64(meta.term, "snapshot term");
  const init: MessageInitShape<typeof pb.SnapshotSchema> = {
    metadata: create(pb.SnapshotMetadataSchema, metadata),
  };
  if (snapshot.data.length > 0) init.data = snapshot.data;
  return create(pb.SnapshotSchema, init);
}

/** Converts a protobuf snapshot to raft's; throws {@linkcode RaftpbDecodeError}. */
export function snapshotFromProto(snapshot: pb.Snapshot): Snapshot {
  const meta = snapshot.metadata;
  return {
    metadata: {
      index: safeNumber(meta?.index ?? 0n, "snapshot index"),
      term: safeNumber(meta?.term ?? 0n, "snapshot term"),
      confState: meta?.confState === undefined
        ? { voters: [], learners: [] }
        : confStateFromProto(meta.confState),
    },
    data: snapshot.data,
  };
}

/** Converts a raft message to its protobuf message. */
export function messageToProto(message: Message): pb.Message {
  assert(
    Number.isInteger(message.type) && message.type >= 0 && message.type <= maxMessageType,
    `raftpb: message type ${message.type} is unknown`,
  );
  const init: MessageInitShape<typeof pb.MessageSchema> = {};
  if (message.type !== 0) init.type = message.type;
  if (message.to !== 0n) init.to = id(message.to, "to");
  if (message.from !== 0n) init.from = id(message.from, "from");
  if (message.term !== 0) init.term = u64(message.term, "term");
  if (message.logTerm !== 0) init.logTerm = u64(message.logTerm, "log term");
  if (message.index !== 0) init.index = u64(message.index, "index");
  if (message.entries.length > 0) init.entries = message.entries.map(entryToProto);
  if (message.commit !== 0) init.commit = u64(message.commit, "commit");
  if (message.snapshot !== null) init.snapshot = snapshotToProto(message.snapshot);
  if (message.reject) init.reject = true;
  if (message.rejectHint !== 0) init.rejectHint = u64(message.rejectHint, "reject hint");
  if (message.context.length > 0) init.context = message.context;
  return create(pb.MessageSchema, init);
}

/** Converts a protobuf message to raft's; throws {@linkcode RaftpbDecodeError}. */
export function messageFromProto(message: pb.Message): Message {
  const unknownType = unknownEnumValue(message, 1);
  if (unknownType !== undefined) {
    throw new RaftpbDecodeError(`unknown message type ${unknownType}`);
  }
  return {
    type: message.type as number as MessageType,
    to: message.to,
    from: message.from,
    term: safeNumber(message.term, "term"),
    logTerm: safeNumber(message.logTerm, "log term"),
    index: safeNumber(message.index, "index"),
    entries: message.entries.map(entryFromProto),
    commit: safeNumber(message.commit, "commit"),
    snapshot: message.snapshot === undefined ? null : snapshotFromProto(message.snapshot),
    reject: message.reject,
    rejectHint: safeNumber(message.rejectHint, "reject hint"),
    context: message.context,
  };
}

/** Encodes a membership change as raftpb.ConfChange bytes (an EntryConfChange entry's data). */
export function encodeConfChange(change: ConfChange): Uint8Array {
  assert(
    Number.isInteger(change.type) && change.type >= 0 && change.type <= maxConfChangeType,
    `raftpb: conf change type ${change.type} is unknown`,
  );
  const init: MessageInitShape<typeof pb.ConfChangeSchema> = {};
  if (change.id !== 0n) init.id = id(change.id, "conf change id");
  if (change.type !== 0) init.type = change.type;
  if (change.nodeId !== 0n) init.nodeId = id(change.nodeId, "conf change node id");
  if (change.context.length > 0) init.context = change.context;
  return toBinary(pb.ConfChangeSchema, create(pb.ConfChangeSchema, init));
}

/** Decodes raftpb.ConfChange bytes; throws {@linkcode RaftpbDecodeError}. */
export function decodeConfChange(bytes: Uint8Array): ConfChange {
  let proto: pb.ConfChange;
  try {
    proto = fromBinary(pb.ConfChangeSchema, bytes);
  } catch (cause) {
    throw new RaftpbDecodeError(`malformed conf change: ${(cause as Error).message}`, { cause });
  }
  const unknownType = unknownEnumValue(proto, 2);
  if (unknownType !== undefined) {
    throw new RaftpbDecodeError(`unknown conf change type ${unknownType}`);
  }
  return {
    id: proto.id,
    type: proto.type as number as ConfChangeType,
    nodeId: proto.nodeId,
    context: proto.context,
  };
}
