/**
 * etcd's multi-version key space on `node:sqlite`.
 *
 * Tables (prefixed `mvcc_` because leases, members and auth may share the database):
 * - `mvcc_kv`: every version of every key, one row per write, including tombstones. The
 *   rowid grows with (main revision, sub revision), so "latest version of a key at or below
 *   revision R" is the largest rowid among that key's rows with `rev <= R`.
 * - `mvcc_live`: the current version of each live key, so current reads and puts are one
 *   B-tree lookup and never scan history. Values stay in `mvcc_kv` only (no copy).
 * - `mvcc_meta`: current revision, compact revisions and consistent index.
 *
 * A SQLite transaction is open at all times (the store's connection never autocommits).
 * Writes accumulate in it until {@linkcode MvccStore.commit}, or until `maxBatchOps` writes
 * are pending, checked only between raft entries in {@linkcode MvccStore.setConsistentIndex}
 * so that the consistent index always commits atomically with the writes it covers.
 *
 * @module
 */
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { assert } from "../internal/assert.ts";
import { crc32c } from "../internal/crc32c.ts";
import { CompactedError, FutureRevError } from "./errors.ts";
import type {
  KeyValue,
  MvccEvent,
  RangeOptions,
  RangeResult,
  ReadView,
  WriteTxn,
} from "./types.ts";

/** Tuning of an {@linkcode MvccStore}. */
export interface MvccStoreOptions {
  /** Commit the batched SQLite transaction once this many writes are pending (default 10000). */
  maxBatchOps?: number;
  /**
   * SQLite `synchronous` setting (default "off"): the raft WAL is the durable record and
   * entries after the stored consistent index are replayed after a crash. "normal" also
   * protects the database file against power loss at the cost of fsyncs at checkpoints.
   */
  synchronous?: "off" | "normal";
  /** History rows visited per compaction batch (default 1000). */
  compactBatchRows?: number;
  /** SQLite page cache size in KiB (default 32768). */
  cacheKiB?: number;
  /**
   * Bytes of the database file SQLite reads through mmap (default 1 GiB; 0 turns it off).
   * Mapped pages live in the OS page cache, not the JS heap, and spare a copy per read.
   */
  mmapBytes?: number;
}

/** Options of {@linkcode MvccStore.history}. */
export interface HistoryOptions {
  /** Restrict to keys in this range (same shapes as `range`); absent means every key. */
  key?: Uint8Array;
  /** End of the key range; see {@linkcode ReadView.range}. */
  end?: Uint8Array;
  /** Attach each event's previous version (an extra lookup per event). */
  prevKv?: boolean;
}

const DEFAULT_MAX_BATCH_OPS = 10_000;
const DEFAULT_CACHE_KIB = 32 * 1024;
/**
 * SQLite page size of a new backend (an existing file keeps its own). Puts of random keys dirty
 * a leaf page or two each, and every dirty page is a frame the batch commit writes to SQLite's
 * WAL, then copies into the file: with 4 KiB pages those commits were the put tail (4-10 ms
 * every 100 ms at 11 000 puts/s). With 64 clients of random puts, 8 KiB pages gave 10-20 % more
 * throughput and less server CPU per put than 4 KiB, and serializable ranges no worse; 16 KiB
 * pages did about as well for puts but cost ranges a little, and double the size of an empty
 * backend (192 KiB, every table and index takes a page), which a small
 * `--quota-backend-bytes` feels (three alternating runs of each).
 */
const PAGE_BYTES = 8 * 1024;
/** etcd deletes compacted history 1000 revisions per batch; rows are our unit. */
const DEFAULT_COMPACT_BATCH_ROWS = 1000;
const DEFAULT_MMAP_BYTES = 1024 * 1024 * 1024;
const EMPTY = new Uint8Array(0);

/** etcd starts its key space at revision 1 so that the first write gets revision 2. */
const INITIAL_REV = 1;
/** etcd's compactMainRev before any compaction. */
const NEVER_COMPACTED = -1;

type Shape = "point" | "from" | "range";

function shapeOf(end: Uint8Array | undefined): Shape {
  if (end === undefined || end.length === 0) return "point";
  if (end.length === 1 && end[0] === 0) return "from";
  return "range";
}

function keyCond(column: string, shape: Shape): string {
  switch (shape) {
    case "point":
      return `${column} = ?`;
    case "from":
      return `${column} >= ?`;
    case "range":
      return `${column} >= ? AND ${column} < ?`;
  }
}

function keyArgs(key: Uint8Array, end: Uint8Array | undefined, shape: Shape): Uint8Array[] {
  return shape === "range" ? [key, end!] : [key];
}

function checkRev(rev: number, what: string): void {
  assert(Number.isSafeInteger(rev), `${what} ${rev} is not a safe integer`);
}

