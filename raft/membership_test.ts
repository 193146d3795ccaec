import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { RawNode } from "./raw_node.ts";
import { encodeConfChange, Network } from "./testing/network.ts";
import { ConfChangeType, EntryType, MessageType } from "./types.ts";

const electionTicks = 10;

function applyAll(net: Network): void {
  for (let i = 0; i < 3; i++) net.tick();
}

Deno.test("adding a voter raises the quorum; removing one lowers it", () => {
  const net = new Network([1n, 2n, 3n], { seed: 1, electionTicks });
  net.elect(1n);
  net.addJoiningMember(4n);
  net.proposeConfChange(1n, ConfChangeType.addNode, 4n);
  applyAll(net);
  deepStrictEqual(net.node(1n).status().confState.voters, [1n, 2n, 3n, 4n]);
  deepStrictEqual(net.node(4n).status().confState.voters, [1n, 2n, 3n, 4n]);
  // Two of four is not a quorum any more.
  net.crash(3n);
  net.crash(4n);
  const stuck = net.propose(1n, "needs-three");
  applyAll(net);
  strictEqual(net.node(1n).log.committed < stuck, true, "2 of 4 voters cannot commit");
  net.restart(4n);
  applyAll(net);
  strictEqual(net.node(1n).log.committed >= stuck, true, "3 of 4 can");
  net.proposeConfChange(1n, ConfChangeType.removeNode, 4n);
  applyAll(net);
  deepStrictEqual(net.node(1n).status().confState.voters, [1n, 2n, 3n]);
  net.crash(4n);
  const ok = net.propose(1n, "two-of-three");
  applyAll(net);
  strictEqual(net.node(1n).log.committed >= ok, true, "2 of 3 voters commit again");
  deepStrictEqual(net.member(2n).sm.values, ["needs-three", "two-of-three"]);
  net.checkSafety();
});

Deno.test("a leader that applies its own removal steps down and the rest elect a leader", () => {
  const net = new Network([1n, 2n, 3n], { seed: 2, electionTicks });
  net.elect(1n);
  net.proposeConfChange(1n, ConfChangeType.removeNode, 1n);
  net.stabilize();
  strictEqual(net.node(1n).role, "follower", "stepped down when it applied the removal");
  for (const id of [2n, 3n]) {
    deepStrictEqual(net.node(id).status().confState.voters, [2n, 3n], `member ${id} applied it`);
  }
  net.tickUntil(() => net.leader() !== null, 5 * electionTicks);
  const leader = net.leader()!;
  strictEqual(leader.id === 2n || leader.id === 3n, true);
  net.propose(leader.id, "after");
  net.stabilize();
  strictEqual(net.member(leader.id === 2n ? 3n : 2n).sm.values.at(-1), "after");
  for (let i = 0; i < 3 * electionTicks; i++) net.tick();
  strictEqual(net.node(1n).role, "follower", "the removed member never campaigns");
  net.checkSafety();
});

Deno.test("learners receive the log but never count toward a commit; promotion counts", () => {
  const net = new Network([1n, 2n], { seed: 3, electionTicks, learners: [3n] });
  net.elect(1n);
  net.crash(2n);
  const index = net.propose(1n, "x");
  applyAll(net);
  strictEqual(net.node(1n).log.committed < index, true, "the learner's copy is not a quorum");
  strictEqual(net.node(3n).log.lastIndex() >= index, true, "but the learner holds the entry");
  net.restart(2n);
  applyAll(net);
  deepStrictEqual(net.member(3n).sm.values, ["x"]);
  // Promote the learner: now {1, 3} is a quorum of three.
  net.proposeConfChange(1n, ConfChangeType.addNode, 3n);
  applyAll(net);
  strictEqual(net.node(3n).isLearner, false);
  deepStrictEqual(net.node(1n).status().confState, { voters: [1n, 2n, 3n], learners: [] });
  net.crash(2n);
  const y = net.propose(1n, "y");
  applyAll(net);
  strictEqual(net.node(1n).log.committed >= y, true);
});

Deno.test("a voter demoted to learner stops counting", () => {
  const net = new Network([1n, 2n, 3n], { seed: 4, electionTicks });
  net.elect(1n);
  net.proposeConfChange(1n, ConfChangeType.addLearnerNode, 3n);
  applyAll(net);
  deepStrictEqual(net.node(1n).status().confState, { voters: [1n, 2n], learners: [3n] });
  net.crash(2n);
  const index = net.propose(1n, "x");
  applyAll(net);
  strictEqual(net.node(1n).log.committed < index, true, "{1} of {1, 2} is no quorum");
  strictEqual(net.node(1n).status().progress.get(3n)?.isLearner, true);
});

