/**
 * The watch hub: etcd's watchableStore for one member. Watchers are either synced (they have
 * seen every revision up to the store's current one and get new revisions from `notify`) or
 * unsynced (behind; a background catch-up reads their missed revisions from the store's
 * history in bounded batches). A synced watcher whose buffer is full does not hold up the
 * writer: it turns unsynced and later re-reads what it missed, so apply never waits for a
 * slow client and memory stays bounded by `maxBufferedEvents` and `maxBufferedBytes` per
 * watcher.
 *
 * Every watcher sees each matching revision exactly once, in revision order, and the events
 * of one revision together in one batch.
 *
 * @module
 */
import { assert } from "../internal/assert.ts";
import { Fifo } from "../internal/fifo.ts";
import { compareBytes, equalBytes, prefixEnd } from "../internal/bytes.ts";
import type { HistoryOptions } from "./store.ts";
import type { MvccEvent } from "./types.ts";

/** What the hub reads from the store: revisions and history. {@linkcode MvccStore} fits. */
export interface WatchSource {
  /** Revision of the last completed write. */
  readonly currentRev: number;
  /** Revision of the last compaction (-1 when never compacted). */
  readonly compactRev: number;
  /** Events with revisions in [fromRev, toRev], in order; throws below the compact revision. */
  history(fromRev: number, toRev: number, opts?: HistoryOptions): MvccEvent[];
}

/** Timer functions, injectable so that tests control time. */
export interface WatchTimers {
  /** Schedules `fn` after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a timer returned by `setTimeout`. */
  clearTimeout(handle: unknown): void;
}

/** The global timers. */
export const realTimers: WatchTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as number),
};

/** Tuning of a {@linkcode WatchHub}. */
export interface WatchHubOptions {
  /**
   * Events a watcher may hold before its consumer takes them (default 1000). One revision is
   * always accepted into an empty buffer, however many events it has.
   */
  maxBufferedEvents?: number;
  /**
   * Approximate bytes (keys and values, see {@linkcode eventBytes}) a watcher may hold
   * (default 4 MiB); same rule as `maxBufferedEvents`.
   */
  maxBufferedBytes?: number;
  /** Revisions read from history per catch-up step of one watcher (default 1000, as etcd). */
  catchUpBatchRevs?: number;
  /** Unsynced watchers advanced per catch-up tick before yielding (default 64). */
  catchUpWatchersPerTick?: number;
  /** Timers driving the catch-up (the global ones by default). */
  timers?: WatchTimers;
  /** Hears store failures during catch-up (the affected stream is aborted). */
  onError?: (err: unknown) => void;
}

/** What a watcher watches. */
export interface WatchSpec {
  /** The key, or the start of the range. */
  key: Uint8Array;
  /**
   * End of the range, with the shapes of a Range request: absent or empty watches `key`
   * alone, `[0]` every key >= `key`, anything else the half-open interval [key, end).
   */
  end?: Uint8Array;
  /**
   * First revision wanted. 0 means "from the next write"; a revision at or below the current
   * one replays history from there; a future one waits for it.
   */
  startRev: number;
  /** Attach each event's previous key-value (costs a lookup per event read from history). */
  prevKv?: boolean;
  /** Leave out put events (etcd's NOPUT filter). */
  noPut?: boolean;
  /** Leave out delete events (etcd's NODELETE filter). */
  noDelete?: boolean;
}

/** One delivery to a watcher, in the order the consumer must send them. */
export interface WatchBatch {
  /**
   * Events of whole revisions, in revision order; empty for a progress report. Read-only: the
   * watchers of one event share the array, and the batch of a one-event revision is itself
   * shared (only a watcher's own progress report is ever changed in place).
   */
  readonly events: readonly MvccEvent[];
  /**
   * The watcher has seen every matching event up to this revision (the response header's
   * revision); 0 with `compactRevision`.
   */
  revision: number;
  /**
   * Set when the watcher was canceled because the revisions it needs were compacted: the
   * store's compact revision. It is the last batch the watcher delivers.
   */
  compactRevision?: number;
  /** Approximate encoded size of the events ({@linkcode eventBytes} summed). */
  bytes: number;
}

