import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { fromUtf8, prefixEnd, utf8 } from "../internal/bytes.ts";
import { CompactedError, FutureRevError } from "./errors.ts";
import { MvccStore } from "./store.ts";
import type { KeyValue, MvccEvent, RangeResult, ReadView } from "./types.ts";

const ZERO = new Uint8Array([0]);

function put(store: MvccStore, key: string, value: string, lease = 0n): MvccEvent[] {
  const txn = store.write();
  txn.put(utf8(key), utf8(value), lease);
  return txn.end();
}

function del(store: MvccStore, key: string, end?: Uint8Array): MvccEvent[] {
  const txn = store.write();
  txn.deleteRange(utf8(key), end);
  return txn.end();
}

/** A compact text form of a kv: key=value@create/mod/version. */
function show(kv: KeyValue): string {
  return `${fromUtf8(kv.key)}=${
    fromUtf8(kv.value)
  }@${kv.createRevision}/${kv.modRevision}/${kv.version}`;
}

function keys(result: RangeResult): string[] {
  return result.kvs.map((kv) => fromUtf8(kv.key));
}

function get(view: ReadView, key: string, rev = 0): string | undefined {
  const kvs = view.range(utf8(key), undefined, { rev }).kvs;
  return kvs.length === 0 ? undefined : show(kvs[0]);
}

Deno.test("a fresh store starts at revision 1, never compacted, consistent index 0", () => {
  const store = MvccStore.open(":memory:");
  strictEqual(store.currentRev, 1);
  strictEqual(store.compactRev, -1);
  strictEqual(store.consistentIndex(), 0);
  deepStrictEqual(store.read().range(utf8("a"), ZERO), { kvs: [], count: 0, rev: 1 });
  store.close();
});

Deno.test("revisions, versions and create revisions through put, update, delete, re-create", () => {
  const store = MvccStore.open(":memory:");
  put(store, "foo", "a"); // rev 2
  strictEqual(get(store.read(), "foo"), "foo=a@2/2/1");
  put(store, "foo", "b"); // rev 3
  strictEqual(get(store.read(), "foo"), "foo=b@2/3/2");
  put(store, "bar", "x"); // rev 4
  del(store, "foo"); // rev 5
  strictEqual(store.currentRev, 5);
  strictEqual(get(store.read(), "foo"), undefined);
  put(store, "foo", "c"); // rev 6: a new generation
  strictEqual(get(store.read(), "foo"), "foo=c@6/6/1");
  put(store, "foo", "d", 7n); // rev 7
  const kv = store.read().range(utf8("foo"), undefined).kvs[0];
  strictEqual(kv.lease, 7n);
  strictEqual(show(kv), "foo=d@6/7/2");
  store.close();
});

Deno.test("lease ids keep the whole int64 range", () => {
  const store = MvccStore.open(":memory:");
  const big = 0x7fff_ffff_ffff_fff1n;
  put(store, "k", "v", big);
  strictEqual(store.read().range(utf8("k"), undefined).kvs[0].lease, big);
  store.close();
});

Deno.test("range shapes", async (t) => {
  const store = MvccStore.open(":memory:");
  const all = ["a", "ab", "abc", "b", "c\u0000", "c", "d"];
  for (const k of all) put(store, k, "v");
  const high = new Uint8Array([0xff, 0x01]);
  const txn = store.write();
  txn.put(high, utf8("v"), 0n);
  txn.put(new Uint8Array([0x01]), utf8("v"), 0n);
  txn.end();
  const view = store.read();
  const cases: [string, Uint8Array, Uint8Array | undefined, string[]][] = [
    ["single key", utf8("ab"), undefined, ["ab"]],
    ["single key given an empty end", utf8("ab"), new Uint8Array(0), ["ab"]],
    ["missing single key", utf8("zz"), undefined, []],
    ["half-open interval", utf8("ab"), utf8("c"), ["ab", "abc", "b"]],
    ["prefix", utf8("a"), prefixEnd(utf8("a")), ["a", "ab", "abc"]],
    ["end below key is empty", utf8("c"), utf8("a"), []],
    ["end equal to key is empty", utf8("c"), utf8("c"), []],
    ["from key", utf8("c"), ZERO, ["c", "c\u0000", "d", "\uFFFD\u0001"]],
  ];
  for (const [name, key, end, want] of cases) {
    await t.step(name, () => deepStrictEqual(keys(view.range(key, end)), want));
  }
  await t.step("all keys, in unsigned byte order", () => {
    const result = view.range(ZERO, ZERO);
    strictEqual(result.count, 9);
    deepStrictEqual(result.kvs.map((kv) => Array.from(kv.key)), [
      [0x01],
      ...["a", "ab", "abc", "b", "c", "c\u0000", "d"].map((k) => Array.from(utf8(k))),
      [0xff, 0x01],
    ]);
  });
  store.close();
});

