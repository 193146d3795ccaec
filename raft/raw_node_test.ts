import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { ProposalDroppedError, RawNode } from "./raw_node.ts";
import { ConfChangeType, type Ready } from "./types.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);

function newNode(
  restore?: Partial<ConstructorParameters<typeof RawNode>[1]>,
  config?: Partial<ConstructorParameters<typeof RawNode>[0]>,
): RawNode {
  let seed = 7;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  return new RawNode(
    { id: 1n, voters: [1n], electionTicks: 10, heartbeatTicks: 1, random, ...config },
    { hardState: null, marker: { index: 0, term: 0 }, entries: [], ...restore },
  );
}

/** Drives the node like the server loop: take every Ready, "persist" it, advance. */
function drain(node: RawNode, maxRounds = 10): Ready[] {
  const seen: Ready[] = [];
  for (let i = 0; i < maxRounds && node.hasReady(); i++) {
    const rd = node.ready();
    seen.push(rd);
    node.advance(rd);
  }
  strictEqual(node.hasReady(), false, "ready work left after draining");
  return seen;
}

function tickUntilLeader(node: RawNode): number {
  for (let t = 1; t <= 20; t++) {
    node.tick();
    if (node.role === "leader") return t;
  }
  throw new Error("no leader after 20 ticks (twice the election timeout)");
}

Deno.test("a single member elects itself within the randomised election timeout", () => {
  const node = newNode();
  strictEqual(node.role, "follower");
  const ticks = tickUntilLeader(node);
  strictEqual(ticks >= 10 && ticks < 20, true, `elected after ${ticks} ticks`);
  strictEqual(node.term, 1);
  strictEqual(node.lead, 1n);
  const rd = node.ready();
  deepStrictEqual(rd.hardState, { term: 1, vote: 1n, commit: 0 });
  deepStrictEqual(rd.entries.map((e) => [e.index, e.term, e.data.length]), [[1, 1, 0]]);
  strictEqual(rd.mustSync, true);
  deepStrictEqual(rd.softState, { lead: 1n, role: "leader" });
  strictEqual(rd.committedEntries.length, 0, "nothing commits before it is persisted");
});

Deno.test("entries commit only after they are persisted, then apply once", () => {
  const node = newNode();
  node.campaign();
  drain(node);
  strictEqual(node.log.committed, 1);
  strictEqual(node.log.applied, 1);

  const a = node.propose(utf8("a"));
  const b = node.propose(utf8("b"));
  deepStrictEqual([a, b], [2, 3]);
  const persist = node.ready();
  deepStrictEqual(persist.entries.map((e) => e.index), [2, 3]);
  deepStrictEqual(persist.committedEntries, []);
  node.advance(persist);
  const apply = node.ready();
  deepStrictEqual(apply.entries, []);
  deepStrictEqual(apply.committedEntries.map((e) => e.index), [2, 3]);
  deepStrictEqual(apply.hardState, { term: 1, vote: 1n, commit: 3 });
  strictEqual(apply.mustSync, false, "a commit index change alone needs no fsync");
  node.advance(apply);
  strictEqual(node.hasReady(), false);
});

Deno.test("proposals on a follower are dropped", () => {
  const node = newNode();
  throws(() => node.propose(utf8("x")), ProposalDroppedError);
});

Deno.test("read index waits for the leader's first commit in its term", () => {
  const node = newNode();
  node.campaign();
  const ctx = utf8("read-1");
  node.readIndex(ctx);
  deepStrictEqual(node.ready().readStates, [], "no read state before the term's entry commits");
  const rounds = drain(node);
  const reads = rounds.flatMap((rd) => rd.readStates);
  deepStrictEqual(reads, [{ index: 1, requestCtx: ctx }]);
  node.readIndex(utf8("read-2"));
  deepStrictEqual(node.ready().readStates.map((r) => r.index), [1]);
});

Deno.test("restart keeps the term, re-elects in a new term and skips applied entries", () => {
  const entries = [1, 2, 3].map((index) => ({ term: 1, index, type: 0, data: utf8(`e${index}`) }));
  const node = newNode({ hardState: { term: 1, vote: 1n, commit: 1 }, entries, applied: 2 });
  strictEqual(node.log.committed, 2, "commit restarts at the applied index");
  node.campaign();
  strictEqual(node.term, 2);
  const applied = drain(node).flatMap((rd) => rd.committedEntries.map((e) => e.index));
  deepStrictEqual(applied, [3, 4], "entry 3 commits with the new term's entry 4");
});

Deno.test("uncommitted proposals are bounded", () => {
  const node = newNode({}, { maxUncommittedEntries: 3 });
  node.campaign();
  drain(node);
  node.propose(utf8("1"));
  node.propose(utf8("2"));
  node.propose(utf8("3"));
  throws(() => node.propose(utf8("4")), /too many uncommitted entries/);
});

Deno.test("compactLog drops applied entries but keeps the tail", () => {
  const node = newNode();
  node.campaign();
  for (let i = 0; i < 10; i++) node.propose(utf8(`v${i}`));
  drain(node);
  node.compactLog(3);
  strictEqual(node.log.firstIndex(), node.log.applied - 3 + 1);
  strictEqual(node.log.heldEntries(), 3);
});

Deno.test("uncommitted proposal bytes are bounded, and freed by commit", () => {
  const node = newNode({}, { maxUncommittedBytes: 10 });
  node.campaign();
  drain(node);
  node.propose(new Uint8Array(6));
  throws(() => node.propose(new Uint8Array(6)), /too many uncommitted bytes/);
  drain(node);
  node.propose(new Uint8Array(6)); // the first one committed: room again
});

Deno.test("hasPeers: a lone voter has none; other voters or learners are peers", () => {
  strictEqual(newNode().hasPeers, false);
  strictEqual(newNode(undefined, { voters: [1n, 2n, 3n] }).hasPeers, true);
  strictEqual(newNode(undefined, { voters: [1n], learners: [2n] }).hasPeers, true);
  const grown = newNode();
  grown.applyConfChange({
    id: 1n,
    type: ConfChangeType.addLearnerNode,
    nodeId: 4n,
    context: new Uint8Array(),
  });
  strictEqual(grown.hasPeers, true);
});
