import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { ProposalDroppedError } from "./raw_node.ts";
import { Network } from "./testing/network.ts";
import { MessageType } from "./types.ts";

const electionTicks = 10;

Deno.test("leadership moves to an up-to-date transferee at once", () => {
  const net = new Network([1n, 2n, 3n], { seed: 1, electionTicks });
  net.elect(1n);
  net.propose(1n, "a");
  net.stabilize();
  const term = net.node(1n).term;
  net.node(1n).transferLeader(3n);
  net.stabilize();
  strictEqual(net.node(3n).role, "leader");
  strictEqual(net.node(3n).term, term + 1);
  strictEqual(net.node(1n).role, "follower");
  strictEqual(net.node(1n).lead, 3n);
  strictEqual(net.delivered.get("timeoutNow"), 1);
  net.propose(3n, "b");
  net.stabilize();
  for (const m of net.members.values()) deepStrictEqual(m.sm.values, ["a", "b"]);
});

Deno.test("a lagging transferee is caught up first; proposals wait meanwhile", () => {
  const net = new Network([1n, 2n, 3n], { seed: 2, electionTicks });
  net.elect(1n);
  const heal = net.isolate(3n);
  for (let i = 0; i < 5; i++) net.propose(1n, `v${i}`);
  net.stabilize();
  net.node(1n).transferLeader(3n);
  strictEqual(net.node(1n).status().leadTransferee, 3n);
  throws(
    () => net.propose(1n, "blocked"),
    (e) => e instanceof ProposalDroppedError && e.reason === "leader transfer in progress",
  );
  heal();
  net.tick();
  strictEqual(net.node(3n).role, "leader");
  deepStrictEqual(net.member(3n).sm.values.slice(0, 5), ["v0", "v1", "v2", "v3", "v4"]);
  net.checkSafety();
});

Deno.test("a transfer that cannot finish is abandoned after an election timeout", () => {
  const net = new Network([1n, 2n, 3n], { seed: 3, electionTicks });
  net.elect(1n);
  net.isolate(3n);
  net.propose(1n, "x");
  net.stabilize();
  net.node(1n).transferLeader(3n);
  let ticks = 0;
  while (net.node(1n).status().leadTransferee !== 0n && ticks < 3 * electionTicks) {
    net.tick([1n, 2n]);
    ticks++;
  }
  strictEqual(ticks, electionTicks, "abandoned after exactly one election timeout");
  strictEqual(net.node(1n).role, "leader", "and the leader carries on");
  net.propose(1n, "accepted again");
  net.stabilize();
  strictEqual(net.member(2n).sm.values.at(-1), "accepted again");
});

Deno.test("transfers to a learner, to itself or to a stranger are ignored", () => {
  const net = new Network([1n, 2n], { seed: 4, electionTicks, learners: [3n] });
  net.elect(1n);
  for (const target of [3n, 1n, 9n]) {
    net.node(1n).transferLeader(target);
    strictEqual(net.node(1n).status().leadTransferee, 0n, `transfer to ${target}`);
  }
  net.stabilize();
  strictEqual(net.node(1n).role, "leader");
  strictEqual(net.delivered.get("timeoutNow") ?? 0, 0);
});

Deno.test("a follower forwards a transfer request to the leader", () => {
  const net = new Network([1n, 2n, 3n], { seed: 5, electionTicks });
  throws(() => net.node(2n).transferLeader(3n), ProposalDroppedError);
  net.elect(1n);
  net.node(2n).transferLeader(3n);
  net.stabilize();
  strictEqual(net.node(3n).role, "leader");
  strictEqual(net.delivered.get("transferLeader"), 1);
});

Deno.test("the transferee campaigns past pre-vote and the followers' lease", () => {
  const net = new Network([1n, 2n, 3n], { seed: 6, electionTicks });
  net.elect(1n);
  const kinds: number[] = [];
  net.onDeliver = (m) => {
    if (m.from === 2n) kinds.push(m.type);
  };
  net.node(1n).transferLeader(2n);
  net.stabilize();
  strictEqual(net.node(2n).role, "leader");
  strictEqual(kinds.includes(MessageType.preVote), false, "no pre-vote round");
  strictEqual(kinds.includes(MessageType.vote), true);
});
