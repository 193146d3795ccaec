import assert from "node:assert/strict";
import { fromHex } from "../../internal/bytes.ts";
import { mulberry32 } from "../../internal/seeded_random.ts";
import {
  DEFAULT_HEADER_TABLE_BYTES,
  type HeaderField,
  HpackDecoder,
  HpackEncoder,
  HpackError,
} from "./hpack.ts";

const hex = fromHex;

function bytes(...parts: (number | string)[]): Uint8Array {
  const out: number[] = [];
  for (const part of parts) {
    if (typeof part === "number") out.push(part);
    else for (let i = 0; i < part.length; i++) out.push(part.charCodeAt(i));
  }
  return Uint8Array.from(out);
}

/** A seeded PRNG so failures reproduce. */
const prng = mulberry32;

function newDecoder(maxTableBytes = 4096, maxHeaderListBytes = 64 * 1024): HpackDecoder {
  return new HpackDecoder({ maxTableBytes, maxHeaderListBytes });
}

/** One header block of an RFC 7541 Appendix C example and the state it leaves. */
interface Example {
  wire: string;
  fields: HeaderField[];
  table: HeaderField[];
  tableBytes: number;
}

function checkExamples(decoder: HpackDecoder, examples: Example[]): void {
  for (const [i, example] of examples.entries()) {
    assert.deepEqual(decoder.decode(hex(example.wire)), example.fields, `block ${i + 1}`);
    assert.deepEqual(decoder.dynamicTableEntries(), example.table, `table after block ${i + 1}`);
    assert.equal(decoder.dynamicTableBytes, example.tableBytes, `table size after block ${i + 1}`);
  }
}

const AUTHORITY: HeaderField = [":authority", "www.example.com"];
const NO_CACHE: HeaderField = ["cache-control", "no-cache"];
const CUSTOM: HeaderField = ["custom-key", "custom-value"];

// RFC 7541 C.3 and C.4: the same three requests, without and with Huffman coding.
const REQUESTS: Omit<Example, "wire">[] = [
  {
    fields: [[":method", "GET"], [":scheme", "http"], [":path", "/"], AUTHORITY],
    table: [AUTHORITY],
    tableBytes: 57,
  },
  {
    fields: [[":method", "GET"], [":scheme", "http"], [":path", "/"], AUTHORITY, NO_CACHE],
    table: [NO_CACHE, AUTHORITY],
    tableBytes: 110,
  },
  {
    fields: [[":method", "GET"], [":scheme", "https"], [":path", "/index.html"], AUTHORITY, CUSTOM],
    table: [CUSTOM, NO_CACHE, AUTHORITY],
    tableBytes: 164,
  },
];

const DATE_21: HeaderField = ["date", "Mon, 21 Oct 2013 20:13:21 GMT"];
const DATE_22: HeaderField = ["date", "Mon, 21 Oct 2013 20:13:22 GMT"];
const LOCATION: HeaderField = ["location", "https://www.example.com"];
const PRIVATE: HeaderField = ["cache-control", "private"];
const GZIP: HeaderField = ["content-encoding", "gzip"];
const COOKIE: HeaderField = [
  "set-cookie",
  "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
];

// RFC 7541 C.5 and C.6: three responses through a 256-byte table, with evictions.
const RESPONSES: Omit<Example, "wire">[] = [
  {
    fields: [[":status", "302"], PRIVATE, DATE_21, LOCATION],
    table: [LOCATION, DATE_21, PRIVATE, [":status", "302"]],
    tableBytes: 222,
  },
  {
    fields: [[":status", "307"], PRIVATE, DATE_21, LOCATION],
    table: [[":status", "307"], LOCATION, DATE_21, PRIVATE],
    tableBytes: 222,
  },
  {
    fields: [[":status", "200"], PRIVATE, DATE_22, LOCATION, GZIP, COOKIE],
    table: [COOKIE, GZIP, DATE_22],
    tableBytes: 215,
  },
];

