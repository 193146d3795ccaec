import { strictEqual } from "node:assert/strict";
import { maxTrackedPuts, PutArrivals } from "./put_arrivals.ts";

Deno.test("per put: the first event's latency and the spread to the last", () => {
  const arrivals = new PutArrivals();
  // Put sent at 100: events at 102, 103, 110; put sent at 200: one event at 230.
  arrivals.note(100, 102);
  arrivals.note(100, 103);
  arrivals.note(100, 110);
  arrivals.note(200, 230);
  const s = arrivals.summary();
  strictEqual(s.puts, 2);
  strictEqual(s.untracked, 0);
  strictEqual(s.firstEvent.count, 2);
  // Histogram buckets are 1 % wide.
  strictEqual(Math.abs(s.firstEvent.minMs - 2) < 0.03, true, `first min ${s.firstEvent.minMs}`);
  strictEqual(Math.abs(s.firstEvent.maxMs - 30) < 0.3, true, `first max ${s.firstEvent.maxMs}`);
  strictEqual(s.spread.minMs, 0);
  strictEqual(Math.abs(s.spread.maxMs - 8) < 0.1, true, `spread max ${s.spread.maxMs}`);
});

Deno.test("per put: puts beyond the bound are counted, not tracked", () => {
  const arrivals = new PutArrivals();
  for (let i = 0; i < maxTrackedPuts + 3; i++) arrivals.note(i, i + 1);
  arrivals.note(0, 2); // a tracked put still takes events
  const s = arrivals.summary();
  strictEqual(s.puts, maxTrackedPuts);
  strictEqual(s.untracked, 3);
});
