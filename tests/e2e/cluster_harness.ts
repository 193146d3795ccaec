/**
 * Multi-member clusters for end-to-end tests: starts 3 or 5 member processes of one
 * implementation (ours or etcd 3.4) on loopback with etcd's clustering flags, and kills,
 * restarts, adds and inspects members the way an operator would.
 *
 * Every cluster a test starts must be stopped in a `finally` ({@linkcode Cluster.stop}); it
 * stops every process still running and removes the data dirs.
 *
 * @module
 */
import { assert } from "../../internal/assert.ts";
import {
  type CommandResult,
  freePort,
  type Impl,
  type Member,
  runEtcdctl,
  startMember,
} from "./harness.ts";

/** Heartbeat interval the tests use: short so elections finish fast. */
export const testHeartbeatMs = 50;
/** Election timeout the tests use (ten heartbeats, etcd's ratio). */
export const testElectionMs = 500;
/** Upper bound on waiting for a leader every running member agrees on. */
const leaderWaitMs = 20_000;
/** Upper bound on one status request. */
const statusRequestMs = 2_000;
/** Pause between two polls of a condition. */
const pollIntervalMs = 50;
/** Upper bound on a member becoming healthy after it is (re)started. */
const memberReadyMs = 30_000;
/**
 * Upper bound on retrying a membership change the cluster refuses for now. etcd (with
 * `--strict-reconfig-check`, the default) refuses `member add`/`remove` until every needed peer
 * has been connected for 5 s, and `member promote` until the learner has caught up.
 */
const reconfigRetryMs = 20_000;
/** etcdctl errors that mean "not yet" for a membership change. */
const retryableReconfig = /unhealthy cluster|not in sync with leader|too many learner/i;

/** Options of {@linkcode startCluster}. */
export interface ClusterOptions {
  /** Which server every member runs. */
  impl: Impl;
  /** Number of members. */
  size: 3 | 5;
  /** More etcd flags for every member (they must not repeat the harness's own). */
  flags?: string[];
  /** `--heartbeat-interval` in ms; {@linkcode testHeartbeatMs} by default. */
  heartbeatMs?: number;
  /** `--election-timeout` in ms; {@linkcode testElectionMs} by default. */
  electionMs?: number;
}

/** One member slot of a cluster: its fixed identity and, while it runs, its process. */
export interface ClusterMember {
  /** `--name`. */
  name: string;
  /** Client port on 127.0.0.1. */
  clientPort: number;
  /** Peer port on 127.0.0.1. */
  peerPort: number;
  /** `http://127.0.0.1:<client port>`. */
  clientUrl: string;
  /** `http://127.0.0.1:<peer port>`. */
  peerUrl: string;
  /**
   * `127.0.0.1:<client port>` for etcdctl: our server needs endpoints without a scheme for
   * commands that dial each endpoint (README "Known gaps"), and etcd takes them too.
   */
  endpoint: string;
  /** `--data-dir`, kept across kills and restarts, removed by {@linkcode Cluster.stop}. */
  dataDir: string;
  /** `--initial-cluster` it was first started with. */
  initialCluster: string;
  /** `--initial-cluster-state` it was first started with. */
  initialClusterState: "new" | "existing";
  /** Whether the member was added as a learner and not promoted (by this harness) yet. */
  isLearner: boolean;
  /** The running process, or undefined while the member is down. */
  process: Member | undefined;
}

/** A member's view of the cluster, from the Maintenance Status call. */
export interface MemberStatus {
  /** This member's ID. */
  memberId: bigint;
  /** The leader's ID as this member knows it (0n: none). */
  leader: bigint;
  /** Last raft log index of this member. */
  raftIndex: number;
  /** This member's raft term. */
  raftTerm: number;
  /** Store revision. */
  revision: number;
  /** Whether this member is a learner (etcd 3.4 answers it). */
  isLearner: boolean;
}

/**
 * Whether `error` is a member refusing a multi-member configuration (our server before
 * multi-member raft is wired into `server/`), as opposed to any other start-up failure.
 */
export function isMultiMemberUnsupported(error: unknown): boolean {
  return /multi-member clusters are not supported/i.test(String(error));
}

/** Seen once a start of our server was refused for lack of multi-member support. */
let oursRefusedMultiMember = false;

