/**
 * Request-level KV semantics over the MVCC store, as etcd 3.4's applier has them: Range
 * (sorting, filters, limit, `more`), Put (prev_kv, ignore_value, ignore_lease, lease checks),
 * DeleteRange, Txn (compares, branches, nested txns, one revision for all of it) and
 * Compaction.
 *
 * Responses carry only `header.revision`; the caller fills the rest of the top-level header.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import {
  type CompactionRequest,
  type CompactionResponse,
  CompactionResponseSchema,
  type Compare,
  Compare_CompareResult,
  Compare_CompareTarget,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  DeleteRangeResponseSchema,
  type PutRequest,
  type PutResponse,
  PutResponseSchema,
  type RangeRequest,
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
  type RangeResponse,
  RangeResponseSchema,
  type RequestOp,
  type ResponseHeader,
  ResponseHeaderSchema,
  type ResponseOp,
  ResponseOpSchema,
  type TxnRequest,
  type TxnResponse,
  TxnResponseSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import {
  type Event as PbEvent,
  Event_EventType,
  type KeyValue as PbKeyValue,
} from "../proto/gen/etcd/mvccpb/kv_pb.ts";
import { assert } from "../internal/assert.ts";
import { compareBytes } from "../internal/bytes.ts";
import {
  CompactedError,
  FutureRevError,
  type KeyValue,
  type MvccEvent,
  type MvccStore,
  type ReadView,
  type WriteTxn,
} from "../mvcc/mod.ts";
import { Errors } from "./errors.ts";

/** What the KV appliers need besides the store. */
export interface KvApplyDeps {
  /** The MVCC store written by the appliers. */
  store: MvccStore;
  /** Whether the lessor knows lease `id` (a put with an unknown lease fails). */
  leaseExists(id: bigint): boolean;
}

/** A write's response together with the events it produced, for watchers and leases. */
export interface KvWriteResult<R> {
  /** The response to send (header.revision only). */
  response: R;
  /** The changes made, in order; empty when nothing was written. */
  events: MvccEvent[];
}

const EMPTY = new Uint8Array(0);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Converts the store's expected failures to etcd's errors; anything else passes through. */
export function toEtcdError(err: unknown): unknown {
  if (err instanceof CompactedError) return Errors.compacted;
  if (err instanceof FutureRevError) return Errors.futureRev;
  return err;
}

function mapErrors<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw toEtcdError(err);
  }
}

/** Converts an int64 revision to a number; values past the safe range saturate. */
function clampToSafe(value: bigint): number {
  if (value > MAX_SAFE) return Number.MAX_SAFE_INTEGER;
  if (value < -MAX_SAFE) return -Number.MAX_SAFE_INTEGER;
  return Number(value);
}

/** etcd's range end: empty selects one key; the store reads `[0]` as "to the end". */
function rangeEnd(end: Uint8Array): Uint8Array | undefined {
  return end.length === 0 ? undefined : end;
}

function header(revision: number): ResponseHeader {
  return create(ResponseHeaderSchema, { revision: BigInt(revision) });
}

/** Converts a store kv to its protobuf form. */
export function toPbKeyValue(kv: KeyValue, keysOnly = false): PbKeyValue {
  return {
    $typeName: "mvccpb.KeyValue",
    key: kv.key,
    createRevision: BigInt(kv.createRevision),
    modRevision: BigInt(kv.modRevision),
    version: BigInt(kv.version),
    value: keysOnly ? EMPTY : kv.value,
    lease: kv.lease,
  };
}

/** Converts a store event to its protobuf form (`prevKv` only when asked for). */
export function toPbEvent(event: MvccEvent, withPrevKv = false): PbEvent {
  return {
    $typeName: "mvccpb.Event",
    type: event.type === "put" ? Event_EventType.PUT : Event_EventType.DELETE,
    kv: toPbKeyValue(event.kv),
    prevKv: withPrevKv && event.prevKv !== undefined ? toPbKeyValue(event.prevKv) : undefined,
  };
}

