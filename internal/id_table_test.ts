import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { IdTable } from "./id_table.ts";

Deno.test("IdTable keeps values by number and bigint id and counts them", () => {
  const t = new IdTable<string>();
  t.set(1, "a");
  t.set(2n ** 63n - 1n, "b");
  t.set(1, "a2");
  strictEqual(t.size, 2);
  strictEqual(t.get(1), "a2");
  strictEqual(t.get(2n ** 63n - 1n), "b");
  strictEqual(t.has(2), false);
  strictEqual(t.get(2), undefined);
  // A number and a bigint with the same value are the same id.
  strictEqual(t.get(1n), "a2");

  strictEqual(t.take(1), "a2");
  strictEqual(t.take(1), undefined);
  strictEqual(t.size, 1);
  deepStrictEqual(t.values(), ["b"]);
});

Deno.test("IdTable removes what a predicate picks, and drains", () => {
  const t = new IdTable<number>();
  for (let i = 0; i < 1000; i++) t.set(BigInt(i) * 7919n + 2n ** 40n, i);
  const removed = t.removeWhere((v) => v % 3 === 0);
  strictEqual(removed.length, 334);
  strictEqual(t.size, 666);
  strictEqual(t.values().every((v) => v % 3 !== 0), true);
  strictEqual(t.get(2n ** 40n + 7919n), 1);

  const drained = t.drain();
  strictEqual(drained.length, 666);
  strictEqual(t.size, 0);
  deepStrictEqual(t.values(), []);
  t.set(5, 5);
  strictEqual(t.size, 1);
});

Deno.test("IdTable survives churn: one entry in, one out, many times", () => {
  const t = new IdTable<{ id: number }>();
  const live: number[] = [];
  for (let id = 1; id <= 20_000; id++) {
    t.set(id, { id });
    live.push(id);
    if (live.length > 64) strictEqual(t.take(live.shift()!)?.id, id - 64);
  }
  strictEqual(t.size, 64);
  deepStrictEqual(t.values().map((v) => v.id).sort((a, b) => a - b), live);
});
