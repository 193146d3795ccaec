/**
 * The static Huffman code of HPACK (RFC 7541 §5.2, Appendix B): a table-driven decoder that eats
 * one input byte per step, and an encoder.
 *
 * Strings are latin1: one byte is one UTF-16 code unit 0x00-0xff.
 *
 * @module
 */

import { assert } from "../../internal/assert.ts";

// deno-fmt-ignore
/**
 * RFC 7541 Appendix B: the code of each symbol, right-aligned ("aligned to LSB"), indexed by
 * symbol; symbol 256 is EOS.
 */
export const HUFFMAN_CODES: readonly number[] = [
  // 0x00-0x1f: control characters
  0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7,
  0xfffffe8, 0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec,
  0xfffffed, 0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3,
  0xffffff4, 0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb,
  // 0x20-0x3f: ' ' ! " # $ % & ' ( ) * + , - . / 0-9 : ; < = > ?
  0x14, 0x3f8, 0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa,
  0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18,
  0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
  0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc,
  // 0x40-0x5f: @ A-Z [ \ ] ^ _
  0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62,
  0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a,
  0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72,
  0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22,
  // 0x60-0x7f: ` a-z { | } ~ DEL
  0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26,
  0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7,
  0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78,
  0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd, 0xffffffc,
  // 0x80-0xff
  0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4, 0x3fffd5, 0x7fffd9,
  0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf,
  0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3,
  0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef,
  0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde,
  0x7fffea, 0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec,
  0x1fffe0, 0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef,
  0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4, 0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1,
  0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8, 0x1ffffec,
  0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed,
  0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2,
  0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5,
  0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3,
  0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4,
  0x3ffffeb, 0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea,
  0x7ffffeb, 0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,
  // 256: EOS
  0x3fffffff,
];

// deno-fmt-ignore
/**
 * RFC 7541 Appendix B: the length in bits of each symbol's code, indexed like
 * {@link HUFFMAN_CODES}.
 */
export const HUFFMAN_CODE_BITS: Uint8Array = Uint8Array.from([
  // 0x00-0x1f
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  // 0x20-0x3f
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  // 0x40-0x5f
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  // 0x60-0x7f
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  // 0x80-0xff
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  // 256: EOS
  30,
]);

/** The EOS symbol: never valid inside a string (RFC 7541 §5.2). */
const EOS = 256;

// Decoder state machine. A state is an internal node of the code tree (257 leaves, so 256
// internal nodes; node 0 is the root). TRANSITIONS[state << 8 | byte] packs what feeding that
// byte does: bits 0-7 the next state, bits 8-9 how many symbols completed (a code is at least 5
// bits long, so at most 2 per byte), bit 10 "EOS decoded", bits 16-23 and 24-31 the symbols.
const EMITTED_SHIFT = 8;
const FAILED = 1 << 10;
const FIRST_SHIFT = 16;
const SECOND_SHIFT = 24;

// Int32Array: entries with a second symbol >= 0x80 would not be small integers in a Uint32Array.
const TRANSITIONS = new Int32Array(256 * 256);
/**
 * States in which a string may end: RFC 7541 §5.2 allows at most 7 bits of padding and they must
 * be the most significant bits of EOS (all ones), so only the root and the nodes reached by 1 to 7
 * one-bits from it.
 */
const ACCEPTING = new Uint8Array(256);

buildDecoder();

function buildDecoder(): void {
  // children[node * 2 + bit]: an internal node id, or LEAF | symbol.
  const LEAF = 0x10000;
  const children = new Int32Array(256 * 2).fill(-1);
  let nodes = 1;
  for (let symbol = 0; symbol <= EOS; symbol++) {
    const code = HUFFMAN_CODES[symbol];
    const bits = HUFFMAN_CODE_BITS[symbol];
    let node = 0;
    for (let i = bits - 1; i >= 0; i--) {
      const slot = node * 2 + ((code >>> i) & 1);
      if (i === 0) {
        assert(children[slot] === -1, "Huffman code table is not prefix-free");
        children[slot] = LEAF | symbol;
      } else {
        if (children[slot] === -1) {
          assert(nodes < 256, "Huffman code tree has more than 256 internal nodes");
          children[slot] = nodes++;
        }
        assert(children[slot] < LEAF, "Huffman code table is not prefix-free");
        node = children[slot];
      }
    }
  }
  assert(nodes === 256 && !children.includes(-1), "Huffman code is not complete");

  // First what one 4-bit nibble does from each state: it completes at most one code, since every
  // code is at least 5 bits long. Then a byte is two nibbles. (The whole build takes ~10 ms at
  // module load, mostly interpreted code before the JIT warms up.)
  const nibbleSteps = new Int32Array(256 * 16);
  for (let state = 0; state < 256; state++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let step = 0;
      for (let i = 3; i >= 0 && step !== FAILED; i--) {
        const child = children[node * 2 + ((nibble >>> i) & 1)];
        if (child < LEAF) {
          node = child;
          continue;
        }
        const symbol = child & 0x1ff;
        step = symbol === EOS ? FAILED : (1 << EMITTED_SHIFT) | (symbol << FIRST_SHIFT);
        node = 0;
      }
      nibbleSteps[state * 16 + nibble] = step === FAILED ? FAILED : step | node;
    }
  }
  for (let state = 0; state < 256; state++) {
    for (let byte = 0; byte < 256; byte++) {
      const high = nibbleSteps[state * 16 + (byte >>> 4)];
      const low = (high & FAILED) !== 0 ? FAILED : nibbleSteps[(high & 0xff) * 16 + (byte & 0xf)];
      if ((low & FAILED) !== 0) {
        TRANSITIONS[(state << 8) | byte] = FAILED;
        continue;
      }
      let emitted = (high >>> EMITTED_SHIFT) & 3;
      let symbols = high & (0xff << FIRST_SHIFT);
      if (((low >>> EMITTED_SHIFT) & 3) !== 0) {
        const symbol = (low >>> FIRST_SHIFT) & 0xff;
        symbols |= symbol << (emitted++ === 0 ? FIRST_SHIFT : SECOND_SHIFT);
      }
      TRANSITIONS[(state << 8) | byte] = (low & 0xff) | (emitted << EMITTED_SHIFT) | symbols;
    }
  }

  let node = 0;
  for (let depth = 0; depth <= 7; depth++) {
    ACCEPTING[node] = 1;
    node = children[node * 2 + 1];
  }
}

