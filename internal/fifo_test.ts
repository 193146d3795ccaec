import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { Fifo } from "./fifo.ts";

Deno.test("Fifo gives values back in the order they came, through compactions", () => {
  const q = new Fifo<number>();
  strictEqual(q.shift(), undefined);
  strictEqual(q.peek(), undefined);
  let next = 0;
  let expected = 0;
  // Uneven pushes and takes so the front runs past the compaction point many times.
  for (let round = 0; round < 200; round++) {
    for (let i = 0; i < (round % 7) + 3; i++) q.push(next++);
    strictEqual(q.peekLast(), next - 1);
    for (let i = 0; i < (round % 5) + 2 && q.length > 0; i++) {
      strictEqual(q.peek(), expected);
      strictEqual(q.shift(), expected++);
    }
    strictEqual(q.length, next - expected);
  }
  deepStrictEqual(q.drain(), Array.from({ length: next - expected }, (_, i) => expected + i));
  strictEqual(q.length, 0);
  q.push(7);
  strictEqual(q.shift(), 7);
});
