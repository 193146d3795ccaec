import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { AssertionError } from "../internal/assert.ts";
import { utf8 } from "../internal/bytes.ts";
import {
  Wal,
  WalClosedError,
  WalExistsError,
  WalLockedError,
  WalNotFoundError,
  WalRecordTooLargeError,
} from "./mod.ts";
import { parseSegmentName } from "./segment.ts";
import { entries, entry, segmentFiles, warnings, withTempDir } from "./test_helpers.ts";

const META = utf8("node=1 cluster=7");

Deno.test("round trip: what was saved is what open returns", () =>
  withTempDir(async (dir) => {
    const wal = await Wal.create(dir, META);
    const ents = [
      { index: 1, term: 1, type: 1, data: utf8("conf change") },
      { index: 2, term: 1, type: 0, data: new Uint8Array(0) },
      { index: 3, term: 2, type: 0, data: new Uint8Array(5000).fill(7) },
    ];
    await wal.save({ term: 2, vote: 0xffff_ffff_ffff_fff1n, commit: 3 }, ents);
    strictEqual(wal.lastIndex, 3);
    await wal.close();

    const { wal: again, state } = await Wal.open(dir);
    deepStrictEqual(state, {
      metadata: META,
      hardState: { term: 2, vote: 0xffff_ffff_ffff_fff1n, commit: 3 },
      snapshot: null,
      entries: ents,
    });
    strictEqual(again.lastIndex, 3);
    await again.close();
  }));

Deno.test("a new log is empty and exists; create refuses an existing one", () =>
  withTempDir(async (dir) => {
    const sub = `${dir}/member/wal`;
    strictEqual(await Wal.exists(sub), false);
    await rejects(Wal.open(sub), WalNotFoundError);
    const wal = await Wal.create(sub, META);
    strictEqual(await Wal.exists(sub), true);
    await wal.close();
    await rejects(Wal.create(sub, META), WalExistsError);
    const { wal: again, state } = await Wal.open(sub);
    deepStrictEqual(state, { metadata: META, hardState: null, snapshot: null, entries: [] });
    await again.close();
  }));

Deno.test("reopen and append: later saves extend the log, the last hard state wins", () =>
  withTempDir(async (dir) => {
    const wal = await Wal.create(dir, META);
    await wal.save({ term: 1, vote: 1n, commit: 0 }, entries(1, 3));
    await wal.save({ term: 1, vote: 1n, commit: 2 }, []);
    await wal.close();

    for (const [from, to, commit] of [[4, 6, 5], [7, 7, 7]]) {
      const { wal: w } = await Wal.open(dir);
      await w.save({ term: 1, vote: 1n, commit }, entries(from, to));
      await w.close();
    }
    const { wal: last, state } = await Wal.open(dir);
    deepStrictEqual(state.entries, entries(1, 7));
    deepStrictEqual(state.hardState, { term: 1, vote: 1n, commit: 7 });
    await last.close();
  }));

Deno.test("conflict truncation: a rewritten index replaces it and everything after it", async (t) => {
  await t.step("within one session", () =>
    withTempDir(async (dir) => {
      const wal = await Wal.create(dir, META);
      await wal.save(null, entries(1, 5, 1));
      await wal.save(null, entries(3, 4, 2));
      strictEqual(wal.lastIndex, 4);
      await wal.close();
      const { wal: again, state } = await Wal.open(dir);
      deepStrictEqual(state.entries, [...entries(1, 2, 1), ...entries(3, 4, 2)]);
      strictEqual(again.lastIndex, 4);
      await again.close();
    }));
  await t.step("after reopen and across segments", () =>
    withTempDir(async (dir) => {
      const wal = await Wal.create(dir, META, { maxSegmentBytes: 200 });
      for (let i = 1; i <= 20; i++) await wal.save(null, [entry(i, 1, 40)]);
      await wal.close();
      const { wal: w2 } = await Wal.open(dir, { maxSegmentBytes: 200 });
      ok(w2.segmentNames.length > 3);
      await w2.save(null, entries(2, 3, 5));
      await w2.close();
      const { wal: w3, state } = await Wal.open(dir);
      deepStrictEqual(state.entries, [entry(1, 1, 40), ...entries(2, 3, 5)]);
      await w3.close();
    }));
});

