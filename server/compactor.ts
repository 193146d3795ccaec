/**
 * Auto-compaction (`--auto-compaction-mode`, `--auto-compaction-retention`) on etcd 3.4's
 * schedule (`etcdserver/api/v3compactor`). The compactor only decides when and at which
 * revision; the compaction itself is an ordinary Compact request proposed through raft, so
 * every member compacts at the same point of the log. Only the leader's compactor runs
 * (the others are paused), as in etcd.
 *
 * Periodic mode, retention P: every P/10 (at most 6 minutes) the current revision is
 * sampled and the last P/(P/10)+1 samples are kept, so the oldest is the revision of about
 * P ago. Nothing is compacted during the first P; after that, every min(P, 1 h) the oldest
 * sample is compacted, retrying each P/10 while it fails.
 *
 * Revision mode, retention N: every 5 minutes, compact at current revision - N, unless that
 * is not positive or was already compacted by the previous round.
 *
 * Time comes from an injected clock so that tests need not wait for real time.
 *
 * @module
 */
import { assert } from "../internal/assert.ts";

/** Time for the compactor: a monotonic `now()` in ms and a cancellable timer. */
export interface CompactorClock {
  now(): number;
  /** Calls `fn` after `ms`; the returned function cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
}

/** The real clock. */
export const realCompactorClock: CompactorClock = {
  now: () => performance.now(),
  setTimer(fn, ms) {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

/** What the compactor reads and does. */
export interface CompactorDeps {
  clock: CompactorClock;
  /** The store's current revision. */
  currentRev(): number;
  /** Proposes a compaction at `rev` and waits for it to apply. */
  compact(rev: number): Promise<void>;
  /** Whether `err` means the revision was compacted already (which counts as success). */
  alreadyCompacted(err: unknown): boolean;
  /** Told about each attempt (for logs). */
  onCompaction?(rev: number, err?: unknown): void;
}

/** etcd's revision compactor interval. */
export const revisionCompactionIntervalMs = 5 * 60 * 1000;
/** The periodic compactor samples and retries at a tenth of its compaction interval. */
const periodicRetryDivisor = 10;
const hourMs = 60 * 60 * 1000;

/** A running compactor. */
export interface Compactor {
  /** Starts the schedule. */
  start(): void;
  /** Stops for good; an attempt in flight finishes but nothing follows it. */
  stop(): void;
  /** Skips rounds until resumed (this member is not the leader). */
  pause(): void;
  /** Takes part again (this member became the leader). */
  resume(): void;
}

/** Shared plumbing: a loop of timed rounds that can be paused and stopped. */
abstract class ScheduledCompactor implements Compactor {
  protected readonly deps: CompactorDeps;
  #paused = false;
  #stopped = false;
  #started = false;
  #cancelTimer: (() => void) | undefined;
  #wake: (() => void) | undefined;

  constructor(deps: CompactorDeps) {
    this.deps = deps;
  }

  start(): void {
    assert(!this.#started, "compactor already started");
    this.#started = true;
    this.run().catch((err) => this.deps.onCompaction?.(0, err));
  }

  stop(): void {
    this.#stopped = true;
    this.#cancelTimer?.();
    this.#wake?.();
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
  }

  protected abstract run(): Promise<void>;

  /** Waits `ms`; resolves to whether the round should run (not stopped, not paused). */
  protected async wait(ms: number): Promise<"stop" | "skip" | "run"> {
    if (this.#stopped) return "stop";
    await new Promise<void>((resolve) => {
      this.#wake = resolve;
      this.#cancelTimer = this.deps.clock.setTimer(resolve, ms);
    });
    this.#wake = undefined;
    this.#cancelTimer = undefined;
    if (this.#stopped) return "stop";
    return this.#paused ? "skip" : "run";
  }

  /** Compacts at `rev`; true on success or when `rev` was compacted already. */
  protected async tryCompact(rev: number): Promise<boolean> {
    try {
      await this.deps.compact(rev);
      this.deps.onCompaction?.(rev);
      return true;
    } catch (err) {
      if (this.deps.alreadyCompacted(err)) return true;
      this.deps.onCompaction?.(rev, err);
      return false;
    }
  }
}

/** etcd's periodic compactor: keep about `periodMs` of history. */
export class PeriodicCompactor extends ScheduledCompactor {
  readonly #periodMs: number;

  /** Creates the compactor for a retention period in ms (> 0). */
  constructor(periodMs: number, deps: CompactorDeps) {
    super(deps);
    assert(periodMs > 0, "periodic compaction needs a positive period");
    this.#periodMs = periodMs;
  }

  /** How often a compaction is due once the first period has passed: min(period, 1 h). */
  get compactIntervalMs(): number {
    return Math.min(this.#periodMs, hourMs);
  }

  /** How often the revision is sampled, and a failed compaction retried. */
  get retryIntervalMs(): number {
    return this.compactIntervalMs / periodicRetryDivisor;
  }

  /** Samples kept: the oldest is the revision of one period ago. */
  get retainedSamples(): number {
    return Math.floor(this.#periodMs / this.retryIntervalMs) + 1;
  }

  protected async run(): Promise<void> {
    const { clock, currentRev } = this.deps;
    const samples: number[] = [];
    let lastSuccess = clock.now();
    // The first compaction waits a whole period; later ones come every compact interval.
    let dueAfterMs = this.#periodMs;
    for (;;) {
      samples.push(currentRev());
      if (samples.length > this.retainedSamples) samples.shift();
      const next = await this.wait(this.retryIntervalMs);
      if (next === "stop") return;
      if (next === "skip") continue;
      if (clock.now() - lastSuccess < dueAfterMs) continue;
      dueAfterMs = this.compactIntervalMs;
      if (await this.tryCompact(samples[0])) lastSuccess = clock.now();
    }
  }
}

/** etcd's revision compactor: keep the last `retention` revisions. */
export class RevisionCompactor extends ScheduledCompactor {
  readonly #retention: number;

  /** Creates the compactor for a retention in revisions (> 0). */
  constructor(retention: number, deps: CompactorDeps) {
    super(deps);
    assert(retention > 0, "revision compaction needs a positive retention");
    this.#retention = retention;
  }

  protected async run(): Promise<void> {
    let previous = 0;
    for (;;) {
      const next = await this.wait(revisionCompactionIntervalMs);
      if (next === "stop") return;
      if (next === "skip") continue;
      const rev = this.deps.currentRev() - this.#retention;
      if (rev <= 0 || rev === previous) continue;
      if (await this.tryCompact(rev)) previous = rev;
    }
  }
}

/** The compaction settings of a member's configuration. */
export interface AutoCompactionSettings {
  autoCompactionMode: "periodic" | "revision" | "";
  autoCompactionPeriodMs: number;
  autoCompactionRetentionRevisions: number;
}

/** The compactor `settings` ask for, or undefined when auto-compaction is off. */
export function createCompactor(
  settings: AutoCompactionSettings,
  deps: CompactorDeps,
): Compactor | undefined {
  if (settings.autoCompactionMode === "periodic" && settings.autoCompactionPeriodMs > 0) {
    return new PeriodicCompactor(settings.autoCompactionPeriodMs, deps);
  }
  if (
    settings.autoCompactionMode === "revision" && settings.autoCompactionRetentionRevisions > 0
  ) {
    return new RevisionCompactor(settings.autoCompactionRetentionRevisions, deps);
  }
  return undefined;
}
