/**
 * The benchmark's multi-member case (`deno task bench --cluster 3`): the target runs as a
 * cluster of 3 (or 5) members on loopback, with etcd's clustering flags and default timing,
 * and the load goes to the leader, as in etcd's own "to leader" benchmark figures. The server
 * CPU columns add up every member.
 *
 * @module
 */

import { processCpuSeconds } from "./cpu.ts";
import {
  freePort,
  type LaunchConfig,
  launchServer,
  type LoopbackMember,
  loopbackMemberFlags,
  type ServerHandle,
  ServerStartError,
  type Target,
} from "./server_process.ts";

/** Member counts `--cluster` accepts (1 is the single-member default). */
export const clusterSizes: readonly number[] = [1, 3, 5];

/** Where one member of a bench cluster listens and keeps its data. */
/** A member of a benchmark cluster. */
export type BenchMember = LoopbackMember;

/** Pause between two leader polls. */
const leaderPollMs = 50;
/** Upper bound on one status request. */
const statusRequestMs = 1_000;

/** The etcd flags of `members[index]` in a fresh cluster of `members` named by `token`. */
export function clusterMemberFlags(
  members: readonly BenchMember[],
  index: number,
  token: string,
): string[] {
  return [
    ...loopbackMemberFlags(members[index]),
    "--initial-cluster",
    members.map((x) => `${x.name}=http://127.0.0.1:${x.peerPort}`).join(","),
    "--initial-cluster-state",
    "new",
    "--initial-cluster-token",
    token,
  ];
}

/** `n` distinct free loopback ports. */
function distinctPorts(n: number): number[] {
  const ports = new Set<number>();
  for (let attempt = 0; ports.size < n && attempt < 100 * n; attempt++) ports.add(freePort());
  if (ports.size < n) throw new Error(`found only ${ports.size} distinct free ports`);
  return [...ports];
}

/** The member and leader IDs a member reports through the JSON gateway. */
async function memberStatus(clientUrl: string): Promise<{ id: string; leader: string }> {
  const res = await fetch(`${clientUrl}/v3/maintenance/status`, {
    method: "POST",
    body: "{}",
    signal: AbortSignal.timeout(statusRequestMs),
  });
  const body = await res.json();
  return { id: String(body.header?.member_id ?? "0"), leader: String(body.leader ?? "0") };
}

/** Index of the member every member agrees leads, polled until `timeoutMs`; -1 if none. */
async function agreedLeader(handles: readonly ServerHandle[], timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    try {
      const statuses = await Promise.all(handles.map((h) => memberStatus(h.clientUrl)));
      const leaders = new Set(statuses.map((s) => s.leader));
      const index = statuses.findIndex((s) => s.id === statuses[0].leader);
      if (leaders.size === 1 && statuses[0].leader !== "0" && index >= 0) return index;
    } catch {
      // A member is busy electing; ask again.
    }
    await new Promise((resolve) => setTimeout(resolve, leaderPollMs));
  }
  return -1;
}

/**
 * Starts `target` as a `size`-member cluster on fresh loopback ports and temp data dirs,
 * waits until every member is healthy and they agree on a leader, and returns a handle whose
 * client URL (and pid) is the leader's, whose CPU reading sums every member, and whose `stop`
 * stops them all.
 */
export async function startClusterServer(
  target: Target,
  size: number,
  config: LaunchConfig,
): Promise<ServerHandle> {
  const ports = distinctPorts(2 * size);
  const members: BenchMember[] = [];
  for (let i = 0; i < size; i++) {
    members.push({
      name: `bench${i + 1}`,
      clientPort: ports[2 * i],
      peerPort: ports[2 * i + 1],
      dataDir: await Deno.makeTempDir({ prefix: `bench-${target}-m${i + 1}-` }),
    });
  }
  const token = `bench-${crypto.randomUUID()}`;
  const started = await Promise.allSettled(members.map((m, i) =>
    launchServer(
      target,
      config,
      m.dataDir,
      `http://127.0.0.1:${m.clientPort}`,
      clusterMemberFlags(members, i, token),
    )
  ));
  const handles = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const stopAll = async () => {
    await Promise.all(handles.map((h) => h.stop()));
  };
  const failed = started.find((r) => r.status === "rejected");
  if (failed !== undefined) {
    await stopAll();
    // Members whose start failed removed nothing: their dirs go here.
    for (const m of members) await Deno.remove(m.dataDir, { recursive: true }).catch(() => {});
    throw (failed as PromiseRejectedResult).reason;
  }
  const leader = await agreedLeader(handles, config.readyTimeoutMs);
  const outputTail = () =>
    handles.map((h, i) => `--- ${members[i].name} ---\n${h.outputTail()}`).join("\n");
  if (leader < 0) {
    const tail = outputTail();
    await stopAll();
    throw new ServerStartError(
      `${target} cluster of ${size} agreed on no leader within ${config.readyTimeoutMs} ms`,
      tail,
    );
  }
  const pids = handles.map((h) => h.pid);
  return {
    target,
    pid: handles[leader].pid,
    clientUrl: handles[leader].clientUrl,
    dataDir: handles[leader].dataDir,
    argv: handles[leader].argv,
    outputTail,
    stop: stopAll,
    cpuSeconds: async () => {
      const each = await Promise.all(pids.map((pid) => processCpuSeconds(pid)));
      return each.reduce((a, b) => a + b, 0);
    },
  };
}