/**
 * Row layout of every kv query: key (null when the caller knows it), create_rev, mod_rev,
 * version, lease[, value].
 */
type KvRow = [
  Uint8Array | null,
  bigint,
  bigint,
  bigint,
  bigint,
  (Uint8Array | undefined)?,
  ...unknown[],
];

/** A history row: the kv columns, then tomb and (when selected) the row id. */
type HistoryRow = [Uint8Array, bigint, bigint, bigint, bigint, Uint8Array, bigint, bigint];

function rowToKv(row: KvRow, key?: Uint8Array): KeyValue {
  return {
    key: row[0] ?? key!,
    createRevision: Number(row[1]),
    modRevision: Number(row[2]),
    version: Number(row[3]),
    lease: row[4],
    value: row[5] ?? EMPTY,
  };
}

function tombstone(key: Uint8Array, rev: number): KeyValue {
  return { key, createRevision: 0, modRevision: rev, version: 0, value: EMPTY, lease: 0n };
}

/** The statements of one kind of range read, per key-range shape. */
interface RangeSql {
  /** Rows with values; parameters: key args [, rev, rev], limit. */
  all: string;
  /** Rows without values; same parameters as `all`. */
  keys: string;
  /** Number of matches; parameters: key args [, rev]. */
  count: string;
}

function liveSql(shape: Shape): RangeSql {
  const cond = keyCond("l.key", shape);
  // A single-key read does not return the key: the caller has it (one blob copy less).
  const cols = `${shape === "point" ? "NULL" : "l.key"}, l.create_rev, l.mod_rev, l.version,
    l.lease`;
  return {
    all: `SELECT ${cols}, h.value FROM mvcc_live l JOIN mvcc_kv h ON h.id = l.id
          WHERE ${cond} ORDER BY l.key LIMIT ?`,
    keys: `SELECT ${cols} FROM mvcc_live l WHERE ${cond} ORDER BY l.key LIMIT ?`,
    count: `SELECT count(*) FROM mvcc_live l WHERE ${cond}`,
  };
}

/**
 * Reads at a past revision R: a key's version at R is its row with the largest id among
 * rows with rev <= R, unless that row is a tombstone. The key index is forced because it
 * yields rows in key order, so LIMIT stops the scan early (paged lists at a fixed revision).
 */
function historySql(shape: Shape): HistorySql {
  const where = `FROM mvcc_kv h INDEXED BY mvcc_kv_key
    WHERE ${keyCond("h.key", shape)} AND h.rev <= ?
      AND h.id = (SELECT max(m.id) FROM mvcc_kv m WHERE m.key = h.key AND m.rev <= ?)
      AND h.tomb = 0
    ORDER BY h.key LIMIT ?`;
  const cols = "h.key, h.create_rev, h.rev, h.version, h.lease";
  return {
    all: `SELECT ${cols}, h.value ${where}`,
    keys: `SELECT ${cols} ${where}`,
    count: `SELECT count(*) FROM (
        SELECT max(id) AS latest FROM mvcc_kv INDEXED BY mvcc_kv_key
        WHERE ${keyCond("key", shape)} AND rev <= ? GROUP BY key) m
      JOIN mvcc_kv h ON h.id = m.latest WHERE h.tomb = 0`,
    liveStats: `SELECT count(*), coalesce(sum(mod_rev <= ?), 0) FROM mvcc_live
      WHERE ${keyCond("key", shape)}`,
    writtenSince: `SELECT count(*) FROM (
        SELECT DISTINCT key FROM mvcc_kv INDEXED BY mvcc_kv_rev
        WHERE rev > ? AND ${keyCond("key", shape)}) d
      WHERE (SELECT m.tomb FROM mvcc_kv m INDEXED BY mvcc_kv_key
             WHERE m.key = d.key AND m.rev <= ? ORDER BY m.rev DESC, m.id DESC LIMIT 1) = 0`,
  };
}

/** The extra statements of a historical count; see `MvccStore.#historyCount`. */
interface HistorySql extends RangeSql {
  /** Live keys in the range, and those last written at or below R; parameters: R, key args. */
  liveStats: string;
  /** Keys written after R that were alive at R; parameters: R, key args, R. */
  writtenSince: string;
}

/** Fixed part of a hashed version: rev, create_rev, version, lease (8 each), tomb, two lengths. */
const HASH_ROW_HEADER_BYTES = 41;
/** Prefixes the key-space hash so that it never equals a hash of other data by construction. */
const HASH_KV_DOMAIN = new TextEncoder().encode("mvcc_kv");

/** Type tags of values in the backend hash. */
const HashTag = { table: 1, row: 2, null: 3, integer: 4, real: 5, text: 6, blob: 7 } as const;

/** Below this many revisions back, counting through the revision index is always cheap. */
const MIN_REVISION_SCAN = 1000;

