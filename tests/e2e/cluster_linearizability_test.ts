/**
 * Linearizability of a 3-member cluster under leader crashes, judged from outside: concurrent
 * clients put, read (linearizable range) and compare-and-set a few keys through the JSON
 * gateway of every member while the leader is killed with SIGKILL and restarted several
 * times. Every call and return is recorded; a call without an answer (refused, reset, timed
 * out, or an etcd error such as "leader changed") is an operation of unknown outcome. The
 * recorded history must be linearizable (tests/linearizability).
 *
 * Runs against etcd 3.4 and our server; ours is skipped loudly while it refuses multi-member
 * clusters (`OURS_CLUSTER=1` makes that fail).
 *
 * @module
 */
import { ok, strictEqual } from "node:assert/strict";
import { checkHistory, describeResult, type Operation } from "../linearizability/mod.ts";
import {
  type Cluster,
  gatewayCas,
  gatewayGet,
  gatewayPut,
  withCluster,
} from "./cluster_harness.ts";
import { ETCD_BIN, type Impl, requireBinary } from "./harness.ts";

const impls: Impl[] = ["etcd", "ours"];
const available: Record<Impl, boolean> = { etcd: requireBinary(ETCD_BIN), ours: true };

/** Keys the clients share: few, so that operations on each one overlap a lot. */
const keys = ["lin/a", "lin/b", "lin/c"];
/** Concurrent clients. */
const clientCount = 6;
/** Upper bound on operations per client (keeps the history small enough to check quickly). */
const maxOpsPerClient = 600;
/** Pause between two operations of one client. */
const thinkMs = 5;
/** A request without an answer after this long has an unknown outcome. */
const requestTimeoutMs = 2_000;
/** How many times the leader is killed and restarted. */
const leaderCrashes = 3;
/** Load before each crash, and the time the crashed leader stays down. */
const upMs = 1_500;
const downMs = 1_000;
/** Bound on the linearizability check itself. */
const checkTimeoutMs = 20_000;

/** Outcome counts, to show the history is not vacuous. */
interface Tally {
  puts: number;
  gets: number;
  casTrue: number;
  casFalse: number;
  unknown: number;
  failedGets: number;
}

/** One client: random operations on random keys through random running voting members. */
async function runClient(
  cluster: Cluster,
  id: number,
  history: Operation[],
  tally: Tally,
  stopped: () => boolean,
): Promise<void> {
  // The last value this client saw per key: what its compare-and-sets expect.
  const seen = new Map<string, string | null>();
  for (let n = 0; n < maxOpsPerClient && !stopped(); n++) {
    const members = cluster.runningVoters();
    if (members.length === 0) break;
    const url = cluster.members[members[Math.floor(Math.random() * members.length)]].clientUrl;
    const key = keys[Math.floor(Math.random() * keys.length)];
    const value = `c${id}-${n}`;
    const label = `client ${id} op ${n}`;
    const dice = Math.random();
    const call = performance.now();
    if (dice < 0.4) {
      try {
        const output = await gatewayGet(url, key, { timeoutMs: requestTimeoutMs });
        history.push({ kind: "get", key, call, return: performance.now(), output, label });
        seen.set(key, output);
        tally.gets++;
      } catch {
        tally.failedGets++; // a read without an answer changed nothing: left out
      }
    } else if (dice < 0.7) {
      try {
        await gatewayPut(url, key, value, requestTimeoutMs);
        history.push({ kind: "put", key, value, call, return: performance.now(), label });
        tally.puts++;
      } catch {
        history.push({ kind: "put", key, value, call, return: Infinity, label });
        tally.unknown++;
      }
    } else {
      const expect = seen.get(key) ?? null;
      try {
        const succeeded = await gatewayCas(url, key, expect, value, requestTimeoutMs);
        history.push({
          kind: "txn",
          key,
          expect,
          value,
          succeeded,
          call,
          return: performance.now(),
          label,
        });
        if (succeeded) {
          seen.set(key, value);
          tally.casTrue++;
        } else tally.casFalse++;
      } catch {
        history.push({ kind: "txn", key, expect, value, call, return: Infinity, label });
        tally.unknown++;
      }
    }
    await new Promise((r) => setTimeout(r, thinkMs));
  }
}

for (const impl of impls) {
  Deno.test({
    name: `cluster (${impl}): client history under leader crashes is linearizable`,
    ignore: !available[impl],
    async fn() {
      await withCluster({ impl, size: 3 }, async (cluster) => {
        await cluster.waitForLeader();
        const history: Operation[] = [];
        const tally: Tally = {
          puts: 0,
          gets: 0,
          casTrue: 0,
          casFalse: 0,
          unknown: 0,
          failedGets: 0,
        };
        let stop = false;
        const clients = Array.from(
          { length: clientCount },
          (_, id) => runClient(cluster, id, history, tally, () => stop),
        );
        let crashes = 0;
        try {
          for (let round = 0; round < leaderCrashes; round++) {
            await new Promise((r) => setTimeout(r, upMs));
            const leader = await cluster.waitForLeader();
            await cluster.kill(leader);
            await new Promise((r) => setTimeout(r, downMs));
            await cluster.restart(leader);
            crashes++;
          }
          await cluster.waitForLeader();
          await new Promise((r) => setTimeout(r, upMs));
        } finally {
          stop = true;
          await Promise.all(clients);
        }
        strictEqual(crashes, leaderCrashes);
        const summary = `${history.length} operations: ${JSON.stringify(tally)}`;
        console.log(`${impl}: ${summary}`);
        ok(tally.puts >= 50 && tally.gets >= 50 && tally.casTrue >= 10, `too few: ${summary}`);

        const result = checkHistory(history, { timeoutMs: checkTimeoutMs });
        ok(result.ok, `${describeResult(result)}\n(${summary})`);
      });
    },
  });
}
