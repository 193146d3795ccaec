import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { fromUtf8, prefixEnd, utf8 } from "../internal/bytes.ts";
import { MvccStore } from "./store.ts";
import type { MvccEvent } from "./types.ts";
import {
  DuplicateWatchIdError,
  eventBytes,
  type WatchBatch,
  type Watcher,
  WatchHub,
  type WatchHubOptions,
  WatchRangeEmptyError,
  type WatchSpec,
  type WatchTimers,
} from "./watch_hub.ts";

/** Timers that fire only when the test says so. */
class ManualTimers implements WatchTimers {
  #next = 1;
  readonly pending = new Map<number, () => void>();

  setTimeout(fn: () => void, _ms: number): unknown {
    const id = this.#next++;
    this.pending.set(id, fn);
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  /** Runs due timers until none is left; bounded so a runaway loop fails the test. */
  runAll(maxRounds = 10_000): void {
    for (let round = 0; this.pending.size > 0; round++) {
      ok(round < maxRounds, "timers never settled");
      const [id, fn] = this.pending.entries().next().value!;
      this.pending.delete(id);
      fn();
    }
  }
}

/** A store, a hub over it, and writers that publish to the hub as apply does. */
function setup(options: WatchHubOptions = {}) {
  const store = MvccStore.open(":memory:");
  const timers = new ManualTimers();
  const hub = new WatchHub(store, { timers, ...options });
  const changes: Watcher[] = [];
  const stream = hub.newStream({ onChange: (w) => changes.push(w) });
  const write = (fn: (txn: ReturnType<MvccStore["write"]>) => void): MvccEvent[] => {
    const txn = store.write();
    fn(txn);
    const events = txn.end();
    hub.notify(events);
    return events;
  };
  const put = (key: string, value = "v") =>
    write((txn) => txn.put(utf8(key), utf8(value), 0n))[0].kv.modRevision;
  const del = (key: string, end?: string) =>
    write((txn) => txn.deleteRange(utf8(key), end === undefined ? undefined : utf8(end)));
  const watch = (
    spec: Omit<Partial<WatchSpec>, "key" | "end"> & { key: string; end?: string },
    id = 0n,
  ) =>
    stream.watch(id, {
      startRev: 0,
      ...spec,
      key: utf8(spec.key),
      end: spec.end === undefined ? undefined : utf8(spec.end),
    });
  const close = () => {
    hub.close();
    store.close();
  };
  return { store, timers, hub, stream, changes, write, put, del, watch, close };
}

function drain(w: Watcher): WatchBatch[] {
  const out: WatchBatch[] = [];
  for (let b = w.take(); b; b = w.take()) out.push(b);
  return out;
}

/** Each event as `type key@rev`, for compact comparisons. */
function show(batches: { events: readonly MvccEvent[] }[]): string[] {
  return batches.flatMap((b) =>
    b.events.map((e) => `${e.type} ${fromUtf8(e.kv.key)}@${e.kv.modRevision}`)
  );
}

Deno.test("a synced watcher gets each revision of its key, in order, as one batch", () => {
  const t = setup();
  try {
    const w = t.watch({ key: "a" });
    strictEqual(w.synced, true);
    t.put("a", "1");
    t.put("b", "x");
    t.put("a", "2");
    const batches = drain(w);
    deepStrictEqual(batches.map((b) => b.revision), [2, 4]);
    deepStrictEqual(show(batches), ["put a@2", "put a@4"]);
    deepStrictEqual(fromUtf8(batches[1].events[0].kv.value), "2");
    ok(t.changes.includes(w), "the stream heard of the batches");
  } finally {
    t.close();
  }
});

Deno.test("ranges: point, prefix, [key,end), from-key and all keys match as Range does", async (t) => {
  const cases: { name: string; key: string; end?: string | Uint8Array; want: string[] }[] = [
    { name: "point", key: "b", want: ["b"] },
    { name: "prefix", key: "b", end: prefixEnd(utf8("b")), want: ["b", "b/1", "bz"] },
    { name: "range", key: "b", end: "c", want: ["b", "b/1", "bz"] },
    { name: "range excludes end", key: "a", end: "b/1", want: ["a", "b"] },
    { name: "from key", key: "b/1", end: new Uint8Array([0]), want: ["b/1", "bz", "c"] },
    {
      name: "all keys",
      key: "\0",
      end: new Uint8Array([0]),
      want: ["a", "b", "b/1", "bz", "c"],
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const s = setup();
      try {
        const end = typeof c.end === "string" ? utf8(c.end) : c.end;
        const w = s.stream.watch(0n, { key: utf8(c.key), end, startRev: 0 });
        for (const k of ["a", "b", "b/1", "bz", "c"]) s.put(k);
        deepStrictEqual(drain(w).flatMap((b) => b.events.map((e) => fromUtf8(e.kv.key))), c.want);
      } finally {
        s.close();
      }
    });
  }
});

