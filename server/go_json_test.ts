import { deepStrictEqual, rejects, strictEqual, throws } from "node:assert/strict";
import { BodyTooLargeError } from "../internal/bounded_reader.ts";
import {
  goInt64,
  GoJsonError,
  goJsonObject,
  GoJsonScanner,
  goJsonValues,
  goRawMembers,
  maxNestingDepth,
  quoteGoChar,
} from "./go_json.ts";

/** A body delivered in the given pieces. */
function bodyOf(...pieces: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const piece of pieces) controller.enqueue(encoder.encode(piece));
      controller.close();
    },
  });
}

async function valuesOf(body: ReadableStream<Uint8Array>, max = 1024): Promise<string[]> {
  const out: string[] = [];
  for await (const value of goJsonValues(body, max)) out.push(value);
  return out;
}

Deno.test("GoJsonScanner.check words syntax errors as Go's encoding/json does", () => {
  // Each message was measured on etcd 3.4.23's gateway.
  const cases: [string, string][] = [
    ["xyz", "invalid character 'x' looking for beginning of value"],
    ['{"a":tx}', "invalid character 'x' in literal true (expecting 'r')"],
    ['{"a":nulx}', "invalid character 'x' in literal null (expecting 'l')"],
    ['{"a":[1,}', "invalid character '}' looking for beginning of value"],
    ['{"a" 1}', "invalid character '1' after object key"],
    ['{"a":1 "b"}', `invalid character '"' after object key:value pair`],
    ['{"a":"\\q"}', "invalid character 'q' in string escape code"],
    ['{"a":"\\u12G4"}', "invalid character 'G' in \\u hexadecimal character escape"],
    ['{"a":01}', "invalid character '1' after object key:value pair"],
    ['{"a":-}', "invalid character '}' in numeric literal"],
    ['{"a":1.}', "invalid character '}' after decimal point in numeric literal"],
    ['{"a":1e}', "invalid character '}' in exponent of numeric literal"],
    ['{"a":"x\ny"}', "invalid character '\\n' in string literal"],
    ['{"ID":"123",}', "invalid character '}' looking for beginning of object key string"],
    ["{'ID':1}", "invalid character '\\'' looking for beginning of object key string"],
    ["[1 2]", "invalid character '2' after array element"],
    ["1 2", "invalid character '2' after top-level value"],
    ['{"a":é}', "invalid character 'Ã' looking for beginning of value"],
    ['{"a":\x01}', "invalid character '\\x01' looking for beginning of value"],
    ["", "unexpected end of JSON input"],
    [" ", "unexpected end of JSON input"],
    ['{"a":', "unexpected end of JSON input"],
    // Go ends the text with a space, and the error that space raises wins.
    ["-", "invalid character ' ' in numeric literal"],
    ["[".repeat(maxNestingDepth + 1), "invalid character '[' exceeded max depth"],
  ];
  for (const [text, message] of cases) {
    throws(() => GoJsonScanner.check(text), new GoJsonError(message), JSON.stringify(text));
  }
  for (const valid of ['{"a":[1,-2.5e+3,true,false,null,"\\u00e9\\n"]}', " 12 ", "0", "[]"]) {
    GoJsonScanner.check(valid);
  }
  GoJsonScanner.check("[".repeat(maxNestingDepth) + "]".repeat(maxNestingDepth));
});

Deno.test("quoteGoChar quotes as Go's error messages do", () => {
  strictEqual(quoteGoChar("a"), "'a'");
  strictEqual(quoteGoChar("'"), "'\\''");
  strictEqual(quoteGoChar('"'), `'"'`);
  strictEqual(quoteGoChar("\\"), "'\\\\'");
  strictEqual(quoteGoChar("\t"), "'\\t'");
  strictEqual(quoteGoChar("\x7f"), "'\\x7f'");
  strictEqual(quoteGoChar("€"), "'â'", "the lead byte 0xe2 of a three-byte character");
});

Deno.test("goJsonValues splits a body into top-level values as Go's decoder does", async () => {
  deepStrictEqual(
    await valuesOf(bodyOf(' {"a":1}{"b":"}"}\n[1] null 12 "s" true')),
    ['{"a":1}', '{"b":"}"}', "[1]", "null", "12", '"s"', "true"],
  );
  // A value ends with its last character, a scalar only with the one after it, which starts
  // the next value.
  const it = goJsonValues(bodyOf("12x"), 1024);
  deepStrictEqual(await it.next(), { done: false, value: "12" });
  await rejects(it.next(), new GoJsonError("invalid character 'x' looking for beginning of value"));
  deepStrictEqual(await valuesOf(bodyOf("")), []);
  deepStrictEqual(await valuesOf(bodyOf("  \n ")), []);
});

