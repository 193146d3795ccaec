import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { BodyTooLargeError, readBounded } from "./bounded_reader.ts";

function streamOf(chunks: Uint8Array[], onPull?: () => void): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      onPull?.();
      if (i < chunks.length) controller.enqueue(chunks[i++]);
      else controller.close();
    },
  });
}

Deno.test("readBounded returns bodies up to the cap", async () => {
  const body = await readBounded(streamOf([new Uint8Array([1, 2]), new Uint8Array([3])]), 3);
  deepStrictEqual(body, new Uint8Array([1, 2, 3]));
  deepStrictEqual(await readBounded(null, 0), new Uint8Array());
});

Deno.test("readBounded stops pulling as soon as the cap is passed", async () => {
  let pulls = 0;
  const endless = streamOf(Array.from({ length: 1000 }, () => new Uint8Array(1024)), () => pulls++);
  await rejects(readBounded(endless, 4096), BodyTooLargeError);
  strictEqual(pulls <= 6, true, `pulled ${pulls} chunks for a 4 KiB cap`);
});