Deno.test("events of one revision arrive together; a delete carries its tombstone", () => {
  const t = setup();
  try {
    const w = t.watch({ key: "k", end: "l" });
    t.write((txn) => {
      txn.put(utf8("k1"), utf8("1"), 0n);
      txn.put(utf8("k2"), utf8("2"), 0n);
      txn.put(utf8("x"), utf8("3"), 0n);
    });
    t.del("k", "l");
    const batches = drain(w);
    deepStrictEqual(batches.map((b) => show([b])), [["put k1@2", "put k2@2"], [
      "delete k1@3",
      "delete k2@3",
    ]]);
    strictEqual(batches[1].events[0].kv.createRevision, 0);
    strictEqual(fromUtf8(batches[1].events[0].prevKv!.value), "1");
  } finally {
    t.close();
  }
});

Deno.test("a past start revision replays history, then continues live with no gap or repeat", () => {
  const t = setup();
  try {
    for (let i = 0; i < 5; i++) t.put("a", String(i)); // revs 2..6
    const w = t.watch({ key: "a", startRev: 3 });
    strictEqual(w.synced, false);
    t.put("a", "live-before-catch-up"); // rev 7: read from history, not notified
    strictEqual(w.pending, false);
    t.timers.runAll();
    strictEqual(w.synced, true);
    t.put("a", "live"); // rev 8
    const batches = drain(w);
    deepStrictEqual(show(batches), [
      "put a@3",
      "put a@4",
      "put a@5",
      "put a@6",
      "put a@7",
      "put a@8",
    ]);
    // The replayed batch reports the revision it is complete up to.
    deepStrictEqual(batches.map((b) => b.revision), [7, 8]);
  } finally {
    t.close();
  }
});

Deno.test("start revision 0 means the next write; a future one waits for that revision", () => {
  const t = setup();
  try {
    t.put("a");
    const now = t.watch({ key: "a" });
    const later = t.watch({ key: "a", startRev: 4 });
    strictEqual(later.synced, true);
    t.put("a"); // 3
    t.put("a"); // 4
    deepStrictEqual(show(drain(now)), ["put a@3", "put a@4"]);
    deepStrictEqual(show(drain(later)), ["put a@4"]);
  } finally {
    t.close();
  }
});