Deno.test("hpack decode: RFC 7541 C.1 integers (as table size updates)", () => {
  const decoder = newDecoder();
  assert.deepEqual(decoder.decode(hex("2a")), []); // C.1.1: 10 in a 5-bit prefix
  assert.equal(decoder.dynamicTableLimitBytes, 10);
  assert.deepEqual(decoder.decode(hex("3f 9a0a")), []); // C.1.2: 1337 in a 5-bit prefix
  assert.equal(decoder.dynamicTableLimitBytes, 1337);
  assert.deepEqual(decoder.decode(hex("3f e11f")), []); // 4096: 31 + 0x61 + 0x1f * 128
  assert.equal(decoder.dynamicTableLimitBytes, 4096);
});

Deno.test("hpack decode: RFC 7541 C.2 header field representations", () => {
  const cases: Example[] = [
    {
      wire: "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
      fields: [["custom-key", "custom-header"]],
      table: [["custom-key", "custom-header"]],
      tableBytes: 55,
    },
    {
      wire: "040c 2f73 616d 706c 652f 7061 7468",
      fields: [[":path", "/sample/path"]],
      table: [],
      tableBytes: 0,
    },
    {
      wire: "1008 7061 7373 776f 7264 0673 6563 7265 74",
      fields: [["password", "secret"]],
      table: [],
      tableBytes: 0,
    },
    { wire: "82", fields: [[":method", "GET"]], table: [], tableBytes: 0 },
  ];
  for (const example of cases) checkExamples(newDecoder(), [example]); // each on a fresh table
});

Deno.test("hpack decode: RFC 7541 C.3 requests without Huffman coding", () => {
  const wires = [
    "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
    "8286 84be 5808 6e6f 2d63 6163 6865",
    "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
  ];
  checkExamples(newDecoder(), REQUESTS.map((example, i) => ({ ...example, wire: wires[i] })));
});

Deno.test("hpack decode: RFC 7541 C.4 requests with Huffman coding", () => {
  const wires = [
    "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
    "8286 84be 5886 a8eb 1064 9cbf",
    "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
  ];
  checkExamples(newDecoder(), REQUESTS.map((example, i) => ({ ...example, wire: wires[i] })));
});

Deno.test("hpack decode: RFC 7541 C.5 responses without Huffman coding, with evictions", () => {
  const wires = [
    `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
     2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
     6c65 2e63 6f6d`,
    "4803 3330 37c1 c0bf",
    `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
     54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
     5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
     3d31`,
  ];
  checkExamples(newDecoder(256), RESPONSES.map((example, i) => ({ ...example, wire: wires[i] })));
});

Deno.test("hpack decode: RFC 7541 C.6 responses with Huffman coding, with evictions", () => {
  const wires = [
    `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
     2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
    "4883 640e ffc1 c0bf",
    `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
     77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
     9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
  ];
  checkExamples(newDecoder(256), RESPONSES.map((example, i) => ({ ...example, wire: wires[i] })));
});

Deno.test("hpack decode: a block that is a subarray of a larger buffer", () => {
  const wire = hex("ffff 8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff ffff");
  const decoder = newDecoder();
  assert.deepEqual(decoder.decode(wire.subarray(2, wire.length - 2)), REQUESTS[0].fields);
  // A raw (non-Huffman) string longer than the short-string path, read in place.
  const long = "x".repeat(40);
  assert.deepEqual(
    decoder.decode(bytes(0xff, 0x00, 0x01, "a", 40, long, 0xff).subarray(1, 45)),
    [["a", long]],
  );
});

Deno.test("hpack decode: an entry larger than the table empties it (§4.4)", () => {
  const decoder = newDecoder(100);
  decoder.decode(bytes(0x40, 1, "a", 1, "b")); // 34 bytes
  decoder.decode(bytes(0x40, 1, "c", 1, "d"));
  assert.equal(decoder.dynamicTableBytes, 68);
  const big = "v".repeat(70); // 1 + 70 + 32 = 103 > 100
  assert.deepEqual(decoder.decode(bytes(0x40, 1, "e", 70, big)), [["e", big]]);
  assert.deepEqual(decoder.dynamicTableEntries(), []);
  assert.equal(decoder.dynamicTableBytes, 0);
  assert.throws(() => decoder.decode(hex("be")), HpackError);
});

