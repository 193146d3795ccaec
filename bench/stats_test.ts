import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { Histogram, median, percentile } from "./stats.ts";
import { AssertionError } from "../internal/assert.ts";
import { mulberry32 } from "../internal/seeded_random.ts";

/** Seeded, so the sample sets are the same on every run. */
const prng = mulberry32;

/** Latency-like samples in ms: log-normal around ~1 ms with a long tail. */
function latencies(count: number, seed: number): number[] {
  const rand = prng(seed);
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const u1 = Math.max(rand(), 1e-12);
    const u2 = rand();
    const normal = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    out.push(Math.exp(normal * 0.8));
  }
  return out;
}

Deno.test("percentile uses the nearest-rank definition", async (t) => {
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  const five = [15, 20, 35, 40, 50];
  const table: Array<[string, number[], number, number]> = [
    ["p0 is the minimum", hundred, 0, 1],
    ["p50 of 1..100", hundred, 50, 50],
    ["p99 of 1..100", hundred, 99, 99],
    ["p99.9 of 1..100", hundred, 99.9, 100],
    ["p100 is the maximum", hundred, 100, 100],
    ["p30 of five", five, 30, 20],
    ["p40 of five", five, 40, 20],
    ["p50 of five", five, 50, 35],
    ["p100 of five", five, 100, 50],
    ["single sample", [7], 99, 7],
  ];
  for (const [name, sorted, p, want] of table) {
    await t.step(name, () => strictEqual(percentile(sorted, p), want));
  }
  await t.step("empty gives NaN", () => ok(Number.isNaN(percentile([], 50))));
  await t.step("p outside [0, 100] is a programming error", () => {
    throws(() => percentile([1], -1), AssertionError);
    throws(() => percentile([1], 100.5), AssertionError);
  });
});

Deno.test("histogram keeps count, sum, min, max and mean exact", () => {
  const h = new Histogram();
  for (const v of [0.5, 2, 0.25, 10]) h.record(v);
  strictEqual(h.count, 4);
  strictEqual(h.sum, 12.75);
  strictEqual(h.min, 0.25);
  strictEqual(h.max, 10);
  strictEqual(h.mean, 12.75 / 4);
  const s = h.summary();
  strictEqual(s.count, 4);
  strictEqual(s.minMs, 0.25);
  strictEqual(s.maxMs, 10);
  strictEqual(s.avgMs, 12.75 / 4);
});

Deno.test("histogram percentiles stay within the relative precision of exact ones", async (t) => {
  for (const precision of [0.01, 0.05]) {
    await t.step(`precision ${precision}`, () => {
      const samples = latencies(20_000, 42);
      const h = new Histogram({ relativePrecision: precision });
      for (const v of samples) h.record(v);
      const sorted = Float64Array.from(samples).sort();
      for (const p of [1, 10, 50, 90, 99, 99.9, 100]) {
        const exact = percentile(sorted, p);
        const approx = h.percentile(p);
        // The bucket's upper bound is reported: never below the exact value, at most one
        // bucket width above it.
        ok(approx >= exact, `p${p}: ${approx} < exact ${exact}`);
        ok(
          approx <= exact * (1 + precision) * (1 + 1e-9),
          `p${p}: ${approx} more than ${precision} above exact ${exact}`,
        );
      }
      strictEqual(h.percentile(0), sorted[0]);
      strictEqual(h.percentile(100), sorted[sorted.length - 1]);
    });
  }
});

Deno.test("histogram reports a constant stream exactly", () => {
  const h = new Histogram();
  for (let i = 0; i < 1000; i++) h.record(3.3);
  for (const p of [0, 1, 50, 99, 100]) strictEqual(h.percentile(p), 3.3);
});

Deno.test("histogram bucket bounds: a value equal to a bound lands in that bucket", () => {
  const h = new Histogram({ lowest: 1, highest: 1000, relativePrecision: 0.1 });
  for (let i = 0; i < 20; i++) {
    const bound = h.bucketUpperBound(i);
    const one = new Histogram({ lowest: 1, highest: 1000, relativePrecision: 0.1 });
    one.record(bound);
    deepStrictEqual(one.buckets().map(([upper]) => upper), [bound]);
  }
});

Deno.test("histogram clamps values outside [lowest, highest] into the end buckets", () => {
  const h = new Histogram({ lowest: 1, highest: 100, relativePrecision: 0.5 });
  h.record(0);
  h.record(0.01);
  h.record(1e9);
  strictEqual(h.count, 3);
  const buckets = h.buckets();
  strictEqual(buckets.length, 2);
  strictEqual(buckets[0][0], 1);
  strictEqual(buckets[0][1], 2);
  strictEqual(buckets[1][1], 1);
  // Everything at or below `lowest` is reported as `lowest`; the open-ended last bucket as the
  // exact maximum.
  strictEqual(h.percentile(50), 1);
  strictEqual(h.percentile(100), 1e9);
});

Deno.test("histogram bucket count is fixed by the options, not by the data", () => {
  const h = new Histogram();
  const before = h.bucketCount;
  ok(before > 1000 && before < 3000, `unexpected bucket count ${before}`);
  for (const v of latencies(10_000, 7)) h.record(v);
  strictEqual(h.bucketCount, before);
});

Deno.test("merging histograms equals recording every value into one", () => {
  const all = new Histogram();
  const a = new Histogram();
  const b = new Histogram();
  latencies(5000, 1).forEach((v, i) => {
    all.record(v);
    (i % 3 === 0 ? a : b).record(v);
  });
  a.merge(b);
  strictEqual(a.count, all.count);
  strictEqual(a.min, all.min);
  strictEqual(a.max, all.max);
  ok(Math.abs(a.sum - all.sum) < 1e-9 * all.sum);
  deepStrictEqual(a.buckets(), all.buckets());
  throws(() => a.merge(new Histogram({ relativePrecision: 0.02 })), AssertionError);
});

Deno.test("empty and reset histograms report NaN", () => {
  const h = new Histogram();
  ok(Number.isNaN(h.percentile(50)));
  ok(Number.isNaN(h.mean));
  ok(Number.isNaN(h.min));
  h.record(1);
  h.reset();
  strictEqual(h.count, 0);
  ok(Number.isNaN(h.percentile(99)));
  deepStrictEqual(h.buckets(), []);
});

Deno.test("histogram rejects negative values and bad options", () => {
  const h = new Histogram();
  throws(() => h.record(-1), AssertionError);
  throws(() => h.record(NaN), AssertionError);
  throws(() => new Histogram({ lowest: 0 }), AssertionError);
  throws(() => new Histogram({ lowest: 10, highest: 5 }), AssertionError);
  throws(() => new Histogram({ relativePrecision: 1 }), AssertionError);
});

Deno.test("median takes the middle value, or the mean of the two middle ones", () => {
  strictEqual(median([30, 10, 20]), 20);
  strictEqual(median([4, 1, 3, 2]), 2.5);
  strictEqual(median([7]), 7);
  ok(Number.isNaN(median([])));
});
