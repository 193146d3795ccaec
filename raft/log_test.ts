import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { LogCompactedError, RaftLog } from "./log.ts";
import type { Entry } from "./types.ts";

function entries(from: number, terms: number[]): Entry[] {
  return terms.map((term, i) => ({ term, index: from + i, type: 0, data: new Uint8Array(i + 1) }));
}

function termsOf(log: RaftLog): number[] {
  const out: number[] = [];
  for (let i = log.firstIndex(); i <= log.lastIndex(); i++) out.push(log.term(i));
  return out;
}

Deno.test("findConflict names the first missing or different entry", () => {
  const log = new RaftLog({ index: 0, term: 0 }, entries(1, [1, 1, 2, 3]), 0);
  strictEqual(log.findConflict(entries(2, [1, 2])), 0, "all held");
  strictEqual(log.findConflict(entries(3, [2, 3, 3])), 5, "new entries after the end");
  strictEqual(log.findConflict(entries(3, [2, 4])), 4, "a different term");
  strictEqual(log.findConflict([]), 0);
});

Deno.test("findConflictByTerm skips back over every entry of a later term", () => {
  const log = new RaftLog({ index: 2, term: 1 }, entries(3, [1, 4, 4, 5, 5, 6, 6, 6]), 0);
  strictEqual(log.findConflictByTerm(10, 6), 10);
  strictEqual(log.findConflictByTerm(10, 5), 7);
  strictEqual(log.findConflictByTerm(10, 3), 3);
  strictEqual(log.findConflictByTerm(10, 0), 2, "stops at the marker");
  strictEqual(log.findConflictByTerm(99, 6), 10, "clamped to the last index");
});

Deno.test("truncateAndAppend replaces a conflicting suffix and un-stables it", () => {
  const log = new RaftLog({ index: 0, term: 0 }, entries(1, [1, 1, 2, 2, 2]), 1);
  strictEqual(log.stable, 5);
  log.truncateAndAppend(entries(3, [2, 3, 3]));
  deepStrictEqual(termsOf(log), [1, 1, 2, 3, 3]);
  strictEqual(log.stable, 3, "entries 4 and 5 were replaced, so not durable any more");
  deepStrictEqual(log.unstableEntries().map((e) => e.index), [4, 5]);
  log.truncateAndAppend(entries(2, [1, 2])); // already held: no change
  deepStrictEqual(termsOf(log), [1, 1, 2, 3, 3]);
  throws(() => log.truncateAndAppend(entries(1, [9])), /conflicts with committed/);
});

Deno.test("stableTo ignores a Ready whose entries were replaced meanwhile", () => {
  const log = new RaftLog({ index: 0, term: 0 }, [], 0);
  log.append(entries(1, [1, 1, 1]));
  log.truncateAndAppend(entries(3, [2]));
  log.stableTo(3, 1); // the Ready carried entry 3 of term 1
  strictEqual(log.stable, 0);
  log.stableTo(3, 2);
  strictEqual(log.stable, 3);
});

Deno.test("entriesFrom cuts by bytes but always returns at least one entry", () => {
  const log = new RaftLog({ index: 0, term: 0 }, entries(1, [1, 1, 1, 1]), 0); // 1..4 bytes
  deepStrictEqual(log.entriesFrom(1, 3).map((e) => e.index), [1, 2]);
  deepStrictEqual(log.entriesFrom(4, 1).map((e) => e.index), [4], "oversized, sent alone");
  deepStrictEqual(log.entriesFrom(5, 100), []);
  log.applied = 0;
  log.commitTo(2);
  log.appliedTo(2);
  log.compactTo(2);
  throws(() => log.entriesFrom(2, 100), LogCompactedError);
});

Deno.test("committed entries are handed out only when also stable", () => {
  const log = new RaftLog({ index: 0, term: 0 }, entries(1, [1]), 0);
  log.append(entries(2, [1, 1]));
  log.commitTo(3);
  deepStrictEqual(log.nextCommittedEntries().map((e) => e.index), [1]);
  log.stableTo(3, 1);
  deepStrictEqual(log.nextCommittedEntries().map((e) => e.index), [1, 2, 3]);
  throws(() => log.appliedTo(4), /outside/);
});

Deno.test("restore restarts the log at a snapshot; applied catches up on install", () => {
  const log = new RaftLog({ index: 0, term: 0 }, entries(1, [1, 1]), 1);
  log.applied = 1;
  log.append(entries(3, [2]));
  log.restore({ index: 10, term: 3 });
  strictEqual(log.firstIndex(), 11);
  strictEqual(log.lastIndex(), 10);
  strictEqual(log.lastTerm(), 3);
  strictEqual(log.committed, 10);
  strictEqual(log.applied, 1);
  deepStrictEqual(log.nextCommittedEntries(), [], "nothing applies before the snapshot");
  log.append(entries(11, [3]));
  log.snapshotInstalled(10);
  strictEqual(log.applied, 10);
  strictEqual(log.isUpToDate(11, 3), true);
  strictEqual(log.isUpToDate(12, 2), false, "a lower last term loses even if longer");
});
