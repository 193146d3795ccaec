import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { concatBytes } from "../internal/bytes.ts";
import { GrpcCallError, grpcFrame } from "./grpc_raw.ts";
import { GrpcMessageReader, ProtoReader, WireType } from "./grpc_stream.ts";

function messages(count: number): Uint8Array[] {
  // Sizes 0, 1, 2, ... with distinct contents, so that a mix-up shows.
  return Array.from({ length: count }, (_, i) => new Uint8Array(i * 7).fill(i + 1));
}

function collect(chunks: Uint8Array[], max?: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  // The reader may hand out views of a chunk: copy, as its contract asks.
  const reader = new GrpcMessageReader((m) => out.push(m.slice()), max);
  for (const chunk of chunks) reader.push(chunk);
  ok(reader.atBoundary, "every message was complete");
  return out;
}

Deno.test("GrpcMessageReader cuts messages out of any chunking", async (t) => {
  const sent = messages(6);
  const stream = concatBytes(...sent.map(grpcFrame));
  await t.step("one chunk", () => deepStrictEqual(collect([stream]), sent));
  await t.step("byte by byte", () => {
    deepStrictEqual(collect(Array.from(stream, (b) => new Uint8Array([b]))), sent);
  });
  await t.step("every split point of two chunks", () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      deepStrictEqual(collect([stream.subarray(0, cut), stream.subarray(cut)]), sent, `${cut}`);
    }
  });
  await t.step("a message pending at the end is not passed on", () => {
    const out: Uint8Array[] = [];
    const reader = new GrpcMessageReader((m) => out.push(m));
    reader.push(stream.subarray(0, stream.length - 1));
    strictEqual(out.length, sent.length - 1);
    strictEqual(reader.atBoundary, false);
  });
});

Deno.test("GrpcMessageReader refuses compressed and oversized messages", () => {
  const compressed = grpcFrame(new Uint8Array([1]));
  compressed[0] = 1;
  throws(() => collect([compressed]), GrpcCallError);
  throws(() => collect([grpcFrame(new Uint8Array(11))], 10), GrpcCallError);
  deepStrictEqual(collect([grpcFrame(new Uint8Array(10))], 10), [new Uint8Array(10)]);
});

Deno.test("ProtoReader reads varints, raw varint bytes and skips every wire type", async (t) => {
  await t.step("varints up to 2^53", () => {
    const cases: Array<[number[], number]> = [
      [[0x00], 0],
      [[0x7f], 127],
      [[0x80, 0x01], 128],
      [[0xac, 0x02], 300],
      // 2^35
      [[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], 2 ** 35],
      // 2^53 - 1
      [[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f], 2 ** 53 - 1],
    ];
    for (const [bytes, value] of cases) {
      const r = new ProtoReader(new Uint8Array(bytes));
      strictEqual(r.varint(), value);
      ok(r.done);
    }
  });
  await t.step("varintBytes is the exact encoding", () => {
    const r = new ProtoReader(new Uint8Array([0x96, 0x01, 0x05]));
    deepStrictEqual([...r.varintBytes()], [0x96, 0x01]);
    strictEqual(r.varint(), 5);
  });
  await t.step("skip moves past each wire type", () => {
    const bytes = new Uint8Array([
      0x08,
      0x96,
      0x01, // field 1 varint
      0x11,
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8, // field 2 fixed64
      0x1a,
      0x02,
      0xaa,
      0xbb, // field 3 bytes
      0x25,
      1,
      2,
      3,
      4, // field 4 fixed32
      0x28,
      0x07, // field 5 varint 7
    ]);
    const r = new ProtoReader(bytes);
    for (const wire of [WireType.varint, WireType.fixed64, WireType.bytes, WireType.fixed32]) {
      strictEqual(r.varint() & 7, wire);
      r.skip(wire);
    }
    strictEqual(r.varint(), 0x28);
    strictEqual(r.varint(), 7);
    ok(r.done);
  });
  await t.step("truncation and bad wire types are RangeErrors", () => {
    throws(() => new ProtoReader(new Uint8Array([0x80])).varint(), RangeError);
    throws(() => new ProtoReader(new Uint8Array(11).fill(0x80)).varint(), RangeError);
    throws(() => new ProtoReader(new Uint8Array([0x05, 1])).lengthDelimited(), RangeError);
    throws(() => new ProtoReader(new Uint8Array([1, 2])).skip(WireType.fixed64), RangeError);
    throws(() => new ProtoReader(new Uint8Array([1])).skip(3), RangeError);
    // A sub-reader stops at its end, not at the end of the array.
    throws(() => new ProtoReader(new Uint8Array([0x80, 0x01]), 0, 1).varint(), RangeError);
  });
});
