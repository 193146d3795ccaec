/**
 * Multi-member clusters as operators and clients see them: replication and reads on every
 * member, membership changes (add, learner, promote, remove), leadership transfer, a leader
 * crash under load, catch-up of a member that fell behind the leader's log, and a watch on a
 * follower. Each test runs against etcd 3.4 and our server with the same expectations; ours is
 * skipped loudly while it refuses multi-member clusters (`OURS_CLUSTER=1` makes that fail).
 *
 * @module
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  type Cluster,
  eventually,
  gatewayPut,
  gatewayRangePrefix,
  testElectionMs,
  withCluster,
} from "./cluster_harness.ts";
import { ETCD_BIN, ETCDCTL_BIN, type Impl, requireBinary } from "./harness.ts";

const impls: Impl[] = ["etcd", "ours"];
const available: Record<Impl, boolean> = {
  etcd: requireBinary(ETCD_BIN, ETCDCTL_BIN),
  ours: requireBinary(ETCDCTL_BIN),
};

/** etcd 3.4 keeps this many entries behind a raft snapshot for slow followers. */
const snapshotCatchUpEntries = 5_000;
/** `--snapshot-count` of the catch-up test: small, so snapshots are frequent. */
const smallSnapshotCount = 100;

/** One line of `etcdctl member list` (simple format). */
interface MemberLine {
  id: string;
  status: string;
  name: string;
  peerUrls: string;
  clientUrls: string;
  isLearner: boolean;
}

async function memberList(cluster: Cluster): Promise<MemberLine[]> {
  const out = await cluster.etcdctlOk(cluster.runningVoters(), "member", "list");
  return out.trim().split("\n").map((line) => {
    const [id, status, name, peerUrls, clientUrls, learner] = line.split(", ");
    return { id, status, name, peerUrls, clientUrls, isLearner: learner === "true" };
  }).sort((a, b) => a.name.localeCompare(b.name));
}

/** One line of `etcdctl endpoint status` (simple format). */
interface EndpointLine {
  endpoint: string;
  id: string;
  isLeader: boolean;
  isLearner: boolean;
  raftTerm: number;
  raftIndex: number;
}

async function endpointStatus(cluster: Cluster): Promise<EndpointLine[]> {
  const out = await cluster.etcdctlOk(cluster.running(), "endpoint", "status");
  return out.trim().split("\n").map((line) => {
    const f = line.split(", ");
    return {
      endpoint: f[0],
      id: f[1],
      isLeader: f[4] === "true",
      isLearner: f[5] === "true",
      raftTerm: Number(f[6]),
      raftIndex: Number(f[7]),
    };
  });
}

/** etcdctl get of `key`'s value on member `i` (linearizable unless `serializable`). */
async function etcdctlValue(
  cluster: Cluster,
  i: number,
  key: string,
  serializable = false,
): Promise<string> {
  const args = ["get", key, "--print-value-only"];
  if (serializable) args.push("--consistency=s");
  return (await cluster.etcdctlOk(i, ...args)).trim();
}

/** A follower's slot (the first running member that is not the leader). */
async function someFollower(cluster: Cluster, leader?: number): Promise<number> {
  leader ??= await cluster.waitForLeader();
  const follower = cluster.runningVoters().find((i) => i !== leader);
  ok(follower !== undefined, "no follower is running");
  return follower;
}

/**
 * `etcdctl watch` on one endpoint as a running process: collects its output until `events`
 * watch events (three lines each: type, key, value) arrived, bounded in time. `afterFirst`
 * runs once the first event arrived, i.e. once the watch certainly exists.
 */