Deno.test("hpack decode: table size updates resize and evict, only at the block start", () => {
  const decoder = newDecoder();
  decoder.decode(bytes(0x40, 1, "a", 1, "b", 0x40, 1, "c", 1, "d")); // 34 + 34 bytes
  assert.deepEqual(decoder.decode(hex("3f 2b be")), [["c", "d"]]); // limit 74: keeps both
  assert.deepEqual(decoder.decode(hex("3f 04 be")), [["c", "d"]]); // limit 35: evicts a: b
  assert.deepEqual(decoder.dynamicTableEntries(), [["c", "d"]]);
  assert.throws(() => newDecoder().decode(hex("3f 04 bf")), HpackError); // nothing at 63
  // Two updates at the start (RFC 7541 §4.2: the smallest, then the final size) are allowed.
  assert.deepEqual(decoder.decode(hex("20 3f e11f 82")), [[":method", "GET"]]);
  assert.equal(decoder.dynamicTableLimitBytes, 4096);
  assert.equal(decoder.dynamicTableBytes, 0);
  // After a field, or above our SETTINGS_HEADER_TABLE_SIZE: COMPRESSION_ERROR.
  assert.throws(() => newDecoder().decode(hex("82 20")), HpackError);
  assert.throws(() => newDecoder().decode(hex("3f e21f")), HpackError); // 4097
  assert.throws(() => newDecoder(256).decode(hex("3f e201")), HpackError); // 257 = 31 + 226
  assert.deepEqual(newDecoder(256).decode(hex("3f e101")), []); // 256 = 31 + 225
});

Deno.test("hpack decode: malformed blocks throw HpackError", () => {
  const malformed: [string, Uint8Array][] = [
    ["indexed field 0", hex("80")],
    ["index past the static table with an empty dynamic table", hex("be")],
    ["name index past the table", bytes(0x7e, 1, "a")],
    ["name index past the table (never indexed)", bytes(0x1f, 0x2f, 1, "a")],
    ["integer truncated", hex("ff")],
    ["integer truncated after a continuation byte", hex("ff 80")],
    ["integer above 2^31 - 1", hex("ff ff ff ff ff 0f")],
    ["integer with too many continuation bytes", hex("ff 80 80 80 80 80 00")],
    ["literal without a name", hex("40")],
    ["literal without a value", bytes(0x40, 1, "a")],
    ["name length past the block", bytes(0x00, 5, "abc")],
    ["value length past the block", bytes(0x04, 3, "ab")],
    ["Huffman length past the block", hex("04 83 1f1f")],
    ["string length integer truncated", hex("04 7f")],
    ["huge string length", hex("04 7f ff ff ff 07")],
    ["Huffman padding not all ones", hex("04 81 18")],
    ["Huffman padding longer than 7 bits", hex("04 82 1fff")],
    ["Huffman string containing EOS", hex("04 84 ffff ffff")],
    ["Huffman name containing EOS", hex("00 84 ffff ffff 00")],
    ["size update above the maximum", hex("3f e21f")],
    ["size update after a field", hex("82 3f e11f")],
  ];
  for (const [what, block] of malformed) {
    assert.throws(() => newDecoder().decode(block), HpackError, what);
  }
});

