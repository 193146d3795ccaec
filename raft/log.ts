/**
 * The in-memory raft log: a window of entries after a compaction marker, with the indexes
 * that split it into persisted, committed and applied parts.
 *
 * Invariant (Raft paper §5.3, and applying only what is durable):
 *   marker.index <= applied <= committed, applied <= stable <= last.
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

  /** Entries in [lo, hi). */
  slice(lo: number, hi: number): Entry[] {
    assert(lo <= hi, `bad slice [${lo}, ${hi})`);
    if (lo <= this.#marker.index) throw new LogCompactedError(lo);
    assert(hi <= this.lastIndex() + 1, `slice end ${hi} past last index ${this.lastIndex()}`);
    const base = this.#marker.index + 1;
    return this.#entries.slice(lo - base, hi - base);
  }

  /** Entries not yet persisted. */
  unstableEntries(): Entry[] {
    return this.slice(this.stable + 1, this.lastIndex() + 1);
  }

  /** Entries that are committed and persisted but not applied yet. */
  nextCommittedEntries(): Entry[] {
    const hi = Math.min(this.committed, this.stable);
    if (hi <= this.applied) return [];
    return this.slice(this.applied + 1, hi + 1);
  }

  /** Appends entries at the end; the first must follow the last index. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    assert(entries[0].index === this.lastIndex() + 1, "appended entries must follow the log");
    for (const e of entries) this.#entries.push(e);
  }

  /** Marks entries up to `index` as persisted. */
  stableTo(index: number): void {
    assert(index <= this.lastIndex(), `stable ${index} past last ${this.lastIndex()}`);
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

  /** Number of entries held in memory. */
  heldEntries(): number {
    return this.#entries.length;
  }
}