/**
 * Runs `body` with a fresh cluster, stopping it afterwards. For `impl: "ours"`, a server that
 * refuses multi-member clusters skips the body with a loud warning (and later calls skip at
 * once), unless the environment has `OURS_CLUSTER=1`, which makes the refusal fail the test.
 */
export async function withCluster(
  opts: ClusterOptions,
  body: (cluster: Cluster) => Promise<void>,
): Promise<void> {
  const strict = Deno.env.get("OURS_CLUSTER") === "1";
  if (opts.impl === "ours" && oursRefusedMultiMember && !strict) return;
  let cluster: Cluster;
  try {
    cluster = await startCluster(opts);
  } catch (error) {
    if (opts.impl === "ours" && !strict && isMultiMemberUnsupported(error)) {
      oursRefusedMultiMember = true;
      console.warn(
        "\n!!!!!!!!!!\n!!! WARNING: our server refuses multi-member clusters; the cluster e2e " +
          "tests of impl=ours are SKIPPED.\n!!! Set OURS_CLUSTER=1 to make this a failure." +
          "\n!!!!!!!!!!\n",
      );
      return;
    }
    throw error;
  }
  try {
    await body(cluster);
  } catch (error) {
    throw new Error(`${String(error)}\n${cluster.outputTails()}`, { cause: error });
  } finally {
    await cluster.stop();
  }
}

/**
 * Starts a `size`-member cluster of `impl` on fresh loopback ports and waits until every member
 * is healthy (which needs an elected leader). If a member fails to start, every other one is
 * stopped and the error (with that member's output) is thrown.
 */
export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const root = await Deno.makeTempDir({ prefix: `e2e-cluster-${opts.impl}-` });
  const cluster = new Cluster(opts, root);
  const names = Array.from({ length: opts.size }, (_, i) => `m${i + 1}`);
  const slots = names.map((name) => cluster.allocate(name));
  const initialCluster = slots.map((s) => `${s.name}=${s.peerUrl}`).join(",");
  for (const slot of slots) {
    cluster.members.push({
      ...slot,
      initialCluster,
      initialClusterState: "new",
      isLearner: false,
      process: undefined,
    });
  }
  const started = await Promise.allSettled(cluster.members.map((_, i) => cluster.restart(i)));
  const failure = started.find((r) => r.status === "rejected");
  if (failure !== undefined) {
    await cluster.stop();
    throw (failure as PromiseRejectedResult).reason;
  }
  return cluster;
}

/** Parses a uint64 the JSON gateway wrote as a decimal string (or omitted as zero). */
function u64(value: unknown): bigint {
  return value === undefined || value === null ? 0n : BigInt(value as string);
}

/** A running (or partly running) cluster; see {@linkcode startCluster}. */
export class Cluster {
  /** Which server the members run. */
  readonly impl: Impl;
  /** `--initial-cluster-token`, unique per cluster. */
  readonly token: string;
  /** Every member slot, in the order they were created (index = slot number). */
  readonly members: ClusterMember[] = [];
  readonly #root: string;
  readonly #memberFlags: string[];
  readonly #usedPorts = new Set<number>();
  /** The last process of each slot, kept after a kill for its output. */
  readonly #lastProcess = new Map<number, Member>();
  #stopped = false;

