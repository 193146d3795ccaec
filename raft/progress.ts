/**
 * What a leader knows about each member's log (Raft paper figure 2: matchIndex, nextIndex),
 * the flow control around it, and the configuration (voters, learners) that decides quorums.
 *
 * A follower's progress is in one of three states:
 * - `probe`: the leader does not know where the follower's log matches its own; it sends one
 *   append at a time and waits for an answer (or the next heartbeat response) before the next.
 * - `replicate`: the logs match up to `match`; the leader streams appends optimistically
 *   (moving `next` on send), at most `maxInflightMsgs` of them unacknowledged.
 * - `snapshot`: the entries the follower needs were compacted; a snapshot is on its way and
 *   nothing else is sent until the follower answers or the transport reports a failure.
 *
 * @module
 */
import { assert } from "../internal/assert.ts";
import type { ConfState } from "./types.ts";

/** The replication state of one follower, seen from the leader. */
export type ProgressState = "probe" | "replicate" | "snapshot";

/**
 * The last indexes of appends sent and not yet acknowledged, oldest first: a ring buffer of
 * at most `capacityMsgs` entries, so a slow follower cannot make the leader queue unbounded
 * work for it.
 */
export class Inflights {
  readonly capacityMsgs: number;
  #buffer: number[];
  #start = 0;
  #count = 0;

  /** Creates an empty window holding at most `capacityMsgs` unacknowledged appends. */
  constructor(capacityMsgs: number) {
    assert(capacityMsgs > 0, "inflight capacity must be positive");
    this.capacityMsgs = capacityMsgs;
    this.#buffer = [];
  }

  /** Number of appends in flight. */
  get count(): number {
    return this.#count;
  }

  /** True when no further append may be sent. */
  full(): boolean {
    return this.#count === this.capacityMsgs;
  }