Deno.test("a slow watcher turns unsynced, catches up from history, and misses nothing", () => {
  const t = setup({ maxBufferedEvents: 4, catchUpBatchRevs: 3 });
  try {
    const w = t.watch({ key: "k", end: "l" });
    const fast = t.watch({ key: "k", end: "l" });
    const want: string[] = [];
    for (let i = 0; i < 40; i++) {
      if (i % 7 === 3) {
        // A revision with more events than the whole buffer still arrives in one batch.
        const evs = t.write((txn) => {
          for (let j = 0; j < 6; j++) txn.put(utf8(`k${j}`), utf8(String(i)), 0n);
        });
        want.push(...evs.map((e) => `put ${fromUtf8(e.kv.key)}@${e.kv.modRevision}`));
      } else {
        want.push(`put k@${t.put("k", String(i))}`);
      }
      drain(fast);
    }
    strictEqual(w.synced, false, "the slow watcher fell behind");
    strictEqual(fast.synced, true, "the fast one did not");
    ok(w.bufferedEvents <= 4, "the buffer stayed bounded");
    const got: WatchBatch[] = [];
    for (let round = 0; round < 1000 && !(w.synced && !w.pending); round++) {
      const b = w.take();
      if (b) got.push(b);
      else t.timers.runAll();
      if (round % 5 === 0) want.push(`put k@${t.put("k", "during")}`);
    }
    ok(w.synced, "caught up");
    deepStrictEqual(show(got), want);
    for (const b of got) {
      const revs = new Set(b.events.map((e) => e.kv.modRevision));
      ok(b.revision >= Math.max(...revs), "a batch never reports less than it holds");
    }
    const sixes = got.filter((b) => b.events.length === 6);
    ok(
      sixes.length > 0 &&
        sixes.every((b) => new Set(show([b]).map((s) => s.split("@")[1])).size === 1),
    );
  } finally {
    t.close();
  }
});

Deno.test("the byte bound also turns a watcher unsynced; a large revision still arrives whole", () => {
  const t = setup({ maxBufferedBytes: 1000 });
  try {
    const w = t.watch({ key: "a" });
    const big = "x".repeat(3000);
    t.put("a", big); // 2: larger than the bound, but the buffer was empty
    strictEqual(w.synced, true);
    t.put("a", "small"); // 3: no room left
    strictEqual(w.synced, false);
    ok(w.bufferedBytes >= 3000 && w.bufferedEvents === 1);
    const got: WatchBatch[] = [];
    for (let round = 0; round < 100 && !(w.synced && !w.pending); round++) {
      const b = w.take();
      if (b) got.push(b);
      else t.timers.runAll();
    }
    deepStrictEqual(show(got), ["put a@2", "put a@3"]);
    strictEqual(eventBytes(got[0].events[0], false), 32 + 1 + 3000);
  } finally {
    t.close();
  }
});

Deno.test("compaction cancels a watcher whose next revision is gone", async (t) => {
  await t.step("start revision below the compaction", () => {
    const s = setup();
    try {
      for (let i = 0; i < 5; i++) s.put("a"); // 2..6
      s.store.compact(4);
      const w = s.watch({ key: "a", startRev: 3 }, 5n);
      s.timers.runAll();
      deepStrictEqual(drain(w), [{ events: [], revision: 0, compactRevision: 4, bytes: 0 }]);
      strictEqual(w.canceled, true);
      s.put("a");
      strictEqual(w.pending, false, "nothing after the cancel");
      // It still holds its id on the stream until the client cancels it (as etcd).
      throws(() => s.watch({ key: "a" }, w.id), DuplicateWatchIdError);
      strictEqual(s.stream.cancel(w.id), true);
    } finally {
      s.close();
    }
  });
  await t.step("at the compact revision itself, history is still there", () => {
    const s = setup();
    try {
      for (let i = 0; i < 5; i++) s.put("a"); // 2..6
      s.store.compact(4);
      const w = s.watch({ key: "a", startRev: 4 });
      s.timers.runAll();
      deepStrictEqual(show(drain(w)), ["put a@4", "put a@5", "put a@6"]);
    } finally {
      s.close();
    }
  });
  await t.step("a slow watcher overtaken by compaction", () => {
    const s = setup({ maxBufferedEvents: 2 });
    try {
      const w = s.watch({ key: "a" });
      for (let i = 0; i < 6; i++) s.put("a"); // 2..7; buffer holds 2, 3
      strictEqual(w.synced, false);
      s.store.compact(6);
      deepStrictEqual(show(drain(w)), ["put a@2", "put a@3"]);
      s.timers.runAll();
      deepStrictEqual(drain(w), [{ events: [], revision: 0, compactRevision: 6, bytes: 0 }]);
    } finally {
      s.close();
    }
  });
});

