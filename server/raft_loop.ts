/**
 * The raft loop: the only caller of `ready()` and `advance()`. Each turn takes everything
 * raft has ready, writes it to the WAL with one fdatasync (group commit: proposals that
 * arrive while the disk works are batched into the next turn), applies committed entries
 * synchronously, answers read-index requests, and advances.
 *
 * @module
 */
import { assert } from "../internal/assert.ts";
import type {
  Entry,
  HardState,
  Message,
  RawNode,
  Ready,
  Snapshot,
  SoftState,
} from "../raft/mod.ts";

/** The part of the WAL the loop uses. */
export interface RaftStorage {
  save(hardState: HardState | null, entries: Entry[]): Promise<void>;
  /** Records that the log up to `snapshot.metadata.index` is covered by a snapshot. */
  saveSnapshot?(snapshot: Snapshot): Promise<void>;
}

/** What the loop calls back into (the server). */
export interface RaftLoopHooks {
  /** Applies committed entries, in order, synchronously. */
  apply(entries: Entry[]): void;
  /** Called when the leader or role changes. */
  onSoftState?(state: SoftState): void;
  /** Called when the loop dies; the server must stop, since nothing can commit any more. */
  onFatal(err: unknown): void;
  /** Sends raft messages to peers (fire and forget: lost messages are raft's to repair). */
  send?(messages: Message[]): void;
  /**
   * Replaces the state machine with a snapshot received from the leader (its backend was
   * saved by the transport before raft saw the MsgSnap).
   */
  installSnapshot?(snapshot: Snapshot): Promise<void>;
  /**
   * The opaque data of a snapshot of the applied state, taken every `snapshotEntries`
   * applied entries and when a follower needs one.
   */
  snapshotData?(): Uint8Array;
}

/** Options of the loop. */
export interface RaftLoopOptions {
  tickIntervalMs: number;
  /**
   * Applied entries kept in memory after a snapshot, for followers catching up (a member
   * without peers keeps none).
   */
  retainedEntries: number;
  /** Applied entries between snapshots (`--snapshot-count`); 0 never snapshots. */
  snapshotEntries?: number;
  /** A read index not confirmed within this time fails (default: 5 s). */
  readTimeoutMs?: number;
}

interface PendingRead {
  resolve(index: number): void;
  reject(err: unknown): void;
  /** performance.now() after which the read fails with ReadIndexTimeoutError. */
  deadline: number;
}

/** A read's confirmation did not arrive in time (no quorum reachable, or it was dropped). */
export class ReadIndexTimeoutError extends Error {
  /** Says the read timed out. */
  constructor() {
    super("read index timed out");
    this.name = "ReadIndexTimeoutError";
  }
}

/** The leader changed while a read waited for its confirmation; the client may retry. */
export class LeaderChangedError extends Error {
  /** Says the leader changed. */
  constructor() {
    super("leader changed during read index");
    this.name = "LeaderChangedError";
  }
}

interface AppliedWaiter {
  index: number;
  resolve(): void;
  reject(err: unknown): void;
}

/** Drives a RawNode against storage and the state machine. */
export class RaftLoop {
  readonly #node: RawNode;
  readonly #storage: RaftStorage;
  readonly #hooks: RaftLoopHooks;
  readonly #options: RaftLoopOptions;
  #wake: (() => void) | null = null;
  #running = false;
  #done: Promise<void> | null = null;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #readSeq = 0;
  /** The one ReadIndex request raft is confirming (its context) and the reads it serves. */
  #readInFlight: { key: string; reads: PendingRead[] } | null = null;
  /** Reads that arrived while a request was in flight: they share the next one. */
  #nextReads: PendingRead[] = [];
  /** Sorted by index; waiters resolve once applied reaches their index. */
  #appliedWaiters: AppliedWaiter[] = [];
  #stopError: Error | null = null;
  #lastLead = 0n;

  /** Creates the loop; `start()` runs it. */
  constructor(node: RawNode, storage: RaftStorage, hooks: RaftLoopHooks, options: RaftLoopOptions) {
    this.#node = node;
    this.#storage = storage;
    this.#hooks = hooks;
    this.#options = options;
  }

  /** The raft node (read its term, role, log indexes; never call ready/advance on it). */
  get node(): RawNode {
    return this.#node;
  }