const SHAPES: readonly Shape[] = ["point", "from", "range"];
const LIVE_SQL = Object.fromEntries(SHAPES.map((s) => [s, liveSql(s)])) as Record<
  Shape,
  RangeSql
>;
const HISTORY_SQL = Object.fromEntries(SHAPES.map((s) => [s, historySql(s)])) as Record<
  Shape,
  HistorySql
>;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS mvcc_kv (
  id INTEGER PRIMARY KEY,
  rev INTEGER NOT NULL,
  key BLOB NOT NULL,
  create_rev INTEGER NOT NULL,
  version INTEGER NOT NULL,
  lease INTEGER NOT NULL,
  tomb INTEGER NOT NULL,
  value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS mvcc_kv_key ON mvcc_kv(key, rev);
CREATE INDEX IF NOT EXISTS mvcc_kv_rev ON mvcc_kv(rev);
CREATE TABLE IF NOT EXISTS mvcc_live (
  key BLOB PRIMARY KEY,
  id INTEGER NOT NULL,
  create_rev INTEGER NOT NULL,
  mod_rev INTEGER NOT NULL,
  version INTEGER NOT NULL,
  lease INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mvcc_meta (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
`;

/** etcd's MVCC store: revisions, history, compaction and the consistent index. */
export class MvccStore {
  readonly #db: DatabaseSync;
  readonly #maxBatchOps: number;
  readonly #stmts = new Map<string, StatementSync>();
  #currentRev = INITIAL_REV;
  #compactRev = NEVER_COMPACTED;
  /** Revision up to which superseded history is deleted (lags #compactRev while pending). */
  #physicalRev = NEVER_COMPACTED;
  /** Last history row id visited by the pending compaction; undefined before it starts. */
  #compactCursor: number | undefined;
  readonly #compactBatchRows: number;
  #consistentIndex = 0;
  /** Whether the open SQLite transaction holds writes not yet committed. */
  #dirty = false;
  #pendingOps = 0;
  /** Number of live keys, kept in step with every write (etcd's keys_total gauge). */
  #liveKeys = 0;
  /** Identity of the open write txn, if any. */
  #writer: object | undefined;
  #closed = false;

  private constructor(db: DatabaseSync, maxBatchOps: number, compactBatchRows: number) {
    this.#db = db;
    this.#maxBatchOps = maxBatchOps;
    this.#compactBatchRows = compactBatchRows;
  }

  /** Opens (or creates) the store at `path`; ":memory:" gives a private in-memory store. */
  static open(path: string, options: MvccStoreOptions = {}): MvccStore {
    const maxBatchOps = options.maxBatchOps ?? DEFAULT_MAX_BATCH_OPS;
    assert(Number.isSafeInteger(maxBatchOps) && maxBatchOps > 0, "maxBatchOps must be > 0");
    const compactBatchRows = options.compactBatchRows ?? DEFAULT_COMPACT_BATCH_ROWS;
    assert(
      Number.isSafeInteger(compactBatchRows) && compactBatchRows > 0,
      "compactBatchRows must be > 0",
    );
    const cacheKiB = options.cacheKiB ?? DEFAULT_CACHE_KIB;
    assert(Number.isSafeInteger(cacheKiB) && cacheKiB > 0, "cacheKiB must be > 0");
    const mmapBytes = options.mmapBytes ?? DEFAULT_MMAP_BYTES;
    assert(Number.isSafeInteger(mmapBytes) && mmapBytes >= 0, "mmapBytes must be >= 0");
    const db = new DatabaseSync(path);
    // Only before the file has content (and before WAL mode) does this take effect.
    db.exec(`PRAGMA page_size = ${PAGE_BYTES}`);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec(`PRAGMA synchronous = ${options.synchronous === "normal" ? "NORMAL" : "OFF"}`);
    db.exec(`PRAGMA cache_size = -${cacheKiB}`);
    if (mmapBytes > 0) db.exec(`PRAGMA mmap_size = ${mmapBytes}`);
    db.exec("BEGIN");
    db.exec(SCHEMA);
    const store = new MvccStore(db, maxBatchOps, compactBatchRows);
    store.#restoreMeta();
    store.#liveKeys = store.#number("SELECT count(*) FROM mvcc_live", []);
    return store;
  }

  /** Revision of the last completed write (1 for a fresh store). */
  get currentRev(): number {
    return this.#currentRev;
  }

  /** Revision of the last compaction; -1 when the store was never compacted (as etcd). */
  get compactRev(): number {
    return this.#compactRev;
  }

  /** Number of live keys (no scan: counted as writes happen). */
  get liveKeyCount(): number {
    return this.#liveKeys;
  }

  /**
   * The SQLite database, for other state (leases, members, auth) that must commit in the
   * same transactions as the key space. A transaction is always open on it: never BEGIN or
   * COMMIT yourself; write inside {@linkcode withBatch} so the write is counted and committed.
   */
  get database(): DatabaseSync {
    return this.#db;
  }

  /** The last raft index applied, as stored with the data. */
  consistentIndex(): number {
    return this.#consistentIndex;
  }

  /**
   * Records that the raft entry `index` is fully applied. Called after the entry's writes;
   * commits the batch when enough writes are pending (never in the middle of an entry).
   */
  setConsistentIndex(index: number): void {
    this.#checkOpen();
    checkRev(index, "consistent index");
    assert(this.#writer === undefined, "setConsistentIndex during a write txn");
    if (index !== this.#consistentIndex) {
      this.#consistentIndex = index;
      this.#dirty = true;
    }
    if (this.#pendingOps >= this.#maxBatchOps) this.commit();
  }

  /** Runs `fn` inside the batched SQLite transaction, for writes to other tables. */
  withBatch<T>(fn: (db: DatabaseSync) => T): T {
    this.#checkOpen();
    this.#dirty = true;
    this.#pendingOps++;
    return fn(this.#db);
  }

  /** Every live key that is attached to a lease, for rebuilding the lessor at start-up. */
  liveLeaseAttachments(): { key: Uint8Array; lease: bigint }[] {
    this.#checkOpen();
    const sql = `SELECT key, lease FROM mvcc_live WHERE lease != 0`;
    const rows = this.#stmt(sql).all() as unknown as [Uint8Array, bigint][];
    return rows.map(([key, lease]) => ({ key, lease }));
  }

  /** A read view at the current revision. */
  read(): ReadView {
    this.#checkOpen();
    const rev = this.#currentRev;
    return {
      rev,
      firstRev: this.#compactRev,
      range: (key, end, opts = {}) => {
        // The live table is exact only while nothing was written since the view opened.
        const live = this.#writer === undefined && this.#currentRev === rev;
        return this.#rangeIn(rev, live, key, end, opts);
      },
    };
  }

  /** Starts the (only) write transaction; it writes at `currentRev + 1`. */
  write(): WriteTxn {
    this.#checkOpen();
    assert(this.#writer === undefined, "only one write txn at a time");
    this.#dirty = true;
    const beginRev = this.#currentRev;
    const rev = beginRev + 1;
    const events: MvccEvent[] = [];
    const token = {};
    this.#writer = token;
    const checkOpen = () => assert(this.#writer === token, "write txn already ended");
    // `rev` is a data property kept current by `record`, not a getter: an object literal whose
    // accessor is a new closure on every call gets a hidden class of its own, allocated in the
    // old generation, and that class kept each txn (its events, keys and values) alive through
    // young-generation GCs until the next full GC (measured under put load with
    // `--trace-gc-nvp`: 1.8 MB promoted per scavenge with the getter, 0.33 MB without).
    const txn: WriteTxn & { rev: number } = {
      rev: beginRev,
      firstRev: this.#compactRev,
      range: (key, end, opts = {}) => {
        checkOpen();
        return this.#rangeIn(txn.rev, true, key, end, opts);
      },
      put: (key, value, lease) => {
        checkOpen();
        assert(key.length > 0, "mvcc put of an empty key");
        const prevKv = this.#getLive(key);
        const kv: KeyValue = {
          key,
          createRevision: prevKv === undefined ? rev : prevKv.createRevision,
          modRevision: rev,
          version: prevKv === undefined ? 1 : prevKv.version + 1,
          value,
          lease,
        };
        this.#writeVersion(kv, false);
        if (prevKv === undefined) {
          this.#liveKeys++;
          record({ type: "put", kv });
          return {};
        }
        record({ type: "put", kv, prevKv });
        return { prevKv };
      },
      deleteRange: (key, end) => {
        checkOpen();
        const prevKvs = this.#rangeIn(txn.rev, true, key, end, {}).kvs;
        for (const prevKv of prevKvs) {
          const kv = tombstone(prevKv.key, rev);
          this.#writeVersion(kv, true);
          record({ type: "delete", kv, prevKv });
        }
        this.#liveKeys -= prevKvs.length;
        return { deleted: prevKvs.length, prevKvs };
      },
      end: () => {
        checkOpen();
        this.#writer = undefined;
        if (events.length > 0) {
          this.#currentRev = rev;
          this.#pendingOps += events.length;
        }
        return events;
      },
    };
    /** The txn reads its own writes: once it has written, its view is at `rev`. */
    const record = (event: MvccEvent) => {
      events.push(event);
      txn.rev = rev;
    };
    return txn;
  }

  /**
   * Compacts at `rev`: reads below `rev` fail from now on, and history superseded at `rev`
   * (for each key, every version at or below `rev` except the latest, and that one too if it
   * is a tombstone) is deleted in bounded batches: one batch now, one per {@linkcode commit},
   * or more through {@linkcode compactStep}, so that a large compaction never stalls the
   * caller (etcd also compacts in the background). Pending deletions never change what a
   * permitted read returns.
   */
  compact(rev: number): void {
    this.#checkOpen();
    checkRev(rev, "compact revision");
    assert(this.#writer === undefined, "compact during a write txn");
    if (rev <= this.#compactRev) throw new CompactedError(rev, this.#compactRev);
    if (rev > this.#currentRev) throw new FutureRevError(rev, this.#currentRev);
    this.#compactRev = rev;
    this.#dirty = true;
    this.compactStep();
  }

  /** Whether compacted history is still waiting to be deleted. */
  get compactionPending(): boolean {
    return this.#physicalRev < this.#compactRev;
  }

  /**
   * Deletes superseded history for the keys of at most `maxRows` history rows and returns
   * whether work remains. Rows are visited in revision order from the last finished
   * compaction, since only keys written after it can hold superseded rows.
   */
  compactStep(maxRows: number = this.#compactBatchRows): boolean {
    this.#checkOpen();
    assert(this.#writer === undefined, "compaction during a write txn");
    assert(Number.isSafeInteger(maxRows) && maxRows > 0, "maxRows must be > 0");
    if (!this.compactionPending) return false;
    const target = this.#compactRev;
    if (this.#compactCursor === undefined) {
      const last = this.#stmt(
        "SELECT id FROM mvcc_kv WHERE rev <= ? ORDER BY rev DESC, id DESC LIMIT 1",
      ).get(this.#physicalRev) as unknown as [bigint] | undefined;
      this.#compactCursor = last === undefined ? 0 : Number(last[0]);
    }
    const rows = this.#stmt(
      "SELECT id, rev, key FROM mvcc_kv WHERE id > ? ORDER BY id LIMIT ?",
    ).all(this.#compactCursor, maxRows) as unknown as [bigint, bigint, Uint8Array][];
    let done = rows.length < maxRows;
    const keys = new Map<string, Uint8Array>();
    for (const [id, rev, key] of rows) {
      if (Number(rev) > target) {
        done = true;
        break;
      }
      this.#compactCursor = Number(id);
      keys.set(String(key), key);
    }
    const prune = this.#stmt(
      `DELETE FROM mvcc_kv WHERE key = ? AND rev <= ? AND (tomb = 1
         OR id < (SELECT max(m.id) FROM mvcc_kv m WHERE m.key = ? AND m.rev <= ?))`,
    );
    let deleted = 0;
    for (const key of keys.values()) {
      deleted += Number(prune.run(key, target, key, target).changes);
    }
    this.#pendingOps += deleted;
    this.#dirty = true;
    if (done) {
      this.#physicalRev = target;
      this.#compactCursor = undefined;
    }
    return this.compactionPending;
  }

  /**
   * Every event with a revision in [fromRev, toRev], in revision order, optionally only for
   * a key range. The caller bounds the result by the window it asks for. Throws
   * CompactedError when `fromRev` is below the compact revision (as etcd's watch does).
   */
  history(fromRev: number, toRev: number, opts: HistoryOptions = {}): MvccEvent[] {
    this.#checkOpen();
    checkRev(fromRev, "history start");
    checkRev(toRev, "history end");
    if (fromRev < this.#compactRev) throw new CompactedError(fromRev, this.#compactRev);
    const filter = opts.key !== undefined;
    const shape = shapeOf(opts.end);
    const sql = `SELECT key, create_rev, rev, version, lease, value, tomb, id FROM mvcc_kv
      WHERE ${filter ? keyCond("key", shape) + " AND " : ""}rev >= ? AND rev <= ?
      ORDER BY rev, id`;
    const args = filter ? keyArgs(opts.key!, opts.end, shape) : [];
    const rows = this.#stmt(sql).all(...args, fromRev, toRev) as unknown as HistoryRow[];
    const events: MvccEvent[] = [];
    for (const row of rows) {
      const tomb = row[6] === 1n;
      const kv = tomb ? tombstone(row[0], Number(row[2])) : rowToKv(row);
      const event: MvccEvent = { type: tomb ? "delete" : "put", kv };
      if (opts.prevKv) {
        const prev = this.#stmt(
          `SELECT key, create_rev, rev, version, lease, value, tomb FROM mvcc_kv
           WHERE key = ? AND rev <= ? AND id < ? ORDER BY rev DESC, id DESC LIMIT 1`,
        ).get(row[0], row[2], row[7]) as unknown as HistoryRow | undefined;
        if (prev !== undefined && prev[6] === 0n) event.prevKv = rowToKv(prev);
      }
      events.push(event);
    }
    return events;
  }

  /**
   * Commits the batched SQLite transaction (with the revisions and consistent index), after
   * one batch of pending compaction, if any. Returns whether there was anything to commit.
   */
  commit(): boolean {
    this.#checkOpen();
    assert(this.#writer === undefined, "commit during a write txn");
    if (this.compactionPending) this.compactStep();
    if (!this.#dirty) return false;
    const put = this.#stmt("INSERT OR REPLACE INTO mvcc_meta(name, value) VALUES (?, ?)");
    put.run("current_rev", this.#currentRev);
    put.run("compact_rev", this.#compactRev);
    put.run("physical_compact_rev", this.#physicalRev);
    put.run("consistent_index", this.#consistentIndex);
    // A transaction stays open at all times: SQLite then skips taking and releasing file
    // locks around every read statement, which costs more than the read itself.
    this.#db.exec("COMMIT; BEGIN");
    this.#dirty = false;
    this.#pendingOps = 0;
    return true;
  }

  /**
   * A CRC-32C over the key space as of `rev` (0 = the current revision), as etcd's HashKV
   * defines its scope: every version written after the compact revision, plus, at or below
   * it, only the version each key still shows at `rev` (tombstones excluded). Versions that
   * compaction has superseded but not yet deleted are never included, so members with the
   * same history and compaction agree whatever their batching or deletion progress. Row ids
   * (local to this database) are not hashed; versions are hashed in (revision, sub-revision)
   * order. Throws CompactedError when `rev` is at or below the compact revision (HashKV
   * refuses the compact revision itself, unlike Range) and FutureRevError past the current one.
   */
  hashKv(rev: number): { hash: number; currentRev: number; compactRev: number } {
    this.#checkOpen();
    checkRev(rev, "hash revision");
    const compactRev = this.#compactRev;
    const currentRev = this.#currentRev;
    if (rev > 0 && rev <= compactRev) throw new CompactedError(rev, compactRev);
    if (rev > currentRev) throw new FutureRevError(rev, currentRev);
    // As etcd: 0 means the current revision; a negative one matches no version at all.
    const upTo = rev === 0 ? currentRev : rev;
    const rows = this.#stmt(
      `SELECT rev, key, create_rev, version, lease, tomb, value FROM mvcc_kv h
       WHERE rev <= ? AND (rev > ? OR (tomb = 0 AND
         id = (SELECT max(m.id) FROM mvcc_kv m WHERE m.key = h.key AND m.rev <= ?)))
       ORDER BY rev, id`,
    ).iterate(upTo, compactRev, upTo) as IterableIterator<unknown> as IterableIterator<
      [bigint, Uint8Array, bigint, bigint, bigint, bigint, Uint8Array]
    >;
    const scratch = new DataView(new ArrayBuffer(HASH_ROW_HEADER_BYTES));
    const header = new Uint8Array(scratch.buffer);
    let hash = crc32c(HASH_KV_DOMAIN);
    for (const [r, key, createRev, version, lease, tomb, value] of rows) {
      scratch.setBigInt64(0, r);
      scratch.setBigInt64(8, createRev);
      scratch.setBigInt64(16, version);
      scratch.setBigInt64(24, lease);
      scratch.setUint8(32, Number(tomb));
      scratch.setUint32(33, key.length);
      scratch.setUint32(37, value.length);
      hash = crc32c(value, crc32c(key, crc32c(header, hash)));
    }
    return { hash, currentRev, compactRev };
  }

  /**
   * A CRC-32C over every table of the backend (etcd's Hash: the whole database, except the
   * consistent index, which is this member's own bookkeeping). Tables are visited by name and
   * rows in primary-key order, each value tagged with its type, so equal contents hash alike.
   */
  hashBackend(): number {
    this.#checkOpen();
    const tables = this.#stmt(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    ).all() as unknown as [string][];
    const encoder = new TextEncoder();
    const scratch = new DataView(new ArrayBuffer(9));
    const tagged = new Uint8Array(scratch.buffer);
    let hash = 0;
    const add = (tag: number, payload?: Uint8Array) => {
      scratch.setUint8(0, tag);
      scratch.setUint32(1, payload?.length ?? 0);
      hash = crc32c(tagged.subarray(0, 5), hash);
      if (payload) hash = crc32c(payload, hash);
    };
    for (const [table] of tables) {
      add(HashTag.table, encoder.encode(table));
      const columns = this.#stmt(`PRAGMA table_info("${table}")`).all() as unknown as [
        bigint,
        string,
        string,
        bigint,
        unknown,
        bigint,
      ][];
      const keyColumns = columns.filter((c) => c[5] > 0n).sort((a, b) => Number(a[5] - b[5]));
      const order = keyColumns.length > 0 ? keyColumns.map((c) => `"${c[1]}"`).join(", ") : "rowid";
      const skipConsistentIndex = table === "mvcc_meta" ? ` WHERE name != 'consistent_index'` : "";
      const rows = this.#stmt(
        `SELECT * FROM "${table}"${skipConsistentIndex} ORDER BY ${order}`,
      ).iterate() as IterableIterator<unknown> as IterableIterator<unknown[]>;
      for (const row of rows) {
        add(HashTag.row);
        for (const value of row) {
          if (value === null) add(HashTag.null);
          else if (typeof value === "bigint") {
            scratch.setUint8(0, HashTag.integer);
            scratch.setBigInt64(1, value);
            hash = crc32c(tagged, hash);
          } else if (typeof value === "number") {
            scratch.setUint8(0, HashTag.real);
            scratch.setFloat64(1, value);
            hash = crc32c(tagged, hash);
          } else if (typeof value === "string") add(HashTag.text, encoder.encode(value));
          else add(HashTag.blob, value as Uint8Array);
        }
      }
    }
    return hash;
  }

  /** Size of the database file in bytes: page_count × page_size. */
  dbSizeBytes(): number {
    this.#checkOpen();
    return this.#pragma("page_count") * this.#pragma("page_size");
  }

  /** Bytes in use: (page_count − freelist_count) × page_size. */
  dbSizeInUseBytes(): number {
    this.#checkOpen();
    return (this.#pragma("page_count") - this.#pragma("freelist_count")) *
      this.#pragma("page_size");
  }

  /** Commits and rewrites the database file without free pages (etcd's defragment). */
  defragment(): void {
    this.#outsideTransaction(() => this.#db.exec("VACUUM"));
  }

  /** Commits, then writes a consistent copy of the database to `path` (must not exist). */
  copyTo(path: string): void {
    this.#outsideTransaction(() => this.#db.prepare("VACUUM INTO ?").run(path));
  }

  /**
   * Replaces the rows of every table with those of the database file at `path` (a backend
   * snapshot sent by the leader), in one transaction. The connection and its prepared
   * statements stay valid, so everything built on this store keeps working; tables this
   * store has and the snapshot lacks are emptied.
   */
  restoreFrom(path: string): void {
    this.#checkOpen();
    assert(this.#writer === undefined, "restoreFrom during a write txn");
    this.#outsideTransaction(() => {
      const db = this.#db;
      db.prepare("ATTACH DATABASE ? AS snap").run(path);
      try {
        db.exec("BEGIN");
        try {
          const tables = (db: string) =>
            new Map(
              (this.#db.prepare(
                `SELECT name, sql FROM ${db}.sqlite_master WHERE type = 'table'`,
              ).all() as { name: string; sql: string }[]).map((r) => [r.name, r.sql]),
            );
          const mine = tables("main");
          const theirs = tables("snap");
          for (const [name, sql] of theirs) if (!mine.has(name)) db.exec(sql);
          for (const name of new Set([...mine.keys(), ...theirs.keys()])) {
            db.exec(`DELETE FROM main."${name}"`);
            if (theirs.has(name)) {
              db.exec(`INSERT INTO main."${name}" SELECT * FROM snap."${name}"`);
            }
          }
          db.exec("COMMIT");
        } catch (err) {
          db.exec("ROLLBACK");
          throw err;
        }
      } finally {
        db.exec("DETACH DATABASE snap");
      }
      this.#currentRev = INITIAL_REV;
      this.#compactRev = NEVER_COMPACTED;
      this.#physicalRev = NEVER_COMPACTED;
      this.#compactCursor = undefined;
      this.#consistentIndex = 0;
      this.#restoreMeta();
      this.#liveKeys = this.#number("SELECT count(*) FROM mvcc_live", []);
    });
  }

  /** Commits and closes the database. */
  close(): void {
    if (this.#closed) return;
    this.commit();
    this.#db.exec("COMMIT");
    this.#stmts.clear();
    this.#db.close();
    this.#closed = true;
  }

  /** Reads at `opts.rev` for a view whose own revision is `viewRev`. */
  #rangeIn(
    viewRev: number,
    live: boolean,
    key: Uint8Array,
    end: Uint8Array | undefined,
    opts: RangeOptions,
  ): RangeResult {
    this.#checkOpen();
    let rev = opts.rev ?? 0;
    checkRev(rev, "range revision");
    if (rev > viewRev) throw new FutureRevError(rev, viewRev);
    if (rev <= 0) rev = viewRev;
    if (rev < this.#compactRev) throw new CompactedError(rev, this.#compactRev);
    const limit = opts.limit ?? 0;
    assert(Number.isSafeInteger(limit), "range limit must be a safe integer");
    const shape = shapeOf(end);
    const keys: SQLInputValue[] = keyArgs(key, end, shape);
    const historical = !(live && rev === viewRev);
    // A single key matches at most once: its count is the length of an unlimited read.
    const needsCount = shape !== "point" && (opts.countOnly || limit > 0);
    const count = () =>
      historical ? this.#historyCount(shape, keys, rev) : this.#liveCount(shape, keys);
    if (opts.countOnly && needsCount) return { kvs: [], count: count(), rev: viewRev };

    const sql = historical ? HISTORY_SQL[shape] : LIVE_SQL[shape];
    const select = opts.keysOnly || opts.countOnly ? sql.keys : sql.all;
    const selectArgs = historical ? [...keys, rev, rev] : keys;
    const rows = this.#stmt(select).all(
      ...selectArgs,
      limit > 0 ? limit : -1,
    ) as unknown as KvRow[];
    if (opts.countOnly) return { kvs: [], count: rows.length, rev: viewRev };
    const kvs = rows.map((row) => rowToKv(row, key));
    return {
      kvs,
      count: needsCount && kvs.length === limit ? count() : kvs.length,
      rev: viewRev,
    };
  }

  #liveCount(shape: Shape, keys: SQLInputValue[]): number {
    return this.#number(LIVE_SQL[shape].count, keys);
  }

  /**
   * Counts the keys alive at `rev`. A live key last written at or before `rev` is certainly
   * alive then; the rest are keys written after `rev`, found through the revision index.
   * That is cheap for recent revisions (paged lists at a fixed revision); for old ones the
   * key index is scanned instead.
   */
  #historyCount(shape: Shape, keys: SQLInputValue[], rev: number): number {
    const sql = HISTORY_SQL[shape];
    const stats = this.#stmt(sql.liveStats).get(rev, ...keys) as unknown as [bigint, bigint];
    const liveTotal = Number(stats[0]);
    if (this.#currentRev - rev <= Math.max(MIN_REVISION_SCAN, 2 * liveTotal)) {
      return Number(stats[1]) + this.#number(sql.writtenSince, [rev, ...keys, rev]);
    }
    return this.#number(sql.count, [...keys, rev]);
  }

  #number(sql: string, args: SQLInputValue[]): number {
    return Number((this.#stmt(sql).get(...args) as unknown as [bigint])[0]);
  }

  /** The current version of `key`, if it is live. */
  #getLive(key: Uint8Array): KeyValue | undefined {
    const row = this.#stmt(
      `SELECT NULL, l.create_rev, l.mod_rev, l.version, l.lease, h.value
       FROM mvcc_live l JOIN mvcc_kv h ON h.id = l.id WHERE l.key = ?`,
    ).get(key) as unknown as KvRow | undefined;
    return row === undefined ? undefined : rowToKv(row, key);
  }

  /** Appends a version (or tombstone) to history and updates the live table. */
  #writeVersion(kv: KeyValue, tomb: boolean): void {
    const result = this.#stmt(
      `INSERT INTO mvcc_kv(rev, key, create_rev, version, lease, tomb, value)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(kv.modRevision, kv.key, kv.createRevision, kv.version, kv.lease, tomb ? 1 : 0, kv.value);
    if (tomb) {
      this.#stmt("DELETE FROM mvcc_live WHERE key = ?").run(kv.key);
    } else {
      this.#stmt(
        `INSERT OR REPLACE INTO mvcc_live(key, id, create_rev, mod_rev, version, lease)
         VALUES (?, ?, ?, ?, ?, ?)`,
      ).run(
        kv.key,
        result.lastInsertRowid,
        kv.createRevision,
        kv.modRevision,
        kv.version,
        kv.lease,
      );
    }
  }

  #stmt(sql: string): StatementSync {
    let stmt = this.#stmts.get(sql);
    if (stmt === undefined) {
      stmt = this.#db.prepare(sql);
      // Present at run time in Deno 2.9's node:sqlite, missing from its type declarations.
      (stmt as StatementSync & { setReturnArrays(on: boolean): void }).setReturnArrays(true);
      stmt.setReadBigInts(true);
      this.#stmts.set(sql, stmt);
    }
    return stmt;
  }

  #pragma(name: string): number {
    const row = this.#stmt(`PRAGMA ${name}`).get() as unknown as [bigint];
    return Number(row[0]);
  }

  /** Runs `fn` between committing the open transaction and beginning the next. */
  #outsideTransaction(fn: () => void): void {
    this.commit();
    this.#db.exec("COMMIT");
    try {
      fn();
    } finally {
      this.#db.exec("BEGIN");
    }
  }

  #checkOpen(): void {
    assert(!this.#closed, "mvcc store is closed");
  }

  #restoreMeta(): void {
    const rows = this.#stmt("SELECT name, value FROM mvcc_meta").all() as unknown as [
      string,
      bigint,
    ][];
    for (const [name, value] of rows) {
      const n = Number(value);
      checkRev(n, name);
      if (name === "current_rev") this.#currentRev = n;
      else if (name === "compact_rev") this.#compactRev = n;
      else if (name === "physical_compact_rev") this.#physicalRev = n;
      else if (name === "consistent_index") this.#consistentIndex = n;
    }
  }
}
