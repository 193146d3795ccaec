import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { type ExpiryEntry, ExpiryHeap } from "./expiry_heap.ts";

function drain(heap: ExpiryHeap): ExpiryEntry[] {
  const out: ExpiryEntry[] = [];
  for (let e = heap.pop(); e; e = heap.pop()) out.push(e);
  return out;
}

function byTimeThenSeq(a: ExpiryEntry, b: ExpiryEntry): number {
  return a.atMs - b.atMs || a.seq - b.seq;
}

/** A small deterministic PRNG so a failure reproduces. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

Deno.test("expiry heap pops in deadline order, ties in push order", () => {
  const random = lcg(7);
  const heap = new ExpiryHeap();
  const entries: ExpiryEntry[] = [];
  for (let seq = 1; seq <= 500; seq++) {
    // Few distinct deadlines, so ties are common.
    const entry = { id: BigInt(seq), atMs: Math.floor(random() * 40), seq };
    entries.push(entry);
    heap.push(entry);
  }
  strictEqual(heap.size, 500);
  deepStrictEqual(drain(heap), entries.slice().sort(byTimeThenSeq));
  strictEqual(heap.size, 0);
  strictEqual(heap.pop(), undefined);
  strictEqual(heap.peek(), undefined);
});

Deno.test("expiry heap reset heapifies the given entries", () => {
  const random = lcg(11);
  const entries = Array.from({ length: 300 }, (_, i) => ({
    id: BigInt(i),
    atMs: Math.floor(random() * 1000),
    seq: i + 1,
  }));
  const heap = new ExpiryHeap();
  heap.push({ id: 999n, atMs: -5, seq: 0 });
  heap.reset(entries);
  strictEqual(heap.peek()?.atMs, Math.min(...entries.map((e) => e.atMs)));
  deepStrictEqual(drain(heap), entries.slice().sort(byTimeThenSeq));
});

Deno.test("expiry heap interleaves pushes and pops", () => {
  const random = lcg(3);
  const heap = new ExpiryHeap();
  const model: ExpiryEntry[] = [];
  for (let seq = 1; seq <= 2000; seq++) {
    if (random() < 0.6 || model.length === 0) {
      const entry = { id: 1n, atMs: Math.floor(random() * 100), seq };
      heap.push(entry);
      model.push(entry);
    } else {
      model.sort(byTimeThenSeq);
      deepStrictEqual(heap.pop(), model.shift());
    }
    strictEqual(heap.size, model.length);
  }
});
