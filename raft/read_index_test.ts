import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { ProposalDroppedError } from "./raw_node.ts";
import { Network, utf8 } from "./testing/network.ts";
import { MessageType } from "./types.ts";

const electionTicks = 10;
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("a leader answers a read once a heartbeat round confirms its leadership", () => {
  const net = new Network([1n, 2n, 3n], { seed: 1, electionTicks });
  net.elect(1n);
  net.propose(1n, "a");
  net.stabilize();
  const committed = net.node(1n).log.committed;
  const heartbeats: string[] = [];
  net.onDeliver = (m) => {
    if (m.type === MessageType.heartbeat) heartbeats.push(decode(m.context));
  };
  net.node(1n).readIndex(utf8("r1"));
  strictEqual(net.node(1n).ready().readStates.length, 0, "not before the quorum answered");
  net.stabilize();
  deepStrictEqual(heartbeats, ["r1", "r1"], "the confirmation round carries the context");
  deepStrictEqual(
    net.member(1n).readStates.map((r) => [r.index, decode(r.requestCtx)]),
    [[committed, "r1"]],
  );
});

Deno.test("a read is not released without a quorum, and is dropped on step-down", () => {
  const net = new Network([1n, 2n, 3n], { seed: 2, electionTicks });
  net.elect(1n);
  net.isolate(1n);
  net.node(1n).readIndex(utf8("lonely"));
  for (let i = 0; i < 3 * electionTicks; i++) net.tick([1n]);
  deepStrictEqual(net.member(1n).readStates, []);
  strictEqual(net.node(1n).role, "follower", "check-quorum deposed it");
  net.heal();
  for (let i = 0; i < 3 * electionTicks; i++) net.tick();
  deepStrictEqual(net.member(1n).readStates, [], "a deposed leader never answers it");
});

Deno.test("one reachable follower is a quorum of three for a read", () => {
  const net = new Network([1n, 2n, 3n], { seed: 3, electionTicks });
  net.elect(1n);
  net.isolate(3n);
  net.node(1n).readIndex(utf8("r"));
  net.stabilize();
  strictEqual(net.member(1n).readStates.length, 1);
});

Deno.test("a follower's read is forwarded and answered with the leader's commit index", () => {
  const net = new Network([1n, 2n, 3n], { seed: 4, electionTicks });
  net.elect(1n);
  net.propose(1n, "a");
  net.stabilize();
  net.node(3n).readIndex(utf8("from-3"));
  net.stabilize();
  deepStrictEqual(
    net.member(3n).readStates.map((r) => [r.index, decode(r.requestCtx)]),
    [[net.node(1n).log.committed, "from-3"]],
  );
  deepStrictEqual(net.member(1n).readStates, [], "the leader answered 3, not itself");
  strictEqual(net.delivered.get("readIndexResp"), 1);
});

Deno.test("a read with no known leader is refused", () => {
  const net = new Network([1n, 2n, 3n], { seed: 5, electionTicks });
  throws(() => net.node(2n).readIndex(utf8("x")), ProposalDroppedError);
});

Deno.test("a new leader defers reads until an entry of its term commits (§6.4)", () => {
  const net = new Network([1n, 2n, 3n], { seed: 6, electionTicks });
  const heal = net.addFilter((m) => m.type === MessageType.app && m.from === 1n);
  net.elect(1n);
  const leader = net.node(1n);
  const termEntry = leader.log.lastIndex();
  strictEqual(leader.log.committed < termEntry, true, "its term's entry is not committed");
  const contexts: string[] = [];
  net.onDeliver = (m) => {
    if (m.type === MessageType.heartbeat && m.context.length > 0) contexts.push(decode(m.context));
  };
  leader.readIndex(utf8("early"));
  net.stabilize();
  deepStrictEqual(contexts, [], "no confirmation round yet");
  deepStrictEqual(net.member(1n).readStates, []);
  heal();
  net.tick();
  deepStrictEqual(
    net.member(1n).readStates.map((r) => [r.index, decode(r.requestCtx)]),
    [[termEntry, "early"]],
    "answered at a commit index that covers every earlier term",
  );
});

Deno.test("pending reads are bounded", () => {
  const net = new Network([1n, 2n, 3n], { seed: 8, electionTicks, maxPendingReads: 2 });
  net.elect(1n);
  net.isolate(1n);
  net.node(1n).readIndex(utf8("a"));
  net.node(1n).readIndex(utf8("b"));
  throws(() => net.node(1n).readIndex(utf8("c")), /too many pending reads/);
  net.heal();
  net.tick();
  deepStrictEqual(net.member(1n).readStates.map((r) => decode(r.requestCtx)), ["a", "b"]);
  net.node(1n).readIndex(utf8("c"));
});

Deno.test("a lone voter answers reads at once after its first commit", () => {
  const net = new Network([1n], { seed: 9, electionTicks });
  net.elect(1n);
  net.node(1n).readIndex(utf8("solo"));
  strictEqual(net.node(1n).ready().readStates.length, 1, "no round trip needed");
});