Deno.test("hpack decode: past maxHeaderListBytes returns null and the table stays in step", () => {
  // Each field counts name + value + 32 (RFC 9113 §6.5.2); exactly at the limit is allowed.
  const exact = newDecoder(4096, 32 + 1 + 10);
  assert.deepEqual(exact.decode(bytes(0x00, 1, "a", 10, "0123456789")), [["a", "0123456789"]]);
  assert.equal(exact.decode(bytes(0x00, 1, "a", 11, "0123456789x")), null);

  const decoder = newDecoder(4096, 200);
  const big = "v".repeat(200);
  const block = bytes(
    0x82, // :method GET
    0x40,
    5,
    "x-big",
    0x7f,
    200 - 127,
    big, // past the limit, still inserted: 237 bytes
    0x00,
    7,
    "x-plain",
    3,
    "abc", // past the limit, skipped
    0x40,
    7,
    "x-after",
    1,
    "y", // inserted: 40 bytes
    0x11,
    0x85,
    0xaa,
    0xbb,
    0xcc,
    0xdd,
    0xee, // never indexed :authority, Huffman, skipped
    0x7e,
    0x81,
    0x1f, // literal with indexing, name index 62 (x-after), Huffman "a"
  );
  // The placeholder bytes above are not valid Huffman code: put in the encoder's code of
  // "0123456" (5 bytes: after 0x00, name length, "x", value length).
  const huffmanValue = new HpackEncoder().encode([["x", "0123456"]]).subarray(4);
  assert.equal(huffmanValue.length, 5);
  block.set(huffmanValue, block.indexOf(0xaa));
  assert.equal(decoder.decode(block), null);
  assert.deepEqual(decoder.dynamicTableEntries(), [
    ["x-after", "a"],
    ["x-after", "y"],
    ["x-big", big],
  ]);
  // The next block indexes the entries inserted while over the limit.
  assert.deepEqual(decoder.decode(hex("be bf 82")), [
    ["x-after", "a"],
    ["x-after", "y"],
    [":method", "GET"],
  ]);
  assert.equal(decoder.decode(hex("c0")), null); // x-big alone is 237 > 200
  // A new name alone past the limit: not listed, but stored with its name.
  const small = newDecoder(4096, 40);
  const longName = "n".repeat(30);
  assert.equal(small.decode(bytes(0x40, 30, longName, 1, "v", 0x40, 1, "a", 1, "b")), null);
  assert.deepEqual(small.dynamicTableEntries(), [["a", "b"], [longName, "v"]]);
  assert.deepEqual(small.decode(hex("be")), [["a", "b"]]);
  // Malformed input past the limit is still an error.
  assert.throws(() => newDecoder(4096, 10).decode(hex("82 04 81 18")), HpackError);
  assert.throws(() => newDecoder(4096, 10).decode(hex("82 00 81 18 00")), HpackError);
  assert.throws(() => newDecoder(4096, 10).decode(hex("82 be")), HpackError);
});

Deno.test("hpack encode: static table matches, literals without indexing", () => {
  const encoder = new HpackEncoder();
  assert.deepEqual(encoder.encode([]), new Uint8Array(0));
  assert.deepEqual(
    encoder.encode([[":method", "GET"], [":scheme", "http"], [":path", "/"], [":status", "500"]]),
    hex("82 86 84 8e"),
  );
  // Static name, literal value (§6.2.2 with a 4-bit name index; 31 needs a continuation byte).
  assert.deepEqual(
    encoder.encode([[":authority", "www.example.com"]]),
    hex("01 8c f1e3 c2e5 f23a 6ba0 ab90 f4ff"),
  );
  assert.deepEqual(encoder.encode([["content-type", "a"]]), hex("0f 10 01 61"));
  assert.deepEqual(encoder.encode([[":status", "302"]]), hex("08 82 6402"));
  // New name; Huffman only when shorter ("307" codes to 3 bytes, so it stays raw).
  assert.deepEqual(
    encoder.encode([["custom-key", "307"]]),
    hex("00 88 25a8 49e9 5ba9 7d7f 03 333037"),
  );
  assert.deepEqual(encoder.encode([["a", ""]]), hex("00 01 61 00"));
});

Deno.test("hpack encode: a lowered peer table size is signalled once, at the block start", () => {
  const encoder = new HpackEncoder();
  encoder.setPeerMaxTableBytes(DEFAULT_HEADER_TABLE_BYTES);
  encoder.setPeerMaxTableBytes(65536);
  assert.deepEqual(encoder.encode([[":method", "GET"]]), hex("82"));
  encoder.setPeerMaxTableBytes(100);
  const block = encoder.encode([[":method", "GET"]]);
  assert.deepEqual(block, hex("20 82"));
  const decoder = newDecoder(100);
  assert.deepEqual(decoder.decode(block), [[":method", "GET"]]);
  assert.equal(decoder.dynamicTableLimitBytes, 0);
  assert.deepEqual(encoder.encode([[":method", "GET"]]), hex("82"));
  encoder.setPeerMaxTableBytes(50); // still at or above the 0 already signalled
  assert.deepEqual(encoder.encode([[":method", "GET"]]), hex("82"));
  // Two changes between blocks: one update, at or below the smaller.
  const other = new HpackEncoder();
  other.setPeerMaxTableBytes(0);
  other.setPeerMaxTableBytes(4096);
  assert.deepEqual(other.encode([]), hex("20"));
});

Deno.test("hpack encode: non-latin1 strings are a caller bug", () => {
  assert.throws(() => new HpackEncoder().encode([["x", "\u20ac"]]), /latin1/);
});

