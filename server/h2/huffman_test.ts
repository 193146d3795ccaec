import assert from "node:assert/strict";
import { fromHex } from "../../internal/bytes.ts";
import { mulberry32 } from "../../internal/seeded_random.ts";
import {
  HUFFMAN_CODE_BITS,
  HUFFMAN_CODES,
  huffmanDecode,
  huffmanDecodedLength,
  huffmanEncode,
  huffmanEncodedLength,
  huffmanMaxDecodedBytes,
} from "./huffman.ts";

const hex = fromHex;

function encode(text: string): Uint8Array {
  const out = new Uint8Array(huffmanEncodedLength(text));
  assert.equal(huffmanEncode(text, out, 0), out.length);
  return out;
}

/** Decodes to a latin1 string, or null when malformed (checking both decoders agree). */
function decode(bytes: Uint8Array): string | null {
  const out = new Uint8Array(huffmanMaxDecodedBytes(bytes.length));
  const length = huffmanDecode(bytes, 0, bytes.length, out);
  assert.equal(huffmanDecodedLength(bytes, 0, bytes.length), length);
  return length < 0 ? null : String.fromCharCode(...out.subarray(0, length));
}

/** A seeded PRNG so failures reproduce. */
const prng = mulberry32;

Deno.test("huffman table: a complete canonical code of 257 symbols, EOS all ones", () => {
  assert.equal(HUFFMAN_CODES.length, 257);
  assert.equal(HUFFMAN_CODE_BITS.length, 257);
  // RFC 7541's code is canonical: sorted by (length, symbol) each code is the previous plus one,
  // shifted to its length. Any mistyped code or length breaks this chain.
  const order = [...HUFFMAN_CODES.keys()].sort((a, b) =>
    HUFFMAN_CODE_BITS[a] - HUFFMAN_CODE_BITS[b] || a - b
  );
  let expected = 0;
  let previousBits = HUFFMAN_CODE_BITS[order[0]];
  for (const symbol of order) {
    const bits = HUFFMAN_CODE_BITS[symbol];
    expected *= 2 ** (bits - previousBits);
    previousBits = bits;
    assert.equal(HUFFMAN_CODES[symbol], expected, `code of symbol ${symbol}`);
    expected++;
  }
  // Complete: the last code of the longest length is all ones, and it is EOS.
  assert.equal(order.at(-1), 256);
  assert.equal(HUFFMAN_CODES[256], 2 ** 30 - 1);
  assert.equal(expected, 2 ** 30);
});

Deno.test("huffman: RFC 7541 Appendix C.4 and C.6 strings", () => {
  const vectors: [string, string][] = [
    ["www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"],
    ["no-cache", "a8eb 1064 9cbf"],
    ["custom-key", "25a8 49e9 5ba9 7d7f"],
    ["custom-value", "25a8 49e9 5bb8 e8b4 bf"],
    ["302", "6402"],
    ["307", "640e ff"],
    ["private", "aec3 771a 4b"],
    ["Mon, 21 Oct 2013 20:13:21 GMT", "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff"],
    ["Mon, 21 Oct 2013 20:13:22 GMT", "d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff"],
    ["https://www.example.com", "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3"],
    ["gzip", "9bd9 ab"],
    [
      "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
      "94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ],
  ];
  for (const [text, code] of vectors) {
    assert.deepEqual(encode(text), hex(code), text);
    assert.equal(decode(hex(code)), text);
  }
});

Deno.test("huffman: every byte value and random latin1 strings round-trip", () => {
  let all = "";
  for (let c = 0; c <= 0xff; c++) all += String.fromCharCode(c);
  assert.equal(decode(encode(all)), all);
  const random = prng(7541);
  for (let n = 0; n < 2000; n++) {
    const length = Math.floor(random() * 40);
    let text = "";
    for (let i = 0; i < length; i++) text += String.fromCharCode(Math.floor(random() * 256));
    const bytes = encode(text);
    assert.equal(decode(bytes), text);
    // Encoding at an offset leaves the bytes before it alone.
    const shifted = new Uint8Array(bytes.length + 3).fill(0xaa);
    assert.equal(huffmanEncode(text, shifted, 3), shifted.length);
    assert.deepEqual(shifted.subarray(3), bytes);
    assert.deepEqual(shifted.subarray(0, 3), Uint8Array.of(0xaa, 0xaa, 0xaa));
  }
});

Deno.test("huffman: the shortest codes fill the largest output huffmanMaxDecodedBytes allows", () => {
  const text = "0".repeat(80); // '0' has a 5-bit code: 80 symbols in 50 bytes
  const bytes = encode(text);
  assert.equal(bytes.length, 50);
  assert.equal(huffmanMaxDecodedBytes(bytes.length), 80);
  assert.equal(decode(bytes), text);
});

Deno.test("huffman: padding must be at most 7 one-bits and EOS is rejected", () => {
  assert.equal(decode(new Uint8Array(0)), "");
  assert.equal(decode(hex("1f")), "a"); // 00011 + 111 padding
  assert.equal(decode(hex("18")), null); // 00011 + 000: padding not the MSBs of EOS
  assert.equal(decode(hex("1e")), null); // 00011 + 110
  assert.equal(decode(hex("1fff")), null); // 00011 + 11 one-bits: padding longer than 7 bits
  assert.equal(decode(hex("ff")), null); // 8 bits of padding alone
  assert.equal(decode(hex("fe")), null); // "1111111" + 0: a truncated 10+ bit code
  assert.equal(decode(hex("ffff ffff")), null); // EOS (30 ones) + 2 ones
  assert.equal(decode(hex("1fff ffff ff")), null); // 'a' (00011), EOS, 5 one-bits of padding
  assert.equal(decode(hex("07ff ffff ff")), null); // '0' (00000), EOS, 5 one-bits of padding
  assert.equal(decode(hex("07ff ffff f8")), null); // '0', EOS, then bits 11000
  assert.equal(decode(hex("07ff f0")), "0\x5c"); // '0', then a 19-bit code of 15 ones: valid
});

Deno.test("huffman: decoded length agrees with decode on random bytes", () => {
  const random = prng(42);
  let valid = 0;
  for (let n = 0; n < 5000; n++) {
    const bytes = Uint8Array.from(
      { length: Math.floor(random() * 12) },
      () => random() < 0.5 ? Math.floor(random() * 256) : 0xff,
    );
    if (decode(bytes) !== null) valid++;
  }
  assert.ok(valid > 0, "some random inputs decode");
});