Deno.test("goJsonValues: values split across pieces, one character at a time", async () => {
  const text = '{"create_request":{"key":"Zm9v"}} {"a":"é\\"}"} 42 ';
  // Pieces of single bytes, multi-byte characters included, decoded as a stream.
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const byte of new TextEncoder().encode(text)) controller.enqueue(new Uint8Array([byte]));
      controller.close();
    },
  });
  deepStrictEqual(await valuesOf(body), [
    '{"create_request":{"key":"Zm9v"}}',
    '{"a":"é\\"}"}',
    "42",
  ]);
});

Deno.test("goJsonValues: a syntax error or a cut-off value throws Go's message", async () => {
  const it = goJsonValues(bodyOf('{"a":1} x'), 1024);
  deepStrictEqual(await it.next(), { done: false, value: '{"a":1}' });
  await rejects(
    it.next(),
    new GoJsonError("invalid character 'x' looking for beginning of value"),
  );
  for (const cut of ['{"a":1', "tru", "-", '"abc']) {
    await rejects(valuesOf(bodyOf(cut)), new GoJsonError("unexpected EOF"), cut);
  }
});

Deno.test("goJsonValues bounds each value, not the body", async () => {
  const value = `{"k":"${"x".repeat(90)}"}`;
  deepStrictEqual(await valuesOf(bodyOf(value, value, value), 100), [value, value, value]);
  await rejects(valuesOf(bodyOf(`{"k":"${"x".repeat(200)}"}`), 100), BodyTooLargeError);
  // Found before the value is complete, however it arrives.
  const endless = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.enqueue(new TextEncoder().encode('["xxxxxxxxxx",'));
    },
  });
  await rejects(valuesOf(endless, 1000), BodyTooLargeError);
});

Deno.test("goJsonValues: the signal cancels the body", async () => {
  let canceled = false;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode('{"a":1}'));
    },
    cancel() {
      canceled = true;
    },
  });
  const stop = new AbortController();
  const it = goJsonValues(body, 1024, stop.signal);
  deepStrictEqual(await it.next(), { done: false, value: '{"a":1}' });
  const pending = it.next();
  stop.abort();
  deepStrictEqual(await pending, { done: true, value: undefined });
  strictEqual(canceled, true);
});

Deno.test("goJsonObject: null is empty, anything but an object is Go's type error", () => {
  strictEqual(goJsonObject("null"), undefined);
  deepStrictEqual(goJsonObject('{"a":[1]}'), { a: [1] });
  for (const [json, kind] of [["[1]", "array"], ["12", "number"], ['"x"', "string"]]) {
    throws(
      () => goJsonObject(json),
      new GoJsonError(
        `json: cannot unmarshal ${kind} into Go value of type map[string]json.RawMessage`,
      ),
    );
  }
});

Deno.test("goRawMembers: each top-level member's raw text, the last key winning", () => {
  deepStrictEqual(
    goRawMembers('{ "ID" : "12" , "x":{"ID":"9","y":[1,"]"]}, "n":-1.5e3 ,"ID":7 ,"s":"a\\"b"}'),
    new Map([["ID", "7"], ["x", '{"ID":"9","y":[1,"]"]}'], ["n", "-1.5e3"], ["s", '"a\\"b"']]),
  );
  deepStrictEqual(goRawMembers("{}"), new Map());
  deepStrictEqual(goRawMembers('{"\\u0049D":1}'), new Map([["ID", "1"]]));
});

Deno.test("goInt64: jsonpb's int64, quoted or not", () => {
  strictEqual(goInt64('"-9223372036854775808"'), -(1n << 63n));
  strictEqual(goInt64("9223372036854775807"), (1n << 63n) - 1n);
  strictEqual(goInt64("null"), 0n);
  strictEqual(goInt64('" 5 "'), 5n);
  throws(
    () => goInt64('"1e3"'),
    new GoJsonError("json: cannot unmarshal number 1e3 into Go value of type int64"),
  );
  throws(
    () => goInt64("[]"),
    new GoJsonError("json: cannot unmarshal array into Go value of type int64"),
  );
  throws(() => goInt64('"1 2"'), new GoJsonError("invalid character '2' after top-level value"));
});