Deno.test("a snapshot mark drops the entries at or before it", () =>
  withTempDir(async (dir) => {
    const wal = await Wal.create(dir, META);
    await wal.save({ term: 1, vote: 2n, commit: 10 }, entries(1, 10));
    await wal.saveSnapshot({ index: 6, term: 1 });
    await wal.close();
    let opened = await Wal.open(dir);
    deepStrictEqual(opened.state.snapshot, { index: 6, term: 1 });
    deepStrictEqual(opened.state.entries, entries(7, 10));

    // A follower given a snapshot beyond its log continues from the snapshot.
    await opened.wal.saveSnapshot({ index: 50, term: 3 });
    strictEqual(opened.wal.lastIndex, 50);
    await opened.wal.save(null, entries(51, 52, 3));
    await opened.wal.close();
    opened = await Wal.open(dir);
    deepStrictEqual(opened.state.snapshot, { index: 50, term: 3 });
    deepStrictEqual(opened.state.entries, entries(51, 52, 3));
    await opened.wal.close();
  }));

Deno.test("segment cut and multi-segment replay", () =>
  withTempDir(async (dir) => {
    const opts = { maxSegmentBytes: 1024 };
    const wal = await Wal.create(dir, META, opts);
    for (let i = 1; i <= 60; i++) {
      await wal.save({ term: 1, vote: 1n, commit: i - 1 }, [entry(i, 1, 100)]);
    }
    await wal.close();

    const files = await segmentFiles(dir);
    ok(files.length >= 6, `expected several segments, got ${files.length}`);
    const names = files.map((f) => parseSegmentName(f)!);
    names.forEach((n, i) => strictEqual(n.seq, i));
    for (let i = 1; i < names.length; i++) ok(names[i].firstIndex > names[i - 1].firstIndex);
    for (const f of files.slice(0, -1)) {
      const size = (await Deno.stat(`${dir}/${f}`)).size;
      ok(size < 1024 + 200, `${f} holds ${size} bytes: cut late`);
    }

    const { wal: again, state } = await Wal.open(dir, opts);
    deepStrictEqual(state.entries, entries(1, 60, 1, 100));
    deepStrictEqual(state.hardState, { term: 1, vote: 1n, commit: 59 });
    for (let i = 61; i <= 80; i++) await again.save(null, [entry(i, 1, 100)]);
    ok(again.segmentNames.length > files.length);
    await again.close();
    const last = await Wal.open(dir, opts);
    deepStrictEqual(last.state.entries, entries(1, 80, 1, 100));
    await last.wal.close();
  }));

Deno.test("releaseTo deletes whole segments before the index and replay still works", () =>
  withTempDir(async (dir) => {
    const opts = { maxSegmentBytes: 1024 };
    const wal = await Wal.create(dir, META, opts);
    for (let i = 1; i <= 100; i++) {
      await wal.save({ term: 2, vote: 3n, commit: i }, [entry(i, 2, 100)]);
    }
    const before = wal.segmentNames;

    // Without a snapshot mark nothing may go: every entry is still needed.
    await wal.releaseTo(60);
    deepStrictEqual(wal.segmentNames, before);

    await wal.saveSnapshot({ index: 60, term: 2 });
    await wal.releaseTo(60);
    const after = wal.segmentNames;
    ok(after.length < before.length, "some segments were released");
    deepStrictEqual(after, before.slice(before.length - after.length));
    deepStrictEqual(await segmentFiles(dir), after);
    const kept = after.map((f) => parseSegmentName(f)!);
    ok(kept[0].firstIndex <= 60, "the segment holding index 60 is kept");
    ok(kept[1].firstIndex > 60, "the segment before it was released");

    // releaseTo past the mark is capped at the mark.
    await wal.releaseTo(1000);
    const capped = wal.segmentNames.map((f) => parseSegmentName(f)!);
    ok(capped[0].firstIndex <= 61);
    await wal.close();

    const { wal: again, state } = await Wal.open(dir, opts);
    deepStrictEqual(state.snapshot, { index: 60, term: 2 });
    deepStrictEqual(state.entries, entries(61, 100, 2, 100));
    deepStrictEqual(state.hardState, { term: 2, vote: 3n, commit: 100 });
    await again.close();
  }));

