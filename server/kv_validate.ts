/**
 * The checks etcd's v3rpc layer runs on KV requests before proposing them (etcd 3.4
 * `api/v3rpc/key.go`): empty keys, ignore_* flags with a value or lease, the txn op budget,
 * empty ops, and overlapping puts and deletes in one txn branch.
 *
 * @module
 */
import { compareBytes, concatBytes } from "../internal/bytes.ts";
import type {
  DeleteRangeRequest,
  PutRequest,
  RangeRequest,
  RequestOp,
  TxnRequest,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { Errors } from "./errors.ts";

/** etcd's default `--max-txn-ops`. */
export const DEFAULT_MAX_TXN_OPS = 128;

/** Rejects a Range without a key. */
export function checkRangeRequest(req: RangeRequest): void {
  if (req.key.length === 0) throw Errors.emptyKey;
}

/** Rejects a Put without a key, or with a value/lease it was told to keep. */
export function checkPutRequest(req: PutRequest): void {
  if (req.key.length === 0) throw Errors.emptyKey;
  if (req.ignoreValue && req.value.length !== 0) throw Errors.valueProvided;
  if (req.ignoreLease && req.lease !== 0n) throw Errors.leaseProvided;
}

/** Rejects a DeleteRange without a key. */
export function checkDeleteRangeRequest(req: DeleteRangeRequest): void {
  if (req.key.length === 0) throw Errors.emptyKey;
}

/**
 * Deepest txn nesting accepted whatever `--max-txn-ops` says. With the default budget nesting
 * runs out of operations first (127 levels, as in etcd); a raised budget must not let a txn
 * nest deep enough for apply's recursion to overflow the stack, which would stop the member.
 */
export const MAX_TXN_NESTING = 256;

/**
 * Validates a Txn: the op budget, every compare and op (recursively), then that no branch
 * puts a key twice or puts a key that it also deletes.
 */
export function checkTxnRequest(req: TxnRequest, maxTxnOps: number = DEFAULT_MAX_TXN_OPS): void {
  checkTxnOps(req, maxTxnOps);
  checkIntervals(req.success);
  checkIntervals(req.failure);
}

/**
 * The budget is max(len(compare), len(success), len(failure)), not their sum; a nested txn
 * gets what its parent left over, so deep nesting runs out of budget too.
 */
function checkTxnOps(req: TxnRequest, maxTxnOps: number, depth = 0): void {
  const used = Math.max(req.compare.length, req.success.length, req.failure.length);
  if (used > maxTxnOps || depth > MAX_TXN_NESTING) throw Errors.tooManyOps;
  for (const c of req.compare) {
    if (c.key.length === 0) throw Errors.emptyKey;
  }
  for (const op of req.success) checkRequestOp(op, maxTxnOps - used, depth);
  for (const op of req.failure) checkRequestOp(op, maxTxnOps - used, depth);
}

function checkRequestOp(op: RequestOp, maxTxnOps: number, depth: number): void {
  const r = op.request;
  switch (r.case) {
    case "requestRange":
      return checkRangeRequest(r.value);
    case "requestPut":
      return checkPutRequest(r.value);
    case "requestDeleteRange":
      return checkDeleteRangeRequest(r.value);
    case "requestTxn":
      return checkTxnOps(r.value, maxTxnOps, depth + 1);
    default:
      throw Errors.keyNotFound; // an empty op, as etcd answers it
  }
}

/**
 * Half-open byte intervals [start, end) with a point query. Built once per batch of inserts:
 * sorted by start with a running maximum of ends, so a query is a binary search.
 */
class IntervalSet {
  #items: [Uint8Array, Uint8Array][] = [];
  #sorted = true;
  #maxEnd: Uint8Array[] = [];

  add(start: Uint8Array, end: Uint8Array): void {
    this.#items.push([start, end]);
    this.#sorted = false;
  }

  addAll(other: IntervalSet): void {
    for (const [start, end] of other.#items) this.add(start, end);
  }

  contains(point: Uint8Array): boolean {
    if (this.#items.length === 0) return false;
    if (!this.#sorted) this.#build();
    // The last interval starting at or before the point.
    let lo = 0;
    let hi = this.#items.length - 1;
    if (compareBytes(this.#items[0][0], point) > 0) return false;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (compareBytes(this.#items[mid][0], point) <= 0) lo = mid;
      else hi = mid - 1;
    }
    return compareBytes(this.#maxEnd[lo], point) > 0;
  }

  #build(): void {
    this.#items.sort((a, b) => compareBytes(a[0], b[0]));
    this.#maxEnd = [];
    let max = this.#items[0][1];
    for (const [, end] of this.#items) {
      if (compareBytes(end, max) > 0) max = end;
      this.#maxEnd.push(max);
    }
    this.#sorted = true;
  }
}

/** Bytes per String.fromCharCode call, well below engines' argument limits. */
const KEY_STRING_CHUNK_BYTES = 8192;

/** A one-to-one string form of a key (one code unit per byte), for set membership. */
function keyString(key: Uint8Array): string {
  let s = "";
  for (let i = 0; i < key.length; i += KEY_STRING_CHUNK_BYTES) {
    s += String.fromCharCode(...key.subarray(i, i + KEY_STRING_CHUNK_BYTES));
  }
  return s;
}

/**
 * etcd's overlap rules for one branch, with its quirks kept on purpose:
 * - a delete covers [key, range_end), or just key; a range_end of "\0" ("from key") makes an
 *   interval that ends before it starts, so from-key deletes never conflict with puts;
 * - deletes of this level and of nested txns already visited are checked against the puts of
 *   each nested txn (then/else may put the same key: they exclude each other);
 * - this level's puts are checked against every nested put and delete.
 */
function checkIntervals(ops: RequestOp[]): { puts: Set<string>; dels: IntervalSet } {
  const dels = new IntervalSet();
  for (const op of ops) {
    if (op.request.case !== "requestDeleteRange") continue;
    const { key, rangeEnd } = op.request.value;
    dels.add(key, rangeEnd.length !== 0 ? rangeEnd : concatBytes(key, new Uint8Array([0])));
  }

  const puts = new Set<string>();
  for (const op of ops) {
    if (op.request.case !== "requestTxn") continue;
    const then = checkIntervals(op.request.value.success);
    const otherwise = checkIntervals(op.request.value.failure);
    for (const k of then.puts) {
      if (puts.has(k) || dels.contains(keyBytes(k))) throw Errors.duplicateKey;
      puts.add(k);
    }
    for (const k of otherwise.puts) {
      if (puts.has(k) && !then.puts.has(k)) throw Errors.duplicateKey;
      if (dels.contains(keyBytes(k))) throw Errors.duplicateKey;
      puts.add(k);
    }
    dels.addAll(then.dels);
    dels.addAll(otherwise.dels);
  }

  for (const op of ops) {
    if (op.request.case !== "requestPut") continue;
    const key = op.request.value.key;
    const k = keyString(key);
    if (puts.has(k) || dels.contains(key)) throw Errors.duplicateKey;
    puts.add(k);
  }
  return { puts, dels };
}

/** The inverse of {@linkcode keyString}. */
function keyBytes(k: string): Uint8Array {
  const bytes = new Uint8Array(k.length);
  for (let i = 0; i < k.length; i++) bytes[i] = k.charCodeAt(i);
  return bytes;
}
