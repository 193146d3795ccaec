import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { newMessage } from "./message.ts";
import { Network, utf8 } from "./testing/network.ts";
import { ConfChangeType, MessageType } from "./types.ts";

const electionTicks = 10;

/** A 3-member cluster whose member 3 missed 20 entries that the leader then compacted. */
function lagging(seed: number): Network {
  const net = new Network([1n, 2n, 3n], { seed, electionTicks });
  net.elect(1n);
  net.propose(1n, "before");
  net.stabilize();
  net.crash(3n);
  for (let i = 0; i < 20; i++) net.propose(1n, `v${i}`);
  net.stabilize();
  const snap = net.snapshotAndCompact(1n, 2);
  strictEqual(snap.metadata.index, net.node(1n).log.applied);
  strictEqual(net.node(1n).log.firstIndex(), snap.metadata.index - 1, "kept 2 entries");
  return net;
}

Deno.test("a follower whose next entry was compacted catches up from the leader's snapshot", () => {
  const net = lagging(1);
  const snapIndex = net.node(1n).snapshot!.metadata.index;
  let snaps = 0;
  net.onDeliver = (m) => {
    if (m.type === MessageType.snap) snaps++;
  };
  net.restart(3n);
  for (let i = 0; i < 3; i++) net.tick();
  strictEqual(snaps, 1);
  const follower = net.member(3n);
  deepStrictEqual(follower.sm.values, net.member(1n).sm.values);
  strictEqual(follower.node.log.marker.index, snapIndex, "its log restarted at the snapshot");
  strictEqual(follower.storage.snapshot?.metadata.index, snapIndex, "and it persisted it");
  strictEqual(net.node(1n).status().progress.get(3n)?.state, "replicate");
  // It keeps replicating after the snapshot.
  net.propose(1n, "after");
  net.stabilize();
  strictEqual(follower.sm.values.at(-1), "after");
  net.checkSafety();
});

Deno.test("the Ready carrying a received snapshot: persist it first, nothing to apply yet", () => {
  const net = lagging(2);
  const snap = net.node(1n).snapshot!;
  net.restart(3n);
  const node = net.node(3n);
  node.step(newMessage({
    type: MessageType.snap,
    from: 1n,
    to: 3n,
    term: net.node(1n).term,
    snapshot: snap,
  }));
  const rd = node.ready();
  strictEqual(rd.snapshot, snap);
  strictEqual(rd.mustSync, true);
  deepStrictEqual(rd.committedEntries, []);
  strictEqual(rd.hardState?.commit, snap.metadata.index);
  strictEqual(node.log.committed, snap.metadata.index);
  strictEqual(node.log.applied < snap.metadata.index, true, "applied moves once installed");
  const answer = rd.messages.find((m) => m.type === MessageType.appResp);
  strictEqual(answer?.index, snap.metadata.index);
  net.handleReady(3n);
  strictEqual(node.log.applied, snap.metadata.index);
  deepStrictEqual(node.status().confState, snap.metadata.confState);
});

Deno.test("a failed snapshot send is retried after the next heartbeat response", () => {
  const net = lagging(3);
  let dropOnce = true;
  net.addFilter((m) => {
    if (m.type !== MessageType.snap || !dropOnce) return false;
    dropOnce = false;
    return true; // the network reports the failure to the leader (reportSnapshot)
  });
  let snaps = 0;
  net.onDeliver = (m) => {
    if (m.type === MessageType.snap) snaps++;
  };
  net.restart(3n);
  net.tick();
  net.tick();
  strictEqual(dropOnce, false, "the first snapshot was lost");
  for (let i = 0; i < 3; i++) net.tick();
  strictEqual(snaps, 1, "the second one arrived");
  deepStrictEqual(net.member(3n).sm.values, net.member(1n).sm.values);
});

Deno.test("a member restarted from a received snapshot recovers its state", () => {
  const net = lagging(4);
  net.restart(3n);
  for (let i = 0; i < 3; i++) net.tick();
  net.crash(3n);
  net.restart(3n);
  net.propose(1n, "later");
  for (let i = 0; i < 3; i++) net.tick();
  deepStrictEqual(net.member(3n).sm.values, net.member(1n).sm.values);
  strictEqual(net.member(3n).sm.values.at(-1), "later");
});