Deno.test("released segments' hard state and mark survive in later segment heads", () =>
  withTempDir(async (dir) => {
    const opts = { maxSegmentBytes: 300 };
    const wal = await Wal.create(dir, META, opts);
    await wal.save({ term: 4, vote: 9n, commit: 3 }, entries(1, 3, 4, 100));
    await wal.saveSnapshot({ index: 3, term: 4 });
    // Only entries from now on: the hard state and mark live in the old segment and heads.
    for (let i = 4; i <= 12; i++) await wal.save(null, [entry(i, 4, 100)]);
    await wal.saveSnapshot({ index: 10, term: 4 });
    await wal.releaseTo(10);
    ok(!wal.segmentNames.includes("0000000000000000-0000000000000000.wal"));
    await wal.close();
    const { wal: again, state } = await Wal.open(dir, opts);
    deepStrictEqual(state.hardState, { term: 4, vote: 9n, commit: 3 });
    deepStrictEqual(state.snapshot, { index: 10, term: 4 });
    deepStrictEqual(state.entries, entries(11, 12, 4, 100));
    await again.close();
  }));

Deno.test("concurrent saves are queued and land in call order", () =>
  withTempDir(async (dir) => {
    const wal = await Wal.create(dir, META, { maxSegmentBytes: 2048 });
    const pending: Promise<void>[] = [];
    for (let i = 1; i <= 50; i++) {
      pending.push(wal.save({ term: 1, vote: 0n, commit: i }, [entry(i)]));
    }
    pending.push(wal.saveSnapshot({ index: 10, term: 1 }));
    pending.push(wal.releaseTo(10));
    await Promise.all(pending);
    await wal.close();
    const { wal: again, state } = await Wal.open(dir);
    deepStrictEqual(state.entries, entries(11, 50));
    deepStrictEqual(state.hardState, { term: 1, vote: 0n, commit: 50 });
    await again.close();
  }));

Deno.test("a second open of the same directory is refused while the first is open", () =>
  withTempDir(async (dir) => {
    const wal = await Wal.create(dir, META);
    await rejects(Wal.open(dir), WalLockedError);
    await wal.close();
    const { wal: again } = await Wal.open(dir);
    await again.close();
  }));

Deno.test("misuse is rejected", async (t) => {
  await t.step("operations after close", () =>
    withTempDir(async (dir) => {
      const wal = await Wal.create(dir, META);
      await wal.close();
      await wal.close();
      await rejects(wal.save(null, [entry(1)]), WalClosedError);
      await rejects(wal.saveSnapshot({ index: 1, term: 1 }), WalClosedError);
    }));
  await t.step(
    "an entry record over maxRecordBytes, leaving the log usable",
    () =>
      withTempDir(async (dir) => {
        const wal = await Wal.create(dir, META, { maxRecordBytes: 1024 });
        await rejects(wal.save(null, [entry(1, 1, 2000)]), WalRecordTooLargeError);
        await wal.save(null, [entry(1, 1, 500)]);
        await wal.close();
        const { wal: again, state } = await Wal.open(dir, { maxRecordBytes: 1024 });
        deepStrictEqual(state.entries, [entry(1, 1, 500)]);
        await again.close();
      }),
  );
  await t.step(
    "gaps, non-contiguous batches, entries behind the mark",
    () =>
      withTempDir(async (dir) => {
        const wal = await Wal.create(dir, META);
        await rejects(wal.save(null, [entry(2)]), AssertionError);
        await rejects(wal.save(null, [entry(1), entry(3)]), AssertionError);
        await wal.save(null, entries(1, 3));
        await wal.saveSnapshot({ index: 2, term: 1 });
        await rejects(wal.save(null, [entry(2, 2)]), AssertionError);
        await rejects(wal.saveSnapshot({ index: 1, term: 1 }), AssertionError);
        await wal.close();
      }),
  );
});

Deno.test("each save is one fdatasync, timed through observeSync", () =>
  withTempDir(async (dir) => {
    const seconds: number[] = [];
    const w = warnings();
    const wal = await Wal.create(dir, META, { observeSync: (s) => seconds.push(s), warn: w.warn });
    await wal.save({ term: 1, vote: 1n, commit: 0 }, entries(1, 100, 1, 300));
    await wal.save(null, []);
    await wal.saveSnapshot({ index: 50, term: 1 });
    strictEqual(seconds.length, 2);
    ok(seconds.every((s) => s >= 0));
    await wal.close();
  }));
