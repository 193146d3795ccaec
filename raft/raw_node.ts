/**
 * The raft state machine of one member, driven from outside: `tick()` advances logical time,
 * `step()` takes messages from other members, `propose()`, `readIndex()`,
 * `transferLeader()` and `campaign()` queue work, `ready()` hands out what must be persisted,
 * sent and applied, and `advance()` acknowledges it. No I/O, timers, clocks or randomness of
 * its own: time is ticks and randomness is the injected `random`.
 *
 * What it implements (Raft paper and Ongaro's thesis, as etcd's raft behaves):
 * - leader election with randomized timeouts (§5.2), pre-vote (thesis §9.6) and check-quorum
 *   with its leader lease on vote requests (thesis §6.2, §4.2.3);
 * - log replication with per-follower progress in probe, replicate or snapshot state, a bound
 *   on appends in flight and on entry bytes per append, and fast backtracking on rejection;
 * - commitment of current-term entries only, by counting durable copies (§5.4.2);
 * - snapshots for followers whose next entry was compacted away (§7);
 * - linearizable ReadIndex reads confirmed by a heartbeat round (thesis §6.4);
 * - leadership transfer (thesis §3.10);
 * - learners, and single-step membership changes (thesis §4.1).
 *
 * @module
 */
import { assert } from "../internal/assert.ts";
import { LogCompactedError, type LogMarker, RaftLog } from "./log.ts";
import {
  campaignTransferContext,
  isCampaignTransfer,
  isSnapshotRequest,
  type MessageInit,
  newMessage,
  snapshotRequestContext,
  voteResponseType,
} from "./message.ts";
import { type Progress, type ProgressState, ProgressTracker } from "./progress.ts";
import { ReadOnly } from "./read_only.ts";
import {
  type ConfChange,
  ConfChangeType,
  type ConfState,
  emptyHardState,
  type Entry,
  EntryType,
  type HardState,
  type Message,
  MessageType,
  type ReadState,
  type Ready,
  type Role,
  sameHardState,
  type Snapshot,
  type SoftState,
} from "./types.ts";

/** Settings of one raft member. */
export interface RaftConfig {
  id: bigint;
  /**
   * Voting members, this one included, when the cluster starts. Used only when the restored
   * state names no configuration (`RaftRestore.confState` and `.snapshot` absent). A member
   * that joins an existing cluster passes [] (and an empty log): it then refuses to replay
   * the leader's log, whose conf-change entries may not include the founding configuration,
   * and asks for a snapshot instead, which carries the configuration (see `needsSnapshot`).
   * Founders may instead start with `voters: []` and conf-change entries adding each of them
   * at indexes 1..n in their restored log (etcd's bootstrap), committed.
   */
  voters: bigint[];
  /** Learners at start (same rule as `voters`). */
  learners?: bigint[];
  /** Ticks without hearing from a leader before a follower campaigns (randomised up to 2x). */
  electionTicks: number;
  /** Ticks between the leader's heartbeats; must be below `electionTicks`. */
  heartbeatTicks: number;
  /** Uniform random numbers in [0, 1); injected so tests and simulations are deterministic. */
  random: () => number;
  /** Ask for pre-votes before a real election (Raft thesis §9.6). Default true. */
  preVote?: boolean;
  /**
   * A leader that has not heard from a quorum within an election timeout steps down, and a
   * member that heard from a leader within it ignores vote requests (thesis §6.2). Default true.
   */
  checkQuorum?: boolean;
  /** Appends in flight, unacknowledged, per follower in replicate state. Default 256. */
  maxInflightMsgs?: number;
  /** Entry payload bytes per append message (at least one entry is sent). Default 1 MiB. */
  maxSizePerMsgBytes?: number;
  /** Bound on proposals accepted but not yet committed. */
  maxUncommittedEntries?: number;
  /** Bound on the payload bytes of proposals accepted but not yet committed (etcd: 1 GiB). */
  maxUncommittedBytes?: number;
  /** Bound on read-index requests waiting for confirmation. Default 10 000. */
  maxPendingReads?: number;
}

/** What the WAL (and the state machine) held at start-up. */
export interface RaftRestore {
  hardState: HardState | null;
  /** The compaction point: the log holds `entries` after it. */
  marker: LogMarker;
  entries: Entry[];
  /**
   * Index the state machine has already applied (its consistent index). Anything applied was
   * committed, so the commit index restarts at least there even if the WAL's was not synced.
   * Committed entries after it are handed out again in `Ready.committedEntries`.
   */
  applied?: number;
  /**
   * The configuration in force at `applied` (the latest snapshot's, plus the conf changes
   * applied after it). Conf-change entries after `applied` are applied again through
   * `applyConfChange`. Defaults to the snapshot's, then to the config's voters and learners.
   */
  confState?: ConfState;
  /** The latest snapshot held, sent to followers whose next entry was compacted away. */
  snapshot?: Snapshot;
}

/** Why `propose()` (or `readIndex()`, `transferLeader()`) refused. */
export type ProposalDropReason =
  | "not leader"
  | "leader transfer in progress"
  | "conf change pending"
  | "too many uncommitted entries"
  | "too many uncommitted bytes"
  | "too many pending reads";

/** Thrown by `propose()` when this member cannot take proposals now (not leader, overloaded). */
export class ProposalDroppedError extends Error {
  /** Says why the proposal was dropped. */
  constructor(readonly reason: ProposalDropReason) {
    super(`raft proposal dropped: ${reason}`);
    this.name = "ProposalDroppedError";
  }
}

/** A follower's replication progress, as `status()` reports it. */
export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  recentActive: boolean;
  isLearner: boolean;
  /** Appends sent and not yet acknowledged. */
  inflight: number;
  /** In `snapshot` state, the index of the snapshot sent. */
  pendingSnapshot: number;
}

/** A consistent picture of the member, for the server's status endpoints and for tests. */
export interface RaftStatus {
  id: bigint;
  term: number;
  vote: bigint;
  commit: number;
  applied: number;
  lead: bigint;
  role: Role;
  /** The member leadership is being handed to, 0n when none. */
  leadTransferee: bigint;
  confState: ConfState;
  /** Every member's progress; empty unless this member is the leader. */
  progress: Map<bigint, ProgressStatus>;
}

const defaultMaxUncommittedEntries = 100_000;
const defaultMaxUncommittedBytes = 1 << 30;
const defaultMaxInflightMsgs = 256;
const defaultMaxSizePerMsgBytes = 1 << 20;
const defaultMaxPendingReads = 10_000;

type ResolvedConfig = Required<RaftConfig>;

type CampaignKind = "preElection" | "election" | "transfer";

