import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { newMessage } from "./message.ts";
import { ProposalDroppedError, RawNode } from "./raw_node.ts";
import { Network, utf8 } from "./testing/network.ts";
import { type Entry, type Message, MessageType } from "./types.ts";

const electionTicks = 10;

/** Entries 1..n with the given terms, each carrying a small payload. */
function entriesWithTerms(terms: number[]): Entry[] {
  return terms.map((term, i) => ({ term, index: i + 1, type: 0, data: utf8(`e${i + 1}t${term}`) }));
}

function logTerms(node: RawNode): number[] {
  const out: number[] = [];
  for (let i = node.log.firstIndex(); i <= node.log.lastIndex(); i++) out.push(node.log.term(i));
  return out;
}

Deno.test("entries replicate to every member and apply in the same order", () => {
  const net = new Network([1n, 2n, 3n], { seed: 1, electionTicks });
  net.elect(1n);
  const values = Array.from({ length: 20 }, (_, i) => `v${i}`);
  for (const v of values) net.propose(1n, v);
  net.stabilize();
  for (const m of net.members.values()) {
    deepStrictEqual(m.sm.values, values, `member ${m.id}`);
    strictEqual(m.node.log.committed, net.node(1n).log.lastIndex());
  }
  net.checkSafety();
});

Deno.test("a follower forwards proposals to the leader; with no leader it refuses", () => {
  const net = new Network([1n, 2n, 3n], { seed: 2, electionTicks });
  throws(() => net.propose(2n, "early"), (e) =>
    e instanceof ProposalDroppedError &&
    e.reason === "not leader");
  net.elect(1n);
  strictEqual(net.propose(2n, "via-2"), 0, "a forwarded proposal has no index yet");
  strictEqual(net.propose(3n, "via-3"), 0);
  net.stabilize();
  for (const m of net.members.values()) deepStrictEqual(m.sm.values, ["via-2", "via-3"]);
});

Deno.test("the leader sends before persisting, but its own copy counts only once durable", () => {
  const net = new Network([1n, 2n, 3n], { seed: 3, electionTicks });
  net.elect(1n);
  const leader = net.member(1n);
  net.isolate(3n);
  const index = leader.node.propose(utf8("x"));
  const rd = leader.node.ready();
  strictEqual(leader.node.role, "leader");
  strictEqual(rd.messages.some((m) => m.type === MessageType.app && m.to === 2n), true);
  net.inFlight.push(...rd.messages); // sent while the leader's disk write is in progress
  net.deliverAll();
  net.handleReady(2n); // 2 persists, then acknowledges
  net.deliverAll();
  strictEqual(leader.node.log.committed < index, true, "2's copy alone is not a quorum of 3");
  leader.storage.save(rd);
  leader.node.advance(rd);
  strictEqual(leader.node.log.committed, index, "durable on 1 and 2: committed");
  net.stabilize();
  deepStrictEqual(leader.sm.values, ["x"]);
});

Deno.test("committed entries are handed out only once durable on the member", () => {
  const net = new Network([1n, 2n, 3n], { seed: 4, electionTicks });
  net.elect(1n);
  net.propose(1n, "y");
  net.handleReady(1n);
  net.deliverAll();
  // Deliver the leader's next message (which carries the new commit index) before 2 has
  // persisted anything: nothing may be applied from an undurable log.
  const follower = net.node(2n);
  const first = follower.ready();
  strictEqual(first.entries.length, 1);
  strictEqual(first.committedEntries.length, 0);
  follower.step({ ...appFrom(1n, 2n, net.node(1n).term), commit: first.entries[0].index });
  strictEqual(follower.log.committed, first.entries[0].index, "commit index moved");
  strictEqual(follower.log.nextCommittedEntries().length, 0, "but nothing undurable applies");
  net.member(2n).storage.save(first);
  follower.advance(first);
  deepStrictEqual(follower.ready().committedEntries.map((e) => e.index), [first.entries[0].index]);
});

function appFrom(from: bigint, to: bigint, term: number): Message {
  return newMessage({ type: MessageType.heartbeat, from, to, term });
}

Deno.test("a lone voter's leader holds its messages until its term is durable", () => {
  const net = new Network([1n], { seed: 5, electionTicks, learners: [2n] });
  const node = net.node(1n);
  node.campaign();
  strictEqual(node.role, "leader");
  const first = node.ready();
  deepStrictEqual(first.messages, [], "a crash now could re-run this term with other entries");
  strictEqual(first.mustSync, true);
  net.member(1n).storage.save(first);
  node.advance(first);
  const second = node.ready();
  strictEqual(second.messages.some((m) => m.type === MessageType.app && m.to === 2n), true);
  net.stabilize(); // handles that same Ready, then the rest
  net.propose(1n, "z");
  net.stabilize();
  deepStrictEqual(net.member(2n).sm.values, ["z"], "the learner receives the log");
});