// --- Range ---

/** Serves a Range from `view`; the header revision is the view's, even for past revisions. */
export function applyRange(view: ReadView, req: RangeRequest): RangeResponse {
  return mapErrors(() => rangeIn(view, req));
}

function sortKey(
  target: RangeRequest_SortTarget,
): ((a: KeyValue, b: KeyValue) => number) | undefined {
  switch (target) {
    case RangeRequest_SortTarget.KEY:
      return (a, b) => compareBytes(a.key, b.key);
    case RangeRequest_SortTarget.VERSION:
      return (a, b) => a.version - b.version;
    case RangeRequest_SortTarget.CREATE:
      return (a, b) => a.createRevision - b.createRevision;
    case RangeRequest_SortTarget.MOD:
      return (a, b) => a.modRevision - b.modRevision;
    case RangeRequest_SortTarget.VALUE:
      return (a, b) => compareBytes(a.value, b.value);
    default:
      return undefined; // an unknown target leaves the order alone, as etcd's switch does
  }
}

function rangeIn(view: ReadView, req: RangeRequest): RangeResponse {
  const filtered = req.minModRevision !== 0n || req.maxModRevision !== 0n ||
    req.minCreateRevision !== 0n || req.maxCreateRevision !== 0n;
  let order = req.sortOrder;
  // The store returns keys in ascending order, so etcd sorts ascending by default only when
  // the target is not the key.
  if (order === RangeRequest_SortOrder.NONE && req.sortTarget !== RangeRequest_SortTarget.KEY) {
    order = RangeRequest_SortOrder.ASCEND;
  }
  // One below the safe maximum, so that the store can be asked for limit + 1.
  const limit = req.limit > 0n ? Math.min(clampToSafe(req.limit), Number.MAX_SAFE_INTEGER - 1) : 0;
  const needsSort = order !== RangeRequest_SortOrder.NONE &&
    !(order === RangeRequest_SortOrder.ASCEND && req.sortTarget === RangeRequest_SortTarget.KEY);
  // etcd reads everything when the request names a sort order or a filter, and otherwise
  // reads limit + 1 keys (to learn `more`). A target other than the key without an order is
  // then sorted within those limit + 1 keys only: an etcd quirk kept for compatibility. An
  // ascending key sort is the store's own order, so it can take the limit too.
  const storeLimit =
    limit > 0 && !filtered && (req.sortOrder === RangeRequest_SortOrder.NONE || !needsSort)
      ? limit + 1
      : 0;
  const sortsByValue = order !== RangeRequest_SortOrder.NONE &&
    req.sortTarget === RangeRequest_SortTarget.VALUE;

  const result = view.range(req.key, rangeEnd(req.rangeEnd), {
    rev: clampToSafe(req.revision),
    limit: storeLimit,
    countOnly: req.countOnly,
    keysOnly: req.keysOnly && !sortsByValue,
  });

  let kvs = result.kvs;
  if (filtered) {
    const maxMod = req.maxModRevision;
    const minMod = req.minModRevision;
    const maxCreate = req.maxCreateRevision;
    const minCreate = req.minCreateRevision;
    kvs = kvs.filter((kv) => {
      const mod = BigInt(kv.modRevision);
      const created = BigInt(kv.createRevision);
      return !(maxMod !== 0n && mod > maxMod) && !(minMod !== 0n && mod < minMod) &&
        !(maxCreate !== 0n && created > maxCreate) && !(minCreate !== 0n && created < minCreate);
    });
  }
  if (needsSort) {
    const compare = sortKey(req.sortTarget);
    // Array sort is stable: ties keep ascending key order, as etcd's sort does for the
    // small result sets where Go's sort is stable.
    if (compare !== undefined && order === RangeRequest_SortOrder.ASCEND) {
      kvs = kvs.toSorted(compare);
    } else if (compare !== undefined && order === RangeRequest_SortOrder.DESCEND) {
      kvs = kvs.toSorted((a, b) => compare(b, a));
    }
  }
  let more = false;
  if (limit > 0 && kvs.length > limit) {
    kvs = kvs.slice(0, limit);
    more = true;
  }
  return create(RangeResponseSchema, {
    header: header(result.rev),
    kvs: kvs.map((kv) => toPbKeyValue(kv, req.keysOnly)),
    more,
    count: BigInt(result.count),
  });
}

