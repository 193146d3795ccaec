import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { ProtoWriter, u64VarintBytes } from "./proto_writer.ts";

/** The varint of `v` the slow, obvious way. */
function expectedVarint(v: bigint): number[] {
  const out: number[] = [];
  do {
    const low = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v === 0n ? low : low | 0x80);
  } while (v !== 0n);
  return out;
}

Deno.test("u64 varints around every length boundary, up to 2^64 - 1", () => {
  const values = [0n, 1n, (1n << 64n) - 1n, BigInt(Number.MAX_SAFE_INTEGER)];
  for (let bits = 7n; bits < 64n; bits += 7n) values.push((1n << bits) - 1n, 1n << bits);
  values.push(1n << 63n, (1n << 63n) - 1n, 0xdead_beef_cafe_f00dn);
  for (const v of values) {
    const expected = expectedVarint(v);
    strictEqual(u64VarintBytes(v), expected.length, `size of ${v}`);
    const w = new ProtoWriter(expected.length);
    w.u64(v);
    deepStrictEqual([...w.finish("test")], expected, `bytes of ${v}`);
  }
});

Deno.test("fields left at their default are not written; a short write is caught", () => {
  const w = new ProtoWriter(3);
  w.numberField(1, 0);
  w.u64Field(2, 0n);
  w.boolField(3, false);
  w.bytesField(4, new Uint8Array(0));
  w.numberField(1, 5);
  throws(() => w.finish("test"), /test: wrote 2 of 3 bytes/);
  w.boolField(15, true);
  throws(() => w.finish("test"));
});