Deno.test("a conflicting follower log is repaired with one rejected round trip per term gap", () => {
  const net = new Network([1n, 2n, 3n], { seed: 6, electionTicks, bootstrap: "config" });
  // Raft paper figure 7, roughly: the leader's log by term, and a follower that kept a long
  // tail of entries from terms 2 and 3 that never committed.
  const leaderTerms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
  const staleTerms = [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3];
  net.member(1n).load({ term: 6, vote: 0n, commit: 3 }, entriesWithTerms(leaderTerms));
  net.member(2n).load({ term: 6, vote: 0n, commit: 3 }, entriesWithTerms(leaderTerms));
  net.member(3n).load({ term: 6, vote: 0n, commit: 3 }, entriesWithTerms(staleTerms));
  for (const id of [1n, 2n, 3n]) net.restart(id);
  net.stabilize();
  let rejections = 0;
  net.onDeliver = (m) => {
    if (m.type === MessageType.appResp && m.from === 3n && m.reject) rejections++;
  };
  net.elect(1n);
  net.stabilize();
  // Naive backtracking would reject once per index from 10 down to 4 (7 round trips).
  strictEqual(rejections, 1, "the hint skipped every term-3 and term-2 entry at once");
  deepStrictEqual(logTerms(net.node(3n)), logTerms(net.node(1n)));
  strictEqual(net.node(3n).log.lastIndex(), 11, "the stale tail (up to 20) was truncated");
  deepStrictEqual(
    net.member(3n).storage.entries.map((e) => e.term),
    [...leaderTerms, 7],
    "the follower's disk was rewritten from the first conflict",
  );
  net.checkSafety();
});

Deno.test("a follower missing many entries is caught up with one rejection", () => {
  const net = new Network([1n, 2n, 3n], { seed: 7, electionTicks, bootstrap: "config" });
  const terms = Array.from({ length: 50 }, (_, i) => 1 + Math.floor(i / 10));
  net.member(1n).load({ term: 5, vote: 0n, commit: 5 }, entriesWithTerms(terms));
  net.member(2n).load({ term: 5, vote: 0n, commit: 5 }, entriesWithTerms(terms));
  net.member(3n).load({ term: 1, vote: 0n, commit: 5 }, entriesWithTerms(terms.slice(0, 5)));
  for (const id of [1n, 2n, 3n]) net.restart(id);
  let rejections = 0;
  net.onDeliver = (m) => {
    if (m.type === MessageType.appResp && m.from === 3n && m.reject) rejections++;
  };
  net.elect(1n);
  net.stabilize();
  strictEqual(rejections, 1, "the hint names the follower's last index");
  strictEqual(net.node(3n).log.lastIndex(), 51);
  deepStrictEqual(net.member(3n).sm.values.length, 50);
});

Deno.test("Figure 8: an old-term entry on a majority is not committed by counting", () => {
  const ids = [1n, 2n, 3n, 4n, 5n];
  const net = new Network(ids, {
    seed: 8,
    electionTicks,
    bootstrap: "config",
    preVote: false,
    checkQuorum: false, // no lease: S5 may win as soon as S1 is gone, as in the paper
    maxSizePerMsgBytes: 1, // one entry per append: the test decides how far each one goes
  });
  const e1 = { term: 1, index: 1, type: 0, data: utf8("one") };
  net.member(1n).load({ term: 3, vote: 0n, commit: 1 }, [e1, { ...e1, term: 2, index: 2 }]);
  net.member(2n).load({ term: 3, vote: 0n, commit: 1 }, [e1, { ...e1, term: 2, index: 2 }]);
  net.member(3n).load({ term: 3, vote: 0n, commit: 1 }, [e1]);
  net.member(4n).load({ term: 3, vote: 0n, commit: 1 }, [e1]);
  net.member(5n).load({ term: 3, vote: 0n, commit: 1 }, [e1, { ...e1, term: 3, index: 2 }]);
  for (const id of ids) net.restart(id);
  // S1 wins term 4 (votes of S2, S3, S4) and gets its term-2 entry onto S3: a majority
  // (S1, S2, S3) holds index 2, but its own term-4 entry reaches nobody.
  net.rewrite = (m) =>
    m.type === MessageType.app ? { ...m, entries: m.entries.filter((e) => e.term < 4) } : m;
  const cut = net.addFilter((m) => m.from === 1n && (m.to === 4n || m.to === 5n));
  net.elect(1n);
  strictEqual(net.node(1n).term, 4);
  net.stabilize();
  strictEqual(net.node(3n).log.term(2), 2, "S3 now holds the term-2 entry");
  const s1 = net.node(1n).status();
  strictEqual(s1.progress.get(2n)?.match, 2);
  strictEqual(s1.progress.get(3n)?.match, 2);
  strictEqual(s1.commit, 1, "index 2 is on a majority, but not of the current term (§5.4.2)");
  // S1 crashes; S5 (last term 3) wins term 5 and overwrites index 2 everywhere: had S1
  // committed it, a committed entry would now be lost.
  net.crash(1n);
  cut();
  net.rewrite = null;
  net.node(5n).campaign(); // term 4: S2 and S3 voted for S1 already
  net.stabilize();
  net.node(5n).campaign(); // term 5: S2, S3 and S4 vote for S5's later last term
  net.stabilize();
  strictEqual(net.node(5n).role, "leader");
  strictEqual(net.node(5n).term, 5);
  net.tick();
  for (const id of [2n, 3n, 4n, 5n]) strictEqual(net.node(id).log.term(2), 3, `member ${id}`);
  net.restart(1n);
  for (let i = 0; i < 3; i++) net.tick();
  strictEqual(net.node(1n).log.term(2), 3, "S1's uncommitted entry was replaced");
  net.checkSafety();
});