// --- Put and DeleteRange ---

/** Applies a Put in its own revision. */
export function applyPut(deps: KvApplyDeps, req: PutRequest): KvWriteResult<PutResponse> {
  if (req.lease !== 0n && !deps.leaseExists(req.lease)) throw Errors.leaseNotFound;
  return inWriteTxn(deps.store, (txn) => putIn(txn, req));
}

function putIn(txn: WriteTxn, req: PutRequest): PutResponse {
  let value = req.value;
  let lease = req.lease;
  if (req.ignoreValue || req.ignoreLease) {
    const current = txn.range(req.key, undefined).kvs[0];
    if (current === undefined) throw Errors.keyNotFound;
    if (req.ignoreValue) value = current.value;
    if (req.ignoreLease) lease = current.lease;
  }
  const { prevKv } = txn.put(req.key, value, lease);
  return create(PutResponseSchema, {
    header: header(txn.rev),
    prevKv: req.prevKv && prevKv !== undefined ? toPbKeyValue(prevKv) : undefined,
  });
}

/** Applies a DeleteRange; the revision advances only if a key was deleted. */
export function applyDeleteRange(
  deps: KvApplyDeps,
  req: DeleteRangeRequest,
): KvWriteResult<DeleteRangeResponse> {
  return inWriteTxn(deps.store, (txn) => deleteRangeIn(txn, req));
}

function deleteRangeIn(txn: WriteTxn, req: DeleteRangeRequest): DeleteRangeResponse {
  const { deleted, prevKvs } = txn.deleteRange(req.key, rangeEnd(req.rangeEnd));
  return create(DeleteRangeResponseSchema, {
    header: header(txn.rev),
    deleted: BigInt(deleted),
    prevKvs: req.prevKv ? prevKvs.map((kv) => toPbKeyValue(kv)) : [],
  });
}

/** Runs `fn` in one write txn, always ending it, and returns its response and events. */
function inWriteTxn<R>(store: MvccStore, fn: (txn: WriteTxn) => R): KvWriteResult<R> {
  const txn = store.write();
  let response: R;
  try {
    response = mapErrors(() => fn(txn));
  } catch (err) {
    // Every expected failure is detected before the first write.
    const events = txn.end();
    assert(events.length === 0, "a KV request failed after writing");
    throw err;
  }
  return { response, events: txn.end() };
}

// --- Txn ---

/**
 * The branch a txn takes, decided before anything is written: etcd evaluates the compares
 * of the txn and of every nested txn on the chosen path against the state before the txn.
 */
interface TxnPlan {
  succeeded: boolean;
  ops: RequestOp[];
  /** Plans of the nested txns among `ops`, by position. */
  nested: Map<number, TxnPlan>;
}

function plan(view: ReadView, req: TxnRequest): TxnPlan {
  const succeeded = req.compare.every((c) => applyCompare(view, c));
  const ops = succeeded ? req.success : req.failure;
  const nested = new Map<number, TxnPlan>();
  ops.forEach((op, i) => {
    if (op.request.case === "requestTxn") nested.set(i, plan(view, op.request.value));
  });
  return { succeeded, ops, nested };
}

/** Visits the ops on the chosen path in execution order (nested txns depth first). */
function* opsInOrder(p: TxnPlan): Generator<RequestOp> {
  for (let i = 0; i < p.ops.length; i++) {
    const nested = p.nested.get(i);
    if (nested !== undefined) yield* opsInOrder(nested);
    else yield p.ops[i];
  }
}