  /** Starts ticking and processing. */
  start(): void {
    assert(!this.#running, "raft loop already running");
    this.#running = true;
    this.#ticker = setInterval(() => {
      this.#node.tick();
      this.#expireReads();
      this.notify();
    }, this.#options.tickIntervalMs);
    this.#done = this.#run();
  }

  /** Stops the loop after the current turn; pending reads and waiters are rejected. */
  async stop(err: Error): Promise<void> {
    this.#stopError = err;
    this.#running = false;
    clearInterval(this.#ticker);
    this.notify();
    await this.#done;
    this.#rejectWaiters(err);
  }

  /** Wakes the loop: raft may have new work. */
  notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /**
   * Proposes `data` (forwarded to the leader on a follower); throws ProposalDroppedError when
   * this member cannot.
   */
  propose(data: Uint8Array, type?: number): void {
    this.#node.propose(data, type);
    this.notify();
  }

  /** Gives raft a message from a peer. */
  step(message: Message): void {
    if (!this.#running) return;
    this.#node.step(message);
    this.notify();
  }

  /** Runs `fn` on the node (reportUnreachable, transferLeader, ...) and wakes the loop. */
  withNode<T>(fn: (node: RawNode) => T): T {
    const result = fn(this.#node);
    this.notify();
    return result;
  }

  /**
   * A linearizable read point: resolves with an index once raft confirms it (ReadIndex).
   * Reads are batched as etcd batches them: while one request is being confirmed (a heartbeat
   * round on the leader), reads that arrive wait and then share the next request. A read
   * never shares a request issued before it arrived, which would not cover writes that
   * completed before the read began (Raft thesis §6.4).
   */
  readIndex(): Promise<number> {
    if (this.#stopError) return Promise.reject(this.#stopError);
    const deadline = performance.now() + (this.#options.readTimeoutMs ?? 5000);
    const promise = new Promise<number>((resolve, reject) => {
      this.#nextReads.push({ resolve, reject, deadline });
    });
    if (this.#readInFlight === null) this.#issueReads();
    return promise;
  }

  /** Sends one ReadIndex request for every read waiting for one. */
  #issueReads(): void {
    if (this.#nextReads.length === 0) return;
    const batch = this.#nextReads;
    this.#nextReads = [];
    const key = String(++this.#readSeq);
    try {
      this.#node.readIndex(new TextEncoder().encode(key));
    } catch (err) {
      for (const read of batch) read.reject(err);
      return;
    }
    this.#readInFlight = { key, reads: batch };
    this.notify();
  }

  /** Resolves once entries up to `index` are applied. */
  waitApplied(index: number): Promise<void> {
    if (this.#node.log.applied >= index) return Promise.resolve();
    if (this.#stopError) return Promise.reject(this.#stopError);
    return new Promise((resolve, reject) => {
      const waiters = this.#appliedWaiters;
      let at = waiters.length;
      while (at > 0 && waiters[at - 1].index > index) at--;
      waiters.splice(at, 0, { index, resolve, reject });
    });
  }

  /**
   * Fails a request whose oldest read is past its deadline (its answer may never come: the
   * message was lost, or no quorum answers), then sends the next batch.
   */
  #expireReads(): void {
    const inFlight = this.#readInFlight;
    if (inFlight === null || inFlight.reads[0].deadline > performance.now()) return;
    this.#failReadInFlight(new ReadIndexTimeoutError());
    this.#issueReads();
  }

  #failReadInFlight(err: unknown): void {
    for (const read of this.#readInFlight?.reads ?? []) read.reject(err);
    this.#readInFlight = null;
  }

  /** Fails everything still waiting on this loop. */
  #rejectWaiters(err: unknown): void {
    this.#failReadInFlight(err);
    for (const read of this.#nextReads) read.reject(err);
    this.#nextReads = [];
    for (const waiter of this.#appliedWaiters) waiter.reject(err);
    this.#appliedWaiters = [];
  }

  async #run(): Promise<void> {
    try {
      while (this.#running) {
        if (!this.#node.hasReady()) {
          await new Promise<void>((resolve) => (this.#wake = resolve));
          continue;
        }
        const rd = this.#node.ready();
        // A leader replicates while it writes its own disk (Raft thesis §10.2.1): its messages
        // carry only entries, and it counts itself only once they are stable. Everyone else's
        // messages (votes, append acknowledgements) promise durable state, so they wait.
        const isLeader = this.#node.role === "leader";
        if (isLeader) this.#send(rd.messages);
        // Committed entries are durable already (raft hands out only persisted ones), so they
        // are applied and answered before this turn's new entries go to disk: otherwise every
        // write would wait for the next batch's fdatasync as well as its own.
        this.#applyCommitted(rd);
        // The WAL records a received snapshot before the backend is replaced: after a crash in
        // between, start-up finds the WAL ahead of the backend and installs the saved backend
        // again (as etcd does with its received .snap.db).
        await this.#persist(rd);
        if (rd.snapshot) await this.#hooks.installSnapshot?.(rd.snapshot);
        if (!isLeader) this.#send(rd.messages);
        this.#advance(rd);
        await this.#maybeSnapshot();
      }
    } catch (err) {
      this.#running = false;
      this.#stopError = err instanceof Error ? err : new Error(String(err));
      clearInterval(this.#ticker);
      this.#rejectWaiters(err);
      this.#hooks.onFatal(err);
    }
  }

  #send(messages: Message[]): void {
    if (messages.length > 0) this.#hooks.send?.(messages);
  }

  async #persist(rd: Ready): Promise<void> {
    if (rd.snapshot) await this.#storage.saveSnapshot?.(rd.snapshot);
    // A commit index alone is not worth an fsync: it is re-derived after a crash (§5.3).
    if (rd.mustSync) await this.#storage.save(rd.hardState, rd.entries);
  }

  /**
   * Takes a snapshot every `snapshotEntries` applied entries, or when the leader has a follower
   * that needs one, then drops from memory what the snapshot covers beyond the catch-up window.
   */
  async #maybeSnapshot(): Promise<void> {
    const every = this.#options.snapshotEntries ?? 0;
    const node = this.#node;
    // Counted from the last snapshot, not from the log's start: a lone member compacts its
    // log without snapshots (see #advance), and the WAL is released only at snapshots.
    const held = node.snapshot?.metadata.index ?? 0;
    const due = every > 0 && node.log.applied - held >= every;
    if (!due && !node.needsSnapshot) return;
    if (!this.#hooks.snapshotData || node.log.applied <= held) return;
    const snapshot = node.createSnapshot(node.log.applied, this.#hooks.snapshotData());
    await this.#storage.saveSnapshot?.(snapshot);
    node.compactLog(this.#options.retainedEntries);
    this.notify();
  }

  #applyCommitted(rd: Ready): void {
    if (rd.softState) {
      // Raft drops a deposed leader's pending reads; their waiters learn it here, as etcd's
      // "leader changed", rather than at the timeout.
      // Reads that arrived since ask the new leader when this turn advances.
      if (rd.softState.lead !== this.#lastLead && this.#lastLead !== 0n) {
        this.#failReadInFlight(new LeaderChangedError());
      }
      this.#lastLead = rd.softState.lead;
      this.#hooks.onSoftState?.(rd.softState);
    }
    const committed = rd.committedEntries;
    if (committed.length === 0) return;
    assert(
      committed[committed.length - 1].index <= this.#node.log.stable,
      "applying undurable entry",
    );
    this.#hooks.apply(committed);
    this.#releaseAppliedWaiters(committed[committed.length - 1].index);
  }

  #advance(rd: Ready): void {
    this.#node.advance(rd);
    // With peers this compacts only up to the held snapshot (followers catch up from the rest).
    // A lone member has no follower to catch up and keeps no applied entry: any it kept would
    // outlive young-generation GCs and be copied by each. Holding --snapshot-count entries
    // (100 000 by default) made scavenges of 8-30 ms the put path's p99; a 5 000-entry window
    // still promoted 390 KB per scavenge (3.5 ms pauses), none promotes 50 KB (1.5 ms). A
    // member added later catches up from a snapshot.
    this.#node.compactLog(this.#node.hasPeers ? this.#options.retainedEntries : 0);
    this.#releaseAppliedWaiters(this.#node.log.applied);
    const inFlight = this.#readInFlight;
    for (const rs of rd.readStates) {
      if (inFlight === null || new TextDecoder().decode(rs.requestCtx) !== inFlight.key) continue;
      this.#readInFlight = null;
      for (const read of inFlight.reads) read.resolve(rs.index);
    }
    if (this.#readInFlight === null) this.#issueReads();
  }

  #releaseAppliedWaiters(applied: number): void {
    let n = 0;
    while (n < this.#appliedWaiters.length && this.#appliedWaiters[n].index <= applied) {
      this.#appliedWaiters[n].resolve();
      n++;
    }
    if (n > 0) this.#appliedWaiters.splice(0, n);
  }
}
