/**
 * Raft messages on the wire: one protobuf raftpb.Message per pipeline body, and on streams and
 * at the head of a snapshot body, etcd's "message" framing:
 *
 * ```
 * frame  u64 big-endian length, then that many bytes of raftpb.Message
 * ```
 *
 * Both stream endpoints (`message` and `msgapp`) use this framing. etcd's msgapp endpoint
 * speaks msgappv2 instead, a stateful encoding that omits what the previous MsgApp implied; it
 * saves little next to entry payloads, and this transport only talks to itself.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { MessageSchema } from "../proto/gen/etcd/raftpb/raft_pb.ts";
import { assert } from "../internal/assert.ts";
import { type Message, MessageType } from "../raft/types.ts";
import { type ByteReader, TruncatedStreamError } from "./byte_reader.ts";
import { decodeMessageBytes } from "./raftpb_wire.ts";

export {
  decodeMessageBytes as decodeMessage,
  encodeMessageBytes as encodeMessage,
} from "./raftpb_wire.ts";

/** Bytes of a frame's length prefix. */
export const frameHeaderBytes = 8;

/** Thrown when a frame announces more bytes than the reader accepts. */
export class FrameTooLargeError extends Error {
  /** Names the announced length and the cap. */
  constructor(readonly announcedBytes: bigint, readonly maxBytes: number) {
    super(`frame of ${announcedBytes} bytes exceeds the ${maxBytes} byte limit`);
    this.name = "FrameTooLargeError";
  }
}

/**
 * The encoded link heartbeat: a MsgHeartbeat with every other field zero (etcd's
 * linkHeartbeatMessage). Raft never sends a heartbeat without `from` and `to`, so readers can
 * tell it apart and drop it.
 */
export const linkHeartbeatBytes: Uint8Array = toBinary(
  MessageSchema,
  create(MessageSchema, { type: MessageType.heartbeat }),
);

/** True for a link heartbeat, which only keeps a stream alive and is never given to raft. */
export function isLinkHeartbeat(message: Message): boolean {
  return message.type === MessageType.heartbeat && message.from === 0n && message.to === 0n;
}

/**
 * True for message types raft makes for itself (ticks, local reports). etcd's raft node drops
 * them when they come from the network; the transport refuses them before raft sees them.
 */
export function isLocalMessageType(type: MessageType): boolean {
  return type === MessageType.hup || type === MessageType.beat ||
    type === MessageType.unreachable || type === MessageType.snapStatus ||
    type === MessageType.checkQuorum;
}

/** Writes a frame's length prefix at `at`. */
export function writeFrameHeader(view: DataView, at: number, payloadBytes: number): void {
  assert(Number.isSafeInteger(payloadBytes) && payloadBytes >= 0, "frame length is not a size");
  view.setBigUint64(at, BigInt(payloadBytes));
}

/** Encodes one frame: the length prefix, then `payload`. */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(frameHeaderBytes + payload.length);
  writeFrameHeader(new DataView(frame.buffer), 0, payload.length);
  frame.set(payload, frameHeaderBytes);
  return frame;
}

/**
 * Reads one frame's payload from `reader`, refusing (before allocating) a length over
 * `maxBytes`. Returns null at a clean end of stream between frames; throws
 * {@linkcode FrameTooLargeError} or `TruncatedStreamError`.
 */
export async function readFrame(reader: ByteReader, maxBytes: number): Promise<Uint8Array | null> {
  const header = await reader.readExact(frameHeaderBytes);
  if (header === null) return null;
  const length = new DataView(header.buffer, header.byteOffset, frameHeaderBytes).getBigUint64(0);
  if (length > BigInt(maxBytes)) throw new FrameTooLargeError(length, maxBytes);
  const payload = await reader.readExact(Number(length));
  if (payload === null) throw new TruncatedStreamError(Number(length), 0);
  return payload;
}

/**
 * Reads one framed message (see {@linkcode readFrame}); throws `RaftpbDecodeError` for a
 * frame that is not a raft message.
 */
export async function readFramedMessage(
  reader: ByteReader,
  maxBytes: number,
): Promise<Message | null> {
  const payload = await readFrame(reader, maxBytes);
  return payload === null ? null : decodeMessageBytes(payload);
}