Deno.test("filters leave out puts or deletes, live and from history", () => {
  const t = setup();
  try {
    t.put("a");
    t.del("a");
    const noPut = t.watch({ key: "a", noPut: true });
    const noDelete = t.watch({ key: "a", noDelete: true });
    const pastNoPut = t.watch({ key: "a", startRev: 1, noPut: true });
    const pastNoDelete = t.watch({ key: "a", startRev: 1, noDelete: true });
    t.timers.runAll();
    t.put("a");
    t.del("a");
    deepStrictEqual(show(drain(noPut)), ["delete a@5"]);
    deepStrictEqual(show(drain(noDelete)), ["put a@4"]);
    deepStrictEqual(show(drain(pastNoPut)), ["delete a@3", "delete a@5"]);
    deepStrictEqual(show(drain(pastNoDelete)), ["put a@2", "put a@4"]);
  } finally {
    t.close();
  }
});

Deno.test("prev kv is read from history for a replaying watcher that asks for it", () => {
  const t = setup();
  try {
    t.put("a", "1");
    t.put("a", "2");
    const w = t.watch({ key: "a", startRev: 2, prevKv: true });
    const plain = t.watch({ key: "a", startRev: 2 });
    t.timers.runAll();
    const evs = drain(w).flatMap((b) => b.events);
    strictEqual(evs[0].prevKv, undefined, "a create has no previous version");
    strictEqual(fromUtf8(evs[1].prevKv!.value), "1");
    strictEqual(drain(plain).flatMap((b) => b.events)[1].prevKv, undefined);
  } finally {
    t.close();
  }
});

Deno.test("stream ids: from 0, skipping client-chosen ones; duplicates and empty ranges refused", () => {
  const t = setup();
  try {
    strictEqual(t.watch({ key: "a" }).id, 0n);
    strictEqual(t.watch({ key: "a" }, 2n).id, 2n);
    strictEqual(t.watch({ key: "a" }).id, 1n);
    strictEqual(t.watch({ key: "a" }).id, 3n);
    throws(() => t.watch({ key: "a" }, 2n), DuplicateWatchIdError);
    throws(() => t.watch({ key: "b", end: "a" }), WatchRangeEmptyError);
    throws(() => t.watch({ key: "a", end: "a" }), WatchRangeEmptyError);
    strictEqual(t.stream.cancel(9n), false);
    const w = t.stream.get(1n)!;
    strictEqual(t.stream.cancel(1n), true);
    strictEqual(t.stream.cancel(1n), false);
    t.put("a");
    strictEqual(w.pending, false, "a canceled watcher gets nothing");
    strictEqual(t.hub.counts.synced, 3);
    t.stream.close();
    strictEqual(t.hub.counts.synced, 0, "closing a stream removes its watchers");
  } finally {
    t.close();
  }
});

Deno.test("progress reports only for synced watchers, at the current revision", () => {
  const t = setup({ maxBufferedEvents: 1 });
  try {
    t.put("x");
    const w = t.watch({ key: "a" });
    strictEqual(t.hub.progress(w), true);
    t.put("x");
    strictEqual(t.hub.progress(w), true, "a second report replaces the first");
    deepStrictEqual(drain(w), [{ events: [], revision: 3, bytes: 0 }]);
    t.put("a");
    t.put("a"); // buffer full: unsynced
    strictEqual(t.hub.progress(w), false);
  } finally {
    t.close();
  }
});