/** One raft member's state machine. */
export class RawNode {
  readonly id: bigint;
  readonly log: RaftLog;
  readonly #config: ResolvedConfig;
  readonly #tracker: ProgressTracker;
  readonly #readOnly: ReadOnly;
  #term: number;
  #vote: bigint;
  #role: Role = "follower";
  #lead = 0n;
  #electionElapsed = 0;
  #heartbeatElapsed = 0;
  #randomizedElectionTimeout = 0;
  #leadTransferee = 0n;
  /** Leader: index of the latest conf change proposed; another waits until it is applied. */
  #pendingConfIndex = 0;
  /** Leader: payload bytes of this term's entries after the commit index. */
  #uncommittedBytes = 0;
  /** Leader: reads that arrived before an entry of this term committed (thesis §6.4 step 1). */
  #readsAwaitingCommit: { ctx: Uint8Array; from: bigint }[] = [];
  #readStates: ReadState[] = [];
  /** Outgoing messages; the first `n` leave with `advance()` of a Ready that carried `n`. */
  #msgs: Message[] = [];
  /** Proposals forwarded to the leader still in `#msgs` (bounded like uncommitted ones). */
  #forwardedEntries = 0;
  #forwardedBytes = 0;
  /** Leader: new entries were appended and not yet sent to followers. */
  #appendsPending = false;
  /** The latest snapshot held (restored, created, or received). */
  #snapshot: Snapshot | null;
  /** A snapshot received from the leader and not yet acknowledged by `advance()`. */
  #pendingSnapshot: Snapshot | null = null;
  /** Configurations in force from each index on (oldest first), for `createSnapshot`. */
  #confHistory: { index: number; conf: ConfState }[];
  /** Index of the last conf-change entry matched to an `applyConfChange` call. */
  #lastConfChangeIndex = 0;
  #prevHardState: HardState;
  #prevSoftState: SoftState;

