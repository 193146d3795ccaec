import { notStrictEqual, strictEqual, throws } from "node:assert/strict";
import { utf8 } from "../internal/bytes.ts";
import { CompactedError, FutureRevError } from "./errors.ts";
import { MvccStore, type MvccStoreOptions } from "./store.ts";

type Op = ["put", string, string] | ["del", string] | ["compact", number] | ["commit"];

/** A history with overwrites, deletes, re-creates, a lease and a range delete. */
const history: Op[] = [
  ["put", "a", "1"],
  ["put", "b", "1"],
  ["put", "a", "2"],
  ["del", "b"],
  ["put", "c", "1"],
  ["put", "b", "2"],
  ["compact", 5],
  ["put", "a", "3"],
  ["del", "c"],
  ["put", "d", "1"],
  ["compact", 8],
  ["put", "d", "2"],
];

/** Replays `ops`, committing every `commitEvery` ops (0: only at the end). */
function replay(ops: Op[], options: MvccStoreOptions = {}, commitEvery = 0): MvccStore {
  const store = MvccStore.open(":memory:", options);
  ops.forEach((op, i) => {
    if (op[0] === "put") {
      const txn = store.write();
      txn.put(utf8(op[1]), utf8(op[2]), op[1] === "d" ? 7n : 0n);
      txn.end();
    } else if (op[0] === "del") {
      const txn = store.write();
      txn.deleteRange(utf8(op[1]), undefined);
      txn.end();
    } else if (op[0] === "compact") store.compact(op[1]);
    else store.commit();
    if (commitEvery > 0 && i % commitEvery === 0) store.commit();
  });
  return store;
}

Deno.test("hashKv: same history and compaction, same hash, whatever the batching", () => {
  const stores = [
    replay(history),
    replay(history, { maxBatchOps: 1 }, 1),
    // One row per compaction batch: compaction is still deleting when we hash.
    replay(history, { compactBatchRows: 1 }),
  ];
  try {
    strictEqual(stores[2].compactionPending, true, "the third store must still be compacting");
    const [first, ...rest] = stores.map((s) => s.hashKv(0));
    for (const other of rest) {
      strictEqual(other.hash, first.hash);
      strictEqual(other.currentRev, first.currentRev);
      strictEqual(other.compactRev, 8);
    }
    // Finishing the deletion does not change the hash either.
    while (stores[2].compactStep()) { /* bounded by the rows of the history */ }
    strictEqual(stores[2].hashKv(0).hash, first.hash);
    strictEqual(stores[2].hashKv(9).hash, stores[0].hashKv(9).hash);
  } finally {
    for (const s of stores) s.close();
  }
});

Deno.test("hashKv at a past revision covers exactly the history up to it", () => {
  // A store that stopped at revision 4 agrees with the full one hashed at 4.
  const uncompacted = history.filter((op) => op[0] !== "compact");
  const full = replay(uncompacted);
  const prefix = replay(uncompacted.slice(0, 3));
  try {
    strictEqual(prefix.currentRev, 4);
    strictEqual(full.hashKv(4).hash, prefix.hashKv(0).hash);
    strictEqual(full.hashKv(4).currentRev, full.currentRev, "answers the current revision");
    notStrictEqual(full.hashKv(4).hash, full.hashKv(5).hash);
    strictEqual(full.hashKv(0).compactRev, -1, "never compacted: -1, as etcd");
  } finally {
    full.close();
    prefix.close();
  }
});

Deno.test("hashKv tells different contents apart", () => {
  const a = replay(history);
  const changed = replay(
    history.map((op): Op => (op[0] === "put" && op[2] === "3" ? ["put", "a", "x"] : op)),
  );
  const shorter = replay(history.slice(0, -1));
  try {
    notStrictEqual(changed.hashKv(0).hash, a.hashKv(0).hash, "a value differs");
    // History that compaction dropped is out of scope: c's only value was compacted away.
    const hidden = replay(
      history.map((op): Op => (op[0] === "put" && op[1] === "c" ? ["put", "c", "x"] : op)),
    );
    strictEqual(hidden.hashKv(0).hash, a.hashKv(0).hash);
    hidden.close();
    notStrictEqual(shorter.hashKv(0).hash, a.hashKv(0).hash, "one write fewer");
  } finally {
    a.close();
    changed.close();
    shorter.close();
  }
});

Deno.test("hashKv refuses compacted and future revisions as etcd's HashByRev does", () => {
  const store = replay(history);
  try {
    // Unlike Range, HashKV refuses the compact revision itself.
    throws(() => store.hashKv(8), CompactedError);
    throws(() => store.hashKv(3), CompactedError);
    throws(() => store.hashKv(store.currentRev + 1), FutureRevError);
    strictEqual(store.hashKv(9).compactRev, 8);
    strictEqual(store.hashKv(store.currentRev).hash, store.hashKv(0).hash);
  } finally {
    store.close();
  }
});

Deno.test("hashBackend: equal contents hash alike, the consistent index is left out", () => {
  const a = replay(history);
  const b = replay(history);
  try {
    a.setConsistentIndex(10);
    b.setConsistentIndex(99);
    strictEqual(a.hashBackend(), b.hashBackend());
    const txn = b.write();
    txn.put(utf8("e"), utf8("1"), 0n);
    txn.end();
    notStrictEqual(a.hashBackend(), b.hashBackend());
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("liveKeyCount follows puts, deletes and re-creates, and survives a reopen", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mvcc-keys-" });
  try {
    const path = `${dir}/db`;
    const store = replay(history);
    strictEqual(store.liveKeyCount, 3, "a, b and d are live");
    store.close();
    const disk = MvccStore.open(path);
    const txn = disk.write();
    txn.put(utf8("x"), utf8("1"), 0n);
    txn.put(utf8("y"), utf8("1"), 0n);
    txn.put(utf8("x"), utf8("2"), 0n);
    txn.end();
    const del = disk.write();
    del.deleteRange(utf8("y"), undefined);
    del.end();
    strictEqual(disk.liveKeyCount, 1);
    strictEqual(disk.commit(), true, "there were writes to commit");
    strictEqual(disk.commit(), false, "nothing left to commit");
    disk.close();
    const reopened = MvccStore.open(path);
    strictEqual(reopened.liveKeyCount, 1);
    reopened.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
