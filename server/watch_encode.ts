/**
 * A faster wire encoding of WatchResponse for the gRPC path. One revision's events go to
 * every watcher of a key, each in its own response: encoding every response whole (header,
 * events, key-values) repeated the same work once per watcher, and was most of the server's
 * CPU per delivered event. Here each event is encoded once (the protobuf Event objects are
 * already shared by all watchers, see `pbEvent` in watch_service.ts) and the response header
 * once per revision, and a response is those bytes behind its few own fields.
 *
 * The output is ordinary protobuf: fields in field-number order, defaults omitted, as
 * `toBinary` writes them (tests compare the two).
 *
 * @module
 */
import { toBinary } from "@bufbuild/protobuf";
import {
  boolFieldBytes,
  bytesFieldBytes,
  int64FieldBytes,
  messageFieldBytes,
  ProtoWriter,
} from "../internal/proto_writer.ts";
import { type Event, EventSchema } from "../proto/gen/etcd/mvccpb/kv_pb.ts";
import type { WatchResponse } from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { responseHeaderBytes } from "./kv_encode.ts";

const noBytes = new Uint8Array(0);

/** Encoded events by event object; weak, so an event is kept only while a watcher holds it. */
const encodedEvents = new WeakMap<Event, Uint8Array>();

function eventBytes(ev: Event): Uint8Array {
  let bytes = encodedEvents.get(ev);
  if (!bytes) encodedEvents.set(ev, bytes = toBinary(EventSchema, ev));
  return bytes;
}

/** Bytes a slab hands out before the next one is made. */
const slabBytes = 64 * 1024;
let slab = new Uint8Array(slabBytes);
let slabUsed = 0;

/**
 * `bytes` of fresh memory: a view of a shared slab for small responses (one allocation per
 * many responses), an array of its own for large ones. Views are never handed out twice.
 */
function take(bytes: number): Uint8Array {
  if (bytes > slabBytes / 4) return new Uint8Array(bytes);
  if (slabUsed + bytes > slabBytes) {
    slab = new Uint8Array(slabBytes);
    slabUsed = 0;
  }
  const out = slab.subarray(slabUsed, slabUsed + bytes);
  slabUsed += bytes;
  return out;
}

/**
 * Encodes `wr` exactly as `toBinary(WatchResponseSchema, wr)` does, reusing shared parts,
 * after `headroom` bytes left for the caller (the gRPC message prefix).
 */
export function encodeWatchResponse(wr: WatchResponse, headroom = 0): Uint8Array {
  const header = wr.header ? responseHeaderBytes(wr.header) : null;
  const events = wr.events.map(eventBytes);
  const reason = wr.cancelReason === "" ? noBytes : new TextEncoder().encode(wr.cancelReason);
  let size = (header ? messageFieldBytes(1, header.length) : 0) +
    int64FieldBytes(2, wr.watchId) + boolFieldBytes(3, wr.created) +
    boolFieldBytes(4, wr.canceled) + int64FieldBytes(5, wr.compactRevision) +
    bytesFieldBytes(6, reason.length) + boolFieldBytes(7, wr.fragment);
  for (const ev of events) size += messageFieldBytes(11, ev.length);

  const w = new ProtoWriter(size, headroom, take);
  if (header) w.messageField(1, header);
  w.int64Field(2, wr.watchId);
  w.boolField(3, wr.created);
  w.boolField(4, wr.canceled);
  w.int64Field(5, wr.compactRevision);
  w.bytesField(6, reason);
  w.boolField(7, wr.fragment);
  for (const ev of events) w.messageField(11, ev);
  return w.finish("watch response");
}