  /** Creates the member from its persisted state. */
  constructor(config: RaftConfig, restore: RaftRestore) {
    assert(config.electionTicks > config.heartbeatTicks, "election ticks must exceed heartbeat");
    assert(config.heartbeatTicks > 0, "heartbeat ticks must be positive");
    this.id = config.id;
    // `??` rather than a spread: an explicit `undefined` must mean "the default" too.
    this.#config = {
      id: config.id,
      voters: config.voters,
      learners: config.learners ?? [],
      electionTicks: config.electionTicks,
      heartbeatTicks: config.heartbeatTicks,
      random: config.random,
      preVote: config.preVote ?? true,
      checkQuorum: config.checkQuorum ?? true,
      maxInflightMsgs: config.maxInflightMsgs ?? defaultMaxInflightMsgs,
      maxSizePerMsgBytes: config.maxSizePerMsgBytes ?? defaultMaxSizePerMsgBytes,
      maxUncommittedEntries: config.maxUncommittedEntries ?? defaultMaxUncommittedEntries,
      maxUncommittedBytes: config.maxUncommittedBytes ?? defaultMaxUncommittedBytes,
      maxPendingReads: config.maxPendingReads ?? defaultMaxPendingReads,
    };
    const hs = restore.hardState ?? emptyHardState;
    const applied = Math.max(restore.applied ?? 0, restore.marker.index);
    this.log = new RaftLog(restore.marker, restore.entries, Math.max(hs.commit, applied));
    assert(applied <= this.log.committed, `applied ${applied} is beyond the restored log`);
    this.log.applied = applied;
    this.#term = hs.term;
    this.#vote = hs.vote;
    this.#snapshot = restore.snapshot ?? null;
    const conf = restore.confState ?? restore.snapshot?.metadata.confState ?? {
      voters: config.voters,
      learners: config.learners ?? [],
    };
    this.#tracker = new ProgressTracker(
      conf,
      this.log.lastIndex() + 1,
      this.#config.maxInflightMsgs,
    );
    this.#confHistory = [{ index: applied, conf: this.#tracker.confState() }];
    this.#readOnly = new ReadOnly(this.#config.maxPendingReads);
    this.#prevHardState = { ...hs, commit: this.log.committed };
    this.#prevSoftState = { lead: 0n, role: "follower" };
    this.#resetElectionTimeout();
  }

  /** Current term. */
  get term(): number {
    return this.#term;
  }

  /** Current role. */
  get role(): Role {
    return this.#role;
  }

  /** The known leader, 0n when none. */
  get lead(): bigint {
    return this.#lead;
  }

  /** True when this member is a learner: it receives the log but never votes or campaigns. */
  get isLearner(): boolean {
    return this.#tracker.learners.has(this.id);
  }

  /** True when the configuration has members besides this one (voters or learners). */
  get hasPeers(): boolean {
    return this.#hasPeers();
  }

  /** The latest snapshot held, null when none. */
  get snapshot(): Snapshot | null {
    return this.#snapshot;
  }

  /**
   * True when this leader has a follower that needs a snapshot (its next entry was compacted,
   * or it is joining with no configuration) and holds none recent enough: the server should
   * call `createSnapshot(applied, data)`. The follower is served once one is held.
   */
  get needsSnapshot(): boolean {
    if (this.#role !== "leader") return false;
    const marker = this.log.marker.index;
    if (this.#snapshot && this.#snapshot.metadata.index >= Math.max(marker, 1)) return false;
    for (const [id, pr] of this.#tracker.progress) {
      if (id === this.id || pr.state === "snapshot") continue;
      if (pr.next <= marker || pr.snapshotRequested) return true;
    }
    return false;
  }

  /** Advances logical time by one tick. */
  tick(): void {
    if (this.#role === "leader") this.#tickHeartbeat();
    else this.#tickElection();
  }

  /** Starts an election now (Raft paper §5.2), with a pre-vote round first when enabled. */
  campaign(): void {
    this.#hup(false);
  }

  /**
   * Takes one message from another member (or a local kind: hup, beat, checkQuorum,
   * unreachable, snapStatus). Messages for another member, and stale ones, are ignored.
   */
  step(m: Message): void {
    if (m.to !== this.id && m.to !== 0n) return;
    if (m.term === 0) {
      this.#stepLocal(m);
      return;
    }
    if (m.term > this.#term) {
      if (m.type === MessageType.vote || m.type === MessageType.preVote) {
        const force = isCampaignTransfer(m.context);
        const inLease = this.#config.checkQuorum && this.#lead !== 0n &&
          this.#electionElapsed < this.#config.electionTicks;
        // Leader lease (thesis §4.2.3): while we hear from a leader, a member that cannot
        // reach it (or was removed) must not disrupt the cluster with higher terms.
        if (!force && inLease) return;
      }
      if (m.type === MessageType.preVote) {
        // A pre-vote never changes our term (thesis §9.6).
      } else if (m.type === MessageType.preVoteResp && !m.reject) {
        // Granted pre-votes carry the term we asked for; the election will claim it.
      } else {
        const fromLeader = m.type === MessageType.app || m.type === MessageType.heartbeat ||
          m.type === MessageType.snap;
        this.#becomeFollower(m.term, fromLeader ? m.from : 0n);
      }
    } else if (m.term < this.#term) {
      if (
        (this.#config.checkQuorum || this.#config.preVote) &&
        (m.type === MessageType.heartbeat || m.type === MessageType.app)
      ) {
        // A stale leader (partitioned, or its followers moved on under pre-vote/lease rules
        // without bumping it) learns our term from this answer and steps down.
        this.#send({ type: MessageType.appResp, to: m.from });
      } else if (m.type === MessageType.preVote) {
        this.#send({
          type: MessageType.preVoteResp,
          to: m.from,
          term: this.#term,
          reject: true,
        });
      }
      return;
    }
    if (m.type === MessageType.vote || m.type === MessageType.preVote) {
      this.#handleVoteRequest(m);
      return;
    }
    switch (this.#role) {
      case "leader":
        this.#stepLeader(m);
        return;
      case "candidate":
      case "preCandidate":
        this.#stepCandidate(m);
        return;
      case "follower":
        this.#stepFollower(m);
        return;
    }
  }

  /**
   * Proposes `data` as a new entry. On the leader, appends it and returns its index. On a
   * follower that knows the leader, forwards it (MsgProp) and returns 0: the entry appears in
   * `committedEntries` if the leader accepts it. Throws {@linkcode ProposalDroppedError}
   * when there is no leader, a leadership transfer is in progress, the uncommitted bounds are
   * reached, or (for `EntryType.confChange`) another conf change is still pending: only one
   * conf change may be committed-but-unapplied at a time (thesis §4.1). Throwing, instead of
   * etcd's silent replacement by an empty entry, lets the caller answer at once.
   */
  propose(data: Uint8Array, type: number = EntryType.normal): number {
    if (this.#role !== "leader") {
      if (this.#lead === 0n) throw new ProposalDroppedError("not leader");
      const c = this.#config;
      if (this.#forwardedEntries >= c.maxUncommittedEntries) {
        throw new ProposalDroppedError("too many uncommitted entries");
      }
      if (this.#forwardedBytes > 0 && this.#forwardedBytes + data.length > c.maxUncommittedBytes) {
        throw new ProposalDroppedError("too many uncommitted bytes");
      }
      this.#forwardedEntries++;
      this.#forwardedBytes += data.length;
      this.#send({
        type: MessageType.prop,
        to: this.#lead,
        entries: [{ term: 0, index: 0, type, data }],
      });
      return 0;
    }
    const refusal = this.#refuseProposal(data, type);
    if (refusal) throw new ProposalDroppedError(refusal);
    return this.#appendProposal(data, type);
  }

  /**
   * Requests a linearizable read point (ReadIndex, Raft thesis §6.4). The answer arrives in a
   * later Ready's `readStates` with the same context: serve the read once the applied index
   * reaches it. The leader answers once an entry of its term committed and a heartbeat round
   * confirmed a quorum still follows it (at once with a single voter). A follower forwards
   * the request to its leader. Throws {@linkcode ProposalDroppedError} with no leader.
   */
  readIndex(requestCtx: Uint8Array): void {
    if (this.#role === "leader") {
      if (this.#pendingReads() >= this.#config.maxPendingReads) {
        throw new ProposalDroppedError("too many pending reads");
      }
      this.#leaderReadIndex(requestCtx, this.id);
      return;
    }
    if (this.#lead === 0n) throw new ProposalDroppedError("not leader");
    this.#send({
      type: MessageType.readIndex,
      to: this.#lead,
      entries: [{ term: 0, index: 0, type: EntryType.normal, data: requestCtx }],
    });
  }

  /**
   * Hands leadership to `transferee` (Raft thesis §3.10): the leader stops taking proposals,
   * brings the transferee's log up to date, then tells it to campaign at once (MsgTimeoutNow).
   * The transfer is abandoned after an election timeout. A follower forwards the request to
   * its leader; with no leader known it throws {@linkcode ProposalDroppedError}.
   */
  transferLeader(transferee: bigint): void {
    if (this.#role === "leader") {
      this.#handleTransferLeader(transferee);
      return;
    }
    if (this.#lead === 0n) throw new ProposalDroppedError("not leader");
    // As in etcd, `from` names the transferee: the leader learns whom to hand over to.
    this.#msgs.push(newMessage({
      type: MessageType.transferLeader,
      to: this.#lead,
      from: transferee,
      term: this.#term,
    }));
  }

  /**
   * Applies a committed conf-change entry: call it while applying `committedEntries`, in log
   * order. Single-step changes only (thesis §4.1): `addNode` adds a voter or promotes a
   * learner, `addLearnerNode` adds a learner (or demotes a voter), `removeNode` removes a
   * member, `updateNode` changes nothing here. A leader that is no longer a voter steps down.
   * Returns the configuration now in force.
   */
  applyConfChange(cc: ConfChange): ConfState {
    const index = this.#locateConfChangeEntry();
    const next = this.log.lastIndex() + 1;
    if (cc.nodeId !== 0n) {
      switch (cc.type) {
        case ConfChangeType.addNode:
          this.#tracker.addVoter(cc.nodeId, next);
          break;
        case ConfChangeType.addLearnerNode:
          this.#tracker.addLearner(cc.nodeId, next);
          break;
        case ConfChangeType.removeNode:
          this.#tracker.remove(cc.nodeId);
          break;
        case ConfChangeType.updateNode:
          break;
      }
    }
    const conf = this.#tracker.confState();
    this.#confHistory.push({ index, conf });
    if (this.#role === "leader") this.#afterLeaderConfChange(cc);
    return conf;
  }

  /** The transport could not deliver to `id`: stop streaming to it and probe instead. */
  reportUnreachable(id: bigint): void {
    if (this.#role !== "leader") return;
    const pr = this.#tracker.progress.get(id);
    // An append is likely lost: streaming on would only pile up more behind it.
    if (pr && pr.state === "replicate") pr.becomeProbe();
  }

  /**
   * The transport finished sending a snapshot to `id` (`ok`) or failed. Either way the
   * leader goes back to probing; after a success it waits for the follower's answer, after a
   * failure for the next heartbeat response, before sending again.
   */
  reportSnapshot(id: bigint, ok: boolean): void {
    if (this.#role !== "leader") return;
    const pr = this.#tracker.progress.get(id);
    if (!pr || pr.state !== "snapshot") return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    pr.probeSent = true;
  }

  /**
   * Records a snapshot of the state machine at `index` (<= applied) with opaque `data` and
   * the configuration in force at `index`. The member holds it (replacing an older one) to
   * send to followers that need compacted entries. Persisting it is the server's job. While
   * a snapshot received from the leader awaits installation (the log already starts past
   * `index`), that newer snapshot is returned instead: check `metadata.index`.
   */
  createSnapshot(index: number, data: Uint8Array): Snapshot {
    assert(index <= this.log.applied, `snapshot ${index} beyond applied ${this.log.applied}`);
    if (index < this.log.marker.index && this.#snapshot) {
      // A newer snapshot (received from the leader, not installed yet) replaced the log.
      return this.#snapshot;
    }
    assert(
      index >= this.log.marker.index,
      `snapshot ${index} below the log's first index ${this.log.firstIndex()}`,
    );
    const snap: Snapshot = {
      metadata: { index, term: this.log.term(index), confState: this.#confStateAt(index) },
      data,
    };
    if (!this.#snapshot || this.#snapshot.metadata.index < index) this.#snapshot = snap;
    return snap;
  }

  /**
   * Drops applied entries from memory, keeping the last `keepEntries` for followers catching
   * up. With other members, never compacts past the held snapshot: a follower needing those
   * entries could otherwise be repaired by neither entries nor snapshot.
   */
  compactLog(keepEntries: number): void {
    let upTo = this.log.applied - keepEntries;
    if (this.#hasPeers()) upTo = Math.min(upTo, this.#snapshot?.metadata.index ?? 0);
    if (upTo > this.log.firstIndex()) this.log.compactTo(upTo);
    // Configurations before the compaction point can no longer be asked for: keep the one in
    // force there and every later one (so the history is bounded by the log window).
    let keepFrom = 0;
    for (let i = 0; i < this.#confHistory.length; i++) {
      if (this.#confHistory[i].index <= this.log.marker.index) keepFrom = i;
    }
    this.#confHistory.splice(0, keepFrom);
  }

  /** The member's state, for status endpoints and tests. */
  status(): RaftStatus {
    const progress = new Map<bigint, ProgressStatus>();
    if (this.#role === "leader") {
      for (const [id, pr] of this.#tracker.progress) {
        progress.set(id, {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          recentActive: pr.recentActive,
          isLearner: pr.isLearner,
          inflight: pr.inflights.count,
          pendingSnapshot: pr.pendingSnapshot,
        });
      }
    }
    return {
      id: this.id,
      term: this.#term,
      vote: this.#vote,
      commit: this.log.committed,
      applied: this.log.applied,
      lead: this.#lead,
      role: this.#role,
      leadTransferee: this.#leadTransferee,
      confState: this.#tracker.confState(),
      progress,
    };
  }

  /** True when `ready()` would hand out work. */
  hasReady(): boolean {
    this.#flushAppends();
    const log = this.log;
    if (this.#pendingSnapshot) return true;
    if (this.#msgs.length > 0) return true;
    if (log.stable < log.lastIndex()) return true;
    if (log.hasNextCommittedEntries()) return true;
    if (this.#readStates.length > 0) return true;
    if (!sameHardState(this.#hardState(), this.#prevHardState)) return true;
    const soft = this.#softState();
    return soft.lead !== this.#prevSoftState.lead || soft.role !== this.#prevSoftState.role;
  }

  /**
   * The work to do now (see {@linkcode Ready} for the order to do it in). Call it once, do
   * the work, then call `advance(rd)` before the next `ready()`.
   */
  ready(): Ready {
    this.#flushAppends();
    const hs = this.#hardState();
    const soft = this.#softState();
    const hardChanged = !sameHardState(hs, this.#prevHardState);
    const termOrVoteChanged = hs.term !== this.#prevHardState.term ||
      hs.vote !== this.#prevHardState.vote;
    const entries = this.log.unstableEntries();
    const snapshot = this.#pendingSnapshot;
    // A leader may send before its disk write completes, but only once its term is durable:
    // a leader whose election is not on disk could restart, win the same term again and send
    // different entries under it (a lone voter wins without any message in between).
    const holdMessages = this.#role === "leader" && termOrVoteChanged;
    return {
      softState: soft.lead !== this.#prevSoftState.lead || soft.role !== this.#prevSoftState.role
        ? soft
        : null,
      hardState: hardChanged ? hs : null,
      entries,
      committedEntries: this.log.nextCommittedEntries(),
      messages: holdMessages ? [] : this.#msgs.slice(),
      snapshot,
      readStates: this.#readStates.slice(),
      // A commit index alone may be lost in a crash: it is recomputed from the log (§5.3).
      mustSync: entries.length > 0 || termOrVoteChanged || snapshot !== null,
    };
  }

  /** Acknowledges that `rd` was persisted, sent and applied. */
  advance(rd: Ready): void {
    if (rd.softState) this.#prevSoftState = rd.softState;
    if (rd.hardState) this.#prevHardState = rd.hardState;
    if (rd.snapshot) {
      this.log.snapshotInstalled(rd.snapshot.metadata.index);
      if (this.#pendingSnapshot === rd.snapshot) this.#pendingSnapshot = null;
    }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1];
      this.log.stableTo(last.index, last.term);
    }
    if (rd.committedEntries.length > 0) {
      this.log.appliedTo(rd.committedEntries[rd.committedEntries.length - 1].index);
    }
    if (rd.messages.length > 0) {
      assert(this.#msgs[0] === rd.messages[0], "advance() of a Ready that was not the last one");
      for (const m of this.#msgs.splice(0, rd.messages.length)) {
        if (m.type !== MessageType.prop || m.from !== this.id) continue;
        for (const e of m.entries) {
          this.#forwardedEntries--;
          this.#forwardedBytes -= e.data.length;
        }
      }
    }
    this.#readStates.splice(0, rd.readStates.length);
    if (this.#role === "leader") {
      // Our own copy counts toward a quorum only now that it is durable.
      this.#self()?.maybeUpdate(this.log.stable);
      if (this.#maybeCommit()) this.#appendsPending = true;
    }
  }

  /** True when the configuration names any member besides this one. */
  #hasPeers(): boolean {
    for (const id of this.#tracker.progress.keys()) if (id !== this.id) return true;
    return false;
  }

  // ---- time ----

  #tickElection(): void {
    this.#electionElapsed++;
    if (this.#promotable() && this.#electionElapsed >= this.#randomizedElectionTimeout) {
      this.#electionElapsed = 0;
      this.#hup(false);
    }
  }

  #tickHeartbeat(): void {
    this.#heartbeatElapsed++;
    this.#electionElapsed++;
    if (this.#electionElapsed >= this.#config.electionTicks) {
      this.#electionElapsed = 0;
      if (this.#config.checkQuorum && !this.#tracker.quorumActive(this.id)) {
        // Thesis §6.2: a leader cut off from a quorum steps down so clients find the real one.
        this.#becomeFollower(this.#term, 0n);
        return;
      }
      // Thesis §3.10: a transfer that did not finish within an election timeout is abandoned.
      this.#leadTransferee = 0n;
    }
    if (this.#heartbeatElapsed >= this.#config.heartbeatTicks) {
      this.#heartbeatElapsed = 0;
      this.#bcastHeartbeat();
    }
  }

  #resetElectionTimeout(): void {
    this.#electionElapsed = 0;
    const base = this.#config.electionTicks;
    const r = this.#config.random();
    assert(r >= 0 && r < 1, `random() returned ${r}, outside [0, 1)`);
    this.#randomizedElectionTimeout = base + Math.floor(r * base);
  }

  // ---- roles ----

  /** A voter of the configuration in force may campaign; learners and outsiders may not. */
  #promotable(): boolean {
    return this.#tracker.voters.has(this.id);
  }

  #reset(term: number): void {
    if (term !== this.#term) {
      this.#term = term;
      this.#vote = 0n;
    }
    this.#lead = 0n;
    this.#heartbeatElapsed = 0;
    this.#resetElectionTimeout();
    this.#leadTransferee = 0n;
    this.#tracker.resetVotes();
    this.#readOnly.reset();
    this.#readsAwaitingCommit = [];
    this.#appendsPending = false;
  }

  #becomeFollower(term: number, lead: bigint): void {
    this.#reset(term);
    this.#role = "follower";
    this.#lead = lead;
  }

  #becomePreCandidate(): void {
    assert(this.#role !== "leader", "a leader cannot become a pre-candidate");
    // Neither term nor vote change: losing a pre-vote must leave no trace (thesis §9.6).
    this.#tracker.resetVotes();
    this.#lead = 0n;
    this.#role = "preCandidate";
    this.#resetElectionTimeout();
  }

  #becomeCandidate(): void {
    assert(this.#role !== "leader", "a leader cannot become a candidate");
    this.#reset(this.#term + 1);
    this.#vote = this.id;
    this.#role = "candidate";
  }

  #becomeLeader(): void {
    assert(this.#role === "candidate", "only a candidate becomes leader");
    this.#reset(this.#term);
    this.#role = "leader";
    this.#lead = this.id;
    const next = this.log.lastIndex() + 1;
    for (const [id, pr] of this.#tracker.progress) {
      pr.reset(next);
      if (id === this.id) {
        pr.match = this.log.stable;
        pr.becomeReplicate();
        pr.next = next;
        pr.recentActive = true;
      }
    }
    // Entries of earlier terms may hold a conf change: wait until they are applied.
    this.#pendingConfIndex = this.log.lastIndex();
    this.#uncommittedBytes = 0;
    // An empty entry of the new term lets the leader commit, and so learn the commit
    // index of everything before it (Raft paper §5.4.2, §8).
    this.log.append([{
      term: this.#term,
      index: next,
      type: EntryType.normal,
      data: new Uint8Array(),
    }]);
    this.#appendsPending = true;
  }

  // ---- elections ----

  #hup(transfer: boolean): void {
    if (this.#role === "leader") return;
    if (!this.#promotable()) return;
    // A committed conf change not yet applied may change who votes: wait for it.
    if (this.#hasUnappliedConfChanges()) return;
    if (this.#config.preVote && !transfer) this.#campaign("preElection");
    else this.#campaign(transfer ? "transfer" : "election");
  }

  #hasUnappliedConfChanges(): boolean {
    const from = Math.max(this.log.applied, this.log.marker.index) + 1;
    if (from > this.log.committed) return false;
    for (const e of this.log.slice(from, this.log.committed + 1)) {
      if (e.type === EntryType.confChange || e.type === EntryType.confChangeV2) return true;
    }
    return false;
  }

  #campaign(kind: CampaignKind): void {
    let voteType: MessageType;
    let term: number;
    if (kind === "preElection") {
      this.#becomePreCandidate();
      voteType = MessageType.preVote;
      // Ask for the term an election would use, without moving to it yet.
      term = this.#term + 1;
    } else {
      this.#becomeCandidate();
      voteType = MessageType.vote;
      term = this.#term;
    }
    this.#tracker.recordVote(this.id, true);
    if (this.#tracker.tallyVotes() === "won") {
      if (kind === "preElection") this.#campaign("election");
      else this.#becomeLeader();
      return;
    }
    for (const id of [...this.#tracker.voters].sort(compareIds)) {
      if (id === this.id) continue;
      this.#send({
        type: voteType,
        to: id,
        term,
        index: this.log.lastIndex(),
        logTerm: this.log.lastTerm(),
        context: kind === "transfer" ? campaignTransferContext : new Uint8Array(),
      });
    }
  }

  #handleVoteRequest(m: Message): void {
    const canVote = this.#vote === m.from ||
      (this.#vote === 0n && this.#lead === 0n) ||
      (m.type === MessageType.preVote && m.term > this.#term);
    const respType = voteResponseType(m.type);
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      // A granted response carries the requested term: for a pre-vote that is a term we
      // have not moved to, and the pre-candidate recognises its own request by it.
      this.#send({ type: respType, to: m.from, term: m.term });
      if (m.type === MessageType.vote) {
        this.#electionElapsed = 0;
        this.#vote = m.from;
      }
    } else {
      this.#send({ type: respType, to: m.from, term: this.#term, reject: true });
    }
  }

  // ---- steps by role ----

  #stepLocal(m: Message): void {
    switch (m.type) {
      case MessageType.hup:
        this.#hup(false);
        return;
      case MessageType.beat:
        if (this.#role === "leader") this.#bcastHeartbeat();
        return;
      case MessageType.checkQuorum:
        if (this.#role === "leader" && !this.#tracker.quorumActive(this.id)) {
          this.#becomeFollower(this.#term, 0n);
        }
        return;
      case MessageType.unreachable:
        this.reportUnreachable(m.from);
        return;
      case MessageType.snapStatus:
        this.reportSnapshot(m.from, !m.reject);
        return;
      case MessageType.prop:
        this.#stepProp(m);
        return;
      case MessageType.readIndex:
        this.#stepReadIndex(m);
        return;
      default:
        return;
    }
  }

  /** A proposal forwarded by a follower (or re-forwarded when we are not leader). */
  #stepProp(m: Message): void {
    if (this.#role === "leader") {
      for (const e of m.entries) {
        // Refused entries are dropped: the proposer learns through its own timeout.
        if (this.#refuseProposal(e.data, e.type) === null) this.#appendProposal(e.data, e.type);
      }
      return;
    }
    if (this.#role === "follower" && this.#lead !== 0n && m.from !== this.#lead) {
      this.#msgs.push({ ...m, to: this.#lead });
    }
  }

  #stepReadIndex(m: Message): void {
    if (m.entries.length !== 1) return;
    const ctx = m.entries[0].data;
    if (this.#role === "leader") {
      if (this.#pendingReads() < this.#config.maxPendingReads) this.#leaderReadIndex(ctx, m.from);
      return;
    }
    if (this.#role === "follower" && this.#lead !== 0n && m.from !== this.#lead) {
      this.#msgs.push({ ...m, to: this.#lead });
    }
  }

  #stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.appResp:
        this.#handleAppendResponse(m);
        return;
      case MessageType.heartbeatResp:
        this.#handleHeartbeatResponse(m);
        return;
      case MessageType.transferLeader:
        this.#handleTransferLeader(m.from);
        return;
      default:
        // Appends or heartbeats of our own term cannot come from another leader (one leader
        // per term, §5.2); anything else is stale.
        return;
    }
  }

  #stepCandidate(m: Message): void {
    const myResponse = this.#role === "preCandidate"
      ? MessageType.preVoteResp
      : MessageType.voteResp;
    switch (m.type) {
      case MessageType.app:
        this.#becomeFollower(m.term, m.from);
        this.#handleAppend(m);
        return;
      case MessageType.heartbeat:
        this.#becomeFollower(m.term, m.from);
        this.#handleHeartbeat(m);
        return;
      case MessageType.snap:
        this.#becomeFollower(m.term, m.from);
        this.#handleSnapshot(m);
        return;
      case myResponse: {
        this.#tracker.recordVote(m.from, !m.reject);
        const result = this.#tracker.tallyVotes();
        if (result === "won") {
          if (this.#role === "preCandidate") {
            this.#campaign("election");
          } else {
            this.#becomeLeader();
          }
        } else if (result === "lost") {
          // A rejected pre-vote leaves the term alone; a lost election keeps the new one.
          this.#becomeFollower(this.#term, 0n);
        }
        return;
      }
      default:
        return;
    }
  }

  #stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.app:
        this.#electionElapsed = 0;
        this.#lead = m.from;
        this.#handleAppend(m);
        return;
      case MessageType.heartbeat:
        this.#electionElapsed = 0;
        this.#lead = m.from;
        this.#handleHeartbeat(m);
        return;
      case MessageType.snap:
        this.#electionElapsed = 0;
        this.#lead = m.from;
        this.#handleSnapshot(m);
        return;
      case MessageType.transferLeader:
        if (this.#lead !== 0n) this.#msgs.push({ ...m, to: this.#lead });
        return;
      case MessageType.timeoutNow:
        // The leader hands over: campaign at once, without pre-vote and past any lease.
        this.#hup(true);
        return;
      case MessageType.readIndexResp:
        if (m.entries.length === 1) {
          this.#readStates.push({ index: m.index, requestCtx: m.entries[0].data });
        }
        return;
      default:
        return;
    }
  }

  // ---- follower side of replication ----

  #handleAppend(m: Message): void {
    if (m.index < this.log.committed) {
      this.#send({ type: MessageType.appResp, to: m.from, index: this.log.committed });
      return;
    }
    for (let i = 0; i < m.entries.length; i++) {
      if (m.entries[i].index !== m.index + 1 + i) return; // malformed: ignore
    }
    if (this.#joining()) {
      // Replaying the log would build a configuration on top of nothing, missing the one
      // the cluster started with: only a snapshot (which carries it) can start us.
      this.#send({
        type: MessageType.appResp,
        to: m.from,
        index: m.index,
        reject: true,
        context: snapshotRequestContext,
      });
      return;
    }
    if (this.log.matchTerm(m.index, m.logTerm)) {
      const lastNew = m.index + m.entries.length;
      this.log.truncateAndAppend(m.entries);
      this.log.commitTo(Math.min(m.commit, lastNew));
      this.#send({ type: MessageType.appResp, to: m.from, index: lastNew });
      return;
    }
    // Reject with a hint (Raft thesis §3.5 optimisation): our last index at or below the
    // probe whose term is <= the probe's term. The leader can then skip every entry of the
    // terms we do not have, instead of one index per round trip.
    const hintIndex = this.log.findConflictByTerm(
      Math.min(m.index, this.log.lastIndex()),
      m.logTerm,
    );
    this.#send({
      type: MessageType.appResp,
      to: m.from,
      index: m.index,
      reject: true,
      rejectHint: hintIndex,
      logTerm: this.log.term(hintIndex),
    });
  }

  /**
   * True for a member with neither a configuration nor a log nor a snapshot: one joining an
   * existing cluster (`RaftConfig.voters` = []). Members that bootstrap a cluster know its
   * configuration from their config, or from conf-change entries in their restored log.
   */
  #joining(): boolean {
    return this.#tracker.voters.size === 0 && this.#tracker.learners.size === 0 &&
      this.log.lastIndex() === 0 && this.#snapshot === null;
  }

  #handleHeartbeat(m: Message): void {
    // The leader sends min(match, commit): never past what we hold in agreement with it.
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.#send({ type: MessageType.heartbeatResp, to: m.from, context: m.context });
  }

  #handleSnapshot(m: Message): void {
    const snap = m.snapshot;
    if (!snap) return;
    if (this.#restoreSnapshot(snap)) {
      this.#send({ type: MessageType.appResp, to: m.from, index: this.log.lastIndex() });
    } else {
      this.#send({ type: MessageType.appResp, to: m.from, index: this.log.committed });
    }
  }

  /** Restarts the log at `snap`; false when it teaches nothing new (Raft paper §7). */
  #restoreSnapshot(snap: Snapshot): boolean {
    const { index, term, confState } = snap.metadata;
    if (index <= this.log.committed) return false;
    // A configuration without us is taken too: a member added after the snapshot's index
    // is added again by the entries that follow it (leaders send only to members).
    if (this.log.matchTerm(index, term)) {
      // We hold the snapshot's last entry: its prefix is committed, the rest of our log stays.
      this.log.commitTo(index);
      return false;
    }
    this.log.restore({ index, term });
    this.#tracker.reset(confState, this.log.lastIndex() + 1);
    this.#confHistory = [{ index, conf: this.#tracker.confState() }];
    this.#pendingSnapshot = snap;
    this.#snapshot = snap;
    return true;
  }

  // ---- leader side of replication ----

  #self(): Progress | undefined {
    return this.#tracker.progress.get(this.id);
  }

  /** Why a proposal cannot be taken now, or null when it can. */
  #refuseProposal(data: Uint8Array, type: number): ProposalDropReason | null {
    if (this.#leadTransferee !== 0n) return "leader transfer in progress";
    if (!this.#tracker.voters.has(this.id)) return "not leader";
    if (type === EntryType.confChange || type === EntryType.confChangeV2) {
      if (this.#pendingConfIndex > this.log.applied) return "conf change pending";
    }
    if (this.log.lastIndex() - this.log.committed >= this.#config.maxUncommittedEntries) {
      return "too many uncommitted entries";
    }
    // One oversized proposal is still accepted when nothing is pending, or it never could be.
    if (
      this.#uncommittedBytes > 0 &&
      this.#uncommittedBytes + data.length > this.#config.maxUncommittedBytes
    ) {
      return "too many uncommitted bytes";
    }
    return null;
  }

  #appendProposal(data: Uint8Array, type: number): number {
    const index = this.log.lastIndex() + 1;
    this.log.append([{ term: this.#term, index, type, data }]);
    this.#uncommittedBytes += data.length;
    if (type === EntryType.confChange || type === EntryType.confChangeV2) {
      this.#pendingConfIndex = index;
    }
    // Sent when the Ready is taken: proposals of one batch share one append per follower.
    this.#appendsPending = true;
    return index;
  }

  /**
   * Sends what became due since the last Ready: new entries, and the commit index to every
   * follower not yet told about it. One message per follower covers a whole batch of
   * proposals and commit advances.
   */
  #flushAppends(): void {
    if (!this.#appendsPending) return;
    this.#appendsPending = false;
    if (this.#role !== "leader") return;
    const informed = new Set<bigint>();
    for (const m of this.#msgs) {
      if (m.type === MessageType.app && m.commit === this.log.committed) informed.add(m.to);
    }
    for (const id of this.#tracker.progress.keys()) {
      if (id !== this.id) this.#maybeSendAppend(id, !informed.has(id));
    }
  }

  /** Sends every follower its next entries, or an empty append carrying the commit index. */
  #bcastAppend(): void {
    this.#appendsPending = false;
    for (const id of this.#tracker.progress.keys()) {
      if (id !== this.id) this.#maybeSendAppend(id, true);
    }
  }

  /**
   * Sends `to` the entries from its next index (or a snapshot when they were compacted), if
   * flow control allows. With `sendIfEmpty` false, sends nothing when there is nothing new.
   */
  #maybeSendAppend(to: bigint, sendIfEmpty: boolean): boolean {
    const pr = this.#tracker.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    if (pr.snapshotRequested) return this.#sendSnapshot(to, pr);
    let prevTerm: number;
    let entries: Entry[];
    try {
      prevTerm = this.log.term(pr.next - 1);
      entries = this.log.entriesFrom(pr.next, this.#config.maxSizePerMsgBytes);
    } catch (err) {
      if (!(err instanceof LogCompactedError)) throw err;
      return this.#sendSnapshot(to, pr);
    }
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.#send({
      type: MessageType.app,
      to,
      index: pr.next - 1,
      logTerm: prevTerm,
      entries,
      commit: this.log.committed,
    });
    if (entries.length > 0) {
      const last = entries[entries.length - 1].index;
      if (pr.state === "replicate") {
        pr.optimisticUpdate(last);
        pr.inflights.add(last);
      } else if (pr.state === "probe") {
        pr.probeSent = true;
      }
    }
    return true;
  }

  #sendSnapshot(to: bigint, pr: Progress): boolean {
    // A silent follower would only make us ship a large snapshot into the void.
    if (!pr.recentActive) return false;
    const snap = this.#snapshot;
    // A snapshot older than the compaction point leaves a gap the follower cannot fill.
    if (!snap || snap.metadata.index < this.log.marker.index || snap.metadata.index === 0) {
      return false;
    }
    this.#send({ type: MessageType.snap, to, snapshot: snap });
    pr.becomeSnapshot(snap.metadata.index);
    return true;
  }

  #bcastHeartbeat(): void {
    const ctx = this.#readOnly.lastPendingCtx();
    for (const id of this.#tracker.progress.keys()) {
      if (id !== this.id) this.#sendHeartbeat(id, ctx ?? new Uint8Array());
    }
  }

  #sendHeartbeat(to: bigint, ctx: Uint8Array): void {
    const pr = this.#tracker.progress.get(to);
    if (!pr) return;
    // The follower may not hold our entries up to our commit index yet: it must never
    // commit past what it holds in agreement with us.
    const commit = Math.min(pr.match, this.log.committed);
    this.#send({ type: MessageType.heartbeat, to, commit, context: ctx });
  }

  #handleAppendResponse(m: Message): void {
    const pr = this.#tracker.progress.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    if (m.reject) {
      if (isSnapshotRequest(m.context)) {
        pr.snapshotRequested = true;
        this.#maybeSendAppend(m.from, true);
        return;
      }
      let nextProbe = m.rejectHint;
      // The follower holds term m.logTerm at the hint: skip back past every index of ours
      // whose term is later, since none of them can match (fast backtracking).
      if (m.logTerm > 0) nextProbe = this.log.findConflictByTerm(m.rejectHint, m.logTerm);
      if (pr.maybeDecreaseTo(m.index, nextProbe)) {
        if (pr.state === "replicate") pr.becomeProbe();
        this.#maybeSendAppend(m.from, true);
      }
      return;
    }
    if (m.index > this.log.lastIndex()) return; // not an answer to anything we sent
    const wasPaused = pr.isPaused();
    const updated = pr.maybeUpdate(m.index);
    if (!updated && !(pr.state === "probe" && pr.match === m.index)) return;
    if (pr.state === "probe") {
      pr.becomeReplicate();
    } else if (pr.state === "snapshot" && pr.match >= pr.pendingSnapshot) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === "replicate") {
      pr.inflights.freeLE(m.index);
    }
    if (this.#maybeCommit()) this.#appendsPending = true;
    if (wasPaused) this.#maybeSendAppend(m.from, true);
    // Stream whatever else the window allows (bounded by the inflight capacity).
    for (let i = 0; i < this.#config.maxInflightMsgs; i++) {
      if (!this.#maybeSendAppend(m.from, false)) break;
    }
    if (m.from === this.#leadTransferee && pr.match === this.log.lastIndex()) {
      this.#send({ type: MessageType.timeoutNow, to: m.from });
    }
  }

  #handleHeartbeatResponse(m: Message): void {
    const pr = this.#tracker.progress.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    pr.probeSent = false;
    // An acknowledgement may have been lost: free one slot so the stream cannot stall.
    if (pr.state === "replicate" && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.log.lastIndex()) this.#maybeSendAppend(m.from, true);
    if (m.context.length === 0) return;
    const acks = this.#readOnly.recvAck(m.from, m.context);
    if (!acks || !this.#hasReadQuorum(acks)) return;
    for (const req of this.#readOnly.advance(m.context)) {
      this.#answerRead(req.index, req.requestCtx, req.from);
    }
  }

  #hasReadQuorum(acks: Set<bigint>): boolean {
    let n = 0;
    for (const id of this.#tracker.voters) if (id === this.id || acks.has(id)) n++;
    return n >= this.#tracker.quorum();
  }

  /**
   * Commits the highest index that a quorum of voters has persisted, only if it belongs to
   * the current term (Raft paper §5.4.2): older entries commit with it, never by counting.
   */
  #maybeCommit(): boolean {
    const candidate = this.#tracker.committedIndex();
    if (candidate <= this.log.committed || this.log.term(candidate) !== this.#term) return false;
    for (const e of this.log.slice(this.log.committed + 1, candidate + 1)) {
      if (e.term === this.#term) this.#uncommittedBytes -= e.data.length;
    }
    this.#uncommittedBytes = Math.max(0, this.#uncommittedBytes);
    this.log.commitTo(candidate);
    this.#releaseReadsAwaitingCommit();
    return true;
  }

  #committedInTerm(): boolean {
    return this.log.term(this.log.committed) === this.#term;
  }

  // ---- reads ----

  #pendingReads(): number {
    return this.#readOnly.size + this.#readsAwaitingCommit.length;
  }

  #leaderReadIndex(ctx: Uint8Array, from: bigint): void {
    // Until an entry of this term commits, our commit index may lag the cluster's (§6.4).
    if (!this.#committedInTerm()) {
      this.#readsAwaitingCommit.push({ ctx, from });
      return;
    }
    this.#startRead(ctx, from);
  }

  #startRead(ctx: Uint8Array, from: bigint): void {
    if (this.#tracker.voters.size === 1 && this.#tracker.voters.has(this.id)) {
      this.#answerRead(this.log.committed, ctx, from);
      return;
    }
    if (!this.#readOnly.add(this.log.committed, ctx, from)) return;
    for (const id of this.#tracker.progress.keys()) {
      if (id !== this.id) this.#sendHeartbeat(id, ctx);
    }
  }

  #releaseReadsAwaitingCommit(): void {
    if (this.#readsAwaitingCommit.length === 0 || !this.#committedInTerm()) return;
    const reads = this.#readsAwaitingCommit;
    this.#readsAwaitingCommit = [];
    for (const r of reads) this.#startRead(r.ctx, r.from);
  }

  #answerRead(index: number, ctx: Uint8Array, from: bigint): void {
    if (from === this.id) {
      this.#readStates.push({ index, requestCtx: ctx });
      return;
    }
    this.#send({
      type: MessageType.readIndexResp,
      to: from,
      index,
      entries: [{ term: 0, index: 0, type: EntryType.normal, data: ctx }],
    });
  }

  // ---- leadership transfer and membership ----

  #handleTransferLeader(transferee: bigint): void {
    const pr = this.#tracker.progress.get(transferee);
    if (!pr || pr.isLearner || transferee === this.id) return;
    if (this.#leadTransferee === transferee) return;
    this.#leadTransferee = transferee;
    // The transfer must finish within one election timeout, counted from now.
    this.#electionElapsed = 0;
    if (pr.match === this.log.lastIndex()) {
      this.#send({ type: MessageType.timeoutNow, to: transferee });
    } else {
      this.#maybeSendAppend(transferee, true);
    }
  }

  #afterLeaderConfChange(cc: ConfChange): void {
    if (!this.#tracker.voters.has(this.id)) {
      // Removed or demoted: tell everyone the commit index (which covers the change), then
      // step down; not being a voter we will not campaign again.
      this.#bcastAppend();
      this.#becomeFollower(this.#term, 0n);
      return;
    }
    if (this.#leadTransferee !== 0n && !this.#tracker.voters.has(this.#leadTransferee)) {
      this.#leadTransferee = 0n;
    }
    // A smaller quorum may commit more now; a newcomer starts probing at once.
    if (this.#maybeCommit()) this.#appendsPending = true;
    if (cc.type !== ConfChangeType.removeNode && cc.nodeId !== this.id) {
      this.#maybeSendAppend(cc.nodeId, true);
    }
  }

  /** Finds the conf-change entry being applied: the next one after the last matched. */
  #locateConfChangeEntry(): number {
    const from = Math.max(this.log.applied, this.log.marker.index, this.#lastConfChangeIndex) + 1;
    const to = Math.min(this.log.committed, this.log.stable);
    for (let i = from; i <= to; i++) {
      const t = this.log.slice(i, i + 1)[0].type;
      if (t === EntryType.confChange || t === EntryType.confChangeV2) {
        this.#lastConfChangeIndex = i;
        return i;
      }
    }
    return this.log.applied;
  }

  #confStateAt(index: number): ConfState {
    let conf = this.#confHistory[0].conf;
    for (const h of this.#confHistory) if (h.index <= index) conf = h.conf;
    return conf;
  }

  // ---- output ----

  #send(init: Omit<MessageInit, "from">): void {
    const m = newMessage({ ...init, from: this.id });
    const isVoteKind = m.type === MessageType.vote || m.type === MessageType.preVote ||
      m.type === MessageType.voteResp || m.type === MessageType.preVoteResp;
    if (isVoteKind) {
      assert(m.term !== 0, "vote messages name their term explicitly");
    } else if (m.type !== MessageType.prop && m.type !== MessageType.readIndex) {
      // Forwarded proposals and reads travel as local messages (term 0), as in etcd.
      m.term = this.#term;
    }
    this.#msgs.push(m);
  }

  #hardState(): HardState {
    return { term: this.#term, vote: this.#vote, commit: this.log.committed };
  }

  #softState(): SoftState {
    return { lead: this.#lead, role: this.#role };
  }
}

function compareIds(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
