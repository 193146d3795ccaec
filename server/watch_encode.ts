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
import { assert } from "../internal/assert.ts";
import { varintBytes } from "../internal/bytes.ts";
import { type Event, EventSchema } from "../proto/gen/etcd/mvccpb/kv_pb.ts";
import {
  type ResponseHeader,
  ResponseHeaderSchema,
  type WatchResponse,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";

/** Encoded events by event object; weak, so an event is kept only while a watcher holds it. */
const encodedEvents = new WeakMap<Event, Uint8Array>();

/** The last header encoded, by value: consecutive responses mostly share one. */
let lastHeader: { clusterId: bigint; memberId: bigint; revision: bigint; raftTerm: bigint } | null =
  null;
let lastHeaderBytes = new Uint8Array();

function eventBytes(ev: Event): Uint8Array {
  let bytes = encodedEvents.get(ev);
  if (!bytes) encodedEvents.set(ev, bytes = toBinary(EventSchema, ev));
  return bytes;
}

function headerBytes(h: ResponseHeader): Uint8Array {
  const last = lastHeader;
  if (
    last === null || last.clusterId !== h.clusterId || last.memberId !== h.memberId ||
    last.revision !== h.revision || last.raftTerm !== h.raftTerm
  ) {
    lastHeaderBytes = toBinary(ResponseHeaderSchema, h);
    lastHeader = {
      clusterId: h.clusterId,
      memberId: h.memberId,
      revision: h.revision,
      raftTerm: h.raftTerm,
    };
  }
  return lastHeaderBytes;
}

/** Largest bigint handled as a number: varint arithmetic on bigints costs far more. */
const maxSafeBig = BigInt(Number.MAX_SAFE_INTEGER);

/** `v` as a non-negative number when it is one, else null (negatives and huge values). */
function smallUnsigned(v: bigint | number): number | null {
  if (typeof v === "number") return v >= 0 && Number.isSafeInteger(v) ? v : null;
  return v >= 0n && v <= maxSafeBig ? Number(v) : null;
}

/** Bytes of `v` as a protobuf varint (int64 negatives as their 64-bit two's complement). */
function varintLength(v: bigint | number): number {
  const n = smallUnsigned(v);
  if (n !== null) return varintBytes(n);
  let u = typeof v === "bigint" ? BigInt.asUintN(64, v) : BigInt(v);
  let bytes = 1;
  while (u >= 0x80n) {
    u >>= 7n;
    bytes++;
  }
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

class Writer {
  readonly buf: Uint8Array;
  at: number;
  /** Every byte after `headroom` is written. */
  constructor(headroom: number, size: number) {
    this.buf = take(headroom + size);
    this.at = headroom;
  }
  varint(v: bigint | number): void {
    const n = smallUnsigned(v);
    if (n !== null) {
      let rest = n;
      while (rest >= 0x80) {
        this.buf[this.at++] = (rest % 0x80) | 0x80;
        rest = Math.floor(rest / 0x80);
      }
      this.buf[this.at++] = rest;
      return;
    }
    let u = typeof v === "bigint" ? BigInt.asUintN(64, v) : BigInt(v);
    while (u >= 0x80n) {
      this.buf[this.at++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.buf[this.at++] = Number(u);
  }
  bytes(b: Uint8Array): void {
    this.buf.set(b, this.at);
    this.at += b.length;
  }
}

/** Tag bytes of field `n` with wire type `t` (all fields here have numbers below 16). */
const tag = (n: number, t: number) => (n << 3) | t;
const varintType = 0;
const lengthDelimited = 2;

/**
 * Encodes `wr` exactly as `toBinary(WatchResponseSchema, wr)` does, reusing shared parts,
 * after `headroom` bytes left for the caller (the gRPC message prefix).
 */
export function encodeWatchResponse(wr: WatchResponse, headroom = 0): Uint8Array {
  const header = wr.header ? headerBytes(wr.header) : null;
  const events = wr.events.map(eventBytes);
  const reason = wr.cancelReason === "" ? null : new TextEncoder().encode(wr.cancelReason);
  let size = 0;
  if (header) size += 1 + varintLength(header.length) + header.length;
  if (wr.watchId !== 0n) size += 1 + varintLength(wr.watchId);
  if (wr.created) size += 2;
  if (wr.canceled) size += 2;
  if (wr.compactRevision !== 0n) size += 1 + varintLength(wr.compactRevision);
  if (reason) size += 1 + varintLength(reason.length) + reason.length;
  if (wr.fragment) size += 2;
  for (const ev of events) size += 1 + varintLength(ev.length) + ev.length;

  const w = new Writer(headroom, size);
  if (header) {
    w.varint(tag(1, lengthDelimited));
    w.varint(header.length);
    w.bytes(header);
  }
  if (wr.watchId !== 0n) {
    w.varint(tag(2, varintType));
    w.varint(wr.watchId);
  }
  if (wr.created) w.bytes(new Uint8Array([tag(3, varintType), 1]));
  if (wr.canceled) w.bytes(new Uint8Array([tag(4, varintType), 1]));
  if (wr.compactRevision !== 0n) {
    w.varint(tag(5, varintType));
    w.varint(wr.compactRevision);
  }
  if (reason) {
    w.varint(tag(6, lengthDelimited));
    w.varint(reason.length);
    w.bytes(reason);
  }
  if (wr.fragment) w.bytes(new Uint8Array([tag(7, varintType), 1]));
  for (const ev of events) {
    w.varint(tag(11, lengthDelimited));
    w.varint(ev.length);
    w.bytes(ev);
  }
  // A byte left unwritten would go out as whatever the slab held there.
  assert(w.at === w.buf.length, `watch response: wrote ${w.at} of ${w.buf.length} bytes`);
  return w.buf;
}