/**
 * The most bytes that {@link huffmanDecode} can write for `encodedBytes` input bytes: every code
 * is at least 5 bits long.
 */
export function huffmanMaxDecodedBytes(encodedBytes: number): number {
  return Math.floor((encodedBytes * 8) / 5);
}

/**
 * Decodes the Huffman-coded string `src[start, end)` into `out` from index 0 (RFC 7541 §5.2).
 * `out` must hold {@link huffmanMaxDecodedBytes}(end - start) bytes. Returns the decoded length, or
 * -1 when the input is malformed: it contains EOS, or its padding is longer than 7 bits or not
 * all ones.
 */
export function huffmanDecode(
  src: Uint8Array,
  start: number,
  end: number,
  out: Uint8Array,
): number {
  let state = 0;
  let length = 0;
  for (let i = start; i < end; i++) {
    const step = TRANSITIONS[(state << 8) | src[i]];
    if ((step & FAILED) !== 0) return -1;
    const emitted = (step >>> EMITTED_SHIFT) & 3;
    if (emitted !== 0) {
      out[length++] = step >>> FIRST_SHIFT;
      if (emitted === 2) out[length++] = step >>> SECOND_SHIFT;
    }
    state = step & 0xff;
  }
  return ACCEPTING[state] === 1 ? length : -1;
}

/**
 * Validates the Huffman-coded string `src[start, end)` like {@link huffmanDecode} without writing
 * it anywhere; returns its decoded length, or -1 when malformed.
 */
export function huffmanDecodedLength(src: Uint8Array, start: number, end: number): number {
  let state = 0;
  let length = 0;
  for (let i = start; i < end; i++) {
    const step = TRANSITIONS[(state << 8) | src[i]];
    if ((step & FAILED) !== 0) return -1;
    length += (step >>> EMITTED_SHIFT) & 3;
    state = step & 0xff;
  }
  return ACCEPTING[state] === 1 ? length : -1;
}

/** The length in bytes of the Huffman code of the latin1 string `text`, padding included. */
export function huffmanEncodedLength(text: string): number {
  let bits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    assert(c <= 0xff, "header strings must be latin1 (code units 0x00-0xff)");
    bits += HUFFMAN_CODE_BITS[c];
  }
  return (bits + 7) >>> 3;
}

/**
 * Writes the Huffman code of the latin1 string `text` into `out` at `offset`, padded with the most
 * significant bits of EOS (RFC 7541 §5.2); returns the offset after it. `out` must have room for
 * {@link huffmanEncodedLength}(text) bytes.
 */
export function huffmanEncode(text: string, out: Uint8Array, offset: number): number {
  // `pending` holds `pendingBits` (< 8) bits not yet written; a code is at most 30 bits, so a
  // long one goes in two parts to keep `pending` within 31 bits.
  let pending = 0;
  let pendingBits = 0;
  let at = offset;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    assert(c <= 0xff, "header strings must be latin1 (code units 0x00-0xff)");
    const code = HUFFMAN_CODES[c];
    let bits = HUFFMAN_CODE_BITS[c];
    if (bits > 24) {
      pending = (pending << (bits - 16)) | (code >>> 16);
      pendingBits += bits - 16;
      while (pendingBits >= 8) out[at++] = pending >>> (pendingBits -= 8);
      pending &= (1 << pendingBits) - 1;
      bits = 16;
    }
    pending = (pending << bits) | (code & ((1 << bits) - 1));
    pendingBits += bits;
    while (pendingBits >= 8) out[at++] = pending >>> (pendingBits -= 8);
    pending &= (1 << pendingBits) - 1;
  }
  if (pendingBits > 0) out[at++] = (pending << (8 - pendingBits)) | (0xff >>> pendingBits);
  return at;
}