Deno.test("limit, count, keys only and count only", async (t) => {
  const store = MvccStore.open(":memory:");
  for (const k of ["k1", "k2", "k3", "k4"]) put(store, k, `v${k}`);
  put(store, "k2", "again");
  const start = utf8("k");
  const end = prefixEnd(start);
  for (const [name, rev] of [["current", 0], ["historical", 5]] as const) {
    await t.step(`${name}: limit returns the first keys and the total count`, () => {
      const r = store.read().range(start, end, { limit: 2, rev });
      deepStrictEqual(keys(r), ["k1", "k2"]);
      strictEqual(r.count, 4);
      strictEqual(r.rev, 6);
    });
    await t.step(`${name}: a limit above the count returns everything`, () => {
      const r = store.read().range(start, end, { limit: 10, rev });
      strictEqual(r.kvs.length, 4);
      strictEqual(r.count, 4);
    });
    await t.step(`${name}: keys only leaves values empty`, () => {
      const r = store.read().range(start, end, { keysOnly: true, rev });
      deepStrictEqual(r.kvs.map((kv) => kv.value.length), [0, 0, 0, 0]);
      deepStrictEqual(keys(r), ["k1", "k2", "k3", "k4"]);
      strictEqual(r.kvs[0].createRevision, 2);
    });
    await t.step(`${name}: count only returns no kvs`, () => {
      deepStrictEqual(store.read().range(start, end, { countOnly: true, rev }), {
        kvs: [],
        count: 4,
        rev: 6,
      });
    });
  }
  await t.step("historical values are the values at that revision", () => {
    const r = store.read().range(utf8("k2"), undefined, { rev: 5 });
    strictEqual(show(r.kvs[0]), "k2=vk2@3/3/1");
  });
  store.close();
});

Deno.test("historical reads see tombstones and generations", async (t) => {
  const store = MvccStore.open(":memory:");
  put(store, "a", "1"); // 2
  put(store, "b", "1"); // 3
  put(store, "a", "2"); // 4
  del(store, "a"); // 5
  put(store, "a", "3"); // 6
  del(store, "b"); // 7
  const view = store.read();
  const cases: [number, string | undefined, string | undefined, number][] = [
    [1, undefined, undefined, 0],
    [2, "a=1@2/2/1", undefined, 1],
    [3, "a=1@2/2/1", "b=1@3/3/1", 2],
    [4, "a=2@2/4/2", "b=1@3/3/1", 2],
    [5, undefined, "b=1@3/3/1", 1],
    [6, "a=3@6/6/1", "b=1@3/3/1", 2],
    [7, "a=3@6/6/1", undefined, 1],
  ];
  for (const [rev, a, b, count] of cases) {
    await t.step(`at revision ${rev}`, () => {
      strictEqual(get(view, "a", rev), a);
      strictEqual(get(view, "b", rev), b);
      strictEqual(view.range(ZERO, ZERO, { rev, countOnly: true }).count, count);
      strictEqual(view.range(ZERO, ZERO, { rev }).kvs.length, count);
    });
  }
  await t.step("a future revision fails", () => {
    throws(() => view.range(utf8("a"), undefined, { rev: 8 }), FutureRevError);
  });
  await t.step("a negative revision reads the current revision", () => {
    strictEqual(get(view, "a", -3), "a=3@6/6/1");
  });
  store.close();
});

Deno.test("a read view keeps its revision after later writes", () => {
  const store = MvccStore.open(":memory:");
  put(store, "a", "1");
  const before = store.read();
  put(store, "a", "2");
  del(store, "a");
  put(store, "b", "1");
  strictEqual(before.rev, 2);
  strictEqual(get(before, "a"), "a=1@2/2/1");
  deepStrictEqual(keys(before.range(ZERO, ZERO)), ["a"]);
  throws(() => before.range(utf8("a"), undefined, { rev: 3 }), FutureRevError);
  strictEqual(get(store.read(), "a"), undefined);
  store.close();
});