  /** Records an append whose last entry is `lastIndex` (indexes only grow). */
  add(lastIndex: number): void {
    assert(!this.full(), "cannot add to a full inflight window");
    const at = (this.#start + this.#count) % this.capacityMsgs;
    this.#buffer[at] = lastIndex;
    this.#count++;
  }

  /** Frees every append whose last index is <= `index` (the follower acknowledged it). */
  freeLE(index: number): void {
    while (this.#count > 0 && this.#buffer[this.#start] <= index) {
      this.#start = (this.#start + 1) % this.capacityMsgs;
      this.#count--;
    }
    if (this.#count === 0) this.#start = 0;
  }

  /** Frees the oldest append, so that a lost acknowledgement cannot stall the stream forever. */
  freeFirstOne(): void {
    if (this.#count === 0) return;
    this.freeLE(this.#buffer[this.#start]);
  }

  /** Forgets everything in flight. */
  reset(): void {
    this.#start = 0;
    this.#count = 0;
  }
}

/** The leader's view of one member's log. */
export class Progress {
  /** Highest index known to be persisted on the member. */
  match = 0;
  /** Index of the next entry to send. */
  next: number;
  state: ProgressState = "probe";
  /** In `snapshot` state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** In `probe` state: an append was sent and no answer has come back yet. */
  probeSent = false;
  /** The member asked for a snapshot (it is joining and cannot replay the log). */
  snapshotRequested = false;
  /** Heard from since the last check-quorum round (Raft thesis §6.2). */
  recentActive = false;
  isLearner: boolean;
  readonly inflights: Inflights;

  /** A member the leader knows nothing about yet: probe from `next`. */
  constructor(next: number, isLearner: boolean, maxInflightMsgs: number) {
    this.next = next;
    this.isLearner = isLearner;
    this.inflights = new Inflights(maxInflightMsgs);
  }

  /** Resets to the state of a member freshly seen by a new leader. */
  reset(next: number): void {
    this.match = 0;
    this.next = next;
    this.state = "probe";
    this.pendingSnapshot = 0;
    this.probeSent = false;
    this.snapshotRequested = false;
    this.recentActive = false;
    this.inflights.reset();
  }

  #resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  /** Back to probing from just after what is known to match (or the snapshot sent). */
  becomeProbe(): void {
    if (this.state === "snapshot") {
      const pending = this.pendingSnapshot;
      this.#resetState("probe");
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.#resetState("probe");
      this.next = this.match + 1;
    }
  }

  /** The logs match up to `match`: stream from there. */
  becomeReplicate(): void {
    this.#resetState("replicate");
    this.next = this.match + 1;
  }

  /** The member needs snapshot `snapshotIndex` before any append can apply. */
  becomeSnapshot(snapshotIndex: number): void {
    this.#resetState("snapshot");
    this.pendingSnapshot = snapshotIndex;
    this.snapshotRequested = false;
  }

  /**
   * Records that the member holds entries up to `index`. Returns false for a stale answer
   * that teaches nothing new.
   */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /** In `replicate` state, entries up to `lastIndex` were just sent. */
  optimisticUpdate(lastIndex: number): void {
    this.next = lastIndex + 1;
  }

  /**
   * The member rejected an append at `rejected` and hinted that `nextProbe` is where to try
   * next. Returns false when the rejection is stale (answers an earlier append).
   */
  maybeDecreaseTo(rejected: number, nextProbe: number): boolean {
    if (this.state === "replicate") {
      // Appends below match were acknowledged already: the rejection is stale.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // In probe state only the latest probe (at next - 1) is meaningful.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, nextProbe + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** True when the leader must not send appends to this member now (flow control). */
  isPaused(): boolean {
    switch (this.state) {
      case "probe":
        return this.probeSent;
      case "replicate":
        return this.inflights.full();
      case "snapshot":
        return true;
    }
  }
}

/**
 * The configuration (single-step changes only, no joint consensus: Raft thesis §4.1), the
 * progress of every member, and the votes of an election.
 */
export class ProgressTracker {
  readonly voters = new Set<bigint>();
  readonly learners = new Set<bigint>();
  readonly progress = new Map<bigint, Progress>();
  readonly votes = new Map<bigint, boolean>();
  readonly #maxInflightMsgs: number;

  /** Creates the tracker for `conf`; every member starts probing at `next`. */
  constructor(conf: ConfState, next: number, maxInflightMsgs: number) {
    this.#maxInflightMsgs = maxInflightMsgs;
    this.reset(conf, next);
  }

  /** Replaces the configuration (a snapshot carried a new one). */
  reset(conf: ConfState, next: number): void {
    this.voters.clear();
    this.learners.clear();
    this.progress.clear();
    for (const id of conf.voters) this.addVoter(id, next);
    for (const id of conf.learners) this.addLearner(id, next);
  }

  /** Number of votes (or acknowledgements) that make a majority of the voters. */
  quorum(): number {
    return Math.floor(this.voters.size / 2) + 1;
  }

  /** The configuration now in force. */
  confState(): ConfState {
    const sorted = (s: Set<bigint>) => [...s].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return { voters: sorted(this.voters), learners: sorted(this.learners) };
  }

  /** True when `id` is in the configuration, as voter or learner. */
  isMember(id: bigint): boolean {
    return this.voters.has(id) || this.learners.has(id);
  }

  /** Adds `id` as a voter, promoting it if it was a learner (its progress is kept). */
  addVoter(id: bigint, next: number): void {
    this.learners.delete(id);
    this.voters.add(id);
    const pr = this.progress.get(id);
    if (pr) {
      pr.isLearner = false;
      return;
    }
    const fresh = new Progress(next, false, this.#maxInflightMsgs);
    // A newcomer gets a full election timeout before check-quorum counts it as silent.
    fresh.recentActive = true;
    this.progress.set(id, fresh);
  }

  /** Adds `id` as a learner, demoting it if it was a voter (its progress is kept). */
  addLearner(id: bigint, next: number): void {
    this.voters.delete(id);
    this.learners.add(id);
    const pr = this.progress.get(id);
    if (pr) {
      pr.isLearner = true;
      return;
    }
    const fresh = new Progress(next, true, this.#maxInflightMsgs);
    fresh.recentActive = true;
    this.progress.set(id, fresh);
  }

  /** Removes `id` from the configuration. */
  remove(id: bigint): void {
    this.voters.delete(id);
    this.learners.delete(id);
    this.progress.delete(id);
    this.votes.delete(id);
  }

  /**
   * The highest index persisted by a majority of voters: the k-th largest match, k the
   * quorum (Raft paper §5.3). Learners never count. 0 with no voters.
   */
  committedIndex(): number {
    const matches: number[] = [];
    for (const id of this.voters) matches.push(this.progress.get(id)?.match ?? 0);
    if (matches.length === 0) return 0;
    matches.sort((a, b) => b - a);
    return matches[this.quorum() - 1];
  }

  /** Forgets the votes of the last election. */
  resetVotes(): void {
    this.votes.clear();
  }

  /** Records `id`'s answer (the first answer of each member counts). */
  recordVote(id: bigint, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  /** "won" with a majority of granted votes, "lost" once a majority is impossible. */
  tallyVotes(): "won" | "lost" | "pending" {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voters) {
      const v = this.votes.get(id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    const q = this.quorum();
    if (granted >= q) return "won";
    if (rejected > this.voters.size - q) return "lost";
    return "pending";
  }

  /**
   * True when a majority of voters (`self` included) was heard from since the last check;
   * then clears every other member's flag for the next round (Raft thesis §6.2).
   */
  quorumActive(self: bigint): boolean {
    let active = 0;
    for (const id of this.voters) {
      if (id === self || this.progress.get(id)?.recentActive) active++;
    }
    for (const [id, pr] of this.progress) pr.recentActive = id === self;
    return active >= this.quorum();
  }
}