Deno.test("a member joining after compaction learns the configuration from the snapshot", () => {
  const net = new Network([1n, 2n, 3n], { seed: 5, electionTicks });
  net.elect(1n);
  for (let i = 0; i < 5; i++) net.propose(1n, `v${i}`);
  net.stabilize();
  net.snapshotAndCompact(1n);
  net.addJoiningMember(4n);
  net.proposeConfChange(1n, ConfChangeType.addNode, 4n);
  for (let i = 0; i < 5; i++) net.tick();
  const joiner = net.member(4n);
  deepStrictEqual(joiner.sm.values, ["v0", "v1", "v2", "v3", "v4"]);
  deepStrictEqual(joiner.node.status().confState.voters, [1n, 2n, 3n, 4n]);
  strictEqual(net.node(1n).status().progress.get(4n)?.match, net.node(1n).log.lastIndex());
  net.checkSafety();
});

Deno.test("with peers, compactLog keeps what no held snapshot covers", () => {
  const net = new Network([1n, 2n, 3n], { seed: 6, electionTicks });
  net.elect(1n);
  for (let i = 0; i < 10; i++) net.propose(1n, `v${i}`);
  net.stabilize();
  const node = net.node(1n);
  node.compactLog(0);
  strictEqual(node.log.firstIndex(), 1, "no snapshot: nothing may be dropped");
  const snap = node.createSnapshot(8, utf8("{}"));
  node.compactLog(0);
  strictEqual(node.log.marker.index, snap.metadata.index, "compacted up to the snapshot only");
});

Deno.test("a leader with no usable snapshot asks for one (needsSnapshot)", () => {
  const net = new Network([1n], { seed: 7, electionTicks, autoSnapshot: false });
  net.elect(1n);
  for (let i = 0; i < 5; i++) net.propose(1n, `v${i}`);
  net.stabilize();
  const node = net.node(1n);
  node.compactLog(0); // a lone voter compacts freely
  strictEqual(node.log.firstIndex() > 1, true);
  net.addJoiningMember(2n);
  net.proposeConfChange(1n, ConfChangeType.addLearnerNode, 2n);
  net.stabilize();
  net.tick();
  strictEqual(node.needsSnapshot, true);
  deepStrictEqual(net.member(2n).sm.values, []);
  net.snapshotAndCompact(1n);
  strictEqual(node.needsSnapshot, false);
  for (let i = 0; i < 3; i++) net.tick();
  deepStrictEqual(net.member(2n).sm.values, ["v0", "v1", "v2", "v3", "v4"]);
  strictEqual(net.node(2n).isLearner, true);
});

Deno.test("createSnapshot records the configuration in force at its index", () => {
  const net = new Network([1n, 2n, 3n], { seed: 8, electionTicks });
  net.elect(1n);
  net.propose(1n, "a");
  net.stabilize();
  const beforeChange = net.node(1n).log.applied;
  net.proposeConfChange(1n, ConfChangeType.addLearnerNode, 4n);
  net.addJoiningMember(4n);
  net.propose(1n, "b");
  net.stabilize();
  const node = net.node(1n);
  const old = node.createSnapshot(beforeChange, utf8("{}"));
  deepStrictEqual(old.metadata.confState, { voters: [1n, 2n, 3n], learners: [] });
  const now = node.createSnapshot(node.log.applied, utf8("{}"));
  deepStrictEqual(now.metadata.confState, { voters: [1n, 2n, 3n], learners: [4n] });
  strictEqual(node.snapshot, now, "the newest snapshot is held");
});

Deno.test("a snapshot the follower already covers only moves its commit index", () => {
  const net = new Network([1n, 2n, 3n], { seed: 9, electionTicks });
  net.elect(1n);
  net.propose(1n, "a");
  net.stabilize();
  const leader = net.node(1n);
  const snap = leader.createSnapshot(leader.log.applied, utf8("{}"));
  const follower = net.node(2n);
  const lastBefore = follower.log.lastIndex();
  follower.step(newMessage({
    type: MessageType.snap,
    from: 1n,
    to: 2n,
    term: leader.term,
    snapshot: snap,
  }));
  const rd = follower.ready();
  strictEqual(rd.snapshot, null, "nothing to install: it holds those entries");
  strictEqual(follower.log.lastIndex(), lastBefore);
});
