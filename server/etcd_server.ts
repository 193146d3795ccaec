/**
 * EtcdServer: one member. It owns the WAL, the backend, the raft node and its loop, and
 * offers the services two things: `propose()` (the write path) and `linearizableRead()`
 * (ReadIndex), plus response headers.
 *
 * @module
 */
import { create, type Message, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { assert } from "../internal/assert.ts";
import { Lessor } from "../lease/mod.ts";
import { MvccStore, WatchHub } from "../mvcc/mod.ts";
import {
  type ResponseHeader,
  ResponseHeaderSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import {
  InternalRaftRequestSchema,
  RequestHeaderSchema,
} from "../proto/gen/etcd/etcdserverpb/raft_internal_pb.ts";
import { AlarmRequest_AlarmAction, AlarmType } from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { ProposalDroppedError, RawNode } from "../raft/mod.ts";
import { Wal } from "../wal/mod.ts";
import { AlarmStore, BackendQuota, quotaCost } from "./alarms.ts";
import { Applier, type ApplyOutcome } from "./apply.ts";
import {
  type Compactor,
  type CompactorClock,
  createCompactor,
  realCompactorClock,
} from "./compactor.ts";
import { type Config, verifyBootstrap } from "./config.ts";
import { Errors } from "./errors.ts";
import { ServerMetrics } from "./metrics.ts";
import { clusterIdFor, IdGenerator, memberIdFor } from "./ids.ts";
import { LeaseBackend } from "./lease_backend.ts";
import { RaftLoop } from "./raft_loop.ts";

const backendCommitIntervalMs = 100;
const leaseRevokeIntervalMs = 500;
const proposalSweepIntervalMs = 100;
/** Bound on lease revokes proposed per round (etcd: 1000 per second). */
const maxRevokesPerRound = 500;

/** Collaborators a test may replace; production uses the defaults. */
export interface EtcdServerOptions {
  /** Time for the auto-compactor (default: the real clock). */
  compactorClock?: CompactorClock;
}

/** A member of the cluster as the Cluster service reports it. */
export interface MemberInfo {
  id: bigint;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

/** A request ready to propose: an InternalRaftRequest without its header. */
export type ProposalInit = Omit<
  MessageInitShape<typeof InternalRaftRequestSchema>,
  "$typeName" | "header" | "ID"
>;

interface Waiter {
  resolve(response: Message): void;
  reject(err: unknown): void;
  /** performance.now() after which the proposal fails with `request timed out`. */
  deadline: number;
}

/** WAL metadata: who this member is, written at the head of every WAL segment. */
function encodeWalMetadata(memberId: bigint, clusterId: bigint): Uint8Array {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, memberId);
  view.setBigUint64(8, clusterId);
  return out;
}

function decodeWalMetadata(data: Uint8Array): { memberId: bigint; clusterId: bigint } {
  if (data.length !== 16) throw new Error(`WAL metadata has ${data.length} bytes, want 16`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return { memberId: view.getBigUint64(0), clusterId: view.getBigUint64(8) };
}

/** Paths inside a data dir, laid out as etcd lays them out. */
export function dataDirPaths(dataDir: string): { walDir: string; dbPath: string; snapDir: string } {
  const member = join(dataDir, "member");
  return {
    walDir: join(member, "wal"),
    snapDir: join(member, "snap"),
    dbPath: join(member, "snap", "db"),
  };
}

/** One running member. */
export class EtcdServer {
  readonly config: Config;
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly store: MvccStore;
  readonly members: MemberInfo[];
  readonly lessor: Lessor;
  /** Watchers of the key space; apply feeds it every applied revision. */
  readonly watchHub: WatchHub;
  /** The cluster's active alarms, as applied from the log. */
  readonly alarms: AlarmStore;
  /** `--quota-backend-bytes`, checked before a write is proposed. */
  readonly quota: BackendQuota;
  /** What `/metrics` shows. */
  readonly metrics: ServerMetrics;
  readonly #compactor: Compactor | undefined;
  /** The NOSPACE alarm proposal in flight, shared by writes refused meanwhile. */
  #raisingNoSpace: Promise<void> | undefined;
  readonly #wal: Wal;
  readonly #loop: RaftLoop;
  readonly #waiters = new Map<bigint, Waiter>();
  readonly #requestTimeoutMs: number;
  readonly #ids: IdGenerator;
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  #stopped: Error | null = null;
  #onFatal: (err: unknown) => void = () => {};

  private constructor(
    config: Config,
    ids: { memberId: bigint; clusterId: bigint },
    wal: Wal,
    store: MvccStore,
    node: RawNode,
    options: EtcdServerOptions,
  ) {
    this.config = config;
    this.memberId = ids.memberId;
    this.clusterId = ids.clusterId;
    this.store = store;
    this.#wal = wal;
    this.members = config.initialCluster.map((m) => ({
      id: memberIdFor(m.peerUrls, config.initialClusterToken),
      name: m.name,
      peerUrls: m.peerUrls,
      clientUrls: m.name === config.name ? config.advertiseClientUrls : [],
      isLearner: false,
    }));
    // etcd's request timeout: 5 s plus two election timeouts.
    this.#requestTimeoutMs = 5000 + 2 * config.electionTimeoutMs;
    this.#ids = new IdGenerator(ids.memberId, Date.now());
    const leaseBackend = new LeaseBackend(store);
    this.lessor = new Lessor({
      clock: () => performance.now(),
      // etcd's minimum TTL: one and a half election timeouts, rounded up to a second.
      minTtlSeconds: Math.ceil((1.5 * config.electionTimeoutMs) / 1000),
      persistence: leaseBackend,
      expiredRetryMs: this.#requestTimeoutMs,
    });
    this.lessor.recover(leaseBackend.load(), store.liveLeaseAttachments());
    this.watchHub = new WatchHub(store);
    this.alarms = new AlarmStore(store);
    this.quota = new BackendQuota(config.quotaBackendBytes, () => store.dbSizeBytes());
    this.metrics = new ServerMetrics({
      memberId: ids.memberId,
      quotaBytes: config.quotaBackendBytes,
      hasLeader: () => this.leader !== 0n,
      isLeader: () => this.leader === this.memberId,
      committedIndex: () => this.raftIndexes.committed,
      appliedIndex: () => this.raftIndexes.applied,
      pendingProposals: () => this.#waiters.size,
      dbSizeBytes: () => store.dbSizeBytes(),
      dbSizeInUseBytes: () => store.dbSizeInUseBytes(),
      keys: () => store.liveKeyCount,
      currentRev: () => store.currentRev,
      compactRev: () => store.compactRev,
    });
    const applier = new Applier({
      store,
      lessor: this.lessor,
      alarms: this.alarms,
      onOutcome: (id, outcome) => this.#settle(id, outcome),
      onEvents: (events) => this.watchHub.notify(events),
      onLease: (change) =>
        (change === "granted" ? this.metrics.leaseGranted : this.metrics.leaseRevoked).inc(),
    });
    this.#compactor = createCompactor(config, {
      clock: options.compactorClock ?? realCompactorClock,
      currentRev: () => store.currentRev,
      compact: async (rev) => {
        await this.propose({ compaction: { revision: BigInt(rev) } });
      },
      alreadyCompacted: (err) => err === Errors.compacted,
    });
    const timedWal = {
      save: (hardState: Parameters<Wal["save"]>[0], entries: Parameters<Wal["save"]>[1]) =>
        this.metrics.timeAsync(this.metrics.walFsyncSeconds, () => wal.save(hardState, entries)),
    };
    let lastLeader = 0n;
    this.#loop = new RaftLoop(node, timedWal, {
      apply: (entries) => applier.applyEntries(entries),
      onSoftState: (soft) => {
        if (soft.lead !== 0n && soft.lead !== lastLeader) this.metrics.leaderChanges.inc();
        lastLeader = soft.lead;
        if (soft.role === "leader") this.lessor.promote(config.electionTimeoutMs);
        else this.lessor.demote();
        // etcd runs only the leader's compactor.
        if (soft.role === "leader") this.#compactor?.resume();
        else this.#compactor?.pause();
      },
      onFatal: (err) => this.#fatal(err),
    }, {
      tickIntervalMs: config.heartbeatIntervalMs,
      // No follower can need an applied entry yet; with replication this becomes a bound in
      // bytes, with snapshots for followers further behind.
      retainedEntries: 0,
    });
  }

  /**
   * Background duties: commit the backend batch every 100 ms (etcd's batch interval; the WAL
   * holds the durability), and revoke expired leases through raft like any other write.
   */
  #startDuties(): void {
    this.#timers.push(setInterval(() => {
      try {
        const start = performance.now();
        if (this.store.commit()) {
          this.metrics.backendCommitSeconds.observe((performance.now() - start) / 1000);
        }
        this.quota.refresh();
      } catch (err) {
        // The backend can no longer persist applied state: stop rather than diverge.
        this.#fatal(err);
      }
    }, backendCommitIntervalMs));
    // One sweep instead of a timer per proposal: Map iteration is in insertion order, so
    // the oldest proposals come first and the sweep stops at the first one still in time.
    this.#timers.push(setInterval(() => {
      const now = performance.now();
      for (const [id, waiter] of this.#waiters) {
        if (waiter.deadline > now) break;
        this.#waiters.delete(id);
        this.metrics.proposalsFailed.inc();
        waiter.reject(Errors.timeout);
      }
    }, proposalSweepIntervalMs));
    this.#timers.push(setInterval(() => {
      if (!this.lessor.isPrimary) return;
      for (const id of this.lessor.expired(maxRevokesPerRound)) {
        this.metrics.leaseExpired.inc();
        this.propose({ leaseRevoke: { ID: id } }).catch(() => {
          // Retried after expiredRetryMs by the lessor; the lease may also be gone already.
        });
      }
    }, leaseRevokeIntervalMs));
  }

  /**
   * Resolves once compacted history is physically deleted (Compact with `physical`). The
   * deletion runs in bounded batches, yielding to the event loop between them so that a large
   * compaction never stalls other requests.
   */
  async finishCompaction(): Promise<void> {
    while (!this.#stopped && this.store.compactionPending) {
      this.store.compactStep();
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }

  /** A fresh lease ID: positive int64, unique across members and restarts (etcd's scheme). */
  newLeaseId(): bigint {
    return this.#ids.next() & 0x7fff_ffff_ffff_ffffn;
  }

  /** Opens (or creates) the member's data dir and starts its raft loop. */
  static async start(config: Config, options: EtcdServerOptions = {}): Promise<EtcdServer> {
    const paths = dataDirPaths(config.dataDir);
    if (config.walDir) paths.walDir = config.walDir;
    let ids: { memberId: bigint; clusterId: bigint };
    let wal: Wal;
    let restore: ConstructorParameters<typeof RawNode>[1];
    if (await Wal.exists(paths.walDir)) {
      const opened = await Wal.open(paths.walDir);
      wal = opened.wal;
      ids = decodeWalMetadata(opened.state.metadata);
      restore = {
        hardState: opened.state.hardState,
        marker: opened.state.snapshot ?? { index: 0, term: 0 },
        entries: opened.state.entries,
      };
    } else {
      verifyBootstrap(config);
      const memberIds = config.initialCluster.map((m) =>
        memberIdFor(m.peerUrls, config.initialClusterToken)
      );
      const self = config.initialCluster.find((m) => m.name === config.name);
      assert(self, "config validation guarantees this member is in --initial-cluster");
      ids = {
        memberId: memberIdFor(self.peerUrls, config.initialClusterToken),
        clusterId: clusterIdFor(memberIds),
      };
      await mkdir(paths.snapDir, { recursive: true, mode: 0o700 });
      wal = await Wal.create(paths.walDir, encodeWalMetadata(ids.memberId, ids.clusterId));
      restore = { hardState: null, marker: { index: 0, term: 0 }, entries: [] };
    }
    const store = MvccStore.open(paths.dbPath);
    const node = new RawNode({
      id: ids.memberId,
      voters: [ids.memberId],
      electionTicks: Math.max(2, Math.round(config.electionTimeoutMs / config.heartbeatIntervalMs)),
      heartbeatTicks: 1,
      random: Math.random,
    }, { ...restore, applied: store.consistentIndex() });
    const server = new EtcdServer(config, ids, wal, store, node, options);
    // A lone voter need not wait out an election timeout to know it wins.
    node.campaign();
    server.#loop.start();
    server.#startDuties();
    server.#compactor?.start();
    return server;
  }

  /** Called if the member can no longer make progress (e.g. the WAL failed). */
  set onFatal(handler: (err: unknown) => void) {
    this.#onFatal = handler;
  }

  /** The current raft term. */
  get term(): number {
    return this.#loop.node.term;
  }

  /** The current leader's ID, 0n when none. */
  get leader(): bigint {
    return this.#loop.node.lead;
  }

  /** The raft index and the applied index. */
  get raftIndexes(): { committed: number; applied: number } {
    const log = this.#loop.node.log;
    return { committed: log.committed, applied: log.applied };
  }

  /** A response header at `revision` (the store's current revision by default). */
  header(revision?: bigint): ResponseHeader {
    return create(ResponseHeaderSchema, {
      clusterId: this.clusterId,
      memberId: this.memberId,
      revision: revision ?? BigInt(this.store.currentRev),
      raftTerm: BigInt(this.term),
    });
  }

  /** Fills the member-specific fields of a header produced by apply. */
  fillHeader(header: ResponseHeader | undefined): ResponseHeader {
    if (!header) return this.header();
    header.clusterId = this.clusterId;
    header.memberId = this.memberId;
    header.raftTerm = BigInt(this.term);
    return header;
  }

  /**
   * Proposes a request through raft and resolves with its applied response (throws the
   * EtcdError apply produced). Rejects requests larger than `--max-request-bytes`.
   */
  propose<T extends Message>(init: ProposalInit): Promise<T> {
    if (this.#stopped) return Promise.reject(Errors.stopped);
    // etcd's quotaKVServer / quotaLeaseServer: refuse before proposing, and raise NOSPACE.
    if (!this.quota.admit(quotaCost(init as Parameters<typeof quotaCost>[0]))) {
      return this.#refuseNoSpace();
    }
    const id = this.#ids.next();
    const request = create(InternalRaftRequestSchema, {
      ...init,
      header: create(RequestHeaderSchema, { ID: id }),
    });
    const data = toBinary(InternalRaftRequestSchema, request);
    if (data.length > this.config.maxRequestBytes) return Promise.reject(Errors.requestTooLarge);
    return new Promise<T>((resolve, reject) => {
      const deadline = performance.now() + this.#requestTimeoutMs;
      this.#waiters.set(id, { resolve: resolve as (m: Message) => void, reject, deadline });
      try {
        this.#loop.propose(data);
      } catch (err) {
        this.#waiters.delete(id);
        if (!(err instanceof ProposalDroppedError)) reject(err);
        // Overload is etcd's "too many requests" (clients back off); otherwise no leader.
        else reject(err.reason === "not leader" ? Errors.noLeader : Errors.tooManyRequests);
      }
    });
  }

  /**
   * Raises the NOSPACE alarm through raft for this member (once: writes refused while the
   * proposal is in flight share it), waits for it to apply, then fails with NOSPACE, as
   * etcd's quota check does. A failure to raise it is not the caller's error.
   */
  async #refuseNoSpace<T>(): Promise<T> {
    if (!this.alarms.hasFor(this.memberId, AlarmType.NOSPACE)) {
      this.#raisingNoSpace ??= this.propose({
        alarm: {
          action: AlarmRequest_AlarmAction.ACTIVATE,
          memberID: this.memberId,
          alarm: AlarmType.NOSPACE,
        },
      }).then(() => {}, () => {}).finally(() => this.#raisingNoSpace = undefined);
      await this.#raisingNoSpace;
    }
    throw Errors.noSpace;
  }

  /** Waits until this member has applied everything committed when the read began. */
  async linearizableRead(): Promise<void> {
    if (this.#stopped) throw Errors.stopped;
    let index: number;
    try {
      index = await this.#loop.readIndex();
    } catch (err) {
      this.metrics.readIndexesFailed.inc();
      if (err instanceof ProposalDroppedError) throw Errors.noLeader;
      throw err;
    }
    await this.#loop.waitApplied(index);
  }

  /**
   * Healthy as etcd's `/health` means it: a leader is known and a linearizable read completes
   * within the request timeout.
   */
  async isHealthy(): Promise<boolean> {
    if (this.#stopped || this.leader === 0n) return false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), this.#requestTimeoutMs);
    });
    try {
      return await Promise.race([this.linearizableRead().then(() => true, () => false), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops the raft loop and closes storage. Pending requests fail with `server stopped`. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = Errors.stopped;
    for (const timer of this.#timers) clearInterval(timer);
    this.#compactor?.stop();
    await this.#loop.stop(Errors.stopped);
    this.watchHub.close();
    for (const waiter of this.#waiters.values()) waiter.reject(Errors.stopped);
    this.#waiters.clear();
    this.store.commit();
    this.store.close();
    await this.#wal.close();
  }

  #settle(id: bigint, outcome: ApplyOutcome): void {
    const waiter = this.#waiters.get(id);
    if (!waiter) return; // proposed by an earlier run of this member, or timed out
    this.#waiters.delete(id);
    if (outcome.error) waiter.reject(outcome.error);
    else waiter.resolve(outcome.response);
  }

  #fatal(err: unknown): void {
    this.#stopped = Errors.stopped;
    for (const timer of this.#timers) clearInterval(timer);
    this.#compactor?.stop();
    this.watchHub.close();
    for (const waiter of this.#waiters.values()) waiter.reject(Errors.stopped);
    this.#waiters.clear();
    this.#onFatal(err);
  }
}
