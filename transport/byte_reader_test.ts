import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { ByteReader, scratchBytes, TruncatedStreamError } from "./byte_reader.ts";

/** A byte stream (like a fetch body) serving `chunks`; records the buffers readers offered. */
function byteStream(chunks: Uint8Array[]): {
  stream: ReadableStream<Uint8Array>;
  offeredBytes: number[];
} {
  const offeredBytes: number[] = [];
  let next = 0;
  const stream = new ReadableStream({
    type: "bytes",
    pull(controller: ReadableByteStreamController) {
      if (next === chunks.length) {
        controller.close();
        controller.byobRequest?.respond(0);
        return;
      }
      const chunk = chunks[next++];
      const request = controller.byobRequest;
      if (request === null || request.view === null) {
        controller.enqueue(chunk.slice());
        return;
      }
      offeredBytes.push(request.view.buffer.byteLength);
      new Uint8Array(request.view.buffer, request.view.byteOffset).set(chunk);
      request.respond(chunk.length);
    },
  });
  return { stream, offeredBytes };
}

function counting(from: number, length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (from + i) % 251);
}

Deno.test("a byte stream is read into the reader's one scratch buffer", async () => {
  const data = counting(0, 3000);
  const chunks = [data.subarray(0, 700), data.subarray(700, 701), data.subarray(701)];
  const { stream, offeredBytes } = byteStream(chunks);
  const reader = new ByteReader(stream);
  const values: Uint8Array[] = [];
  for (const length of [8, 1000, 8, 1984]) {
    const value = await reader.readExact(length);
    if (value === null) throw new Error("ended early");
    values.push(value);
  }
  strictEqual(await reader.readExact(1), null);
  // Each value is its own right-sized array, unchanged by the reads that came after it.
  let at = 0;
  for (const value of values) {
    strictEqual(value.buffer.byteLength, value.length);
    deepStrictEqual(value, data.subarray(at, at + value.length));
    at += value.length;
  }
  // The source was handed the scratch buffer for every read, never a fresh 64 KiB chunk.
  deepStrictEqual(offeredBytes, chunks.map(() => scratchBytes));
});

Deno.test("a byte stream that ends inside a value is a truncation", async () => {
  const { stream } = byteStream([counting(0, 5)]);
  const reader = new ByteReader(stream);
  await rejects(reader.readExact(8), TruncatedStreamError);
});

Deno.test("the rest of a byte stream survives the reads after it", async () => {
  const data = counting(7, 5000);
  const { stream } = byteStream([
    data.subarray(0, 100),
    data.subarray(100, 4000),
    data.subarray(4000),
  ]);
  const reader = new ByteReader(stream);
  deepStrictEqual(await reader.readExact(10), data.subarray(0, 10));
  const rest = reader.rest(1 << 20).getReader();
  const parts: Uint8Array[] = [];
  for (;;) {
    const { done, value } = await rest.read();
    if (done) break;
    parts.push(value);
  }
  // Only checked once everything was read: a view of the scratch buffer would have changed.
  const joined = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    joined.set(part, at);
    at += part.length;
  }
  deepStrictEqual(joined, data.subarray(10));
});

Deno.test("a stream that is not a byte stream is read chunk by chunk", async () => {
  const data = counting(3, 300);
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(data.slice(0, 150));
      controller.enqueue(data.slice(150));
      controller.close();
    },
  });
  const seen: number[] = [];
  const reader = new ByteReader(stream, (bytes) => seen.push(bytes));
  deepStrictEqual(await reader.readExact(200), data.subarray(0, 200));
  deepStrictEqual(await reader.readExact(100), data.subarray(200));
  deepStrictEqual(seen, [150, 150]);
});