async function watchEvents(
  endpoint: string,
  args: string[],
  events: number,
  afterFirst: () => Promise<void>,
  timeoutMs = 15_000,
): Promise<string[]> {
  const child = new Deno.Command(ETCDCTL_BIN, {
    args: [`--endpoints=${endpoint}`, "--dial-timeout=3s", "watch", ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: { ETCDCTL_API: "3", PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const lines: string[] = [];
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  let afterFirstDone = false;
  try {
    while (lines.length < events * 3) {
      const next = await Promise.race([reader.read(), timedOut]);
      if (next === "timeout" || next.done) break;
      buffered += next.value;
      const parts = buffered.split("\n");
      buffered = parts.pop() ?? "";
      lines.push(...parts);
      if (!afterFirstDone && lines.length >= 3) {
        afterFirstDone = true;
        await afterFirst();
      }
    }
  } finally {
    clearTimeout(timer);
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
    await reader.cancel().catch(() => {});
    await child.status;
  }
  ok(lines.length >= events * 3, `watch saw ${lines.length} lines: ${lines}\n${await stderr}`);
  await stderr;
  return lines.slice(0, events * 3);
}

for (const impl of impls) {
  Deno.test({
    name:
      `cluster (${impl}): writes replicate; reads, member list, status and watch on every member`,
    ignore: !available[impl],
    async fn() {
      await withCluster({ impl, size: 3 }, async (cluster) => {
        const leader = await cluster.waitForLeader();
        const follower = await someFollower(cluster, leader);
        // Written through a follower: it must reach the leader and come back everywhere.
        await cluster.etcdctlOk(follower, "put", "greeting", "hello");
        for (const i of cluster.running()) {
          strictEqual(await etcdctlValue(cluster, i, "greeting"), "hello", `linearizable on ${i}`);
          // After a linearizable read the member has applied the put, so a local read sees it.
          strictEqual(
            await etcdctlValue(cluster, i, "greeting", true),
            "hello",
            `serializable ${i}`,
          );
        }

        const members = await memberList(cluster);
        const ids = await Promise.all(cluster.running().map((i) => cluster.memberIdHex(i)));
        deepStrictEqual(
          members,
          cluster.members.map((m, i) => ({
            id: ids[i],
            status: "started",
            name: m.name,
            peerUrls: m.peerUrl,
            clientUrls: m.clientUrl,
            isLearner: false,
          })),
        );

        // Every endpoint agrees on the leader, the term and (once the put is everywhere) the
        // raft index.
        const statuses = await eventually("endpoints agree on the raft index", async () => {
          const s = await endpointStatus(cluster);
          return new Set(s.map((e) => e.raftIndex)).size === 1 ? s : undefined;
        });
        strictEqual(statuses.length, 3);
        deepStrictEqual(
          statuses.filter((s) => s.isLeader).map((s) => s.endpoint),
          [cluster.members[leader].endpoint],
        );
        strictEqual(new Set(statuses.map((s) => s.raftTerm)).size, 1);
        strictEqual(statuses.every((s) => !s.isLearner), true);

        // A watch on a follower sees what the leader commits, in order: one event from
        // history, then two written while it watches.
        const leaderUrl = cluster.members[leader].clientUrl;
        const firstRev = await gatewayPut(leaderUrl, "w/1", "v1");
        const lines = await watchEvents(
          cluster.members[follower].endpoint,
          ["w/", "--prefix", `--rev=${firstRev}`],
          3,
          async () => {
            await gatewayPut(leaderUrl, "w/2", "v2");
            await gatewayPut(leaderUrl, "w/3", "v3");
          },
        );
        deepStrictEqual(lines, ["PUT", "w/1", "v1", "PUT", "w/2", "v2", "PUT", "w/3", "v3"]);
      });
    },
  });

  Deno.test({
    name: `cluster (${impl}): member add, learner add and promote, member remove`,
    ignore: !available[impl],
    async fn() {
      // Without the strict check a fresh member need not first be connected for 5 s (etcd's
      // health interval) before the next change; the changes themselves are the same.
      const flags = ["--strict-reconfig-check=false"];
      await withCluster({ impl, size: 3, flags }, async (cluster) => {
        await cluster.waitForLeader();
        await cluster.etcdctlOk(cluster.runningVoters(), "put", "before-join", "old");

        const voter = await cluster.addMember("m4");
        // The new member was started after the write and must have caught up to read it.
        strictEqual(await etcdctlValue(cluster, voter, "before-join"), "old");

        const learner = await cluster.addMember("m5", { learner: true });
        strictEqual(
          (await cluster.status(learner)).isLearner,
          true,
          "Maintenance Status of a learner says isLearner: false",
        );
        strictEqual(
          await eventually("the learner has the old write", async () => {
            const v = await etcdctlValue(cluster, learner, "before-join", true);
            return v === "" ? undefined : v;
          }),
          "old",
        );
        // A learner serves no linearizable reads (etcd: "rpc not supported for learner").
        const refused = await cluster.etcdctl(
          learner,
          "get",
          "before-join",
          "--command-timeout=1s",
        );
        ok(refused.code !== 0, `linearizable read on a learner answered: ${refused.stdout}`);
        ok(/learner/.test(refused.stderr), refused.stderr);

        const learnerId = await cluster.memberIdHex(learner);
        const promoted = await cluster.promote(learner);
        // etcdctl prints IDs with %16x: a short one is padded with spaces.
        ok(new RegExp(`Member +${learnerId} promoted`).test(promoted), promoted);
        const five = await memberList(cluster);
        deepStrictEqual(five.map((m) => [m.name, m.isLearner]), [
          ["m1", false],
          ["m2", false],
          ["m3", false],
          ["m4", false],
          ["m5", false],
        ]);
        strictEqual(await etcdctlValue(cluster, learner, "before-join"), "old");

        // Remove one of the original followers.
        const leader = await cluster.waitForLeader();
        const removed = [0, 1, 2].find((i) => i !== leader)!;
        const removedProcess = cluster.members[removed].process!;
        const removedId = await cluster.memberIdHex(removed);
        const removedName = cluster.members[removed].name;
        // Asked through the others: etcd's member answering its own removal may stop before
        // its answer goes out ("etcdserver: server stopped"), which made this test flaky.
        const others = cluster.runningVoters().filter((i) => i !== removed);
        const out = await cluster.reconfigureVia(others, "remove", removedId);
        ok(new RegExp(`Member +${removedId} removed`).test(out), out);
        // The removed member stops (etcd exits) or at least refuses to serve writes.
        const exited = await Promise.race([
          removedProcess.exited.then(() => true),
          new Promise<boolean>((r) => setTimeout(() => r(false), 10 * testElectionMs)),
        ]);
        if (!exited) {
          const put = await cluster.etcdctl(removed, "put", "via-removed", "x");
          ok(put.code !== 0, "a removed member still accepted a write");
        }
        await cluster.stopMember(removed);

        const four = await memberList(cluster);
        deepStrictEqual(
          four.map((m) => m.name),
          ["m1", "m2", "m3", "m4", "m5"].filter((n) => n !== removedName),
        );
        await cluster.waitForLeader();
        await cluster.etcdctlOk(cluster.runningVoters(), "put", "after-remove", "still-works");
        for (const i of cluster.running()) {
          strictEqual(await etcdctlValue(cluster, i, "after-remove"), "still-works");
        }
      });
    },
  });

  Deno.test({
    name: `cluster (${impl}): move-leader; kill -9 of the leader under load loses no write`,
    ignore: !available[impl],
    async fn() {
      await withCluster({ impl, size: 3 }, async (cluster) => {
        const first = await cluster.waitForLeader();
        const target = await someFollower(cluster, first);
        const targetId = await cluster.memberIdHex(target);
        const moved = await cluster.etcdctlOk(first, "move-leader", targetId);
        ok(moved.includes(`to ${targetId}`), moved);
        strictEqual(
          await eventually("everyone follows the new leader", async () => {
            const l = await cluster.waitForLeader();
            return l === target ? l : undefined;
          }),
          target,
        );

        // Writers keep putting unique keys through random running members; the leader dies.
        const acknowledged = new Map<string, string>();
        let failures = 0;
        let stop = false;
        let lastAckAt = 0;
        const maxPutsPerWriter = 5_000;
        const writers = Array.from({ length: 4 }, async (_, w) => {
          for (let n = 0; n < maxPutsPerWriter && !stop; n++) {
            const running = cluster.running();
            const via = running[Math.floor(Math.random() * running.length)];
            const key = `load/${w}/${n}`;
            try {
              await gatewayPut(cluster.members[via].clientUrl, key, `v${n}`, 1_000);
              acknowledged.set(key, `v${n}`);
              lastAckAt = Date.now();
            } catch {
              failures++; // outcome unknown: never counted as acknowledged
              await new Promise((r) => setTimeout(r, 20));
            }
          }
        });
        try {
          await eventually("writes flow", () => acknowledged.size >= 50 || undefined, 10_000);
          const killedAt = Date.now();
          await cluster.kill(target);
          const resumedAt = await eventually("writes resume after the leader died", () => {
            return lastAckAt > killedAt + 100 ? lastAckAt : undefined;
          }, 20 * testElectionMs);
          const ackedAfterKill = acknowledged.size;
          await eventually("writes keep flowing", () => {
            return acknowledged.size >= ackedAfterKill + 50 || undefined;
          }, 10_000);
          console.log(
            `${impl}: writes resumed ${resumedAt - killedAt} ms after the leader was killed ` +
              `(${failures} failed puts)`,
          );
        } finally {
          stop = true;
          await Promise.all(writers);
        }
        const newLeader = await cluster.waitForLeader();
        ok(newLeader !== target);

        for (const i of cluster.running()) {
          const stored = await gatewayRangePrefix(cluster.members[i].clientUrl, "load/");
          for (const [key, value] of acknowledged) {
            strictEqual(stored.get(key), value, `acknowledged ${key} missing on ${i}`);
          }
        }
        // The crashed member comes back and catches up with everything it missed.
        await cluster.restart(target);
        const caughtUp = await eventually("the restarted member caught up", async () => {
          const stored = await gatewayRangePrefix(cluster.members[target].clientUrl, "load/", {
            serializable: true,
          });
          return [...acknowledged].every(([k, v]) => stored.get(k) === v) ? stored : undefined;
        });
        ok(caughtUp.size >= acknowledged.size);
        await cluster.waitForLeader();
      });
    },
  });

  Deno.test({
    name: `cluster (${impl}): a member that fell behind the compacted log catches up by snapshot`,
    ignore: !available[impl],
    async fn() {
      await withCluster(
        { impl, size: 3, flags: [`--snapshot-count=${smallSnapshotCount}`] },
        async (cluster) => {
          const leader = await cluster.waitForLeader();
          const behind = await someFollower(cluster, leader);
          await cluster.stopMember(behind);

          // Enough entries that the leader compacts its log past everything the stopped
          // member has (etcd keeps 5,000 entries behind each snapshot for slow followers).
          const entries = snapshotCatchUpEntries + 4 * smallSnapshotCount;
          const keys = 200;
          const writers = 32;
          let next = 0;
          let retries = 0;
          const maxPutAttempts = 3;
          const writeStart = Date.now();
          await Promise.all(Array.from({ length: writers }, async () => {
            while (next < entries) {
              const n = next++;
              const key = `snap/${String(n % keys).padStart(3, "0")}`;
              // A dropped connection is retried: this test is about catch-up, not client errors.
              for (let attempt = 1;; attempt++) {
                try {
                  await gatewayPut(cluster.members[leader].clientUrl, key, `v${n}`, 10_000);
                  break;
                } catch (error) {
                  if (attempt >= maxPutAttempts) throw error;
                  retries++;
                }
              }
            }
          }));
          console.log(
            `${impl}: ${entries} puts in ${Date.now() - writeStart} ms (${retries} retried)`,
          );
          const expected = await gatewayRangePrefix(cluster.members[leader].clientUrl, "snap/");
          strictEqual(expected.size, keys);

          await cluster.restart(behind);
          await eventually("the member that was down has the leader's data", async () => {
            const stored = await gatewayRangePrefix(cluster.members[behind].clientUrl, "snap/", {
              serializable: true,
            });
            return stored.size === keys &&
                [...expected].every(([k, v]) => stored.get(k) === v)
              ? true
              : undefined;
          }, 30_000);
          // It got there through a snapshot from the leader, not by replaying entries.
          const metrics = await (await fetch(`${cluster.members[behind].clientUrl}/metrics`))
            .text();
          const received = [
            ...metrics.matchAll(/^etcd_network_snapshot_receive_success\S* (\S+)$/gm),
          ]
            .reduce((sum, m) => sum + Number(m[1]), 0);
          ok(
            received >= 1,
            "the member caught up, but its /metrics count no received snapshot " +
              "(etcd_network_snapshot_receive_success): it replayed entries the leader should " +
              "have compacted, or the metric is missing",
          );
        },
      );
    },
  });
}
