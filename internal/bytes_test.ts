import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { throws } from "node:assert/strict";
import {
  compareBytes,
  concatBytes,
  equalBytes,
  fromHex,
  prefixEnd,
  utf8,
  varintBytes,
} from "./bytes.ts";

Deno.test("compareBytes orders as unsigned bytes, shorter prefix first", () => {
  assertEquals(Math.sign(compareBytes(utf8("a"), utf8("b"))), -1);
  assertEquals(Math.sign(compareBytes(new Uint8Array([0xff]), new Uint8Array([0x01]))), 1);
  assertEquals(Math.sign(compareBytes(utf8("ab"), utf8("a"))), 1);
  assertEquals(compareBytes(utf8("abc"), utf8("abc")), 0);
});

Deno.test("prefixEnd increments the last byte below 0xff", async (t) => {
  await t.step("plain prefix", () => assertEquals(prefixEnd(utf8("foo")), utf8("fop")));
  await t.step("trailing 0xff dropped", () => {
    assertEquals(prefixEnd(new Uint8Array([0x61, 0xff, 0xff])), new Uint8Array([0x62]));
  });
  await t.step("all 0xff means to the end", () => {
    assertEquals(prefixEnd(new Uint8Array([0xff, 0xff])), new Uint8Array([0]));
  });
});

Deno.test("concatBytes and equalBytes", () => {
  const joined = concatBytes(utf8("ab"), new Uint8Array(), utf8("c"));
  assertEquals(equalBytes(joined, utf8("abc")), true);
  assertEquals(equalBytes(joined, utf8("abd")), false);
});

Deno.test("prefixEnd never changes its argument, even a node Buffer", async () => {
  const { Buffer } = await import("node:buffer");
  const key = Buffer.from("h");
  assertEquals(prefixEnd(key), utf8("i"));
  assertEquals(key.toString(), "h");
});

Deno.test("fromHex reads digits across whitespace and refuses anything else", () => {
  assertEquals(fromHex("00 ff\n1A"), new Uint8Array([0x00, 0xff, 0x1a]));
  throws(() => fromHex("abc"));
  throws(() => fromHex("zz"));
});

Deno.test("varintBytes counts 7 bits a byte, up to 2^53 - 1", () => {
  for (let bytes = 1; bytes <= 7; bytes++) {
    assertEquals(varintBytes(2 ** (7 * bytes) - 1), bytes);
    assertEquals(varintBytes(2 ** (7 * bytes)), bytes + 1);
  }
  assertEquals(varintBytes(0), 1);
  assertEquals(varintBytes(Number.MAX_SAFE_INTEGER), 8);
});