/** Per-event and per-kv framing beyond keys and values, roughly (revisions, tags, lengths). */
const kvOverheadBytes = 32;

/**
 * Approximate encoded size of an event: its keys and values plus a fixed overhead per kv.
 * Buffers and responses are bounded with it without encoding anything.
 */
export function eventBytes(ev: MvccEvent, withPrevKv: boolean): number {
  let n = kvOverheadBytes + ev.kv.key.length + ev.kv.value.length;
  if (withPrevKv && ev.prevKv) n += kvOverheadBytes + ev.prevKv.key.length + ev.prevKv.value.length;
  return n;
}

function batchBytes(events: MvccEvent[], withPrevKv: boolean): number {
  let n = 0;
  for (const ev of events) n += eventBytes(ev, withPrevKv);
  return n;
}

/** The range is empty (key >= end): etcd's ErrEmptyWatcherRange. */
export class WatchRangeEmptyError extends Error {
  /** Creates the error with etcd's (client-visible) wording. */
  constructor() {
    super("mvcc: watcher range is empty");
    this.name = "WatchRangeEmptyError";
  }
}

/** A client-chosen watch id already names a watcher on the stream: ErrWatcherDuplicateID. */
export class DuplicateWatchIdError extends Error {
  /** Creates the error with etcd's (client-visible) wording. */
  constructor() {
    super("mvcc: duplicate watch ID provided on the WatchStream");
    this.name = "DuplicateWatchIdError";
  }
}

/** The hub or the stream was closed. */
export class WatchClosedError extends Error {
  /** Creates the error. */
  constructor() {
    super("mvcc: watch stream closed");
    this.name = "WatchClosedError";
  }
}

type WatcherState = "synced" | "unsynced" | "canceled";
type Kind = "point" | "prefix" | "range";

const FROM_KEY = new Uint8Array([0]);
/** Bytes per String.fromCharCode call when turning keys into map keys. */
const keyChunkBytes = 8192;

/** A key as a string with one char per byte: an exact, cheap map key. */
function keyString(key: Uint8Array): string {
  if (key.length <= keyChunkBytes) return String.fromCharCode(...key);
  let out = "";
  for (let i = 0; i < key.length; i += keyChunkBytes) {
    out += String.fromCharCode(...key.subarray(i, i + keyChunkBytes));
  }
  return out;
}

function clampRev(rev: number): number {
  if (Number.isSafeInteger(rev)) return rev;
  return rev > 0 ? Number.MAX_SAFE_INTEGER : Number.MIN_SAFE_INTEGER;
}

/** A watcher: created through {@linkcode WatchStream.watch}, drained with `take()`. */
export class Watcher {
  /** The watch id on its stream (etcd's WatchID). */
  readonly id: bigint;
  /** The key or the start of the range. */
  readonly key: Uint8Array;
  /** undefined for one key, `[0]` for from-key, else the range end. */
  readonly end: Uint8Array | undefined;
  /** Whether events carry their previous key-value. */
  readonly prevKv: boolean;
  readonly #noPut: boolean;
  readonly #noDelete: boolean;
  /** How the hub indexes it: one key, a prefix, or any other range. */
  readonly kind: Kind;
  /** Map key of the point or prefix this watcher is indexed under. */
  readonly indexKey: string;
  /** The stream it belongs to. */
  readonly stream: WatchStream;
  /** The next revision this watcher needs. */
  minRev: number;
  /** Synced, unsynced (catching up), or canceled. */
  state: WatcherState;
  /**
   * The consumer's own mark: the watcher waits in its send queue. The hub never reads it; it
   * lives here so that the consumer's part of a put's walk over its watchers touches nothing
   * but the watcher.
   */
  queued = false;
  /**
   * The oldest batch held for the consumer, in the watcher itself: a watcher that keeps up
   * holds one batch at a time, and the hub's walk over 1 000 watchers per put then touches one
   * object per watcher rather than three (watcher, queue, queue's array); the walk runs with
   * caches the put's own backend work has just cooled (1 000 watchers on a prefix: 0.48 ms per
   * put against 0.21 ms on one key).
   */
  #head: WatchBatch | undefined = undefined;
  /**
   * The batches after `#head`, made on first need. A `Fifo`: emptying an array on every take
   * made the next push allocate a fresh backing store.
   */
  #rest: Fifo<WatchBatch> | undefined = undefined;
  #bufferedEvents = 0;
  #bufferedBytes = 0;

