/**
 * Protobuf wire format written by hand into an array sized beforehand, for the few messages
 * hot enough that protobuf-es's reflective `toBinary` shows in profiles (raft messages, put
 * proposals, the KV and Watch answers). Scalar fields are written only when they differ from
 * their default, as `toBinary` writes proto3 fields and the proto2 fields we set.
 *
 * @module
 */
import { assert } from "./assert.ts";
import { varintBytes } from "./bytes.ts";

/** The largest u64 a varint writer takes as a number. */
export const maxSafeBig: bigint = BigInt(Number.MAX_SAFE_INTEGER);
/** Wire type of varint fields. */
export const varintWire = 0;
/** Wire type of length-delimited fields (bytes, strings, messages). */
export const bytesWire = 2;

/** The key of field `field` with wire type `wire`. */
export function fieldKey(field: number, wire: number): number {
  return (field << 3) | wire;
}

/** Bytes of `v`, a u64, as a varint. */
export function u64VarintBytes(v: bigint): number {
  if (v <= maxSafeBig) return varintBytes(Number(v));
  // Past 2^53: 54 to 64 bits, so 8 to 10 bytes.
  return v < 1n << 56n ? 8 : v < 1n << 63n ? 9 : 10;
}

/** Bytes of field `field` holding the u64 `v` (0: left out). */
export function u64FieldBytes(field: number, v: bigint): number {
  return v === 0n ? 0 : varintBytes(field << 3) + u64VarintBytes(v);
}

/** Bytes of field `field` holding the int64 `v` (0: left out; negatives take ten bytes). */
export function int64FieldBytes(field: number, v: bigint): number {
  return v === 0n ? 0 : varintBytes(field << 3) + (v < 0n ? 10 : u64VarintBytes(v));
}

/** Bytes of field `field` set to true (false: left out). */
export function boolFieldBytes(field: number, on: boolean): number {
  return on ? varintBytes(field << 3) + 1 : 0;
}

/** Bytes of field `field` holding the number `n` (0: left out). */
export function numberFieldBytes(field: number, n: number): number {
  return n === 0 ? 0 : varintBytes(field << 3) + varintBytes(n);
}

/** Bytes of a message field `field` of `length` bytes (written even when empty). */
export function messageFieldBytes(field: number, length: number): number {
  return varintBytes(field << 3) + varintBytes(length) + length;
}

/** Bytes of field `field` holding `length` bytes (0: left out). */
export function bytesFieldBytes(field: number, length: number): number {
  return length === 0 ? 0 : varintBytes(field << 3) + varintBytes(length) + length;
}

/** A writer of exactly `size` bytes, after `headroom` bytes left to the caller. */
export class ProtoWriter {
  /** The output; complete once `finish` passes. */
  readonly buf: Uint8Array;
  /** Where the next byte goes. */
  at: number;

  /** Takes the `headroom + size` bytes of the output from `allocate` (fresh memory). */
  constructor(
    size: number,
    headroom = 0,
    allocate: (bytes: number) => Uint8Array = (bytes) => new Uint8Array(bytes),
  ) {
    this.buf = allocate(headroom + size);
    this.at = headroom;
  }

  /** A varint of `n`, a safe non-negative integer. */
  varint(n: number): void {
    while (n >= 0x80) {
      this.buf[this.at++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.at++] = n;
  }

  /** A varint of `v`, a u64. */
  u64(v: bigint): void {
    if (v <= maxSafeBig) return this.varint(Number(v));
    // Two 32-bit halves: one bigint operation each instead of two per byte.
    let low = Number(v & 0xffff_ffffn);
    let high = Number(v >> 32n);
    while (high > 0 || low >= 0x80) {
      this.buf[this.at++] = (low & 0x7f) | 0x80;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    this.buf[this.at++] = low;
  }

  /** The key of a length-delimited field, then its length (its bytes are the caller's). */
  lengthPrefix(field: number, length: number): void {
    this.varint(fieldKey(field, bytesWire));
    this.varint(length);
  }

  /** Field `field` holding the number `n`, unless it is 0. */
  numberField(field: number, n: number): void {
    if (n === 0) return;
    this.varint(fieldKey(field, varintWire));
    this.varint(n);
  }

  /** Field `field` holding the u64 `v`, unless it is 0. */
  u64Field(field: number, v: bigint): void {
    if (v === 0n) return;
    this.varint(fieldKey(field, varintWire));
    this.u64(v);
  }

  /** Field `field` holding the int64 `v` (a negative as its 64-bit two's complement), unless 0. */
  int64Field(field: number, v: bigint): void {
    if (v === 0n) return;
    this.varint(fieldKey(field, varintWire));
    this.u64(v < 0n ? BigInt.asUintN(64, v) : v);
  }

  /** Field `field` set to true, unless `on` is false. */
  boolField(field: number, on: boolean): void {
    if (!on) return;
    this.varint(fieldKey(field, varintWire));
    this.buf[this.at++] = 1;
  }

  /** Message field `field` holding the encoded message `bytes` (written even when empty). */
  messageField(field: number, bytes: Uint8Array): void {
    this.lengthPrefix(field, bytes.length);
    this.raw(bytes);
  }

  /** Field `field` holding `bytes`, unless they are empty. */
  bytesField(field: number, bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.lengthPrefix(field, bytes.length);
    this.raw(bytes);
  }

  /** `bytes` as they are (an encoded part). */
  raw(bytes: Uint8Array): void {
    this.buf.set(bytes, this.at);
    this.at += bytes.length;
  }

  /** The output, after checking that every byte was written. */
  finish(what: string): Uint8Array {
    // A byte left unwritten would go out as a zero the size count did not expect.
    if (this.at !== this.buf.length) {
      assert(false, `${what}: wrote ${this.at} of ${this.buf.length} bytes`);
    }
    return this.buf;
  }
}