Deno.test("the leader commits an old-term entry once one of its own term commits", () => {
  const net = new Network([1n, 2n, 3n], { seed: 9, electionTicks, bootstrap: "config" });
  const e = entriesWithTerms([1, 2]);
  for (const id of [1n, 2n]) net.member(id).load({ term: 2, vote: 0n, commit: 1 }, e);
  net.member(3n).load({ term: 2, vote: 0n, commit: 1 }, e.slice(0, 1));
  for (const id of [1n, 2n, 3n]) net.restart(id);
  net.elect(1n);
  net.stabilize();
  strictEqual(net.node(1n).log.committed, 3, "entry 2 (term 2) committed with entry 3 (term 3)");
  for (const m of net.members.values()) deepStrictEqual(m.sm.values, ["e1t1", "e2t2"]);
});

Deno.test("appends in flight to one follower are bounded by maxInflightMsgs", () => {
  const net = new Network([1n, 2n, 3n], {
    seed: 10,
    electionTicks,
    maxInflightMsgs: 4,
    maxSizePerMsgBytes: 1,
  });
  net.elect(1n);
  strictEqual(net.node(1n).status().progress.get(3n)?.state, "replicate");
  const heal = net.addFilter((m) => m.from === 3n && m.type === MessageType.appResp);
  let appsTo3 = 0;
  net.onDeliver = (m) => {
    if (m.type === MessageType.app && m.to === 3n && m.entries.length > 0) appsTo3++;
  };
  for (let i = 0; i < 20; i++) net.propose(1n, `v${i}`);
  net.stabilize();
  strictEqual(appsTo3, 4, "no more than 4 appends without an acknowledgement");
  const pr = net.node(1n).status().progress.get(3n);
  strictEqual(pr?.inflight, 4);
  deepStrictEqual(net.member(2n).sm.values.length, 20, "the other follower is not held back");
  // Each heartbeat response frees one slot: a lost acknowledgement cannot stall forever.
  net.tick();
  strictEqual(appsTo3, 5);
  heal();
  for (let i = 0; i < 3; i++) net.tick();
  deepStrictEqual(net.member(3n).sm.values.length, 20);
});

Deno.test("maxSizePerMsgBytes bounds the entry bytes of each append", () => {
  const net = new Network([1n, 2n, 3n], { seed: 11, electionTicks, maxSizePerMsgBytes: 100 });
  net.elect(1n);
  let appends = 0;
  net.onDeliver = (m) => {
    if (m.type !== MessageType.app || m.entries.length === 0) return;
    appends++;
    const bytes = m.entries.reduce((n, e) => n + e.data.length, 0);
    strictEqual(bytes <= 100, true, `an append carried ${bytes} bytes`);
  };
  for (let i = 0; i < 10; i++) net.node(1n).propose(new Uint8Array(40).fill(i));
  net.stabilize();
  strictEqual(appends, 10, "5 appends of two 40-byte entries per follower");
  strictEqual(net.member(3n).sm.values.length, 10);
});

Deno.test("uncommitted entries and bytes are bounded on a leader without a quorum", () => {
  const net = new Network([1n, 2n, 3n], {
    seed: 12,
    electionTicks,
    maxUncommittedEntries: 5,
    maxUncommittedBytes: 64,
  });
  net.elect(1n);
  const heal = net.isolate(1n);
  for (let i = 0; i < 5; i++) net.propose(1n, `e${i}`);
  throws(() => net.propose(1n, "e5"), /too many uncommitted entries/);
  heal();
  net.tick();
  strictEqual(net.member(1n).sm.values.length, 5);
  net.propose(1n, "after");
  net.stabilize();
  const heal2 = net.isolate(1n);
  net.node(1n).propose(new Uint8Array(60));
  throws(() => net.node(1n).propose(new Uint8Array(10)), /too many uncommitted bytes/);
  heal2();
  net.tick();
  net.node(1n).propose(new Uint8Array(10));
});

