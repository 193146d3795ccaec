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
import { IdTable } from "../internal/id_table.ts";
import { Lessor } from "../lease/mod.ts";
import { MvccStore, WatchHub } from "../mvcc/mod.ts";
import {
  type LeaseTimeToLiveRequest,
  type LeaseTimeToLiveResponse,
  type ResponseHeader,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import {
  InternalRaftRequestSchema,
  RequestHeaderSchema,
} from "../proto/gen/etcd/etcdserverpb/raft_internal_pb.ts";
import { AlarmRequest_AlarmAction, AlarmType } from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import {
  type ConfChange,
  ConfChangeType,
  type Entry,
  EntryType,
  ProposalDroppedError,
  RawNode,
  type Snapshot,
} from "../raft/mod.ts";
import { decodeConfChange, encodeConfChange, PeerTransport } from "../transport/mod.ts";
import { Logger } from "../internal/logger.ts";
import { Wal } from "../wal/mod.ts";
import { AlarmStore, BackendQuota, quotaCost } from "./alarms.ts";
import { Applier, type ApplyOutcome, proposedHere } from "./apply.ts";
import {
  type Compactor,
  type CompactorClock,
  createCompactor,
  realCompactorClock,
} from "./compactor.ts";
import { type Config, verifyBootstrap } from "./config.ts";
import { Errors } from "./errors.ts";
import { ServerMetrics } from "./metrics.ts";
import { clusterIdFor, formatId, IdGenerator, memberIdFor } from "./ids.ts";
import { LeaseBackend } from "./lease_backend.ts";
import { LeaderChangedError, RaftLoop, ReadIndexTimeoutError } from "./raft_loop.ts";
import {
  decodeMemberContext,
  encodeMemberContext,
  type MemberInfo,
  Membership,
} from "./membership.ts";
import { fetchClusterMembers } from "./join.ts";
import { validateConfChange } from "./cluster_service.ts";
import { LeaseForwarder, serveLeaseForward } from "./lease_forward.ts";
import { EtcdError } from "./errors.ts";
import { WalSyncPolicy } from "./wal_sync_policy.ts";
import { encodePutProposal } from "./proposal_encode.ts";

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

export type { MemberInfo } from "./membership.ts";

/** A membership change as the Cluster service asks for it. */
export interface MembershipChange {
  type: "add" | "addLearner" | "remove" | "update" | "promote";
  member: MemberInfo;
}

/**
 * Applied entries kept in memory after a snapshot so that a follower slightly behind catches
 * up from entries rather than a whole backend (etcd's snapshotCatchUpEntries).
 */
const catchUpEntries = 5000;
/** Why a member stops once it learns it left the cluster (etcd's words). */
function removedError(): Error {
  return new Error("the member has been permanently removed from the cluster");
}

/** The file in `member/snap` where a backend received from the leader waits to be installed. */
const receivedBackendName = "received.db";

/** True when `path` exists. */
async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** etcd's applyTimeout: how long a lease renewal waits for apply to catch up. */
const applyWaitTimeoutMs = 1000;

/** How long a removed member keeps answering before it stops. */
const removedStopDelayMs = 1000;

/** How often a started member retries publishing its name and client URLs. */
const publishRetryMs = 100;
/** A request ready to propose: an InternalRaftRequest without its header. */
export type ProposalInit = Omit<
  MessageInitShape<typeof InternalRaftRequestSchema>,
  "$typeName" | "header" | "ID"
>;

interface Waiter {
  resolve(response: unknown): void;
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
  /** The cluster's members, as applied from the log. */
  readonly membership: Membership;
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
  readonly #transport: PeerTransport;
  #transportStopped: Promise<void> | null = null;
  #removalTimer: ReturnType<typeof setTimeout> | undefined;
  #readyResolve: () => void = () => {};
  readonly #ready = new Promise<void>((resolve) => (this.#readyResolve = resolve));
  /** performance.now() when the current leader was first seen (etcd's leadElectedTime). */
  #leaderElectedAt = -Infinity;
  /** Conf change IDs of proposals, made here, that remove this member. */
  readonly #selfRemovals = new Set<bigint>();
  readonly #leaseForwarder: LeaseForwarder;
  readonly #paths: { walDir: string; dbPath: string; snapDir: string };
  readonly #waiters = new IdTable<Waiter>();
  readonly #syncPolicy = new WalSyncPolicy();
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
    membership: Membership,
    peers: MemberInfo[],
    options: EtcdServerOptions,
  ) {
    this.config = config;
    this.memberId = ids.memberId;
    this.clusterId = ids.clusterId;
    this.store = store;
    this.membership = membership;
    this.#wal = wal;
    this.#paths = dataDirPaths(config.dataDir);
    this.#leaseForwarder = new LeaseForwarder(5000 + 2 * config.electionTimeoutMs);
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
      onConfChange: (entry) => this.#applyConfChange(entry),
      onMemberAttributes: (req) =>
        this.membership.setAttributes(req.memberId, req.name, req.clientUrls),
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
      save: (hardState: Parameters<Wal["save"]>[0], entries: Parameters<Wal["save"]>[1]) => {
        const inline = this.#syncPolicy.inlineFor(node.hasPeers, this.watchHub.holdsUntaken);
        return this.metrics.timeAsync(
          this.metrics.walFsyncSeconds,
          () => wal.save(hardState, entries, inline),
        );
      },
      saveSnapshot: async (snapshot: Snapshot) => {
        // Entries the mark covers are dropped on replay: the backend must hold them first.
        store.commit();
        const { index, term } = snapshot.metadata;
        await wal.saveSnapshot({ index, term });
        await wal.releaseTo(index);
      },
    };
    let lastLeader = 0n;
    this.#loop = new RaftLoop(node, timedWal, {
      apply: (entries) => applier.applyEntries(entries),
      onSoftState: (soft) => {
        if (soft.lead !== 0n && soft.lead !== lastLeader) {
          this.metrics.leaderChanges.inc();
          this.#leaderElectedAt = performance.now();
        }
        lastLeader = soft.lead;
        if (soft.role === "leader") this.lessor.promote(config.electionTimeoutMs);
        else this.lessor.demote();
        // etcd runs only the leader's compactor.
        if (soft.role === "leader") this.#compactor?.resume();
        else this.#compactor?.pause();
      },
      onFatal: (err) => this.#fatal(err),
      send: (messages) => this.#transport.send(messages),
      installSnapshot: (snapshot) => this.#installSnapshot(snapshot),
      // The membership travels inside the backend, which the transport sends with the snapshot.
      snapshotData: () => new Uint8Array(),
    }, {
      tickIntervalMs: config.heartbeatIntervalMs,
      retainedEntries: catchUpEntries,
      snapshotEntries: config.snapshotCount,
      readTimeoutMs: this.#requestTimeoutMs,
    });
    this.#transport = new PeerTransport({
      localId: ids.memberId,
      clusterId: ids.clusterId,
      localUrls: config.initialAdvertisePeerUrls,
      onMessage: (message) => this.#loop.step(message),
      onUnreachable: (id) => this.#loop.withNode((n) => n.reportUnreachable(id)),
      onSnapshotStatus: (id, ok) => {
        (ok ? this.metrics.snapshotSendSuccess : this.metrics.snapshotSendFailures)
          .child(formatId(id)).inc();
        this.#loop.withNode((n) => n.reportSnapshot(id, ok));
      },
      snapshotBody: () => this.#backendStream(),
      onSnapshot: (message, body) =>
        this.#receiveBackend(body).then(
          () => this.metrics.snapshotReceiveSuccess.child(formatId(message.from)).inc(),
          (err) => {
            this.metrics.snapshotReceiveFailures.child(formatId(message.from)).inc();
            throw err;
          },
        ),
      isRemoved: (id) => this.membership.isRemoved(id),
      onRemoved: () => this.#stopRemoved(),
      logger: new Logger("warn").with({ component: "transport" }),
    });
    for (const peer of peers) {
      if (peer.id !== ids.memberId) this.#transport.addPeer(peer.id, peer.peerUrls);
    }
  }

  /** The current members, sorted by ID. */
  get members(): MemberInfo[] {
    return this.membership.list();
  }

  /** Serves the peer endpoints of the transport (`/raft...`). */
  get peerHandler(): (req: Request) => Promise<Response> {
    return this.#transport.handler();
  }

  /** Where a backend received with a snapshot waits for raft to install it. */
  get #receivedBackendPath(): string {
    return join(this.#paths.snapDir, receivedBackendName);
  }

  /** A consistent copy of the backend, streamed to a follower after a MsgSnap. */
  async #backendStream(): Promise<ReadableStream<Uint8Array>> {
    const path = join(this.#paths.snapDir, `send-${this.#ids.next().toString(16)}.db`);
    this.store.copyTo(path);
    const file = await Deno.open(path, { read: true });
    // Unlinked at once: the open file stays readable, and nothing is left behind on a crash.
    await Deno.remove(path);
    return file.readable;
  }

  /** Saves a backend sent by the leader; raft installs it when it steps the MsgSnap. */
  async #receiveBackend(body: ReadableStream<Uint8Array>): Promise<void> {
    const tmp = `${this.#receivedBackendPath}.tmp`;
    const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
    try {
      // A read loop rather than pipeTo(file.writable): piping this pull-only body (high
      // water mark 0) into a file wrote nothing under Deno 2.9.3.
      const reader = body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        let written = 0;
        while (written < value.length) written += await file.write(value.subarray(written));
      }
      await file.syncData();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, this.#receivedBackendPath);
  }

  /** Replaces the state machine with the backend received with `snapshot`. */
  async #installSnapshot(snapshot: Snapshot): Promise<void> {
    const path = this.#receivedBackendPath;
    this.store.restoreFrom(path);
    await Deno.remove(path).catch(() => {});
    assert(
      this.store.consistentIndex() >= snapshot.metadata.index,
      `received backend at index ${this.store.consistentIndex()} is older than its snapshot ${snapshot.metadata.index}`,
    );
    this.membership.reload();
    this.alarms.reload();
    const leaseBackend = new LeaseBackend(this.store);
    this.lessor.recover(leaseBackend.load(), this.store.liveLeaseAttachments());
    this.watchHub.resync();
    this.#syncPeers();
  }

  /** Makes the transport's peers the membership's. */
  #syncPeers(): void {
    const wanted = new Map(this.membership.list().map((m) => [m.id, m]));
    wanted.delete(this.memberId);
    for (const [id, m] of wanted) {
      if (this.#transport.hasPeer(id)) this.#transport.updatePeer(id, m.peerUrls);
      else this.#transport.addPeer(id, m.peerUrls);
    }
    for (const status of this.#transport.status()) {
      if (!wanted.has(status.id)) void this.#transport.removePeer(status.id);
    }
  }

  /**
   * Applies a committed membership change: to the membership table, to raft's configuration
   * and to the transport's peers, then answers its proposer. A change that no longer makes
   * sense (the member is gone, or already there) changes nothing, as in etcd.
   */
  #applyConfChange(entry: Entry): void {
    const cc = decodeConfChange(entry.data);
    let member: MemberInfo | null = null;
    try {
      if (cc.context.length > 0) member = decodeMemberContext(cc.context);
    } catch {
      member = null;
    }
    const existing = this.membership.get(cc.nodeId);
    const change = this.#membershipChangeOf(cc, existing, member);
    let error: EtcdError | null = null;
    try {
      // Checked again here: a change valid when proposed may meet a membership that moved on
      // (two adds racing for one peer URL); every member decides alike from applied state.
      if (!change) throw Errors.memberNotFound;
      validateConfChange(this.membership.list(), (id) => this.membership.isRemoved(id), change);
    } catch (err) {
      if (!(err instanceof EtcdError)) throw err;
      error = err;
    }
    if (!error && change) {
      const m = change.member;
      if (change.type === "remove") this.membership.remove(m.id);
      else if (change.type === "promote") this.membership.put({ ...existing!, isLearner: false });
      else if (change.type === "update") {
        this.membership.put({ ...existing!, peerUrls: m.peerUrls });
      } else this.membership.put({ ...m, isLearner: change.type === "addLearner" });
    }
    if (!error) this.#loop.node.applyConfChange(cc);
    this.#syncPeers();
    const waiter = this.#waiters.take(cc.id);
    if (waiter) {
      if (error) waiter.reject(error);
      else waiter.resolve(this.membership.list());
    }
    if (!error && cc.type === ConfChangeType.removeNode && cc.nodeId === this.memberId) {
      this.#stopRemoved();
    }
  }

  /**
   * Stops this member, which left the cluster, after a grace period (etcd waits a second too)
   * so that answers already on their way, such as the `member remove` that removed it, are
   * delivered.
   */
  #stopRemoved(): void {
    // A removal of this member that it proposed itself is done: the cluster says so. Raft
    // will not tell it (the leader stops replicating to a removed member), so answer here.
    for (const id of this.#selfRemovals) {
      this.#waiters.take(id)?.resolve(this.membership.list().filter((m) => m.id !== this.memberId));
    }
    this.#selfRemovals.clear();
    if (this.#removalTimer !== undefined || this.#stopped) return;
    this.#removalTimer = setTimeout(() => this.#fatal(removedError()), removedStopDelayMs);
  }

  /** The Cluster service's view of a committed raft conf change; null when it names nobody. */
  #membershipChangeOf(
    cc: ConfChange,
    existing: MemberInfo | undefined,
    member: MemberInfo | null,
  ): MembershipChange | null {
    switch (cc.type) {
      case ConfChangeType.addNode:
        if (existing?.isLearner) return { type: "promote", member: existing };
        return member ? { type: "add", member: { ...member, id: cc.nodeId } } : null;
      case ConfChangeType.addLearnerNode:
        return member ? { type: "addLearner", member: { ...member, id: cc.nodeId } } : null;
      case ConfChangeType.removeNode:
        return existing ? { type: "remove", member: existing } : null;
      case ConfChangeType.updateNode:
        return member ? { type: "update", member: { ...member, id: cc.nodeId } } : null;
    }
    return null;
  }

  /**
   * Proposes a membership change and resolves, once applied, with the members after it.
   */
  proposeConfChange(change: MembershipChange): Promise<MemberInfo[]> {
    if (this.#stopped) return Promise.reject(Errors.stopped);
    const types: Record<MembershipChange["type"], ConfChange["type"]> = {
      add: ConfChangeType.addNode,
      addLearner: ConfChangeType.addLearnerNode,
      remove: ConfChangeType.removeNode,
      update: ConfChangeType.updateNode,
      promote: ConfChangeType.addNode,
    };
    const cc: ConfChange = {
      id: this.#ids.next(),
      type: types[change.type],
      nodeId: change.member.id,
      context: encodeMemberContext(change.member),
    };
    if (change.type === "remove" && change.member.id === this.memberId) {
      this.#selfRemovals.add(cc.id);
    }
    return this.#proposeWaiting<MemberInfo[]>(cc.id, encodeConfChange(cc), EntryType.confChange)
      .finally(() => this.#selfRemovals.delete(cc.id));
  }

  /** The leader's peer URL, or throws `no leader`. */
  #leaderPeerUrl(): string {
    const leader = this.membership.get(this.leader);
    if (this.leader === 0n || !leader || leader.peerUrls.length === 0) throw Errors.noLeader;
    return leader.peerUrls[0];
  }

  /** A follower's lease keep-alive, answered by the leader's lessor. */
  async forwardLeaseRenew(id: bigint): Promise<number> {
    const answer = await this.#leaseForwarder.renew(this.#leaderPeerUrl(), id);
    return Number(answer.TTL);
  }

  /** A follower's lease time-to-live, answered by the leader's lessor. */
  forwardLeaseTimeToLive(req: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    return this.#leaseForwarder.timeToLive(this.#leaderPeerUrl(), req);
  }

  /** Serves the leader's side of forwarded lease requests (peer `/leases...`). */
  serveLeaseForward(req: Request): Promise<Response> {
    return serveLeaseForward(req, this);
  }

  /** The leader's replication progress, or null on a follower. */
  progress(): { committed: number; match: Map<bigint, number>; recentActive: Set<bigint> } | null {
    const status = this.#loop.node.status();
    if (status.role !== "leader") return null;
    const match = new Map<bigint, number>();
    const recentActive = new Set<bigint>();
    for (const [id, p] of status.progress) {
      match.set(id, p.match);
      if (p.recentActive || id === this.memberId) recentActive.add(id);
    }
    return { committed: status.commit, match, recentActive };
  }

  /** A new member's ID, derived from its peer URLs, the cluster and the time (as etcd). */
  newMemberId(peerUrls: string[], now: number): bigint {
    return memberIdFor([...peerUrls].sort(), `${this.config.initialClusterToken}/${now}`);
  }

  /** Hands leadership to `transferee` (a voter); resolves once it leads or times out. */
  async moveLeader(transferee: bigint): Promise<void> {
    this.#loop.withNode((n) => n.transferLeader(transferee));
    const deadline = performance.now() + this.#requestTimeoutMs;
    while (!this.#stopped && performance.now() < deadline) {
      if (this.leader === transferee) return;
      // As etcd: look again every heartbeat.
      await new Promise((resolve) => setTimeout(resolve, this.config.heartbeatIntervalMs));
    }
    throw Errors.timeoutLeaderTransfer;
  }

  /**
   * Publishes this member's name and client URLs through the log (etcd's publish), retrying
   * until applied or stopped.
   */
  #publishAttributes(): void {
    const attempt = () => {
      if (this.#stopped) return this.#markReady();
      const self = this.membership.get(this.memberId);
      const clientUrls = this.config.advertiseClientUrls;
      if (
        self && self.name === this.config.name &&
        JSON.stringify(self.clientUrls) === JSON.stringify(clientUrls)
      ) return this.#markReady();
      if (this.leader === 0n) {
        setTimeout(attempt, publishRetryMs);
        return;
      }
      this.propose({
        memberAttributes: { memberId: this.memberId, name: this.config.name, clientUrls },
      }).then(
        () => attempt(),
        () => setTimeout(attempt, publishRetryMs),
      );
    };
    attempt();
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
    // One sweep instead of a timer per proposal.
    this.#timers.push(setInterval(() => {
      const now = performance.now();
      for (const waiter of this.#waiters.removeWhere((w) => w.deadline <= now)) {
        this.metrics.proposalsFailed.inc();
        waiter.reject(this.#timeoutError(waiter.deadline - this.#requestTimeoutMs));
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
    /** Members to connect to before the membership is known (a joining member's). */
    let peers: MemberInfo[] | null = null;
    let founders: MemberInfo[] | null = null;
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
      const self = config.initialCluster.find((m) => m.name === config.name);
      assert(self, "config validation guarantees this member is in --initial-cluster");
      if (config.initialClusterState === "existing") {
        // Joining: the cluster (added this member with `member add`) says who we are; the
        // membership and the key space arrive with the leader's snapshot.
        const joined = await fetchClusterMembers(config, self.peerUrls);
        ids = { memberId: joined.memberId, clusterId: joined.clusterId };
        peers = joined.members;
      } else {
        founders = config.initialCluster.map((m) => ({
          id: memberIdFor(m.peerUrls, config.initialClusterToken),
          name: m.name,
          peerUrls: m.peerUrls,
          // Filled in when each member publishes its attributes through the log.
          clientUrls: [],
          isLearner: false,
        }));
        ids = {
          memberId: memberIdFor(self.peerUrls, config.initialClusterToken),
          clusterId: clusterIdFor(founders.map((m) => m.id)),
        };
      }
      await mkdir(paths.snapDir, { recursive: true, mode: 0o700 });
      wal = await Wal.create(paths.walDir, encodeWalMetadata(ids.memberId, ids.clusterId));
      restore = { hardState: null, marker: { index: 0, term: 0 }, entries: [] };
    }
    const store = MvccStore.open(paths.dbPath);
    const received = join(paths.snapDir, receivedBackendName);
    if (restore.marker.index > store.consistentIndex()) {
      // The WAL recorded a snapshot from the leader whose backend was not installed yet.
      if (!(await exists(received))) {
        store.close();
        await wal.close();
        throw new Error(
          `the WAL starts at index ${restore.marker.index} but the backend has only applied ` +
            `${store.consistentIndex()}, and no received backend is left to install`,
        );
      }
      store.restoreFrom(received);
    }
    await Deno.remove(received).catch(() => {});
    const membership = new Membership(store);
    if (founders && membership.isEmpty) {
      for (const m of founders) membership.put(m);
      store.commit();
    }
    // A data dir from before membership was stored: it ran this member alone.
    if (membership.isEmpty && !peers) {
      membership.put({
        id: ids.memberId,
        name: config.name,
        peerUrls: config.initialAdvertisePeerUrls,
        clientUrls: config.advertiseClientUrls,
        isLearner: false,
      });
      store.commit();
    }
    const confState = membership.confState();
    const node = new RawNode({
      id: ids.memberId,
      voters: confState.voters,
      learners: confState.learners,
      electionTicks: Math.max(2, Math.round(config.electionTimeoutMs / config.heartbeatIntervalMs)),
      heartbeatTicks: 1,
      random: Math.random,
      preVote: config.preVote,
      checkQuorum: true,
    }, {
      ...restore,
      applied: store.consistentIndex(),
      // The membership table is as current as the backend's consistent index; conf changes
      // after it are in the WAL and are applied again.
      ...(membership.isEmpty ? {} : { confState }),
    });
    const server = new EtcdServer(
      config,
      ids,
      wal,
      store,
      node,
      membership,
      peers ?? membership.list(),
      options,
    );
    // A lone voter need not wait out an election timeout to know it wins.
    if (confState.voters.length === 1 && confState.voters[0] === ids.memberId) node.campaign();
    server.#loop.start();
    server.#startDuties();
    server.#compactor?.start();
    server.#publishAttributes();
    return server;
  }

  /**
   * Resolves once this member has published its name and client URLs through the log (or has
   * stopped): etcd serves clients only from then on, so every member a client reaches is
   * listed with its client URLs.
   */
  get ready(): Promise<void> {
    return this.#ready;
  }

  #markReady(): void {
    this.#readyResolve();
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

  /**
   * A response header at `revision` (the store's current revision by default). A literal
   * with every field, as `create` would make it: watch fan-out asks for one per watcher and
   * revision, and the generic `create` cost more than the rest of building the response.
   */
  header(revision?: bigint): ResponseHeader {
    return {
      $typeName: "etcdserverpb.ResponseHeader",
      clusterId: this.clusterId,
      memberId: this.memberId,
      revision: revision ?? BigInt(this.store.currentRev),
      raftTerm: BigInt(this.term),
    };
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
    // A put with nothing else set has a direct encoding; the rest the generic one.
    const put = request.put;
    const data =
      (put !== undefined && Object.keys(init).length === 1
        ? encodePutProposal(id, put)
        : undefined) ?? toBinary(InternalRaftRequestSchema, request);
    if (data.length > this.config.maxRequestBytes) return Promise.reject(Errors.requestTooLarge);
    proposedHere.set(data, request);
    return this.#proposeWaiting<T>(id, data, EntryType.normal);
  }

  /**
   * Proposes `data` (forwarded to the leader by raft on a follower) and waits for the entry
   * with request ID `id` to be applied, or the request timeout.
   */
  #proposeWaiting<T>(id: bigint, data: Uint8Array, type: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const deadline = performance.now() + this.#requestTimeoutMs;
      this.#waiters.set(id, { resolve: resolve as (m: unknown) => void, reject, deadline });
      try {
        this.#loop.propose(data, type);
      } catch (err) {
        this.#waiters.take(id);
        if (!(err instanceof ProposalDroppedError)) reject(err);
        // Overload is etcd's "too many requests" (clients back off); otherwise no leader.
        else if (err.reason === "not leader") reject(Errors.noLeader);
        else if (err.reason === "leader transfer in progress") reject(Errors.leaderChanged);
        else if (err.reason === "conf change pending") reject(Errors.unhealthy);
        else reject(Errors.tooManyRequests);
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
      if (err instanceof LeaderChangedError) throw Errors.leaderChanged;
      if (err instanceof ReadIndexTimeoutError) throw Errors.timeout;
      throw err;
    }
    await this.#loop.waitApplied(index);
  }

  /**
   * Records a request answered from local state, without a raft write (KV reads), so that WAL
   * syncs leave the event loop free for such answers (see WalSyncPolicy).
   */
  noteLocalAnswer(): void {
    this.#syncPolicy.noteLocalAnswer();
  }

  /**
   * Waits until this member has applied everything committed when called (etcd's
   * waitAppliedIndex, used before lease renewals): local, no ReadIndex round, at most
   * `applyWaitTimeoutMs`. A renewal is answered from local state, so it counts as a local
   * answer for the WAL sync policy.
   */
  async waitAppliedIndex(): Promise<void> {
    if (this.#stopped) throw Errors.stopped;
    this.#syncPolicy.noteLocalAnswer();
    const { committed, applied } = this.raftIndexes;
    if (applied >= committed) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Errors.timeoutWaitAppliedIndex), applyWaitTimeoutMs);
    });
    try {
      await Promise.race([this.#loop.waitApplied(committed), timeout]);
    } finally {
      clearTimeout(timer);
    }
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
    clearTimeout(this.#removalTimer);
    this.#markReady();
    if (this.#stopped) return;
    this.#stopped = Errors.stopped;
    for (const timer of this.#timers) clearInterval(timer);
    this.#compactor?.stop();
    await this.stopPeerTraffic();
    await this.#loop.stop(Errors.stopped);
    this.watchHub.close();
    for (const waiter of this.#waiters.drain()) waiter.reject(Errors.stopped);
    this.store.commit();
    this.store.close();
    await this.#wal.close();
  }

  /**
   * Ends every peer stream and stops sending: the peer listener can only shut down once its
   * long-lived stream responses have ended.
   */
  stopPeerTraffic(): Promise<void> {
    this.#transportStopped ??= this.#transport.stop();
    return this.#transportStopped;
  }

  /**
   * etcd's words for a proposal that timed out: when it began in the window in which the old
   * leader was lost and a new one elected (two election timeouts before the election), the
   * leader failure is the likely cause.
   */
  #timeoutError(startedAt: number): EtcdError {
    const elected = this.#leaderElectedAt;
    const leaderLost = elected - 2 * this.config.electionTimeoutMs;
    if (startedAt > leaderLost && startedAt < elected) return Errors.timeoutDueToLeaderFail;
    return Errors.timeout;
  }

  #settle(id: bigint, outcome: ApplyOutcome): void {
    const waiter = this.#waiters.take(id);
    if (!waiter) return; // proposed by an earlier run of this member, or timed out
    if (outcome.error) waiter.reject(outcome.error);
    else waiter.resolve(outcome.response);
  }

  #fatal(err: unknown): void {
    this.#stopped = Errors.stopped;
    this.#markReady();
    void this.stopPeerTraffic();
    for (const timer of this.#timers) clearInterval(timer);
    this.#compactor?.stop();
    this.watchHub.close();
    for (const waiter of this.#waiters.drain()) waiter.reject(Errors.stopped);
    this.#onFatal(err);
  }
}