Deno.test("compaction", async (t) => {
  const store = MvccStore.open(":memory:");
  put(store, "a", "1"); // 2
  put(store, "a", "2"); // 3
  put(store, "b", "1"); // 4
  del(store, "b"); // 5
  put(store, "a", "3"); // 6
  put(store, "c", "1"); // 7

  await t.step("a future revision cannot be compacted", () => {
    throws(() => store.compact(8), FutureRevError);
    strictEqual(store.compactRev, -1);
  });
  await t.step("compact at 5 keeps what revision 5 reads", () => {
    store.compact(5);
    strictEqual(store.compactRev, 5);
    const view = store.read();
    strictEqual(get(view, "a", 5), "a=2@2/3/2");
    strictEqual(get(view, "b", 5), undefined);
    strictEqual(get(view, "a", 6), "a=3@2/6/3");
    deepStrictEqual(keys(view.range(ZERO, ZERO, { rev: 5 })), ["a"]);
    deepStrictEqual(keys(view.range(ZERO, ZERO)), ["a", "c"]);
  });
  await t.step("reads below the compact revision fail, at it succeed", () => {
    throws(() => store.read().range(utf8("a"), undefined, { rev: 4 }), CompactedError);
    strictEqual(store.read().range(utf8("a"), undefined, { rev: 5 }).count, 1);
  });
  await t.step("superseded versions and old tombstones are gone from history", () => {
    const events = store.history(5, 7);
    deepStrictEqual(events.map((e) => `${e.type} ${show(e.kv)}`), [
      "put a=3@2/6/3",
      "put c=1@7/7/1",
    ]);
    const rows = store.database.prepare("SELECT count(*) AS n FROM mvcc_kv").get();
    strictEqual(rows?.n, 3); // a@3, a@6, c@7
  });
  await t.step("compacting at or below the compact revision fails", () => {
    throws(() => store.compact(5), CompactedError);
    throws(() => store.compact(3), CompactedError);
  });
  await t.step("a later compaction only touches keys written since", () => {
    store.compact(7);
    const rows = store.database.prepare("SELECT count(*) AS n FROM mvcc_kv").get();
    strictEqual(rows?.n, 2); // a@6, c@7
    strictEqual(get(store.read(), "a"), "a=3@2/6/3");
  });
  await t.step("a fresh store can compact revision 0 once, as etcd does", () => {
    const fresh = MvccStore.open(":memory:");
    fresh.compact(0);
    strictEqual(fresh.compactRev, 0);
    throws(() => fresh.compact(0), CompactedError);
    fresh.compact(1);
    throws(() => fresh.compact(2), FutureRevError);
    fresh.close();
  });
  store.close();
});

