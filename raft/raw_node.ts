/**
 * The raft state machine, driven from outside: `tick()` advances logical time, `propose()`
 * and `readIndex()` queue work, `ready()` hands out what must be persisted, applied and sent,
 * and `advance()` acknowledges it. No I/O, timers, clocks or randomness of its own: time is
 * ticks and randomness is the injected `random`.
 *
 * This version runs a single voting member: the member's own persisted log is the quorum.
 * Replication to other members (messages, progress tracking) extends `#maybeCommit` and
 * `#quorum` without changing the Ready/advance contract the server relies on.
 *
 * @module
 */
import { assert } from "../internal/assert.ts";
import { LogMarker, RaftLog } from "./log.ts";
import {
  type Entry,
  EntryType,
  type HardState,
  type ReadState,
  type Ready,
  type Role,
  sameHardState,
  type SoftState,
} from "./types.ts";

/** Settings of one raft member. */
export interface RaftConfig {
  id: bigint;
  /** Voting members, this one included. */
  voters: bigint[];
  /** Ticks without hearing from a leader before a follower campaigns (randomised up to 2x). */
  electionTicks: number;
  heartbeatTicks: number;
  /** Uniform random numbers in [0, 1); injected so tests and simulations are deterministic. */
  random: () => number;
  /** Bound on proposals accepted but not yet committed. */
  maxUncommittedEntries?: number;
  /** Bound on the payload bytes of proposals accepted but not yet committed (etcd: 1 GiB). */
  maxUncommittedBytes?: number;
}

/** What the WAL held at start-up. */
export interface RaftRestore {
  hardState: HardState | null;
  marker: LogMarker;
  entries: Entry[];
  /**
   * Index the state machine has already applied (its consistent index). Anything applied was
   * committed, so the commit index restarts at least there even if the WAL's was not synced.
   */
  applied?: number;
}

/** Thrown by `propose()` when this member cannot take proposals now (not leader, overloaded). */
export class ProposalDroppedError extends Error {
  /** Says why the proposal was dropped. */
  constructor(
    readonly reason: "not leader" | "too many uncommitted entries" | "too many uncommitted bytes",
  ) {
    super(`raft proposal dropped: ${reason}`);
    this.name = "ProposalDroppedError";
  }
}

const defaultMaxUncommittedEntries = 100_000;
const defaultMaxUncommittedBytes = 1 << 30;

/** One raft member's state machine. */
export class RawNode {
  readonly id: bigint;
  readonly #config: Required<RaftConfig>;
  readonly log: RaftLog;
  #term: number;
  #vote: bigint;
  #role: Role = "follower";
  #lead = 0n;
  #votes = new Set<bigint>();
  #electionElapsed = 0;
  #randomizedElectionTimeout = 0;
  #pendingReads: Uint8Array[] = [];
  /** Payload bytes of entries after the commit index. */
  #uncommittedBytes = 0;
  #readStates: ReadState[] = [];
  #prevHardState: HardState;
  #prevSoftState: SoftState;

  /** Creates the member from its persisted state. */
  constructor(config: RaftConfig, restore: RaftRestore) {
    assert(config.voters.includes(config.id), "a voting member must be in the voter set");
    assert(config.voters.length === 1, "this raft version runs single-member clusters only");
    assert(config.electionTicks > config.heartbeatTicks, "election ticks must exceed heartbeat");
    this.id = config.id;
    this.#config = {
      maxUncommittedEntries: defaultMaxUncommittedEntries,
      maxUncommittedBytes: defaultMaxUncommittedBytes,
      ...config,
    };
    const hs = restore.hardState ?? { term: 0, vote: 0n, commit: 0 };
    const applied = Math.max(restore.applied ?? 0, restore.marker.index);
    this.log = new RaftLog(restore.marker, restore.entries, Math.max(hs.commit, applied));
    assert(applied <= this.log.committed, `applied ${applied} is beyond the restored log`);
    this.log.applied = applied;
    this.#term = hs.term;
    this.#vote = hs.vote;
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

