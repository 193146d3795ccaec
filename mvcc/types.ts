/**
 * Plain data types of the MVCC store. Revisions are safe-integer numbers; lease ids are
 * bigints because etcd's lease ids use the whole int64 range.
 *
 * @module
 */

/** One version of a key, as etcd's `mvccpb.KeyValue`. */
export interface KeyValue {
  /** The key bytes. */
  key: Uint8Array;
  /** Revision of the put that created the key's current generation (0 for a tombstone). */
  createRevision: number;
  /** Revision of the last write to the key. */
  modRevision: number;
  /** Number of puts since the key was (re)created; 0 for a tombstone. */
  version: number;
  /** The value bytes (empty for keys-only reads and tombstones). */
  value: Uint8Array;
  /** Attached lease id, 0n for none. */
  lease: bigint;
}

/**
 * One change made by a write. A delete's `kv` is etcd's tombstone shape: the key and the
 * deletion revision as `modRevision`, every other field zero or empty.
 */
export interface MvccEvent {
  /** Whether the key was written or deleted. */
  type: "put" | "delete";
  /** The key after the change (the tombstone for a delete). */
  kv: KeyValue;
  /** The key's live version just before the change, if it existed. */
  prevKv?: KeyValue;
}

/** Options of a range read. */
export interface RangeOptions {
  /** Revision to read at; 0 or absent reads at the view's revision. */
  rev?: number;
  /** Maximum number of kvs returned; 0 or absent means no limit. */
  limit?: number;
  /** Only count the matches; `kvs` is empty. */
  countOnly?: boolean;
  /** Leave `value` empty in the returned kvs (saves reading the values). */
  keysOnly?: boolean;
}

/** The answer of a range read. */
export interface RangeResult {
  /** Matching kvs in ascending key order, at most `limit` of them. */
  kvs: KeyValue[];
  /** Total number of matches, before the limit. */
  count: number;
  /** The revision of the view the read ran in (not the historical `rev` asked for). */
  rev: number;
}

/** A consistent view that serves range reads. */
export interface ReadView {
  /** The view's revision: what a read without `rev` sees. */
  readonly rev: number;
  /** The store's compact revision when the view was opened (etcd's FirstRev). */
  readonly firstRev: number;
  /**
   * Reads keys: `end` undefined or empty selects the single `key`; `end = [0]` selects every
   * key >= `key`; otherwise the half-open interval [key, end) in unsigned byte order.
   * Throws FutureRevError past the view's revision and CompactedError below the compact
   * revision.
   */
  range(key: Uint8Array, end: Uint8Array | undefined, opts?: RangeOptions): RangeResult;
}

/**
 * One write transaction: every change lands at the same main revision (`rev` of the view
 * + 1 once something is written). Reads see the transaction's own earlier writes.
 */
export interface WriteTxn extends ReadView {
  /** Writes `key` and returns its previous live version, if any. */
  put(key: Uint8Array, value: Uint8Array, lease: bigint): { prevKv?: KeyValue };
  /** Deletes the live keys in the range (same shapes as `range`) and returns them. */
  deleteRange(
    key: Uint8Array,
    end: Uint8Array | undefined,
  ): { deleted: number; prevKvs: KeyValue[] };
  /** Finishes the transaction and returns its events; the revision advances only if any. */
  end(): MvccEvent[];
}
