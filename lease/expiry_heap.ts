/**
 * A binary min-heap of lease deadlines. It never updates or removes entries in place: the
 * lessor pushes a fresh entry whenever a deadline changes and treats older entries as stale
 * (their `seq` no longer matches the lease's), skipping them when they surface. The lessor
 * rebuilds the heap from its live leases when stale entries pile up, which keeps its size
 * within a constant factor of the number of leases.
 *
 * @module
 */

/** One deadline: check lease `id` at `atMs`. `seq` orders ties and identifies the entry. */
export interface ExpiryEntry {
  readonly id: bigint;
  readonly atMs: number;
  readonly seq: number;
}

function before(a: ExpiryEntry, b: ExpiryEntry): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}

/** A min-heap of {@linkcode ExpiryEntry} ordered by `atMs`, then `seq`. */
export class ExpiryHeap {
  #items: ExpiryEntry[] = [];

  /** Number of entries, stale ones included. */
  get size(): number {
    return this.#items.length;
  }

  /** The earliest entry, or undefined when empty. */
  peek(): ExpiryEntry | undefined {
    return this.#items[0];
  }

  /** Adds an entry. */
  push(entry: ExpiryEntry): void {
    const items = this.#items;
    items.push(entry);
    this.#up(items.length - 1);
  }

  /** Removes and returns the earliest entry, or undefined when empty. */
  pop(): ExpiryEntry | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      items[0] = last;
      this.#down(0);
    }
    return top;
  }

  /** Replaces the contents with `entries` in O(n). */
  reset(entries: ExpiryEntry[] = []): void {
    this.#items = entries.slice();
    for (let i = (this.#items.length >> 1) - 1; i >= 0; i--) this.#down(i);
  }

  #up(index: number): void {
    const items = this.#items;
    const entry = items[index];
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!before(entry, items[parent])) break;
      items[index] = items[parent];
      index = parent;
    }
    items[index] = entry;
  }

  #down(index: number): void {
    const items = this.#items;
    const entry = items[index];
    const n = items.length;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && before(items[right], items[left]) ? right : left;
      if (!before(items[child], entry)) break;
      items[index] = items[child];
      index = child;
    }
    items[index] = entry;
  }
}