  /** Advances logical time by one tick. */
  tick(): void {
    if (this.#role === "leader") return;
    this.#electionElapsed++;
    if (this.#electionElapsed >= this.#randomizedElectionTimeout) this.campaign();
  }

  /** Starts an election now (Raft paper §5.2). */
  campaign(): void {
    if (this.#role === "leader") return;
    this.#becomeCandidate();
    this.#votes.add(this.id);
    if (this.#votes.size >= this.#quorum()) this.#becomeLeader();
  }

  /** Appends `data` to the log as a new entry of the current term; leader only. */
  propose(data: Uint8Array, type: number = EntryType.normal): number {
    if (this.#role !== "leader") throw new ProposalDroppedError("not leader");
    if (this.log.lastIndex() - this.log.committed >= this.#config.maxUncommittedEntries) {
      throw new ProposalDroppedError("too many uncommitted entries");
    }
    // One oversized proposal is still accepted when nothing is pending, or it never could be.
    if (
      this.#uncommittedBytes > 0 &&
      this.#uncommittedBytes + data.length > this.#config.maxUncommittedBytes
    ) {
      throw new ProposalDroppedError("too many uncommitted bytes");
    }
    this.#uncommittedBytes += data.length;
    const index = this.log.lastIndex() + 1;
    this.log.append([{ term: this.#term, index, type, data }]);
    return index;
  }

  /**
   * Requests a linearizable read point (Raft thesis §6.4). The answer arrives in a later
   * Ready's `readStates` with the same context, once this leader has committed an entry of
   * its own term, so that its commit index is known to be the cluster's latest.
   */
  readIndex(requestCtx: Uint8Array): void {
    if (this.#role !== "leader") throw new ProposalDroppedError("not leader");
    this.#pendingReads.push(requestCtx);
    this.#releaseReads();
  }

  /** True when `ready()` would hand out work. */
  hasReady(): boolean {
    const log = this.log;
    if (log.stable < log.lastIndex()) return true;
    if (Math.min(log.committed, log.stable) > log.applied) return true;
    if (this.#readStates.length > 0) return true;
    if (!sameHardState(this.#hardState(), this.#prevHardState)) return true;
    const soft = this.#softState();
    return soft.lead !== this.#prevSoftState.lead || soft.role !== this.#prevSoftState.role;
  }

  /** The work to do now. The caller must call `advance(rd)` once it is done. */
  ready(): Ready {
    const hs = this.#hardState();
    const soft = this.#softState();
    const hardChanged = !sameHardState(hs, this.#prevHardState);
    const entries = this.log.unstableEntries();
    return {
      softState: soft.lead !== this.#prevSoftState.lead || soft.role !== this.#prevSoftState.role
        ? soft
        : null,
      hardState: hardChanged ? hs : null,
      entries,
      committedEntries: this.log.nextCommittedEntries(),
      messages: [],
      snapshot: null,
      readStates: this.#readStates.slice(),
      // A commit index alone may be lost in a crash: it is recomputed from the log (§5.3).
      mustSync: entries.length > 0 || hs.term !== this.#prevHardState.term ||
        hs.vote !== this.#prevHardState.vote,
    };
  }

  /** Acknowledges that `rd` was persisted and applied. */
  advance(rd: Ready): void {
    if (rd.softState) this.#prevSoftState = rd.softState;
    if (rd.hardState) this.#prevHardState = rd.hardState;
    if (rd.entries.length > 0) this.log.stableTo(rd.entries[rd.entries.length - 1].index);
    if (rd.committedEntries.length > 0) {
      this.log.appliedTo(rd.committedEntries[rd.committedEntries.length - 1].index);
    }
    this.#readStates.splice(0, rd.readStates.length);
    if (this.#role === "leader") this.#maybeCommit();
  }

  /** Drops applied entries from memory, keeping the last `keepEntries` for catching up. */
  compactLog(keepEntries: number): void {
    const upTo = this.log.applied - keepEntries;
    if (upTo > this.log.firstIndex()) this.log.compactTo(upTo);
  }

  #quorum(): number {
    return Math.floor(this.#config.voters.length / 2) + 1;
  }

  #hardState(): HardState {
    return { term: this.#term, vote: this.#vote, commit: this.log.committed };
  }

  #softState(): SoftState {
    return { lead: this.#lead, role: this.#role };
  }

  #resetElectionTimeout(): void {
    this.#electionElapsed = 0;
    const base = this.#config.electionTicks;
    this.#randomizedElectionTimeout = base + Math.floor(this.#config.random() * base);
  }

  #becomeCandidate(): void {
    this.#term++;
    this.#vote = this.id;
    this.#role = "candidate";
    this.#lead = 0n;
    this.#votes = new Set();
    this.#resetElectionTimeout();
  }

  #becomeLeader(): void {
    assert(this.#role === "candidate", "only a candidate becomes leader");
    this.#role = "leader";
    this.#lead = this.id;
    // An empty entry of the new term lets the leader commit, and so learn the commit
    // index of everything before it (Raft paper §5.4.2, §8).
    this.log.append([{
      term: this.#term,
      index: this.log.lastIndex() + 1,
      type: EntryType.normal,
      data: new Uint8Array(),
    }]);
  }

  /**
   * Commits the highest index that a quorum has persisted, only if it belongs to the
   * current term (Raft paper §5.4.2). With one voter, the quorum is this member's WAL.
   */
  #maybeCommit(): void {
    const candidate = this.log.stable;
    if (candidate > this.log.committed && this.log.term(candidate) === this.#term) {
      for (const e of this.log.slice(this.log.committed + 1, candidate + 1)) {
        this.#uncommittedBytes -= e.data.length;
      }
      this.log.commitTo(candidate);
    }
    this.#releaseReads();
  }

  #releaseReads(): void {
    if (this.#pendingReads.length === 0) return;
    if (this.log.term(this.log.committed) !== this.#term) return;
    for (const ctx of this.#pendingReads) {
      this.#readStates.push({ index: this.log.committed, requestCtx: ctx });
    }
    this.#pendingReads = [];
  }
}