Deno.test("only one conf change may be pending at a time", () => {
  const net = new Network([1n, 2n, 3n], { seed: 5, electionTicks });
  net.elect(1n);
  net.addJoiningMember(4n);
  net.addJoiningMember(5n);
  net.proposeConfChange(1n, ConfChangeType.addLearnerNode, 4n);
  throws(
    () => net.proposeConfChange(1n, ConfChangeType.addLearnerNode, 5n),
    /conf change pending/,
  );
  net.propose(1n, "normal entries are still welcome");
  net.stabilize();
  net.proposeConfChange(1n, ConfChangeType.addLearnerNode, 5n);
  net.stabilize();
  deepStrictEqual(net.node(1n).status().confState.learners, [4n, 5n]);
});

Deno.test("a new leader takes no conf change before its predecessors' entries apply", () => {
  const net = new Network([1n, 2n, 3n], { seed: 6, electionTicks, checkQuorum: false });
  net.elect(1n);
  // "x" reaches 2 and 3 but never commits: the answers to 1 are lost, then 1 crashes.
  const lost = net.addFilter((m) => m.type === MessageType.appResp && m.to === 1n);
  net.propose(1n, "x");
  net.stabilize();
  net.crash(1n);
  lost();
  const mute = net.addFilter((m) => m.type === MessageType.app && m.from === 2n);
  net.elect(2n);
  throws(() => net.proposeConfChange(2n, ConfChangeType.removeNode, 1n), /conf change pending/);
  mute();
  net.tick();
  deepStrictEqual(net.member(2n).sm.values, ["x"]);
  net.proposeConfChange(2n, ConfChangeType.removeNode, 1n);
  net.stabilize();
  deepStrictEqual(net.node(3n).status().confState.voters, [2n, 3n]);
});

Deno.test("a member does not campaign while a committed conf change is unapplied", () => {
  const cc = encodeConfChange({
    id: 1n,
    type: ConfChangeType.addNode,
    nodeId: 2n,
    context: new Uint8Array(),
  });
  const node = new RawNode(
    { id: 1n, voters: [1n], electionTicks, heartbeatTicks: 1, random: () => 0 },
    {
      hardState: { term: 1, vote: 0n, commit: 1 },
      marker: { index: 0, term: 0 },
      entries: [{ term: 1, index: 1, type: EntryType.confChange, data: cc }],
    },
  );
  node.campaign();
  strictEqual(node.role, "follower", "voters may change once entry 1 applies");
  const rd = node.ready();
  deepStrictEqual(rd.committedEntries.map((e) => e.index), [1]);
  node.applyConfChange({ id: 1n, type: ConfChangeType.addNode, nodeId: 2n, context: cc });
  node.advance(rd);
  node.campaign();
  strictEqual(node.role, "preCandidate", "now it asks 2 for a pre-vote");
});

Deno.test("updateNode changes nothing in raft; nodeId 0 is a no-op", () => {
  const net = new Network([1n, 2n, 3n], { seed: 7, electionTicks });
  net.elect(1n);
  const before = net.node(1n).status().confState;
  net.proposeConfChange(1n, ConfChangeType.updateNode, 2n);
  applyAll(net);
  net.proposeConfChange(1n, ConfChangeType.addNode, 0n);
  applyAll(net);
  deepStrictEqual(net.node(1n).status().confState, before);
});

Deno.test("a member joining with no configuration is started by a snapshot, not by replay", () => {
  for (const autoSnapshot of [true, false]) {
    // The founders' configuration lives in their config, not in the log: replaying the log
    // from index 1 would give the joiner a configuration of just the later changes.
    const net = new Network([1n, 2n, 3n], {
      seed: 8,
      electionTicks,
      bootstrap: "config",
      autoSnapshot,
    });
    net.elect(1n);
    net.propose(1n, "a");
    net.stabilize();
    net.addJoiningMember(4n);
    net.proposeConfChange(1n, ConfChangeType.addNode, 4n);
    for (let i = 0; i < 3 * electionTicks; i++) net.tick();
    const joiner = net.member(4n);
    if (autoSnapshot) {
      strictEqual(net.delivered.get("snap"), 1);
      deepStrictEqual(joiner.sm.confState.voters, [1n, 2n, 3n, 4n]);
      deepStrictEqual(joiner.sm.values, ["a"]);
    } else {
      strictEqual(net.node(1n).needsSnapshot, true, "the leader asks the server for one");
      deepStrictEqual(joiner.sm.confState, { voters: [], learners: [] }, "it replayed nothing");
      strictEqual(joiner.node.role, "follower", "and never campaigned");
      strictEqual(joiner.node.log.lastIndex(), 0);
    }
    net.checkSafety();
  }
});