function applyCompare(view: ReadView, c: Compare): boolean {
  let kvs: KeyValue[];
  try {
    kvs = view.range(c.key, rangeEnd(c.rangeEnd), {
      keysOnly: c.target !== Compare_CompareTarget.VALUE,
    }).kvs;
  } catch {
    return false;
  }
  if (kvs.length === 0) {
    // gRPC cannot tell a missing value from an empty one, so a value compare on a missing
    // key always fails; the other targets compare as zero.
    return c.target !== Compare_CompareTarget.VALUE && compareKv(c, undefined);
  }
  return kvs.every((kv) => compareKv(c, kv));
}

function sign(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareKv(c: Compare, kv: KeyValue | undefined): boolean {
  const u = c.targetUnion;
  let result: number;
  switch (c.target) {
    case Compare_CompareTarget.VALUE:
      result = compareBytes(kv?.value ?? EMPTY, u.case === "value" ? u.value : EMPTY);
      break;
    case Compare_CompareTarget.CREATE:
      result = sign(BigInt(kv?.createRevision ?? 0), u.case === "createRevision" ? u.value : 0n);
      break;
    case Compare_CompareTarget.MOD:
      result = sign(BigInt(kv?.modRevision ?? 0), u.case === "modRevision" ? u.value : 0n);
      break;
    case Compare_CompareTarget.VERSION:
      result = sign(BigInt(kv?.version ?? 0), u.case === "version" ? u.value : 0n);
      break;
    case Compare_CompareTarget.LEASE:
      result = sign(kv?.lease ?? 0n, u.case === "lease" ? u.value : 0n);
      break;
    default:
      result = 0;
  }
  switch (c.result) {
    case Compare_CompareResult.EQUAL:
      return result === 0;
    case Compare_CompareResult.NOT_EQUAL:
      return result !== 0;
    case Compare_CompareResult.GREATER:
      return result > 0;
    case Compare_CompareResult.LESS:
      return result < 0;
    default:
      return true;
  }
}

/** Whether `key` falls in a delete's range (the store's range shapes). */
function inRange(key: Uint8Array, start: Uint8Array, end: Uint8Array | undefined): boolean {
  if (end === undefined) return compareBytes(key, start) === 0;
  if (end.length === 1 && end[0] === 0) return compareBytes(key, start) >= 0;
  return compareBytes(key, start) >= 0 && compareBytes(key, end) < 0;
}

/**
 * etcd's checks before a write txn, against the state before it: puts that keep the value
 * or lease need the key, and leases must exist. All puts are checked, then all ranges.
 */
function checkWrites(deps: KvApplyDeps, view: ReadView, p: TxnPlan): void {
  const deletes: [Uint8Array, Uint8Array | undefined][] = [];
  for (const op of opsInOrder(p)) {
    if (op.request.case === "requestDeleteRange") {
      const del = op.request.value;
      deletes.push([del.key, rangeEnd(del.rangeEnd)]);
    }
    if (op.request.case !== "requestPut") continue;
    const put = op.request.value;
    if (put.ignoreValue || put.ignoreLease) {
      if (view.range(put.key, undefined, { keysOnly: true }).kvs.length === 0) {
        throw Errors.keyNotFound;
      }
      // The duplicate-key check lets a from-key delete ("\0" end) and a put of a key in its
      // range share a txn. etcd panics when such a put then finds its key gone; refusing
      // the txn up front keeps it atomic instead.
      if (deletes.some(([start, end]) => inRange(put.key, start, end))) {
        throw Errors.keyNotFound;
      }
    }
    if (put.lease !== 0n && !deps.leaseExists(put.lease)) throw Errors.leaseNotFound;
  }
}

function checkRanges(view: ReadView, p: TxnPlan): void {
  for (const op of opsInOrder(p)) {
    if (op.request.case !== "requestRange") continue;
    const rev = op.request.value.revision;
    if (rev === 0n) continue;
    if (rev > BigInt(view.rev)) throw Errors.futureRev;
    if (rev < BigInt(view.firstRev)) throw Errors.compacted;
  }
}

/** Executes the chosen ops in `txn` (or, for a read-only txn, the view) into a response. */
function execute(
  target: ReadView,
  write: WriteTxn | undefined,
  p: TxnPlan,
  nestedHeader: boolean,
): TxnResponse {
  const responses: ResponseOp[] = p.ops.map((op, i): ResponseOp => {
    const r = op.request;
    switch (r.case) {
      case "requestRange":
        return create(ResponseOpSchema, {
          response: { case: "responseRange", value: rangeIn(target, r.value) },
        });
      case "requestPut":
        assert(write !== undefined, "put in a read-only txn");
        return create(ResponseOpSchema, {
          response: { case: "responsePut", value: putIn(write, r.value) },
        });
      case "requestDeleteRange":
        assert(write !== undefined, "delete in a read-only txn");
        return create(ResponseOpSchema, {
          response: { case: "responseDeleteRange", value: deleteRangeIn(write, r.value) },
        });
      case "requestTxn":
        return create(ResponseOpSchema, {
          response: { case: "responseTxn", value: execute(target, write, p.nested.get(i)!, true) },
        });
      default:
        return create(ResponseOpSchema);
    }
  });
  // Nested txn responses carry an empty header in etcd (the gateway shows `"header":{}`);
  // the caller sets the top-level revision once everything ran.
  return create(TxnResponseSchema, {
    header: nestedHeader ? create(ResponseHeaderSchema) : undefined,
    succeeded: p.succeeded,
    responses,
  });
}

/** True when both branches hold only Range ops (nested txns count as writes, as in etcd). */
export function isTxnReadOnly(req: TxnRequest): boolean {
  return req.success.every((op) => op.request.case === "requestRange") &&
    req.failure.every((op) => op.request.case === "requestRange");
}

/** True when the txn is read-only and every Range in it is serializable. */
export function isTxnSerializable(req: TxnRequest): boolean {
  const serializable = (op: RequestOp) =>
    op.request.case === "requestRange" && op.request.value.serializable;
  return req.success.every(serializable) && req.failure.every(serializable);
}

/**
 * Applies a Txn in one write txn: compares and checks first (a failing txn writes nothing),
 * then the chosen branch. The revision advances only if the branch wrote something.
 */
export function applyTxn(deps: KvApplyDeps, req: TxnRequest): KvWriteResult<TxnResponse> {
  const view = deps.store.read();
  const readOnly = isTxnReadOnly(req);
  const p = mapErrors(() => {
    const chosen = plan(view, req);
    if (!readOnly) checkWrites(deps, view, chosen);
    checkRanges(view, chosen);
    return chosen;
  });
  if (readOnly) {
    const response = mapErrors(() => execute(view, undefined, p, false));
    return { response: finishTxn(response, view.rev), events: [] };
  }
  let rev = 0;
  const { response, events } = inWriteTxn(deps.store, (txn) => {
    const resp = execute(txn, txn, p, false);
    rev = txn.rev;
    return resp;
  });
  return { response: finishTxn(response, rev), events };
}

/** Serves a txn with only Range ops from `view`, without raft. */
export function applyTxnReadOnly(view: ReadView, req: TxnRequest): TxnResponse {
  assert(isTxnReadOnly(req), "applyTxnReadOnly needs a read-only txn");
  return mapErrors(() => {
    const p = plan(view, req);
    checkRanges(view, p);
    return finishTxn(execute(view, undefined, p, false), view.rev);
  });
}

function finishTxn(response: TxnResponse, revision: number): TxnResponse {
  response.header = header(revision);
  return response;
}

// --- Compaction ---

/** Compacts the store; the header carries the current revision. */
export function applyCompaction(store: MvccStore, req: CompactionRequest): CompactionResponse {
  mapErrors(() => store.compact(clampToSafe(req.revision)));
  return create(CompactionResponseSchema, { header: header(store.currentRev) });
}