Deno.test("compaction in small batches", async (t) => {
  const rows = (store: MvccStore) =>
    Number(store.database.prepare("SELECT count(*) AS n FROM mvcc_kv").get()?.n);
  const dir = await Deno.makeTempDir({ prefix: "mvcc_compact_" });
  const path = `${dir}/db.sqlite`;
  try {
    const store = MvccStore.open(path, { compactBatchRows: 2 });
    for (let round = 0; round < 3; round++) {
      for (const k of ["a", "b", "c", "d"]) put(store, k, `${round}`); // 2..13
    }
    del(store, "d"); // 14
    put(store, "e", "0"); // 15
    const expectAt = (rev: number) => {
      deepStrictEqual(
        store.read().range(ZERO, ZERO, { rev }).kvs.map(show),
        {
          10: ["a=2@2/10/3", "b=1@3/7/2", "c=1@4/8/2", "d=1@5/9/2"],
          13: ["a=2@2/10/3", "b=2@3/11/3", "c=2@4/12/3", "d=2@5/13/3"],
          15: ["a=2@2/10/3", "b=2@3/11/3", "c=2@4/12/3", "e=0@15/15/1"],
        }[rev],
      );
    };

    await t.step("a compaction leaves work pending while reads stay exact", () => {
      strictEqual(rows(store), 14);
      store.compact(10);
      strictEqual(store.compactionPending, true);
      strictEqual(rows(store) > 10, true);
      expectAt(10);
      expectAt(13);
      throws(() => store.read().range(ZERO, ZERO, { rev: 9 }), CompactedError);
    });
    await t.step("a later compaction joins the pending one", () => {
      store.compactStep();
      store.compact(14);
      expectAt(15);
      deepStrictEqual(store.history(14, 15).map((e) => e.type), ["delete", "put"]);
    });
    await t.step("reopening resumes the pending work", () => {
      store.close();
      const again = MvccStore.open(path, { compactBatchRows: 2 });
      strictEqual(again.compactRev, 14);
      strictEqual(again.compactionPending, true);
      let steps = 0;
      while (again.compactStep()) steps++;
      strictEqual(steps < 20, true);
      strictEqual(again.compactionPending, false);
      // a, b and c at their last versions, e; d's tombstone at 14 is gone.
      strictEqual(rows(again), 4);
      deepStrictEqual(again.history(14, 15).map((e) => e.type), ["put"]);
      again.close();
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("commit advances a pending compaction", () => {
  const store = MvccStore.open(":memory:", { compactBatchRows: 1 });
  for (let i = 0; i < 5; i++) put(store, "a", `${i}`);
  store.compact(6);
  let commits = 0;
  while (store.compactionPending && commits < 10) {
    store.commit();
    commits++;
  }
  strictEqual(store.compactionPending, false);
  const rows = store.database.prepare("SELECT count(*) AS n FROM mvcc_kv").get()?.n;
  strictEqual(rows, 1);
  store.close();
});

Deno.test("a key deleted and compacted can be re-created", () => {
  const store = MvccStore.open(":memory:");
  put(store, "a", "1"); // 2
  del(store, "a"); // 3
  store.compact(3);
  put(store, "a", "2"); // 4
  strictEqual(get(store.read(), "a"), "a=2@4/4/1");
  strictEqual(get(store.read(), "a", 3), undefined);
  store.close();
});

Deno.test("write txn", async (t) => {
  await t.step("all ops share one revision and reads see the txn's own writes", () => {
    const store = MvccStore.open(":memory:");
    put(store, "x", "0"); // 2
    const txn = store.write();
    strictEqual(txn.rev, 2);
    txn.put(utf8("a"), utf8("1"), 0n);
    strictEqual(txn.rev, 3);
    strictEqual(get(txn, "a"), "a=1@3/3/1");
    txn.put(utf8("b"), utf8("1"), 0n);
    const deleted = txn.deleteRange(utf8("x"), undefined);
    strictEqual(deleted.deleted, 1);
    strictEqual(show(deleted.prevKvs[0]), "x=0@2/2/1");
    deepStrictEqual(keys(txn.range(ZERO, ZERO)), ["a", "b"]);
    // Reading at the revision before the txn does not see its writes.
    deepStrictEqual(keys(txn.range(ZERO, ZERO, { rev: 2 })), ["x"]);
    throws(() => txn.range(ZERO, ZERO, { rev: 4 }), FutureRevError);
    const events = txn.end();
    deepStrictEqual(events.map((e) => `${e.type} ${show(e.kv)}`), [
      "put a=1@3/3/1",
      "put b=1@3/3/1",
      "delete x=@0/3/0",
    ]);
    strictEqual(store.currentRev, 3);
    deepStrictEqual(store.history(3, 3).map((e) => e.type), ["put", "put", "delete"]);
    store.close();
  });

  await t.step("the same key twice in one txn gets two versions at one revision", () => {
    const store = MvccStore.open(":memory:");
    const txn = store.write();
    txn.put(utf8("a"), utf8("1"), 0n);
    const second = txn.put(utf8("a"), utf8("2"), 0n);
    strictEqual(show(second.prevKv!), "a=1@2/2/1");
    txn.end();
    strictEqual(get(store.read(), "a"), "a=2@2/2/2");
    put(store, "z", "z");
    strictEqual(get(store.read(), "a", 2), "a=2@2/2/2");
    deepStrictEqual(store.history(2, 2).map((e) => show(e.kv)), ["a=1@2/2/1", "a=2@2/2/2"]);
    store.close();
  });

  await t.step("delete then put of the same key in one txn", () => {
    const store = MvccStore.open(":memory:");
    put(store, "a", "1");
    const txn = store.write();
    txn.deleteRange(utf8("a"), ZERO);
    txn.put(utf8("a"), utf8("2"), 0n);
    txn.end();
    strictEqual(get(store.read(), "a"), "a=2@3/3/1");
    put(store, "z", "z");
    strictEqual(get(store.read(), "a", 3), "a=2@3/3/1");
    strictEqual(get(store.read(), "a", 2), "a=1@2/2/1");
    store.close();
  });

  await t.step("a txn that writes nothing leaves the revision alone", () => {
    const store = MvccStore.open(":memory:");
    put(store, "a", "1");
    const txn = store.write();
    deepStrictEqual(txn.deleteRange(utf8("nope"), undefined), { deleted: 0, prevKvs: [] });
    strictEqual(txn.range(utf8("a"), undefined).rev, 2);
    deepStrictEqual(txn.end(), []);
    strictEqual(store.currentRev, 2);
    put(store, "b", "1");
    strictEqual(store.currentRev, 3);
    store.close();
  });

  await t.step("an ended txn cannot be used and only one txn is open at a time", () => {
    const store = MvccStore.open(":memory:");
    const txn = store.write();
    throws(() => store.write());
    txn.end();
    throws(() => txn.put(utf8("a"), utf8("1"), 0n));
    throws(() => txn.end());
    store.close();
  });

  await t.step("a read view opened before a txn is not disturbed by it", () => {
    const store = MvccStore.open(":memory:");
    put(store, "a", "1");
    const view = store.read();
    const txn = store.write();
    txn.put(utf8("a"), utf8("2"), 0n);
    txn.put(utf8("b"), utf8("2"), 0n);
    strictEqual(get(view, "a"), "a=1@2/2/1");
    deepStrictEqual(keys(view.range(ZERO, ZERO)), ["a"]);
    txn.end();
    store.close();
  });
});

Deno.test("events carry prevKv and etcd's tombstone shape", () => {
  const store = MvccStore.open(":memory:");
  const [created] = put(store, "a", "1", 5n);
  deepStrictEqual(created, {
    type: "put",
    kv: {
      key: utf8("a"),
      createRevision: 2,
      modRevision: 2,
      version: 1,
      value: utf8("1"),
      lease: 5n,
    },
  });
  const [updated] = put(store, "a", "2");
  deepStrictEqual(updated.prevKv, created.kv);
  const [deleted] = del(store, "a");
  deepStrictEqual(deleted, {
    type: "delete",
    kv: {
      key: utf8("a"),
      createRevision: 0,
      modRevision: 4,
      version: 0,
      value: new Uint8Array(0),
      lease: 0n,
    },
    prevKv: updated.kv,
  });
  store.close();
});

Deno.test("history", async (t) => {
  const store = MvccStore.open(":memory:");
  put(store, "a", "1"); // 2
  put(store, "b", "1"); // 3
  put(store, "a", "2"); // 4
  del(store, "a"); // 5
  put(store, "a", "3"); // 6
  const text = (events: MvccEvent[]) =>
    events.map((e) => `${e.type} ${show(e.kv)}${e.prevKv ? ` < ${show(e.prevKv)}` : ""}`);

  await t.step("a window of revisions, with prevKv", () => {
    deepStrictEqual(text(store.history(3, 6, { prevKv: true })), [
      "put b=1@3/3/1",
      "put a=2@2/4/2 < a=1@2/2/1",
      "delete a=@0/5/0 < a=2@2/4/2",
      "put a=3@6/6/1",
    ]);
  });
  await t.step("filtered by key range", () => {
    deepStrictEqual(text(store.history(0, 100, { key: utf8("b") })), ["put b=1@3/3/1"]);
    deepStrictEqual(
      text(store.history(4, 100, { key: utf8("a"), end: utf8("b") })).length,
      3,
    );
  });
  await t.step("an empty window", () => deepStrictEqual(store.history(7, 10), []));
  await t.step("a start below the compact revision fails", () => {
    store.compact(4);
    throws(() => store.history(3, 6), CompactedError);
    deepStrictEqual(text(store.history(4, 4)), ["put a=2@2/4/2"]);
  });
  store.close();
});

Deno.test("db size", () => {
  const store = MvccStore.open(":memory:");
  const value = new Uint8Array(4096).fill(7);
  for (let i = 0; i < 50; i++) {
    const txn = store.write();
    txn.put(utf8(`k${i}`), value, 0n);
    txn.end();
  }
  const size = store.dbSizeBytes();
  strictEqual(size > 50 * 4096, true);
  strictEqual(store.dbSizeInUseBytes() <= size, true);
  const txn = store.write();
  txn.deleteRange(utf8("k"), prefixEnd(utf8("k")));
  txn.end();
  store.compact(store.currentRev);
  store.commit();
  strictEqual(store.dbSizeInUseBytes() < size, true);
  store.defragment();
  strictEqual(store.dbSizeBytes() < size, true);
  store.close();
});

Deno.test("persistence", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "mvcc_test_" });
  const path = `${dir}/db.sqlite`;
  try {
    await t.step("reopening restores data, revisions and consistent index", () => {
      const store = MvccStore.open(path);
      put(store, "a", "1");
      put(store, "a", "2");
      put(store, "b", "1", 9n);
      store.compact(3);
      store.setConsistentIndex(42);
      store.close();

      const again = MvccStore.open(path);
      strictEqual(again.currentRev, 4);
      strictEqual(again.compactRev, 3);
      strictEqual(again.consistentIndex(), 42);
      strictEqual(get(again.read(), "a"), "a=2@2/3/2");
      strictEqual(again.read().range(utf8("b"), undefined).kvs[0].lease, 9n);
      throws(() => again.read().range(utf8("a"), undefined, { rev: 2 }), CompactedError);
      put(again, "c", "1");
      strictEqual(again.currentRev, 5);
      again.close();
    });

    await t.step("uncommitted writes and their consistent index are lost together", () => {
      const store = MvccStore.open(path, { maxBatchOps: 1_000_000 });
      put(store, "d", "1");
      store.setConsistentIndex(50);
      // Another connection sees only what was committed, as a reopen after a crash would.
      const other = new DatabaseSync(path);
      const meta = () =>
        Object.fromEntries(
          other.prepare("SELECT name, value FROM mvcc_meta").all().map((r) => [r.name, r.value]),
        );
      const count = () => other.prepare("SELECT count(*) AS n FROM mvcc_live").get()?.n;
      strictEqual(count(), 3);
      strictEqual(meta().consistent_index, 42);
      store.commit();
      strictEqual(count(), 4);
      deepStrictEqual(meta(), {
        compact_rev: 3,
        consistent_index: 50,
        current_rev: 6,
        physical_compact_rev: 3,
      });
      other.close();
      store.close();
    });

    await t.step("the batch commits itself between entries once maxBatchOps are pending", () => {
      const store = MvccStore.open(path, { maxBatchOps: 3 });
      const other = new DatabaseSync(path);
      const ci = () =>
        other.prepare("SELECT value FROM mvcc_meta WHERE name = 'consistent_index'").get()
          ?.value;
      put(store, "e", "1");
      put(store, "f", "1");
      store.setConsistentIndex(51);
      strictEqual(ci(), 50);
      put(store, "g", "1");
      strictEqual(ci(), 50); // never in the middle of an entry
      store.setConsistentIndex(52);
      strictEqual(ci(), 52);
      other.close();
      store.close();
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a new backend file gets 8 KiB pages; an existing one keeps its own", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const pageSize = (path: string) => {
      const db = new DatabaseSync(path);
      try {
        return Number((db.prepare("PRAGMA page_size").get() as { page_size: number }).page_size);
      } finally {
        db.close();
      }
    };
    const fresh = MvccStore.open(`${dir}/fresh.db`);
    put(fresh, "foo", "a");
    fresh.commit();
    fresh.close();
    strictEqual(pageSize(`${dir}/fresh.db`), 8 * 1024);

    // A backend written before: 4 KiB pages and some content.
    const old = new DatabaseSync(`${dir}/old.db`);
    old.exec("PRAGMA page_size = 4096; CREATE TABLE earlier (x INTEGER)");
    old.close();
    const reopened = MvccStore.open(`${dir}/old.db`);
    put(reopened, "foo", "b");
    reopened.commit();
    reopened.close();
    strictEqual(pageSize(`${dir}/old.db`), 4096);
    const again = MvccStore.open(`${dir}/old.db`);
    strictEqual(get(again.read(), "foo"), "foo=b@2/2/1");
    again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
