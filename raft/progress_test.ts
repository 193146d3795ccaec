import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { Inflights, Progress, ProgressTracker } from "./progress.ts";
import { ReadOnly } from "./read_only.ts";

Deno.test("inflights: a bounded ring freed by acknowledgements", () => {
  const inflights = new Inflights(3);
  for (let round = 0; round < 4; round++) { // wraps around the ring several times
    const base = round * 10;
    inflights.add(base + 1);
    inflights.add(base + 2);
    inflights.add(base + 3);
    strictEqual(inflights.full(), true);
    throws(() => inflights.add(base + 4), /full/);
    inflights.freeLE(base + 2);
    strictEqual(inflights.count, 1);
    inflights.freeFirstOne();
    strictEqual(inflights.count, 0);
  }
  inflights.add(50);
  inflights.add(51);
  inflights.freeLE(10); // stale
  strictEqual(inflights.count, 2);
  inflights.reset();
  strictEqual(inflights.count, 0);
});

Deno.test("progress: probe pauses after one append, replicate after the window fills", () => {
  const pr = new Progress(11, false, 2);
  strictEqual(pr.state, "probe");
  strictEqual(pr.isPaused(), false);
  pr.probeSent = true;
  strictEqual(pr.isPaused(), true);
  strictEqual(pr.maybeUpdate(10), true);
  strictEqual(pr.isPaused(), false, "an acknowledgement resumes a probe");
  pr.becomeReplicate();
  strictEqual(pr.next, 11);
  pr.optimisticUpdate(12);
  pr.inflights.add(12);
  pr.optimisticUpdate(14);
  pr.inflights.add(14);
  strictEqual(pr.isPaused(), true);
  strictEqual(pr.maybeUpdate(12), true);
  pr.inflights.freeLE(12);
  strictEqual(pr.isPaused(), false);
  strictEqual(pr.maybeUpdate(11), false, "stale");
});

Deno.test("progress: rejections move next back, stale ones are ignored", () => {
  const pr = new Progress(20, false, 4);
  strictEqual(pr.maybeDecreaseTo(15, 10), false, "probe: only the latest probe (19) counts");
  strictEqual(pr.maybeDecreaseTo(19, 10), true);
  strictEqual(pr.next, 11);
  pr.maybeUpdate(12);
  pr.becomeReplicate();
  pr.optimisticUpdate(18);
  strictEqual(pr.maybeDecreaseTo(12, 5), false, "at or below match: stale");
  strictEqual(pr.maybeDecreaseTo(15, 5), true);
  strictEqual(pr.next, 13, "replicate falls back to match + 1");
  pr.becomeSnapshot(30);
  strictEqual(pr.isPaused(), true);
  pr.becomeProbe();
  strictEqual(pr.next, 31, "after a snapshot, probe just past it");
});

Deno.test("tracker: quorum commit index ignores learners", () => {
  const t = new ProgressTracker({ voters: [1n, 2n, 3n], learners: [4n] }, 1, 8);
  const set = (id: bigint, match: number) => (t.progress.get(id)!.match = match);
  set(1n, 10);
  set(2n, 3);
  set(3n, 2);
  set(4n, 9);
  strictEqual(t.committedIndex(), 3, "the learner's 9 does not count");
  t.addVoter(4n, 1); // promote: its progress is kept
  t.remove(3n);
  strictEqual(t.committedIndex(), 9, "voters 1, 2, 4: the second largest of 10, 9, 3");
});

Deno.test("tracker: votes, promotions and removals", () => {
  const t = new ProgressTracker({ voters: [1n, 2n, 3n], learners: [] }, 1, 8);
  t.recordVote(1n, true);
  strictEqual(t.tallyVotes(), "pending");
  t.recordVote(2n, false);
  t.recordVote(2n, true); // only the first answer counts
  strictEqual(t.tallyVotes(), "pending");
  t.recordVote(9n, true); // not a voter
  strictEqual(t.tallyVotes(), "pending");
  t.recordVote(3n, false);
  strictEqual(t.tallyVotes(), "lost");
  t.addLearner(3n, 1);
  deepStrictEqual(t.confState(), { voters: [1n, 2n], learners: [3n] });
  strictEqual(t.quorum(), 2);
  t.remove(2n);
  deepStrictEqual(t.confState(), { voters: [1n], learners: [3n] });
  strictEqual(t.progress.has(2n), false);
});

Deno.test("tracker: quorumActive counts self and clears the flags", () => {
  const t = new ProgressTracker({ voters: [1n, 2n, 3n], learners: [4n] }, 1, 8);
  for (const pr of t.progress.values()) pr.recentActive = false;
  t.progress.get(4n)!.recentActive = true;
  strictEqual(t.quorumActive(1n), false, "a learner's activity does not count");
  t.progress.get(2n)!.recentActive = true;
  strictEqual(t.quorumActive(1n), true);
  strictEqual(t.progress.get(2n)!.recentActive, false, "cleared for the next round");
  strictEqual(t.progress.get(1n)!.recentActive, true);
});

Deno.test("read-only queue: acknowledgements release in order, bounded", () => {
  const ro = new ReadOnly(3);
  const ctx = (s: string) => new TextEncoder().encode(s);
  strictEqual(ro.add(5, ctx("a"), 1n), true);
  strictEqual(ro.add(5, ctx("a"), 1n), false, "a retry is not queued twice");
  ro.add(6, ctx("b"), 2n);
  ro.add(7, ctx("c"), 1n);
  strictEqual(ro.full(), true);
  throws(() => ro.add(8, ctx("d"), 1n), /full/);
  deepStrictEqual(ro.lastPendingCtx(), ctx("c"));
  deepStrictEqual([...ro.recvAck(3n, ctx("b"))!], [3n]);
  strictEqual(ro.recvAck(3n, ctx("zzz")), null);
  const released = ro.advance(ctx("b"));
  deepStrictEqual(released.map((r) => [r.index, r.from]), [[5, 1n], [6, 2n]]);
  strictEqual(ro.size, 1);
  ro.reset();
  strictEqual(ro.size, 0);
  strictEqual(ro.lastPendingCtx(), null);
});