/** A random header list: static names and values, new names, values of any byte. */
function randomFields(random: () => number): HeaderField[] {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  const staticFields: HeaderField[] = [
    [":method", "POST"],
    [":method", "GET"],
    [":path", "/"],
    [":scheme", "https"],
    [":status", "200"],
    ["accept-encoding", "gzip, deflate"],
  ];
  const staticNames = [":authority", ":path", "content-type", "user-agent", "www-authenticate"];
  const count = Math.floor(random() * 12);
  const fields: HeaderField[] = [];
  for (let i = 0; i < count; i++) {
    const kind = random();
    if (kind < 0.2) {
      fields.push(pick(staticFields));
      continue;
    }
    let name = pick(staticNames);
    if (kind < 0.6) {
      name = "";
      const length = 1 + Math.floor(random() * 20);
      for (let j = 0; j < length; j++) name += pick([..."abcdefghijklmnopqrstuvwxyz0123456789-_"]);
    }
    let value = "";
    const length = Math.floor(random() * (random() < 0.1 ? 300 : 30));
    const anyByte = random() < 0.5;
    for (let j = 0; j < length; j++) {
      value += anyByte
        ? String.fromCharCode(Math.floor(random() * 256))
        : pick([..."abcdefghijklmnopqrstuvwxyz0123456789/.:-_ "]);
    }
    fields.push([name, value]);
  }
  return fields;
}

Deno.test("hpack: encoder output decodes to the same fields (seeded random lists)", () => {
  let all = "";
  for (let c = 0; c <= 0xff; c++) all += String.fromCharCode(c);
  const random = prng(9113);
  const encoder = new HpackEncoder();
  const decoder = newDecoder();
  const edgeCases: HeaderField[] = [["x-all-bytes", all], [all.slice(0x61, 0x7b), all]];
  assert.deepEqual(decoder.decode(encoder.encode(edgeCases)), edgeCases);
  for (let n = 0; n < 2000; n++) {
    if (n === 1000) encoder.setPeerMaxTableBytes(1000);
    const fields = randomFields(random);
    assert.deepEqual(decoder.decode(encoder.encode(fields)), fields);
  }
  assert.equal(decoder.dynamicTableBytes, 0, "the encoder never inserts");
  assert.equal(decoder.dynamicTableLimitBytes, 0);
  // A block beyond the encoder's retained buffer.
  const huge: HeaderField[] = [["x-huge", "z".repeat(100_000)]];
  assert.deepEqual(newDecoder(4096, 1 << 20).decode(encoder.encode(huge)), huge);
});

Deno.test("hpack decode: random and mutated blocks throw only HpackError (seeded fuzz)", () => {
  const random = prng(0x7541);
  const encoder = new HpackEncoder();
  const seeds = [
    hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"),
    hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"),
    hex("4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6"),
  ];
  let decoder = newDecoder(256, 512);
  const deadline = performance.now() + 10_000;
  let errors = 0;
  let lists = 0;
  for (let n = 0; n < 20_000; n++) {
    let block: Uint8Array;
    const kind = random();
    if (kind < 0.4) {
      block = Uint8Array.from(
        { length: Math.floor(random() * 40) },
        () => Math.floor(random() * 256),
      );
    } else {
      const base = kind < 0.7
        ? seeds[Math.floor(random() * seeds.length)]
        : encoder.encode(randomFields(random));
      block = base.slice(0, Math.floor(random() * (base.length + 1)));
      for (let flips = Math.floor(random() * 4); flips > 0 && block.length > 0; flips--) {
        block[Math.floor(random() * block.length)] = Math.floor(random() * 256);
      }
    }
    try {
      if (decoder.decode(block) !== null) lists++;
      assert.ok(decoder.dynamicTableBytes <= decoder.dynamicTableLimitBytes);
      assert.ok(decoder.dynamicTableLimitBytes <= 256);
    } catch (err) {
      if (!(err instanceof HpackError)) throw err;
      errors++;
      decoder = newDecoder(256, 512); // the connection would end here
    }
    assert.ok(performance.now() < deadline, "fuzz loop ran past its time bound");
  }
  assert.ok(
    errors > 1000 && lists > 1000,
    `both outcomes occur (${errors} errors, ${lists} lists)`,
  );
});