  /** @internal Built by {@linkcode WatchStream.watch}. */
  constructor(stream: WatchStream, id: bigint, spec: WatchSpec, minRev: number, synced: boolean) {
    this.stream = stream;
    this.id = id;
    // Own copies, as plain Uint8Arrays: decoded request bytes may be Node Buffers (whose
    // slice() is a view, not a copy) over a whole transport chunk the watch must not pin.
    this.key = new Uint8Array(spec.key);
    this.end = spec.end === undefined || spec.end.length === 0
      ? undefined
      : new Uint8Array(spec.end);
    this.prevKv = spec.prevKv ?? false;
    this.#noPut = spec.noPut ?? false;
    this.#noDelete = spec.noDelete ?? false;
    this.minRev = minRev;
    this.state = synced ? "synced" : "unsynced";
    if (this.end === undefined) this.kind = "point";
    else if (
      this.key.length > 0 && !equalBytes(this.end, FROM_KEY) &&
      equalBytes(this.end, prefixEnd(this.key))
    ) this.kind = "prefix";
    else this.kind = "range";
    this.indexKey = this.kind === "range" ? "" : keyString(this.key);
  }

  /** Whether the watcher has seen every revision up to the store's current one. */
  get synced(): boolean {
    return this.state === "synced";
  }

  /** Whether the watcher was canceled (by its stream or by compaction). */
  get canceled(): boolean {
    return this.state === "canceled";
  }

  /** Whether a batch waits to be taken. */
  get pending(): boolean {
    return this.#head !== undefined;
  }

  /** Events held for the consumer. */
  get bufferedEvents(): number {
    return this.#bufferedEvents;
  }

  /** Approximate bytes held for the consumer. */
  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  /** The oldest batch, left in place. */
  peek(): WatchBatch | undefined {
    return this.#head;
  }

  /** Takes the oldest batch; the hub may refill the buffer from history afterwards. */
  take(): WatchBatch | undefined {
    const batch = this.#head;
    if (batch === undefined) return undefined;
    this.#head = this.#rest?.shift();
    this.stream.hub.heldBatchesChanged(-1);
    this.#bufferedEvents -= batch.events.length;
    this.#bufferedBytes -= batch.bytes;
    if (this.state === "unsynced") this.stream.hub.wantCatchUp(this);
    return batch;
  }

  /** Whether `key` is inside the watched range (ranges only; points and prefixes use maps). */
  inRange(key: Uint8Array): boolean {
    if (compareBytes(key, this.key) < 0) return false;
    return this.end === undefined || equalBytes(this.end, FROM_KEY) ||
      compareBytes(key, this.end) < 0;
  }

