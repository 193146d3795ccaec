/**
 * The in-memory raft log: a window of entries after a compaction marker, with the indexes
 * that split it into persisted, committed and applied parts.
 *
 * Invariant (Raft paper §5.3, and applying only what is durable):
 *   marker.index <= applied <= committed, applied <= stable <= last.
 * The one exception is a snapshot received from the leader and not yet acknowledged by
 * `RawNode.advance()`: the log already restarts at the snapshot (marker = committed = stable =
 * snapshot index) while `applied` still names what the state machine holds, below the marker.
 *
 * @module
 */
import { assert } from "../internal/assert.ts";
import type { Entry } from "./types.ts";

/** Where the retained window of the log starts. */
export interface LogMarker {
  index: number;
  term: number;
}

/** Thrown when the log is asked for an entry that was compacted away. */
export class LogCompactedError extends Error {
  /** Names the index that is no longer held. */
  constructor(index: number) {
    super(`raft log entry ${index} was compacted`);
    this.name = "LogCompactedError";
  }
}

/** The raft log of one member. */
export class RaftLog {
  #marker: LogMarker;
  /** entries[i] has index marker.index + 1 + i. */
  #entries: Entry[] = [];
  /** Highest index known to be persisted to the WAL. */
  stable: number;
  committed: number;
  applied: number;

  /** Restores a log from what the WAL held: entries after `marker`, all of them persisted. */
  constructor(marker: LogMarker, entries: Entry[], committed: number) {
    this.#marker = { ...marker };
    for (let i = 0; i < entries.length; i++) {
      assert(entries[i].index === marker.index + 1 + i, "restored entries must be contiguous");
    }
    this.#entries = entries.slice();
    this.stable = this.lastIndex();
    this.committed = Math.max(marker.index, Math.min(committed, this.lastIndex()));
    this.applied = marker.index;
  }

  /** The compaction marker: the last index (and its term) no longer held as an entry. */
  get marker(): Readonly<LogMarker> {
    return this.#marker;
  }

  /** Index of the first entry still held. */
  firstIndex(): number {
    return this.#marker.index + 1;
  }

  /** Index of the last entry (the marker's when the log is empty). */
  lastIndex(): number {
    return this.#marker.index + this.#entries.length;
  }

