/**
 * Alarms and the backend quota.
 *
 * Alarms are cluster state: they are raised and cleared only by applying an AlarmRequest
 * from the raft log, and they live in the backend (table `alarm`) inside the same batched
 * transaction as the consistent index, so a member that restarts, or installs a snapshot,
 * has exactly the alarms its applied log implies.
 *
 * The quota is etcd's `backendQuota`: a write whose estimated cost would take the backend
 * past `--quota-backend-bytes` is refused before it is proposed, and the NOSPACE alarm is
 * raised. Measuring the database (page_count × page_size) on every put would be wasted work,
 * so the size is measured when the backend batch commits and estimated in between by adding
 * the cost of each write admitted since.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import type { StatementSync } from "node:sqlite";
import { assert } from "../internal/assert.ts";
import type { MvccStore } from "../mvcc/mod.ts";
import {
  type AlarmMember,
  AlarmMemberSchema,
  AlarmType,
  type PutRequest,
  type RequestOp,
  type TxnRequest,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";

/** etcd's cost estimate of storing a key's metadata (`kvOverhead`). */
const kvOverheadBytes = 256;
/** etcd's cost estimate of storing a lease (`leaseOverhead`). */
const leaseOverheadBytes = 64;

/** SQLite keeps INTEGER signed; member IDs are uint64, so they are stored reinterpreted. */
function toStoredId(memberId: bigint): bigint {
  return BigInt.asIntN(64, memberId);
}

function fromStoredId(stored: bigint): bigint {
  return BigInt.asUintN(64, stored);
}

/** The active alarms of the cluster, persisted in the backend. */
export class AlarmStore {
  readonly #store: MvccStore;
  readonly #insert: StatementSync;
  readonly #delete: StatementSync;
  /** Active alarms keyed by `${type}/${memberId}`. */
  #active = new Map<string, AlarmMember>();

  /** Creates the table if needed and loads the alarms stored in it. */
  constructor(store: MvccStore) {
    this.#store = store;
    store.withBatch((db) =>
      db.exec(
        `CREATE TABLE IF NOT EXISTS alarm (member_id INTEGER NOT NULL, type INTEGER NOT NULL,
           PRIMARY KEY (member_id, type)) WITHOUT ROWID`,
      )
    );
    this.#insert = store.database.prepare(
      "INSERT OR IGNORE INTO alarm (member_id, type) VALUES (?, ?)",
    );
    this.#delete = store.database.prepare("DELETE FROM alarm WHERE member_id = ? AND type = ?");
    this.reload();
  }

  /** Re-reads the alarms from the backend (after the backend was replaced by a snapshot). */
  reload(): void {
    const stmt = this.#store.database.prepare("SELECT member_id, type FROM alarm");
    stmt.setReadBigInts(true);
    const active = new Map<string, AlarmMember>();
    for (const row of stmt.all() as { member_id: bigint; type: bigint }[]) {
      const alarm = create(AlarmMemberSchema, {
        memberID: fromStoredId(row.member_id),
        alarm: Number(row.type),
      });
      active.set(keyOf(alarm.memberID, alarm.alarm), alarm);
    }
    this.#active = active;
  }

  /** Raises `type` for `memberId`; returns the alarm (the one already active, if any). */
  activate(memberId: bigint, type: AlarmType): AlarmMember {
    const key = keyOf(memberId, type);
    const existing = this.#active.get(key);
    if (existing) return existing;
    const alarm = create(AlarmMemberSchema, { memberID: memberId, alarm: type });
    this.#store.withBatch(() => this.#insert.run(toStoredId(memberId), type));
    this.#active.set(key, alarm);
    return alarm;
  }

  /** Clears `type` for `memberId`; returns the cleared alarm, or undefined if none was set. */
  deactivate(memberId: bigint, type: AlarmType): AlarmMember | undefined {
    const key = keyOf(memberId, type);
    const existing = this.#active.get(key);
    if (!existing) return undefined;
    this.#store.withBatch(() => this.#delete.run(toStoredId(memberId), type));
    this.#active.delete(key);
    return existing;
  }

  /**
   * The active alarms of `type` (NONE: all of them), ordered by type, then member (etcd's
   * order is a Go map's, i.e. none).
   */
  list(type: AlarmType = AlarmType.NONE): AlarmMember[] {
    const out = [...this.#active.values()].filter((a) =>
      type === AlarmType.NONE || a.alarm === type
    );
    return out.sort((a, b) =>
      a.alarm - b.alarm || (a.memberID < b.memberID ? -1 : a.memberID > b.memberID ? 1 : 0)
    );
  }

  /** Whether any member has raised `type`. */
  has(type: AlarmType): boolean {
    for (const alarm of this.#active.values()) if (alarm.alarm === type) return true;
    return false;
  }

  /** Whether `memberId` has raised `type`. */
  hasFor(memberId: bigint, type: AlarmType): boolean {
    return this.#active.has(keyOf(memberId, type));
  }

  /** Number of active alarms. */
  get size(): number {
    return this.#active.size;
  }
}