Deno.test("watchers of a one-event revision share its batch, which a progress report never changes", () => {
  const t = setup();
  try {
    const a = t.watch({ key: "a" });
    const b = t.watch({ key: "a" });
    const withPrev = t.watch({ key: "a", prevKv: true });
    const first = t.put("a");
    strictEqual(a.peek(), b.peek(), "one batch for the watchers without previous values");
    ok(withPrev.peek() !== a.peek(), "another for those with them (a different size)");
    strictEqual(t.hub.progress(a), true);
    const second = t.put("a");
    strictEqual(t.hub.progress(a), true);
    // a now holds four batches: the shared first event, its own report, the shared second
    // event and another report of its own. Taken in that order; b's are untouched.
    deepStrictEqual(drain(a).map((x) => [x.events.length, x.revision]), [
      [1, first],
      [0, first],
      [1, second],
      [0, second],
    ]);
    deepStrictEqual(drain(b).map((x) => [x.events.length, x.revision]), [[1, first], [1, second]]);
    strictEqual(drain(withPrev).length, 2);
    strictEqual(t.hub.holdsUntaken, false);
  } finally {
    t.close();
  }
});

Deno.test("the hub holds untaken output from a push until every batch is taken or dropped", () => {
  const t = setup({ maxBufferedEvents: 1 });
  try {
    strictEqual(t.hub.holdsUntaken, false);
    const a = t.watch({ key: "a" });
    const b = t.watch({ key: "a" });
    t.put("a");
    strictEqual(t.hub.holdsUntaken, true, "both watchers hold the event");
    strictEqual(drain(a).length, 1);
    strictEqual(t.hub.holdsUntaken, true, "one still holds it");
    strictEqual(drain(b).length, 1);
    strictEqual(t.hub.holdsUntaken, false, "every batch taken");

    strictEqual(t.hub.progress(a), true);
    strictEqual(t.hub.holdsUntaken, true, "a progress report waits to be taken too");
    strictEqual(t.stream.cancel(a.id), true);
    strictEqual(t.hub.holdsUntaken, false, "a canceled watcher's buffer is dropped");

    t.put("a");
    t.put("a"); // b's buffer is full: unsynced, to catch up from history
    strictEqual(b.synced, false);
    strictEqual(drain(b).length, 1);
    strictEqual(t.hub.holdsUntaken, false, "nothing buffered while it waits for the catch-up");
    t.timers.runAll();
    strictEqual(t.hub.holdsUntaken, true, "the catch-up's batch waits");
    t.stream.close();
    strictEqual(t.hub.holdsUntaken, false, "a closed stream drops its watchers' buffers");
  } finally {
    t.close();
  }
});

Deno.test("1000 watchers on one key, 1000 prefixes and 100 ranges each get their event once", () => {
  const t = setup();
  try {
    const same = Array.from({ length: 1000 }, () => t.watch({ key: "hot/key" }));
    const prefixes = Array.from({ length: 1000 }, (_, i) => {
      const p = i % 2 === 0 ? "hot/" : `other${i}/`;
      return t.stream.watch(0n, { key: utf8(p), end: prefixEnd(utf8(p)), startRev: 0 });
    });
    const ranges = Array.from({ length: 100 }, (_, i) => t.watch({ key: `h${i}`, end: "i" }));
    t.put("hot/key");
    t.put("cold");
    for (const w of same) deepStrictEqual(show(drain(w)), ["put hot/key@2"]);
    prefixes.forEach((w, i) => strictEqual(drain(w).length, i % 2 === 0 ? 1 : 0));
    // "hot/key" sorts after "h<digits>", so every range [h<i>, i) holds it.
    for (const w of ranges) deepStrictEqual(show(drain(w)), ["put hot/key@2"]);
    strictEqual(t.hub.counts.synced, 2100);
  } finally {
    t.close();
  }
});