  /** Term of the last entry. */
  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  /** Term of entry `index`; 0 past the end; throws for compacted entries. */
  term(index: number): number {
    if (index === this.#marker.index) return this.#marker.term;
    if (index < this.#marker.index) throw new LogCompactedError(index);
    if (index > this.lastIndex()) return 0;
    return this.#entries[index - this.#marker.index - 1].term;
  }

  /** True when entry `index` is held (or is the marker) and has term `term`. */
  matchTerm(index: number, term: number): boolean {
    if (index < this.#marker.index || index > this.lastIndex()) return false;
    return this.term(index) === term;
  }

  /**
   * True when a log ending at (`lastIndex`, `lastTerm`) is at least as up to date as this one:
   * a later last term wins, and with equal terms the longer log (Raft paper §5.4.1).
   */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Entries in [lo, hi). */
  slice(lo: number, hi: number): Entry[] {
    assert(lo <= hi, `bad slice [${lo}, ${hi})`);
    if (lo <= this.#marker.index) throw new LogCompactedError(lo);
    assert(hi <= this.lastIndex() + 1, `slice end ${hi} past last index ${this.lastIndex()}`);
    const base = this.#marker.index + 1;
    return this.#entries.slice(lo - base, hi - base);
  }

  /**
   * Entries from `lo` to the end, cut once their payload reaches `maxBytes` (at least one
   * entry is returned when any exists, so an oversized entry still makes progress).
   */
  entriesFrom(lo: number, maxBytes: number): Entry[] {
    if (lo <= this.#marker.index) throw new LogCompactedError(lo);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i <= this.lastIndex(); i++) {
      const e = this.#entries[i - this.#marker.index - 1];
      if (out.length > 0 && bytes + e.data.length > maxBytes) break;
      bytes += e.data.length;
      out.push(e);
    }
    return out;
  }

  /** Entries not yet persisted. */
  unstableEntries(): Entry[] {
    return this.slice(this.stable + 1, this.lastIndex() + 1);
  }

  /** Entries that are committed and persisted but not applied yet. */
  nextCommittedEntries(): Entry[] {
    const hi = Math.min(this.committed, this.stable);
    // applied below the marker: a received snapshot must be installed first.
    if (hi <= this.applied || this.applied < this.#marker.index) return [];
    return this.slice(this.applied + 1, hi + 1);
  }

  /** True when `nextCommittedEntries()` is not empty. */
  hasNextCommittedEntries(): boolean {
    return Math.min(this.committed, this.stable) > this.applied &&
      this.applied >= this.#marker.index;
  }

  /** Appends entries at the end; the first must follow the last index. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    assert(entries[0].index === this.lastIndex() + 1, "appended entries must follow the log");
    for (const e of entries) this.#entries.push(e);
  }

  /**
   * Index of the first of `entries` that this log lacks or holds with another term, 0 when
   * the log already holds them all. Entries at or below the marker are taken as matching:
   * they are committed, and committed entries never conflict (Log Matching, Raft §5.3).
   */
  findConflict(entries: Entry[]): number {
    for (const e of entries) {
      if (e.index <= this.#marker.index) continue;
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest index <= `index` whose term is <= `term` (the marker's index at worst).
   * A leader that learns a follower holds term `term` at `index` can skip every entry of a
   * later term in one step (fast log backtracking, Raft thesis §3.5 / etcd's reject hint).
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    while (i > this.#marker.index && this.term(i) > term) i--;
    return Math.max(i, this.#marker.index);
  }

  /**
   * Writes `entries` (contiguous) into the log: entries already held with the same term are
   * kept, the first conflicting one and everything after it are replaced (Raft paper §5.3
   * step 3). Conflicts with committed entries are a broken invariant.
   */
  truncateAndAppend(entries: Entry[]): void {
    const conflict = this.findConflict(entries);
    if (conflict === 0) return;
    assert(
      conflict > this.committed,
      `entry ${conflict} conflicts with committed ${this.committed}`,
    );
    assert(conflict <= this.lastIndex() + 1, `gap before entry ${conflict}`);
    const keep = conflict - this.#marker.index - 1;
    this.#entries.length = keep;
    // Replaced entries were never durable in their new form.
    if (this.stable >= conflict) this.stable = conflict - 1;
    const from = conflict - entries[0].index;
    for (let i = from; i < entries.length; i++) this.#entries.push(entries[i]);
  }

  /**
   * Marks entries up to `index` as persisted, if the log still holds entry `index` with
   * `term`: a conflicting append since the Ready was taken replaced what was written.
   */
  stableTo(index: number, term: number): void {
    if (!this.matchTerm(index, term)) return;
    if (index > this.stable) this.stable = index;
  }

  /** Moves the commit index forward (never back: Raft paper §5.3). */
  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), `commit ${index} past last ${this.lastIndex()}`);
    this.committed = index;
  }

  /** Records that entries up to `index` were applied. */
  appliedTo(index: number): void {
    if (index === 0) return;
    assert(
      index <= this.committed && index >= this.applied,
      `applied ${index} outside [${this.applied}, ${this.committed}]`,
    );
    assert(index <= this.stable, `applied ${index} beyond stable ${this.stable}`);
    this.applied = index;
  }

  /**
   * Drops held entries up to `index` (already applied, so the state machine holds their
   * effect); they are no longer available to `slice`.
   */
  compactTo(index: number): void {
    if (index <= this.#marker.index) return;
    assert(index <= this.applied, `cannot compact ${index} beyond applied ${this.applied}`);
    const term = this.term(index);
    this.#entries = this.#entries.slice(index - this.#marker.index);
    this.#marker = { index, term };
  }

  /**
   * Restarts the log at a snapshot received from the leader: every entry is dropped, and the
   * snapshot's index is committed and (with the snapshot, written first) persisted. `applied`
   * catches up once the snapshot is installed ({@linkcode RaftLog.snapshotInstalled}).
   */
  restore(marker: LogMarker): void {
    assert(marker.index > this.committed, "a snapshot must move the log past its commit index");
    this.#marker = { ...marker };
    this.#entries = [];
    this.committed = marker.index;
    this.stable = marker.index;
  }

  /** The state machine installed a snapshot at `index`: it is applied. */
  snapshotInstalled(index: number): void {
    if (index <= this.applied) return;
    assert(index <= this.committed, `snapshot ${index} beyond committed ${this.committed}`);
    this.applied = index;
  }

  /** Number of entries held in memory. */
  heldEntries(): number {
    return this.#entries.length;
  }
}
