/**
 * Byte-string helpers shared by every layer: ordering (keys are compared as unsigned
 * bytes, as etcd does), concatenation, etcd's prefix range end, hex, and big-endian integers.
 *
 * @module
 */
import { assert } from "./assert.ts";

/** Compares two byte strings lexicographically as unsigned bytes: <0, 0 or >0. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i] - b[i];
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** True when both byte strings hold the same bytes. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Concatenates byte strings into a new array. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * The range end that selects every key with `prefix` as its prefix: the prefix with its last
 * byte below 0xff incremented and the rest dropped. A prefix of only 0xff bytes (or an empty
 * one) has no such end, so the answer is `"\0"`, which etcd reads as "to the end of the keyspace".
 */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i] < 0xff) {
      // A copy even when given a node Buffer, whose slice() is a view of the caller's bytes.
      const end = new Uint8Array(prefix.subarray(0, i + 1));
      end[i]++;
      return end;
    }
  }
  return new Uint8Array([0]);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** UTF-8 encodes a string. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** UTF-8 decodes bytes (invalid sequences become U+FFFD). */
export function fromUtf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** Bytes from hex digits; whitespace between them is ignored (test vectors, wire dumps). */
export function fromHex(text: string): Uint8Array {
  const digits = text.replace(/\s+/g, "");
  assert(digits.length % 2 === 0 && /^[0-9a-fA-F]*$/.test(digits), "fromHex: not hex digits");
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Reads a 32-bit big-endian unsigned integer. */
export function readUint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>>
    0;
}

/** Writes a 32-bit big-endian unsigned integer. */
export function writeUint32(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = (value >>> 16) & 0xff;
  out[at + 2] = (value >>> 8) & 0xff;
  out[at + 3] = value & 0xff;
}

/** Bytes of `n`, a safe non-negative integer, as a protobuf varint (7 bits a byte). */
export function varintBytes(n: number): number {
  let bytes = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    bytes++;
  }
  return bytes;
}
