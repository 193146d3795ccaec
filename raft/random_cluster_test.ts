/**
 * Seeded random runs of a 5-member cluster (plus one member that may join): partitions,
 * lost, duplicated and reordered messages, crashes (also of a leader between sending and
 * persisting), snapshots, leadership transfers and membership changes, with the safety
 * properties checked after every step and liveness checked once the faults stop.
 */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { Network, seededRandom } from "./testing/network.ts";
import { ConfChangeType } from "./types.ts";

const seeds = 40;
const steps = 300;

function run(seed: number, bootstrap: "log" | "config"): void {
  const rnd = seededRandom(seed * 31 + 7);
  const pick = <T>(items: T[]): T => items[Math.floor(rnd() * items.length)];
  const voters = [1n, 2n, 3n, 4n, 5n];
  const net = new Network(voters, { seed, electionTicks: 10, bootstrap });
  net.addJoiningMember(6n);
  const all = [...voters, 6n];
  let proposals = 0;
  let removePartition: (() => void) | null = null;
  for (let step = 0; step < steps; step++) {
    const r = rnd();
    const leader = net.leader();
    if (r < 0.05) {
      removePartition?.();
      const side = all.filter(() => rnd() < 0.5);
      removePartition = net.partition(side, all.filter((id) => !side.includes(id)));
    } else if (r < 0.08) {
      removePartition?.();
      removePartition = null;
    } else if (r < 0.10) {
      const id = pick(all);
      if (net.upMembers().length > 4) net.crash(id);
    } else if (r < 0.14) {
      for (const id of all) if (net.member(id).down) net.restart(id);
    } else if (r < 0.16) {
      if (leader) net.snapshotAndCompact(leader.id, Math.floor(rnd() * 5));
    } else if (r < 0.17) {
      if (leader) leader.node.transferLeader(pick(all));
    } else if (r < 0.18) {
      // The leader sends its Ready's messages, then crashes before persisting it.
      if (leader && net.upMembers().length > 4 && leader.node.hasReady()) {
        net.inFlight.push(...leader.node.ready().messages);
        net.crash(leader.id);
      }
    } else if (r < 0.20) {
      if (leader) {
        const conf = leader.node.status().confState;
        const target = pick(all);
        const type = pick([
          ConfChangeType.addNode,
          ConfChangeType.addLearnerNode,
          ConfChangeType.removeNode,
        ]);
        const losesVoter = conf.voters.includes(target) && type !== ConfChangeType.addNode;
        if (!losesVoter || conf.voters.length > 3) {
          try {
            net.proposeConfChange(leader.id, type, target);
          } catch {
            // another change is pending
          }
        }
      }
    } else if (r < 0.5) {
      const member = net.member(pick(all));
      if (!member.down) {
        try {
          net.propose(member.id, `p${proposals++}`);
        } catch {
          // no leader known, transfer in progress, or not a member
        }
      }
    }
    // The network loses, duplicates and reorders some of what is in flight.
    const batch = net.inFlight;
    net.inFlight = [];
    for (const m of batch) {
      const x = rnd();
      if (x < 0.05) continue;
      if (x < 0.08) net.inFlight.push(m);
      net.inFlight.push(m);
    }
    for (let i = net.inFlight.length - 1; i > 0; i--) {
      if (rnd() < 0.2) {
        const j = Math.floor(rnd() * (i + 1));
        [net.inFlight[i], net.inFlight[j]] = [net.inFlight[j], net.inFlight[i]];
      }
    }
    for (const m of net.upMembers()) {
      m.node.tick();
      for (let k = 0; k < 5 && net.handleReady(m.id); k++);
    }
    net.deliverAll();
    net.checkSafety();
  }
  // Faults stop: a leader emerges, and a new proposal reaches every member.
  net.heal();
  for (const id of all) if (net.member(id).down) net.restart(id);
  net.tickUntil(() => {
    const leader = net.leader();
    if (leader?.sm.values.includes("final")) return true;
    try {
      if (leader) net.propose(leader.id, "final");
    } catch {
      // retried on the next tick
    }
    return false;
  }, 300);
  for (let i = 0; i < 30; i++) net.tick();
  net.checkSafety();
  const leader = net.leader()!;
  const conf = leader.node.status().confState;
  for (const id of [...conf.voters, ...conf.learners]) {
    deepStrictEqual(net.member(id).sm.values, leader.sm.values, `member ${id} caught up`);
    deepStrictEqual(net.member(id).sm.confState, conf, `member ${id} has the configuration`);
  }
  strictEqual(leader.sm.values.includes("final"), true);
}

Deno.test("random faults never break safety, and the cluster recovers", async (t) => {
  for (let seed = 1; seed <= seeds; seed++) {
    const bootstrap = seed % 2 === 0 ? "log" : "config";
    await t.step(`seed ${seed} (bootstrap ${bootstrap})`, () => run(seed, bootstrap));
  }
});