/**
 * An alarm in the text form etcd prints it (gogo's compact text: `memberID:N alarm:NAME `,
 * the alarm omitted when NONE), as `etcdctl alarm list` and Status's errors show it.
 */
export function formatAlarm(alarm: AlarmMember): string {
  const name = AlarmType[alarm.alarm] ?? String(alarm.alarm);
  return `memberID:${alarm.memberID} ${alarm.alarm === AlarmType.NONE ? "" : `alarm:${name} `}`;
}

function keyOf(memberId: bigint, type: AlarmType): string {
  return `${type}/${memberId}`;
}

/** The quota charge of one put: etcd's `costPut`. */
function putCost(put: Partial<Pick<PutRequest, "key" | "value">>): number {
  return kvOverheadBytes + (put.key?.length ?? 0) + (put.value?.length ?? 0);
}

/**
 * The quota charge of a txn: the larger of its two branches' puts (only one branch runs).
 * Unlike etcd 3.4, puts inside nested txns count too: there they cost nothing, so a nested
 * put slipped past both the quota and an active NOSPACE alarm.
 */
export function txnCost(txn: Partial<Pick<TxnRequest, "success" | "failure">>): number {
  return Math.max(branchCost(txn.success), branchCost(txn.failure));
}

function branchCost(ops: Partial<RequestOp>[] | undefined): number {
  let cost = 0;
  for (const op of ops ?? []) {
    const request = op.request;
    if (request?.case === "requestPut") cost += putCost(request.value);
    else if (request?.case === "requestTxn") cost += txnCost(request.value);
  }
  return cost;
}

/** The requests the quota charges, as a proposal carries them. */
export interface QuotaChargeable {
  put?: Partial<Pick<PutRequest, "key" | "value">>;
  txn?: Partial<Pick<TxnRequest, "success" | "failure">>;
  leaseGrant?: unknown;
}

/** What `req` would cost against the quota: 0 for requests that store nothing new. */
export function quotaCost(req: QuotaChargeable): number {
  if (req.put) return putCost(req.put);
  if (req.txn) return txnCost(req.txn);
  if (req.leaseGrant) return leaseOverheadBytes;
  return 0;
}

/**
 * The backend quota. `quotaBytes` is the effective `--quota-backend-bytes` (Infinity when
 * disabled); `measure` reads the database size.
 */
export class BackendQuota {
  readonly quotaBytes: number;
  readonly #measure: () => number;
  #measuredBytes: number;
  /** Cost of the writes admitted since the last measurement. */
  #admittedBytes = 0;

  /** Creates the quota and takes a first measurement. */
  constructor(quotaBytes: number, measure: () => number) {
    assert(quotaBytes > 0, "the quota must be positive (Infinity disables it)");
    this.quotaBytes = quotaBytes;
    this.#measure = measure;
    this.#measuredBytes = measure();
  }

  /** Re-measures the backend; call when its batch commits (cheap: two pragmas). */
  refresh(): void {
    this.#measuredBytes = this.#measure();
    this.#admittedBytes = 0;
  }

  /** The estimated backend size: last measurement plus what was admitted since. */
  get estimatedBytes(): number {
    return this.#measuredBytes + this.#admittedBytes;
  }

  /**
   * Whether a request costing `cost` bytes fits (etcd: size + cost < quota); if it does, its
   * cost is added to the estimate. A request that stores nothing (cost 0) always fits.
   */
  admit(cost: number): boolean {
    if (cost === 0) return true;
    if (this.estimatedBytes + cost >= this.quotaBytes) return false;
    this.#admittedBytes += cost;
    return true;
  }
}
