/**
 * raftpb.Message bytes straight from and to raft's plain types, for the messages that carry no
 * snapshot (all but MsgSnap). Every raft message crosses the peer transport this way, and going
 * through protobuf-es's generic objects (`messageToProto` then `toBinary`, `fromBinary` then
 * `messageFromProto`) cost a leader about a sixteenth of its CPU under put load, and a
 * follower about a twentieth.
 *
 * `raftpb_codec.ts` stays the reference: the bytes written here are exactly the bytes
 * `toBinary(MessageSchema, messageToProto(message))` writes (non-zero fields only, in field
 * order), and decoding gives exactly what `messageFromProto(fromBinary(...))` gives, errors
 * included. The decoder handles the shapes this encoder writes; anything else (a snapshot, an
 * unknown field or enum value, a wire type or number it does not expect, a malformed varint)
 * makes it hand the bytes to the reference path, which decides. Tests hold both to that.
 *
 * @module
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { assert } from "../internal/assert.ts";
import {
  boolFieldBytes,
  bytesFieldBytes,
  bytesWire,
  fieldKey,
  messageFieldBytes,
  numberFieldBytes,
  ProtoWriter,
  u64FieldBytes,
  varintWire,
} from "../internal/proto_writer.ts";
import {
  EntryType as PbEntryType,
  MessageSchema,
  MessageType as PbMessageType,
} from "../proto/gen/etcd/raftpb/raft_pb.ts";
import { newMessage } from "../raft/message.ts";
import type { Entry, Message, MessageType } from "../raft/types.ts";
import { messageFromProto, messageToProto, RaftpbDecodeError } from "./raftpb_codec.ts";

/** The largest raftpb.MessageType value this build knows. */
const maxMessageType = PbMessageType.MsgPreVoteResp;
/** The largest raftpb.EntryType value this build knows. */
const maxEntryType = PbEntryType.EntryConfChangeV2;
const maxU64 = (1n << 64n) - 1n;

// The checks build their messages only when they fail: a message per field and call was most
// of the encoder's time.

function checkU64(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    assert(false, `raftpb: ${what} ${value} is not a u64`);
  }
}

function checkId(value: bigint, what: string): void {
  if (value < 0n || value > maxU64) assert(false, `raftpb: ${what} ${value} is not a u64`);
}

function checkType(value: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    assert(false, `raftpb: ${what} ${value} is unknown`);
  }
}

function entrySize(e: Entry): number {
  checkType(e.type, maxEntryType, "entry type");
  checkU64(e.term, "entry term");
  checkU64(e.index, "entry index");
  return numberFieldBytes(1, e.type) + numberFieldBytes(2, e.term) +
    numberFieldBytes(3, e.index) + bytesFieldBytes(4, e.data.length);
}

/** Encodes a raft message as raftpb.Message bytes (the reference path for a snapshot). */
export function encodeMessageBytes(message: Message): Uint8Array {
  if (message.snapshot !== null) return toBinary(MessageSchema, messageToProto(message));
  checkType(message.type, maxMessageType, "message type");
  checkId(message.to, "to");
  checkId(message.from, "from");
  checkU64(message.term, "term");
  checkU64(message.logTerm, "log term");
  checkU64(message.index, "index");
  checkU64(message.commit, "commit");
  checkU64(message.rejectHint, "reject hint");
  const entrySizes = message.entries.map(entrySize);
  let size = numberFieldBytes(1, message.type) + u64FieldBytes(2, message.to) +
    u64FieldBytes(3, message.from) + numberFieldBytes(4, message.term) +
    numberFieldBytes(5, message.logTerm) + numberFieldBytes(6, message.index) +
    numberFieldBytes(8, message.commit) + boolFieldBytes(10, message.reject) +
    numberFieldBytes(11, message.rejectHint) + bytesFieldBytes(12, message.context.length);
  for (const bytes of entrySizes) size += messageFieldBytes(7, bytes);

  const out = new ProtoWriter(size);
  out.numberField(1, message.type);
  out.u64Field(2, message.to);
  out.u64Field(3, message.from);
  out.numberField(4, message.term);
  out.numberField(5, message.logTerm);
  out.numberField(6, message.index);
  for (let i = 0; i < message.entries.length; i++) {
    const e = message.entries[i];
    out.lengthPrefix(7, entrySizes[i]);
    out.numberField(1, e.type);
    out.numberField(2, e.term);
    out.numberField(3, e.index);
    out.bytesField(4, e.data);
  }
  out.numberField(8, message.commit);
  out.boolField(10, message.reject);
  out.numberField(11, message.rejectHint);
  out.bytesField(12, message.context);
  return out.finish("raftpb message");
}

/** An absent bytes field: empty, so one array serves them all. */
const noBytes = new Uint8Array(0);