Deno.test("seeded: random writes, buffers and consumers; every watcher sees exactly the history", () => {
  let seed = 12345;
  const random = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x80000000;
  };
  const t = setup({ maxBufferedEvents: 3, catchUpBatchRevs: 4, catchUpWatchersPerTick: 2 });
  try {
    const keys = ["a", "a/1", "a/2", "b", "c"];
    const specs: WatchSpec[] = [
      { key: utf8("a"), startRev: 0 },
      { key: utf8("a"), end: prefixEnd(utf8("a")), startRev: 0 },
      { key: utf8("a/"), end: utf8("c"), startRev: 0, noDelete: true },
      { key: utf8("\0"), end: new Uint8Array([0]), startRev: 0, noPut: true },
      { key: utf8("b"), startRev: 0, prevKv: true },
    ];
    const watchers = specs.map((s) => ({
      spec: s,
      w: t.stream.watch(0n, s),
      got: [] as MvccEvent[],
    }));
    const firstRev = t.store.currentRev + 1;
    for (let step = 0; step < 600; step++) {
      const r = random();
      if (r < 0.5) t.put(keys[Math.floor(random() * keys.length)], String(step));
      else if (r < 0.6) t.del(keys[Math.floor(random() * keys.length)]);
      else if (r < 0.7) {
        t.write((txn) => {
          for (const k of keys) if (random() < 0.5) txn.put(utf8(k), utf8("m"), 0n);
        });
      } else if (r < 0.85) {
        const x = watchers[Math.floor(random() * watchers.length)];
        const b = x.w.take();
        if (b) x.got.push(...b.events);
      } else {
        const [id, fn] = t.timers.pending.entries().next().value ?? [];
        if (id !== undefined) {
          t.timers.pending.delete(id);
          fn!();
        }
      }
      strictEqual(
        t.hub.holdsUntaken,
        watchers.some((x) => x.w.pending),
        `step ${step}: the hub's held batches match its watchers' buffers`,
      );
    }
    for (let round = 0; round < 10_000; round++) {
      let busy = false;
      for (const x of watchers) {
        const b = x.w.take();
        if (b) {
          x.got.push(...b.events);
          busy = true;
        }
      }
      if (!busy && t.timers.pending.size === 0) break;
      t.timers.runAll();
    }
    for (const x of watchers) {
      ok(x.w.synced, "every watcher ends synced");
      const want = t.store.history(firstRev, t.store.currentRev, {
        key: x.spec.key,
        end: x.spec.end,
        prevKv: true,
      }).filter((e) => e.type === "put" ? !x.spec.noPut : !x.spec.noDelete);
      deepStrictEqual(
        show([{ events: x.got }]),
        show([{ events: want }]),
      );
      if (x.spec.prevKv) {
        deepStrictEqual(
          x.got.map((e) => e.prevKv?.modRevision),
          want.map((e) => e.prevKv?.modRevision),
        );
      }
    }
  } finally {
    t.close();
  }
});

Deno.test("closing the hub ends its streams and stops the catch-up", () => {
  const t = setup();
  let closed = 0;
  const other = t.hub.newStream({ onChange() {}, onClose: () => closed++ });
  t.put("a");
  const w = other.watch(0n, { key: utf8("a"), startRev: 1 });
  t.hub.close();
  strictEqual(closed, 1);
  strictEqual(other.closed, true);
  strictEqual(w.canceled, true);
  strictEqual(t.timers.pending.size, 0);
  t.hub.notify([]);
  t.store.close();
});

Deno.test("a watcher keeps its own copy of keys given as Node Buffers (views into a chunk)", async () => {
  const { Buffer } = await import("node:buffer");
  const t = setup();
  try {
    const chunk = Buffer.from("hh2");
    const w = t.stream.watch(0n, {
      key: chunk.subarray(0, 1),
      end: chunk.subarray(1, 3),
      startRev: 0,
    });
    const p = t.stream.watch(0n, { key: chunk.subarray(0, 1), end: Buffer.from("i"), startRev: 0 });
    strictEqual(chunk.toString(), "hh2", "the caller's bytes are untouched");
    chunk.fill(0);
    t.put("h1");
    deepStrictEqual(show(drain(w)), ["put h1@2"]);
    deepStrictEqual(show(drain(p)), ["put h1@2"]);
  } finally {
    t.close();
  }
});