  /** Applies the NOPUT/NODELETE filters; the array is reused when nothing is left out. */
  filter(events: MvccEvent[]): MvccEvent[] {
    if (!this.#noPut && !this.#noDelete) return events;
    return events.filter((ev) => ev.type === "put" ? !this.#noPut : !this.#noDelete);
  }

  /** @internal Appends a batch (which other watchers may share) and tells the stream. */
  push(batch: WatchBatch): void {
    if (this.#head === undefined) this.#head = batch;
    else (this.#rest ??= new Fifo()).push(batch);
    this.stream.hub.heldBatchesChanged(1);
    this.#bufferedEvents += batch.events.length;
    this.#bufferedBytes += batch.bytes;
    this.stream.changed(this);
  }

  /** @internal The last batch, if it is a progress report (so reports do not pile up). */
  lastProgress(): WatchBatch | undefined {
    const last = this.#rest?.peekLast() ?? this.#head;
    return last !== undefined && last.events.length === 0 && last.compactRevision === undefined
      ? last
      : undefined;
  }

  /** @internal Drops everything buffered. */
  clear(): void {
    const held = (this.#head !== undefined ? 1 : 0) + (this.#rest?.length ?? 0);
    this.#head = undefined;
    this.#rest = undefined;
    this.stream.hub.heldBatchesChanged(-held);
    this.#bufferedEvents = 0;
    this.#bufferedBytes = 0;
  }
}

/** Callbacks from the hub to a stream's consumer. They must be cheap and must not throw. */
export interface WatchStreamListener {
  /** A watcher got a batch or became synced. */
  onChange(watcher: Watcher): void;
  /** The hub ended the stream (it closed, or reading history failed); it is dead now. */
  onClose?(): void;
}

/**
 * The watchers of one client stream, with etcd's id rules (mvcc.WatchStream): ids chosen by
 * the server count up from 0, skipping ids in use; a client-chosen id must be free.
 */
export class WatchStream {
  /** The hub that owns the stream's watchers. */
  readonly hub: WatchHub;
  readonly #listener: WatchStreamListener;
  readonly #watchers = new Map<bigint, Watcher>();
  #nextId = 0n;
  #closed = false;

  /** @internal Built by {@linkcode WatchHub.newStream}. */
  constructor(hub: WatchHub, listener: WatchStreamListener) {
    this.hub = hub;
    this.#listener = listener;
  }

  /** Whether the stream (or its hub) was closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The watchers of the stream, including compacted ones the client has not canceled. */
  watchers(): IterableIterator<Watcher> {
    return this.#watchers.values();
  }

  /** The watcher with this id, if any. */
  get(id: bigint): Watcher | undefined {
    return this.#watchers.get(id);
  }

  /**
   * Creates a watcher. `id` 0 lets the stream choose. Throws {@linkcode WatchRangeEmptyError}
   * for an empty range and {@linkcode DuplicateWatchIdError} for an id in use.
   */
  watch(id: bigint, spec: WatchSpec): Watcher {
    const end = spec.end;
    if (end !== undefined && end.length > 0 && !equalBytes(end, FROM_KEY)) {
      if (compareBytes(spec.key, end) >= 0) throw new WatchRangeEmptyError();
    }
    // etcd answers a closed stream the same way.
    if (this.#closed) throw new WatchRangeEmptyError();
    if (id === 0n) {
      while (this.#watchers.has(this.#nextId)) this.#nextId++;
      id = this.#nextId++;
    } else if (this.#watchers.has(id)) {
      throw new DuplicateWatchIdError();
    }
    const watcher = this.hub.add(this, id, spec);
    this.#watchers.set(id, watcher);
    return watcher;
  }

  /** Cancels a watcher; false when the id names none. */
  cancel(id: bigint): boolean {
    const watcher = this.#watchers.get(id);
    if (!watcher || this.#closed) return false;
    this.#watchers.delete(id);
    this.hub.remove(watcher);
    return true;
  }

  /** Cancels every watcher; the stream cannot be used again. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const watcher of this.#watchers.values()) this.hub.remove(watcher);
    this.#watchers.clear();
    this.hub.dropStream(this);
  }

  /** @internal */
  changed(watcher: Watcher): void {
    this.#listener.onChange(watcher);
  }

  /** Closes the stream and tells its listener (the hub closed, or reading history failed). */
  abort(): void {
    if (this.#closed) return;
    this.close();
    this.#listener.onClose?.();
  }
}

/** Watchers indexed for matching: exact keys and prefixes by map, other ranges in a list. */
class WatcherIndex {
  readonly #byKey = new Map<string, Set<Watcher>>();
  readonly #byPrefix = new Map<string, Set<Watcher>>();
  /** Prefix lengths in use, with how many watchers use each. */
  readonly #prefixLengths = new Map<number, number>();
  readonly #ranges = new Set<Watcher>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  add(w: Watcher): void {
    this.#size++;
    if (w.kind === "range") {
      this.#ranges.add(w);
      return;
    }
    const map = w.kind === "point" ? this.#byKey : this.#byPrefix;
    let set = map.get(w.indexKey);
    if (!set) map.set(w.indexKey, set = new Set());
    set.add(w);
    if (w.kind === "prefix") {
      const n = w.key.length;
      this.#prefixLengths.set(n, (this.#prefixLengths.get(n) ?? 0) + 1);
    }
  }

  delete(w: Watcher): void {
    this.#size--;
    if (w.kind === "range") {
      this.#ranges.delete(w);
      return;
    }
    const map = w.kind === "point" ? this.#byKey : this.#byPrefix;
    const set = map.get(w.indexKey);
    assert(set !== undefined && set.delete(w), "watch hub: indexed watcher missing");
    if (set.size === 0) map.delete(w.indexKey);
    if (w.kind === "prefix") {
      const n = w.key.length;
      const left = this.#prefixLengths.get(n)! - 1;
      if (left === 0) this.#prefixLengths.delete(n);
      else this.#prefixLengths.set(n, left);
    }
  }

  /** Calls `fn` for every watcher whose range holds `key`. */
  match(key: Uint8Array, fn: (w: Watcher) => void): void {
    const needKey = this.#byKey.size > 0 || this.#prefixLengths.size > 0;
    const k = needKey ? keyString(key) : "";
    if (this.#byKey.size > 0) this.#byKey.get(k)?.forEach(fn);
    for (const length of this.#prefixLengths.keys()) {
      if (length <= k.length) this.#byPrefix.get(k.slice(0, length))?.forEach(fn);
    }
    for (const w of this.#ranges) if (w.inRange(key)) fn(w);
  }
}

/** The watch hub of one store. */
export class WatchHub {
  readonly #source: WatchSource;
  readonly #maxBufferedEvents: number;
  readonly #maxBufferedBytes: number;
  readonly #catchUpBatchRevs: number;
  readonly #catchUpWatchersPerTick: number;
  readonly #timers: WatchTimers;
  readonly #onError: (err: unknown) => void;
  readonly #synced = new WatcherIndex();
  /** Unsynced watchers in the order they will be advanced. */
  readonly #unsynced = new Set<Watcher>();
  /** Unsynced watchers with room in their buffer: the catch-up's work list. */
  readonly #runnable = new Set<Watcher>();
  readonly #streams = new Set<WatchStream>();
  #timer: unknown = undefined;
  #closed = false;
  /** Batches pushed to watchers and not yet taken by their consumers, over every watcher. */
  #heldBatches = 0;

  /** Creates a hub over `source` (the store). */
  constructor(source: WatchSource, options: WatchHubOptions = {}) {
    this.#source = source;
    this.#maxBufferedEvents = options.maxBufferedEvents ?? 1000;
    this.#maxBufferedBytes = options.maxBufferedBytes ?? 4 * 1024 * 1024;
    this.#catchUpBatchRevs = options.catchUpBatchRevs ?? 1000;
    this.#catchUpWatchersPerTick = options.catchUpWatchersPerTick ?? 64;
    this.#timers = options.timers ?? realTimers;
    this.#onError = options.onError ?? ((err) => console.error("watch catch-up failed:", err));
    assert(this.#maxBufferedEvents > 0, "maxBufferedEvents must be > 0");
    assert(this.#maxBufferedBytes > 0, "maxBufferedBytes must be > 0");
    assert(this.#catchUpBatchRevs > 0, "catchUpBatchRevs must be > 0");
    assert(this.#catchUpWatchersPerTick > 0, "catchUpWatchersPerTick must be > 0");
  }

  /** The store's current revision. */
  get currentRev(): number {
    return this.#source.currentRev;
  }

  /** True while any watcher (synced or catching up) is open. */
  get watching(): boolean {
    return this.#synced.size + this.#unsynced.size > 0;
  }

  /**
   * Whether some watcher holds events (or a progress or compaction notice) its consumer has not
   * taken yet: output that anything blocking the event loop now would hold back.
   */
  get holdsUntaken(): boolean {
    return this.#heldBatches > 0;
  }

  /** Number of synced and unsynced watchers. */
  get counts(): { synced: number; unsynced: number } {
    return { synced: this.#synced.size, unsynced: this.#unsynced.size };
  }

  /** Opens a stream of watchers; `listener` hears of batches and sync. */
  newStream(listener: WatchStreamListener): WatchStream {
    if (this.#closed) throw new WatchClosedError();
    const stream = new WatchStream(this, listener);
    this.#streams.add(stream);
    return stream;
  }

  /**
   * Delivers the events of applied revisions (in revision order) to the synced watchers they
   * match. Never blocks: a watcher without room turns unsynced and re-reads from history.
   */
  notify(events: MvccEvent[]): void {
    if (this.#closed || events.length === 0 || this.#synced.size === 0) return;
    let start = 0;
    for (let i = 1; i <= events.length; i++) {
      if (i === events.length || events[i].kv.modRevision !== events[start].kv.modRevision) {
        this.#notifyRevision(start === 0 && i === events.length ? events : events.slice(start, i));
        start = i;
      }
    }
  }

  #notifyRevision(events: MvccEvent[]): void {
    const rev = events[0].kv.modRevision;
    if (events.length === 1) return this.#notifyOneEvent(events, rev);
    const matched = new Map<Watcher, MvccEvent[]>();
    for (const ev of events) {
      this.#synced.match(ev.kv.key, (w) => {
        if (rev < w.minRev) return; // a watcher waiting for a future revision
        const list = matched.get(w);
        if (list) list.push(ev);
        else matched.set(w, [ev]);
      });
    }
    for (const [w, evs] of matched) {
      const kept = w.filter(evs);
      if (kept.length === 0) {
        w.minRev = rev + 1;
        continue;
      }
      if (!this.#offer(w, kept, rev, batchBytes(kept, w.prevKv))) this.#unsync(w, rev);
    }
  }

  /**
   * Buffers `events` (all of revision `rev`, what `w` wants of it) for `w`; false, buffering
   * nothing, when `w` already holds too much to take them.
   */
  #offer(w: Watcher, events: readonly MvccEvent[], rev: number, bytes: number): boolean {
    return this.#offerBatch(w, { events, revision: rev, bytes });
  }

  /** {@linkcode #offer} of a batch already made (and perhaps shared with other watchers). */
  #offerBatch(w: Watcher, batch: WatchBatch): boolean {
    if (w.bufferedEvents > 0 && !this.#fits(w, batch.events.length, batch.bytes)) return false;
    w.minRev = batch.revision + 1;
    w.push(batch);
    return true;
  }

  /** Too slow a consumer: stop buffering for `w`, which re-reads from revision `rev` later. */
  #unsync(w: Watcher, rev: number): void {
    this.#synced.delete(w);
    w.state = "unsynced";
    w.minRev = rev;
    this.#unsynced.add(w);
    this.wantCatchUp(w);
  }

  /**
   * A revision of one event (a put, or a delete of one key): every matched watcher gets one of
   * two batches (without and with previous values), shared, so a put seen by 1 000 watchers
   * builds no table, no array and no batch per watcher. The event is the whole revision, so a
   * filter either keeps it (the same content) or drops it.
   */
  #notifyOneEvent(published: MvccEvent[], rev: number): void {
    // One array of our own: the publisher's may be its own to reuse.
    const events = [published[0]];
    const batches: (WatchBatch | undefined)[] = [undefined, undefined];
    let tooSlow: Watcher[] | undefined;
    this.#synced.match(events[0].kv.key, (w) => {
      if (rev < w.minRev) return; // a watcher waiting for a future revision
      if (w.filter(events).length === 0) {
        w.minRev = rev + 1;
        return;
      }
      const which = w.prevKv ? 1 : 0;
      const batch = batches[which] ??= {
        events,
        revision: rev,
        bytes: batchBytes(events, w.prevKv),
      };
      if (!this.#offerBatch(w, batch)) (tooSlow ??= []).push(w);
    });
    // Outside the walk over the synced set, which this changes.
    for (const w of tooSlow ?? []) this.#unsync(w, rev);
  }

  /**
   * Turns every synced watcher unsynced, to re-read from history: after the store was replaced
   * by a snapshot, revisions arrived that no `notify()` carried. A watcher whose next revision
   * was compacted away in the snapshot is then canceled as compacted, as etcd does.
   */
  resync(): void {
    for (const stream of this.#streams) {
      for (const w of stream.watchers()) {
        if (w.state !== "synced") continue;
        this.#synced.delete(w);
        w.state = "unsynced";
        this.#unsynced.add(w);
        this.wantCatchUp(w);
      }
    }
  }

  /**
   * Queues a progress report (no events, the current revision) if the watcher is synced, as
   * etcd does; an unsynced watcher will report progress through its next events instead.
   */
  progress(w: Watcher): boolean {
    if (w.state !== "synced") return false;
    const rev = this.#source.currentRev;
    const last = w.lastProgress();
    if (last) last.revision = rev;
    else w.push({ events: [], revision: rev, bytes: 0 });
    return true;
  }

  /**
   * Advances up to `catchUpWatchersPerTick` unsynced watchers that have room by one bounded
   * history read each. Returns whether runnable work remains. The timer loop calls this;
   * tests may call it directly.
   */
  catchUp(): boolean {
    let budget = this.#catchUpWatchersPerTick;
    for (const w of this.#runnable) {
      if (budget-- <= 0) break;
      this.#runnable.delete(w);
      if (w.state !== "unsynced") continue;
      let moved: boolean;
      try {
        moved = this.#advance(w);
      } catch (err) {
        // The store failed (closed under us, say): end the stream rather than hang it.
        this.#onError(err);
        w.stream.abort();
        continue;
      }
      // A watcher whose next revision did not fit waits for its consumer (take()).
      if (moved && w.state === "unsynced" && this.#hasRoom(w)) this.#runnable.add(w);
    }
    return this.#runnable.size > 0;
  }

  /** Cancels every watcher and stops the catch-up; streams hear `onClose`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const stream of [...this.#streams]) stream.abort();
    this.#streams.clear();
  }

  /** @internal Registers a watcher of `stream` (see {@linkcode WatchStream.watch}). */
  add(stream: WatchStream, id: bigint, spec: WatchSpec): Watcher {
    const current = this.#source.currentRev;
    const startRev = clampRev(spec.startRev);
    // etcd: 0 or a revision after the current one is synced; the rest replays history.
    const synced = startRev === 0 || startRev > current;
    const minRev = synced ? Math.max(current + 1, startRev) : startRev;
    const w = new Watcher(stream, id, spec, minRev, synced);
    if (synced) this.#synced.add(w);
    else {
      this.#unsynced.add(w);
      this.wantCatchUp(w);
    }
    return w;
  }

  /** @internal Removes a watcher from the hub and drops its buffer. */
  remove(w: Watcher): void {
    if (w.state === "synced") this.#synced.delete(w);
    else if (w.state === "unsynced") {
      this.#unsynced.delete(w);
      this.#runnable.delete(w);
    }
    w.state = "canceled";
    w.clear();
  }

  /** @internal A watcher's buffer gained (or lost, when negative) `delta` batches. */
  heldBatchesChanged(delta: number): void {
    this.#heldBatches += delta;
    assert(this.#heldBatches >= 0, "more batches taken than held");
  }

  /** @internal */
  dropStream(stream: WatchStream): void {
    this.#streams.delete(stream);
  }

  /** @internal An unsynced watcher may have room now: schedule its catch-up. */
  wantCatchUp(w: Watcher): void {
    if (w.state !== "unsynced" || !this.#hasRoom(w) || this.#runnable.has(w)) return;
    this.#runnable.add(w);
    this.#schedule();
  }

  #hasRoom(w: Watcher): boolean {
    // Refill at half: the consumer keeps sending while the next batch is read.
    return w.bufferedEvents * 2 < this.#maxBufferedEvents &&
      w.bufferedBytes * 2 < this.#maxBufferedBytes;
  }

  /** Whether `events` more events of `bytes` bytes stay within the watcher's bounds. */
  #fits(w: Watcher, events: number, bytes: number): boolean {
    return w.bufferedEvents + events <= this.#maxBufferedEvents &&
      w.bufferedBytes + bytes <= this.#maxBufferedBytes;
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = undefined;
      // Yield between ticks so apply and other streams run in between.
      if (this.catchUp()) this.#schedule();
    }, 0);
  }

  /** One bounded history read for an unsynced watcher; false if nothing fit its buffer. */
  #advance(w: Watcher): boolean {
    const source = this.#source;
    const compactRev = source.compactRev;
    if (w.minRev < compactRev) {
      this.#unsynced.delete(w);
      w.state = "canceled";
      w.push({ events: [], revision: 0, compactRevision: compactRev, bytes: 0 });
      return true;
    }
    const current = source.currentRev;
    if (w.minRev > current) {
      this.#toSynced(w);
      return true;
    }
    const toRev = Math.min(current, w.minRev + this.#catchUpBatchRevs - 1);
    const events = source.history(w.minRev, toRev, {
      key: w.key,
      end: w.end,
      prevKv: w.prevKv,
    });
    // Take whole revisions while they fit; an empty buffer takes at least one. The filters
    // apply first, so that left-out events take no room.
    let taken = 0;
    let through = toRev;
    const kept: MvccEvent[] = [];
    let keptBytes = 0;
    while (taken < events.length) {
      const rev = events[taken].kv.modRevision;
      let end = taken;
      while (end < events.length && events[end].kv.modRevision === rev) end++;
      const revEvents = w.filter(events.slice(taken, end));
      const revBytes = batchBytes(revEvents, w.prevKv);
      const empty = kept.length === 0 && w.bufferedEvents === 0;
      if (!empty && !this.#fits(w, kept.length + revEvents.length, keptBytes + revBytes)) {
        through = rev - 1;
        break;
      }
      for (const ev of revEvents) kept.push(ev);
      keptBytes += revBytes;
      taken = end;
    }
    if (through < w.minRev) return false;
    w.minRev = through + 1;
    const nowSynced = through >= current;
    if (kept.length > 0) w.push({ events: kept, revision: through, bytes: keptBytes });
    if (nowSynced) this.#toSynced(w);
    return true;
  }

  #toSynced(w: Watcher): void {
    this.#unsynced.delete(w);
    this.#runnable.delete(w);
    w.state = "synced";
    w.minRev = Math.max(w.minRev, this.#source.currentRev + 1);
    this.#synced.add(w);
    w.stream.changed(w);
  }
}