Deno.test("proposals forwarded by a follower are bounded until its Ready is taken", () => {
  const net = new Network([1n, 2n, 3n], { seed: 13, electionTicks, maxUncommittedEntries: 3 });
  net.elect(1n);
  for (let i = 0; i < 3; i++) net.propose(2n, `f${i}`);
  throws(() => net.propose(2n, "f3"), /too many uncommitted entries/);
  net.stabilize();
  net.propose(2n, "f3");
  net.stabilize();
  deepStrictEqual(net.member(1n).sm.values, ["f0", "f1", "f2", "f3"]);
});

Deno.test("heartbeats carry commit = min(match, committed)", () => {
  const net = new Network([1n, 2n, 3n], { seed: 14, electionTicks });
  net.elect(1n);
  const heal = net.addFilter((m) => m.type === MessageType.app && m.to === 3n);
  net.propose(1n, "a");
  net.propose(1n, "b");
  net.stabilize();
  const match3 = net.node(1n).status().progress.get(3n)!.match;
  strictEqual(net.node(1n).log.committed > match3, true);
  const commits: number[] = [];
  net.onDeliver = (m) => {
    if (m.type === MessageType.heartbeat && m.to === 3n) commits.push(m.commit);
  };
  net.tick();
  deepStrictEqual(commits, [match3], "never past what 3 holds in agreement with the leader");
  heal();
  net.tick();
  deepStrictEqual(net.member(3n).sm.values, ["a", "b"]);
});

Deno.test("a deposed leader learns the new term from a follower's answer and steps down", () => {
  const net = new Network([1n, 2n, 3n], { seed: 15, electionTicks, checkQuorum: false });
  net.elect(1n);
  const heal = net.isolate(1n);
  net.tickUntil(() => net.node(2n).role === "leader" || net.node(3n).role === "leader", 50);
  strictEqual(net.node(1n).role, "leader", "isolated and without check-quorum, it still leads");
  heal();
  net.tick([1n]); // its heartbeats reach members of a higher term, whose answers depose it
  strictEqual(net.node(1n).role, "follower");
  strictEqual(net.node(1n).term, net.leader()!.node.term);
});

Deno.test("stale and foreign messages are ignored", () => {
  const net = new Network([1n, 2n, 3n], { seed: 16, electionTicks });
  net.elect(1n);
  net.propose(1n, "a");
  net.stabilize();
  const node = net.node(2n);
  const before = node.status();
  node.step({ ...appFrom(3n, 2n, before.term - 1), type: MessageType.app, index: 0, commit: 99 });
  node.step({ ...appFrom(1n, 9n, before.term), commit: 99 }); // addressed to another member
  strictEqual(node.status().commit, before.commit);
  strictEqual(node.status().term, before.term);
});

Deno.test("reportUnreachable drops a replicating follower back to probing", () => {
  const net = new Network([1n, 2n, 3n], { seed: 17, electionTicks });
  net.elect(1n);
  const leader = net.node(1n);
  strictEqual(leader.status().progress.get(2n)?.state, "replicate");
  leader.reportUnreachable(2n);
  const pr = leader.status().progress.get(2n)!;
  strictEqual(pr.state, "probe");
  strictEqual(pr.next, pr.match + 1);
  net.propose(1n, "a");
  net.stabilize();
  strictEqual(leader.status().progress.get(2n)?.state, "replicate", "its answer restores it");
  deepStrictEqual(net.member(2n).sm.values, ["a"]);
});

Deno.test("status reports the member, and the leader's view of every member", () => {
  const net = new Network([1n, 2n], { seed: 18, electionTicks, learners: [3n] });
  net.elect(1n);
  net.propose(1n, "a");
  net.stabilize();
  const s = net.node(1n).status();
  strictEqual(s.id, 1n);
  strictEqual(s.role, "leader");
  strictEqual(s.lead, 1n);
  strictEqual(s.vote, 1n);
  strictEqual(s.commit, s.applied);
  deepStrictEqual(s.confState, { voters: [1n, 2n], learners: [3n] });
  deepStrictEqual([...s.progress.keys()].sort(), [1n, 2n, 3n]);
  for (const pr of s.progress.values()) {
    strictEqual(pr.match, s.commit);
    strictEqual(pr.next, s.commit + 1);
    strictEqual(pr.state, "replicate");
  }
  strictEqual(s.progress.get(3n)?.isLearner, true);
  strictEqual(net.node(2n).status().progress.size, 0, "followers track no progress");
});