  /** Use {@linkcode startCluster}. */
  constructor(opts: ClusterOptions, root: string) {
    this.impl = opts.impl;
    this.token = `e2e-${crypto.randomUUID()}`;
    this.#root = root;
    this.#memberFlags = [
      `--initial-cluster-token=${this.token}`,
      `--heartbeat-interval=${opts.heartbeatMs ?? testHeartbeatMs}`,
      `--election-timeout=${opts.electionMs ?? testElectionMs}`,
      ...(opts.flags ?? []),
    ];
  }

  /** Fresh ports and a data dir path for a member named `name` (not started). */
  allocate(
    name: string,
  ): Omit<ClusterMember, "initialCluster" | "initialClusterState" | "isLearner" | "process"> {
    const port = () => {
      for (let attempt = 0; attempt < 100; attempt++) {
        const p = freePort();
        if (!this.#usedPorts.has(p)) {
          this.#usedPorts.add(p);
          return p;
        }
      }
      throw new Error("no distinct free port after 100 attempts");
    };
    const clientPort = port();
    const peerPort = port();
    return {
      name,
      clientPort,
      peerPort,
      clientUrl: `http://127.0.0.1:${clientPort}`,
      peerUrl: `http://127.0.0.1:${peerPort}`,
      endpoint: `127.0.0.1:${clientPort}`,
      dataDir: `${this.#root}/${name}`,
    };
  }

  /** Slot numbers of the members whose process runs. */
  running(): number[] {
    return this.members.flatMap((m, i) => (m.process !== undefined ? [i] : []));
  }

  /**
   * Slot numbers of the running voting members: the ones to send client requests to, since
   * a learner refuses most of them (etcd: "rpc not supported for learner").
   */
  runningVoters(): number[] {
    return this.running().filter((i) => !this.members[i].isLearner);
  }

  /** Comma-separated etcdctl endpoints of `which` (default: every running voting member). */
  endpoints(which: number[] = this.runningVoters()): string {
    return which.map((i) => this.members[i].endpoint).join(",");
  }

  /** Runs etcdctl against member `i` (or several members' endpoints joined by commas). */
  etcdctl(i: number | number[], ...args: string[]): Promise<CommandResult> {
    const endpoint = typeof i === "number" ? this.members[i].endpoint : this.endpoints(i);
    return runEtcdctl({ endpoint, args });
  }

  /** Like {@linkcode Cluster.etcdctl}, but throws with etcdctl's output when it fails. */
  async etcdctlOk(i: number | number[], ...args: string[]): Promise<string> {
    const res = await this.etcdctl(i, ...args);
    if (res.code !== 0) {
      throw new Error(`etcdctl ${args.join(" ")} failed (${res.code}): ${res.stderr}${res.stdout}`);
    }
    return res.stdout;
  }

  /**
   * Runs a membership change (`etcdctl member ...`) against the running members, retrying
   * (bounded) while the cluster answers that it cannot take the change yet; throws with
   * etcdctl's output otherwise.
   */
  reconfigure(...args: string[]): Promise<string> {
    return this.reconfigureVia(this.runningVoters(), ...args);
  }

  /** {@linkcode Cluster.reconfigure} sent to the endpoints of `via` only. */
  async reconfigureVia(via: number[], ...args: string[]): Promise<string> {
    const deadline = Date.now() + reconfigRetryMs;
    for (let attempt = 1;; attempt++) {
      const res = await this.etcdctl(via, "member", ...args);
      if (res.code === 0) return res.stdout;
      const output = `${res.stderr}${res.stdout}`;
      if (!retryableReconfig.test(output) || Date.now() > deadline) {
        throw new Error(
          `etcdctl member ${args.join(" ")} failed after ${attempt} attempts: ${output}`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Member `i`'s Maintenance Status through the JSON gateway (bounded in time). */
  async status(i: number): Promise<MemberStatus> {
    const res = await fetch(`${this.members[i].clientUrl}/v3/maintenance/status`, {
      method: "POST",
      body: "{}",
      signal: AbortSignal.timeout(statusRequestMs),
    });
    const text = await res.text();
    if (res.status !== 200) {
      throw new Error(`status of ${this.members[i].name}: ${res.status} ${text}`);
    }
    const body = JSON.parse(text);
    return {
      memberId: u64(body.header?.member_id),
      leader: u64(body.leader),
      raftIndex: Number(body.raftIndex ?? body.raft_index ?? 0),
      raftTerm: Number(body.raftTerm ?? body.raft_term ?? 0),
      revision: Number(body.header?.revision ?? 0),
      isLearner: body.isLearner === true || body.is_learner === true,
    };
  }

  /**
   * Waits (bounded) until every running member reports the same leader and that leader is a
   * running member; returns the leader's slot number.
   */
  async waitForLeader(timeoutMs = leaderWaitMs): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let last = "no status yet";
    while (Date.now() < deadline) {
      try {
        const running = this.running();
        const statuses = await Promise.all(running.map((i) => this.status(i)));
        const leaders = new Set(statuses.map((s) => s.leader));
        const [leader] = leaders;
        const slot = running.find((_, k) => statuses[k].memberId === leader);
        if (leaders.size === 1 && leader !== 0n && slot !== undefined) return slot;
        last = `leaders reported: ${[...leaders].map((l) => l.toString(16)).join(", ")}`;
      } catch (error) {
        last = String(error);
      }
      await new Promise((r) => setTimeout(r, pollIntervalMs));
    }
    throw new Error(`no agreed leader within ${timeoutMs} ms (${last})`);
  }

  /** The current leader's slot number (waits for one, bounded). */
  leader(): Promise<number> {
    return this.waitForLeader();
  }

  /** Member `i`'s ID as a hex string (the form etcdctl prints and takes). */
  async memberIdHex(i: number): Promise<string> {
    return (await this.status(i)).memberId.toString(16);
  }

  /** SIGKILLs member `i` (a crash) and waits for the exit; its data dir stays. */
  async kill(i: number): Promise<void> {
    const member = this.members[i];
    const process = member.process;
    member.process = undefined;
    await process?.kill9();
  }

  /** Stops member `i` gracefully (SIGTERM, bounded) and waits for the exit; its data dir stays. */
  async stopMember(i: number): Promise<void> {
    const member = this.members[i];
    const process = member.process;
    member.process = undefined;
    await process?.stop();
  }

  /**
   * (Re)starts member `i` with the flags it was first started with and waits until it is
   * healthy. etcd ignores the `--initial-cluster*` flags once the data dir holds a WAL, so a
   * restart passes the same ones again.
   */
  async restart(i: number): Promise<void> {
    const m = this.members[i];
    assert(m.process === undefined, `member ${m.name} is already running`);
    assert(!this.#stopped, "the cluster was stopped");
    m.process = await startMember({
      impl: this.impl,
      name: m.name,
      dataDir: m.dataDir,
      clientPort: m.clientPort,
      peerPort: m.peerPort,
      initialCluster: m.initialCluster,
      readyTimeoutMs: memberReadyMs,
      flags: [`--initial-cluster-state=${m.initialClusterState}`, ...this.#memberFlags],
    });
    this.#lastProcess.set(i, m.process);
  }

  /**
   * Adds a member named `name` the operator's way: `etcdctl member add` on the running
   * members, then starts its process with `--initial-cluster-state existing` and the
   * initial cluster etcdctl printed. Returns the new slot number once the member is healthy.
   */
  async addMember(name: string, opts: { learner?: boolean } = {}): Promise<number> {
    const slot = this.allocate(name);
    const out = await this.reconfigure(
      "add",
      name,
      `--peer-urls=${slot.peerUrl}`,
      ...(opts.learner ? ["--learner"] : []),
    );
    const initialCluster = /ETCD_INITIAL_CLUSTER="([^"]*)"/.exec(out)?.[1];
    if (initialCluster === undefined) {
      throw new Error(`member add printed no initial cluster: ${out}`);
    }
    this.members.push({
      ...slot,
      initialCluster,
      initialClusterState: "existing",
      isLearner: opts.learner ?? false,
      process: undefined,
    });
    const index = this.members.length - 1;
    await this.restart(index);
    return index;
  }

  /**
   * Promotes learner `i` to a voting member (`etcdctl member promote`, retried while the
   * learner has not caught up); returns etcdctl's output.
   */
  async promote(i: number): Promise<string> {
    const out = await this.reconfigure("promote", await this.memberIdHex(i));
    this.members[i].isLearner = false;
    return out;
  }

  /** The last lines of every member's output, for failure messages. */
  outputTails(maxLinesPerMember = 30): string {
    return this.members.map((m, i) => {
      const lines = (this.#lastProcess.get(i)?.stderrText() ?? "").trimEnd().split("\n");
      return `--- ${m.name} (${m.process ? "running" : "down"}) ---\n` +
        lines.slice(-maxLinesPerMember).join("\n");
    }).join("\n");
  }

  /**
   * Kills every member still running and removes all data dirs; safe to call twice. SIGKILL,
   * not SIGTERM: the data is thrown away, and a graceful stop of a whole cluster takes etcd
   * seconds (each leader in turn hands over leadership before it exits).
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.members.map((_, i) => this.kill(i)));
    await Deno.remove(this.#root, { recursive: true }).catch(() => {});
  }
}

/** A gateway call that failed: an HTTP error with etcd's message, or no answer at all. */
export class GatewayError extends Error {
  /** `status` is the HTTP status, or 0 when no answer came (refused, reset, timed out). */
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "GatewayError";
  }
}

const encodeB64 = (s: string) => btoa(s);
const decodeB64 = (s: string | undefined) => (s === undefined ? "" : atob(s));

/** POSTs `body` to the JSON gateway at `clientUrl + path`; throws {@linkcode GatewayError}. */
export async function gatewayCall(
  clientUrl: string,
  path: string,
  body: unknown,
  timeoutMs = 5_000,
): Promise<Record<string, unknown>> {
  let res: Response;
  let text: string;
  try {
    res = await fetch(`${clientUrl}${path}`, {
      method: "POST",
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    text = await res.text();
  } catch (error) {
    const cause = error instanceof Error && error.cause !== undefined ? ` (${error.cause})` : "";
    throw new GatewayError(0, `${path} on ${clientUrl}: ${String(error)}${cause}`);
  }
  if (res.status !== 200) throw new GatewayError(res.status, `${path} on ${clientUrl}: ${text}`);
  return JSON.parse(text);
}

/** Puts `key` = `value` through the gateway; returns the revision of the put. */
export async function gatewayPut(
  clientUrl: string,
  key: string,
  value: string,
  timeoutMs?: number,
): Promise<number> {
  const body = await gatewayCall(
    clientUrl,
    "/v3/kv/put",
    { key: encodeB64(key), value: encodeB64(value) },
    timeoutMs,
  );
  return Number((body.header as Record<string, string>).revision);
}

/** Reads `key` through the gateway: its value, or null when absent. */
export async function gatewayGet(
  clientUrl: string,
  key: string,
  opts: { serializable?: boolean; timeoutMs?: number } = {},
): Promise<string | null> {
  const body = await gatewayCall(
    clientUrl,
    "/v3/kv/range",
    { key: encodeB64(key), serializable: opts.serializable ?? false },
    opts.timeoutMs,
  );
  const kvs = body.kvs as Array<{ value?: string }> | undefined;
  return kvs === undefined || kvs.length === 0 ? null : decodeB64(kvs[0].value);
}

/** Reads every key under `prefix` through the gateway, as key → value. */
export async function gatewayRangePrefix(
  clientUrl: string,
  prefix: string,
  opts: { serializable?: boolean; timeoutMs?: number } = {},
): Promise<Map<string, string>> {
  const end = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  const body = await gatewayCall(
    clientUrl,
    "/v3/kv/range",
    {
      key: encodeB64(prefix),
      range_end: encodeB64(end),
      serializable: opts.serializable ?? false,
    },
    opts.timeoutMs,
  );
  const out = new Map<string, string>();
  for (const kv of (body.kvs ?? []) as Array<{ key: string; value?: string }>) {
    out.set(decodeB64(kv.key), decodeB64(kv.value));
  }
  return out;
}

/**
 * Single-key compare-and-set through the gateway: if `key`'s value is `expect` (null: the key
 * is absent), put `value`. Returns whether the comparison held.
 */
export async function gatewayCas(
  clientUrl: string,
  key: string,
  expect: string | null,
  value: string,
  timeoutMs?: number,
): Promise<boolean> {
  // etcd fails every VALUE comparison on an absent key, so absence is asked as version 0.
  const compare = expect === null
    ? { key: encodeB64(key), result: "EQUAL", target: "VERSION", version: "0" }
    : { key: encodeB64(key), result: "EQUAL", target: "VALUE", value: encodeB64(expect) };
  const body = await gatewayCall(
    clientUrl,
    "/v3/kv/txn",
    {
      compare: [compare],
      success: [{ request_put: { key: encodeB64(key), value: encodeB64(value) } }],
    },
    timeoutMs,
  );
  return body.succeeded === true;
}

/**
 * Polls `probe` until it returns something other than `undefined` (errors count as "not yet")
 * and returns that; throws naming `what` and the last problem once `timeoutMs` has passed.
 */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = "no attempt finished";
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
      last = "not yet";
    } catch (error) {
      last = String(error);
    }
    await new Promise((r) => setTimeout(r, pollIntervalMs));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms (last: ${last})`);
}
