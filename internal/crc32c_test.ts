import { strictEqual } from "node:assert/strict";
import { crc32c } from "./crc32c.ts";
import { utf8 } from "./bytes.ts";

/** One byte at a time, straight from the polynomial: the slow reference the fast path must match. */
function crc32cBitwise(data: Uint8Array, seed = 0): number {
  let crc = ~seed >>> 0;
  for (const b of data) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return ~crc >>> 0;
}

/** Deterministic pseudo-random bytes (xorshift32) so failures reproduce. */
function pseudoRandomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

Deno.test("crc32c matches published check values", async (t) => {
  const ascending = Uint8Array.from({ length: 32 }, (_, i) => i);
  const descending = Uint8Array.from({ length: 32 }, (_, i) => 31 - i);
  const cases: Array<[string, Uint8Array, number]> = [
    ["empty", new Uint8Array(0), 0],
    ["123456789", utf8("123456789"), 0xe3069283],
    ["32 zero bytes", new Uint8Array(32), 0x8a9136aa],
    ["32 0xff bytes", new Uint8Array(32).fill(0xff), 0x62a8ab43],
    ["32 ascending bytes", ascending, 0x46dd794e],
    ["32 descending bytes", descending, 0x113fdb5c],
  ];
  for (const [name, data, want] of cases) {
    await t.step(name, () => strictEqual(crc32c(data), want));
  }
});

Deno.test("crc32c agrees with the bitwise reference at every length and alignment", () => {
  const data = pseudoRandomBytes(300, 7);
  for (let start = 0; start < 9; start++) {
    for (let end = start; end <= data.length; end++) {
      const view = data.subarray(start, end);
      strictEqual(crc32c(view), crc32cBitwise(view), `bytes [${start}, ${end})`);
    }
  }
});

Deno.test("crc32c chains through its seed", () => {
  const data = pseudoRandomBytes(1000, 42);
  const whole = crc32c(data);
  for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) {
    const chained = crc32c(data.subarray(cut), crc32c(data.subarray(0, cut)));
    strictEqual(chained, whole, `split at ${cut}`);
  }
  strictEqual(crc32c(data, 0x12345678), crc32cBitwise(data, 0x12345678));
});