class In {
  at: number;
  constructor(readonly buf: Uint8Array, from: number, readonly end: number) {
    this.at = from;
  }
  /** A varint that fits a safe integer, or -1. */
  number(): number {
    let value = 0;
    let scale = 1;
    // Eight bytes hold 56 bits: anything longer is past 2^53 anyway.
    for (let i = 0; i < 8 && this.at < this.end; i++) {
      const b = this.buf[this.at++];
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value <= Number.MAX_SAFE_INTEGER ? value : -1;
      scale *= 0x80;
    }
    return -1;
  }
  /** A varint below 2^64 as a bigint, or undefined. */
  u64(): bigint | undefined {
    // Seven bits a byte into three number-sized parts: bits 0-27, 28-55 and 56-63.
    let low = 0;
    let middle = 0;
    let high = 0;
    for (let i = 0; i < 10; i++) {
      if (this.at >= this.end) return undefined;
      const b = this.buf[this.at++];
      const bits = b & 0x7f;
      if (i < 4) low |= bits << (7 * i);
      else if (i < 8) middle |= bits << (7 * (i - 4));
      else if (i === 8) high = bits;
      else if (b > 1) return undefined;
      else high |= bits << 7;
      if (b < 0x80) {
        if (high === 0 && middle < 1 << 25) return BigInt(low + middle * 2 ** 28);
        return BigInt(low) | (BigInt(middle) << 28n) | (BigInt(high) << 56n);
      }
    }
    return undefined;
  }
  /** The length of a length-delimited field's bytes (all of them present), or -1. */
  span(): number {
    const length = this.number();
    return length > this.end - this.at ? -1 : length;
  }
}

function decodeEntry(input: In, end: number): Entry | undefined {
  const entry: Entry = { term: 0, index: 0, type: 0, data: noBytes };
  while (input.at < end) {
    const key = input.buf[input.at++];
    switch (key) {
      case fieldKey(1, varintWire): {
        const type = input.number();
        if (type < 0 || type > maxEntryType) return undefined;
        entry.type = type as Entry["type"];
        break;
      }
      case fieldKey(2, varintWire): {
        const term = input.number();
        if (term < 0) return undefined;
        entry.term = term;
        break;
      }
      case fieldKey(3, varintWire): {
        const index = input.number();
        if (index < 0) return undefined;
        entry.index = index;
        break;
      }
      case fieldKey(4, bytesWire): {
        const length = input.span();
        if (length < 0) return undefined;
        entry.data = input.buf.subarray(input.at, input.at + length);
        input.at += length;
        break;
      }
      default:
        return undefined;
    }
  }
  return input.at === end ? entry : undefined;
}

/**
 * The decoder's own answer for `bytes`, or undefined where it leaves them to the reference
 * path (exported for tests, which check that ordinary traffic never needs that path).
 */
export function decodeMessageFast(bytes: Uint8Array): Message | undefined {
  const message = newMessage({ type: 0 as MessageType, to: 0n, from: 0n });
  const input = new In(bytes, 0, bytes.length);
  while (input.at < input.end) {
    // Every field this decoder takes has a one-byte key; a longer one is not ours.
    const key = bytes[input.at++];
    if (key >= 0x80) return undefined;
    if (key === fieldKey(7, bytesWire)) {
      const length = input.span();
      if (length < 0) return undefined;
      const end = input.at + length;
      const entry = decodeEntry(input, end);
      if (entry === undefined) return undefined;
      message.entries.push(entry);
      continue;
    }
    if (key === fieldKey(12, bytesWire)) {
      const length = input.span();
      if (length < 0) return undefined;
      message.context = bytes.subarray(input.at, input.at + length);
      input.at += length;
      continue;
    }
    if (key === fieldKey(2, varintWire) || key === fieldKey(3, varintWire)) {
      const id = input.u64();
      if (id === undefined) return undefined;
      if (key === fieldKey(2, varintWire)) message.to = id;
      else message.from = id;
      continue;
    }
    if ((key & 7) !== varintWire) return undefined;
    const value = input.number();
    if (value < 0) return undefined;
    switch (key >> 3) {
      case 1:
        if (value > maxMessageType) return undefined;
        message.type = value as MessageType;
        break;
      case 4:
        message.term = value;
        break;
      case 5:
        message.logTerm = value;
        break;
      case 6:
        message.index = value;
        break;
      case 8:
        message.commit = value;
        break;
      case 10:
        message.reject = value !== 0;
        break;
      case 11:
        message.rejectHint = value;
        break;
      default:
        return undefined;
    }
  }
  return message;
}

/**
 * Decodes raftpb.Message bytes. Throws {@linkcode RaftpbDecodeError} on malformed protobuf,
 * an unknown message or entry type, or a number raft cannot hold.
 */
export function decodeMessageBytes(bytes: Uint8Array): Message {
  const fast = decodeMessageFast(bytes);
  if (fast !== undefined) return fast;
  let proto;
  try {
    proto = fromBinary(MessageSchema, bytes);
  } catch (cause) {
    throw new RaftpbDecodeError(`malformed raft message: ${(cause as Error).message}`, { cause });
  }
  return messageFromProto(proto);
}
