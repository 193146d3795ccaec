/**
 * The lessor: which leases exist, which keys hang on each, and when each expires. It behaves
 * as etcd 3.4's lessor does:
 *
 * - grant, revoke, attach and detach run in apply (through raft) on every member, so they are
 *   deterministic and persist through {@linkcode LeasePersistence} in apply's transaction;
 * - only the primary (the raft leader) tracks expiries and accepts renewals; followers hold
 *   every lease "forever", and a newly promoted leader restarts each lease's full TTL plus an
 *   extension, so a leader change never shortens a lease;
 * - an expired lease is not removed here: the server asks {@linkcode Lessor.expired} for due
 *   leases and proposes their revokes through raft.
 *
 * Time comes only from the injected monotonic clock (milliseconds), so tests tick it by hand.
 *
 * @module
 */
import { assert } from "../internal/assert.ts";
import { compareBytes } from "../internal/bytes.ts";
import {
  LeaseExistsError,
  LeaseNotFoundError,
  LeaseNotPrimaryError,
  LeaseTtlTooLargeError,
  maxLeaseTtlSeconds,
} from "./errors.ts";
import { ExpiryHeap } from "./expiry_heap.ts";

/** Durable lease records, written in the same backend transaction as apply's KV writes. */
export interface LeasePersistence {
  /** Records a granted lease with its (minimum-adjusted) TTL. */
  saveLease(id: bigint, ttlSeconds: number): void;
  /** Removes a revoked lease's record. */
  deleteLease(id: bigint): void;
}

/** A granted lease as the lessor reports it. */
export interface Lease {
  readonly id: bigint;
  /** The granted TTL, after raising it to the minimum. */
  readonly ttlSeconds: number;
}

/** What `LeaseTimeToLive` reports about one lease. */
export interface LeaseTimeToLive {
  /**
   * Whole seconds left, truncated toward zero as etcd does (a lease granted 10 s reports 9 a
   * moment later; one past its expiry but not yet revoked reports 0 or less). A lessor that
   * is not the primary tracks no expiry and reports the granted TTL.
   */
  ttlSeconds: number;
  grantedTtlSeconds: number;
  /** The attached keys in byte order. */
  keys: Uint8Array[];
}

/** Construction options of a {@linkcode Lessor}. */
export interface LessorOptions {
  /** Monotonic time in milliseconds. */
  clock: () => number;
  /** Shorter TTLs are raised to this (etcd: ceil(1.5 x election timeout), 2 s by default). */
  minTtlSeconds: number;
  persistence: LeasePersistence;
  /**
   * After {@linkcode Lessor.expired} reports a lease, how long to wait before reporting it
   * again if its revoke has not been applied by then (etcd: 3 s).
   */
  expiredRetryMs?: number;
  /**
   * On promotion, at most this many leases are set to expire within any one second; the rest
   * are pushed later so a new leader does not revoke a pile-up all at once (etcd: 3/4 of its
   * 1000 revokes per second).
   */
  maxExpiriesPerSecond?: number;
}

/** Stale heap entries tolerated beyond one per lease before the heap is rebuilt. */
const heapSlackEntries = 64;

interface LeaseState {
  readonly id: bigint;
  readonly ttlSeconds: number;
  /** When the lease expires; Infinity when not primary. */
  expiryMs: number;
  /** The attached keys, by their binary string (see keyString). */
  readonly keys: Map<string, Uint8Array>;
  /** The seq of this lease's live heap entry; older entries for it are stale. */
  heapSeq: number;
  /** When that entry is due; Infinity when unscheduled. */
  checkAtMs: number;
}

/** A byte-exact map key for a key's bytes (one UTF-16 unit per byte). */
function keyString(key: Uint8Array): string {
  let out = "";
  const chunkBytes = 8192;
  for (let i = 0; i < key.length; i += chunkBytes) {
    out += String.fromCharCode(...key.subarray(i, i + chunkBytes));
  }
  return out;
}

function compareIds(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Owns every lease of one member. Not thread-aware: call it from the event loop only. */
export class Lessor {
  readonly #clock: () => number;
  readonly #minTtlSeconds: number;
  readonly #persistence: LeasePersistence;
  readonly #expiredRetryMs: number;
  readonly #maxExpiriesPerSecond: number;
  readonly #leases = new Map<bigint, LeaseState>();
  readonly #heap = new ExpiryHeap();
  #seq = 0;
  #primary = false;

  /** Creates an empty, non-primary lessor. */
  constructor(options: LessorOptions) {
    assert(options.minTtlSeconds >= 1, "minimum lease TTL must be at least 1 s");
    this.#clock = options.clock;
    this.#minTtlSeconds = options.minTtlSeconds;
    this.#persistence = options.persistence;
    this.#expiredRetryMs = options.expiredRetryMs ?? 3000;
    this.#maxExpiriesPerSecond = options.maxExpiriesPerSecond ?? 750;
    assert(this.#expiredRetryMs > 0, "expiredRetryMs must be positive");
    assert(this.#maxExpiriesPerSecond >= 1, "maxExpiriesPerSecond must be at least 1");
  }

  /** True while this lessor tracks expiries and accepts renewals (this member leads). */
  get isPrimary(): boolean {
    return this.#primary;
  }

  /**
   * Replaces all state with what the backend holds (at start-up, or after a snapshot).
   * TTLs below the minimum are raised, as etcd does. Attachments naming a lease that does
   * not exist are skipped; returns how many were.
   */
  recover(
    leases: { id: bigint; ttlSeconds: number }[],
    attachments: { key: Uint8Array; lease: bigint }[],
  ): number {
    this.#leases.clear();
    this.#heap.reset();
    const now = this.#clock();
    for (const { id, ttlSeconds } of leases) {
      assert(id !== 0n, "a stored lease has ID 0");
      const lease = this.#newState(id, Math.max(ttlSeconds, this.#minTtlSeconds));
      this.#leases.set(id, lease);
      // etcd leaves recovered leases at "forever" until the next promotion; a primary that
      // recovers (from a snapshot) would then never expire them, so restart their TTLs here.
      if (this.#primary) this.#setExpiry(lease, now + lease.ttlSeconds * 1000);
    }
    let orphans = 0;
    for (const { key, lease: id } of attachments) {
      const lease = this.#leases.get(id);
      if (lease) lease.keys.set(keyString(key), key);
      else orphans++;
    }
    return orphans;
  }

  /**
   * Grants lease `id` (applied through raft). TTLs below the minimum are raised to it.
   * Persists the lease. Throws {@linkcode LeaseTtlTooLargeError} (checked first, as etcd
   * does) or {@linkcode LeaseExistsError}.
   */
  grant(id: bigint, ttlSeconds: number): Lease {
    assert(id !== 0n, "lease ID 0 means no lease; the service picks an ID before proposing");
    assert(!Number.isNaN(ttlSeconds), "lease TTL is NaN");
    if (ttlSeconds > maxLeaseTtlSeconds) throw new LeaseTtlTooLargeError(ttlSeconds);
    if (this.#leases.has(id)) throw new LeaseExistsError(id);
    const ttl = Math.max(Math.trunc(ttlSeconds), this.#minTtlSeconds);
    const lease = this.#newState(id, ttl);
    this.#leases.set(id, lease);
    if (this.#primary) this.#setExpiry(lease, this.#clock() + ttl * 1000);
    this.#persistence.saveLease(id, ttl);
    return { id, ttlSeconds: ttl };
  }

  /**
   * Revokes lease `id` (applied through raft) and returns its keys in byte order, for apply
   * to delete in one revision. Throws {@linkcode LeaseNotFoundError}.
   */
  revoke(id: bigint): Uint8Array[] {
    const lease = this.#leases.get(id);
    if (!lease) throw new LeaseNotFoundError(id);
    this.#leases.delete(id);
    this.#persistence.deleteLease(id);
    // Its heap entries are now stale and are dropped when they surface.
    return sortedKeys(lease);
  }

  /** Attaches `key` to lease `id`. Throws {@linkcode LeaseNotFoundError}. */
  attach(id: bigint, key: Uint8Array): void {
    const lease = this.#leases.get(id);
    if (!lease) throw new LeaseNotFoundError(id);
    lease.keys.set(keyString(key), key);
  }

  /**
   * Detaches `key` from lease `id`. A lease or key that is already gone is fine: deleting the
   * keys of a revoked lease detaches them after the lease itself is removed.
   */
  detach(id: bigint, key: Uint8Array): void {
    this.#leases.get(id)?.keys.delete(keyString(key));
  }

  /** True if lease `id` exists (granted and not yet revoked, expired or not). */
  exists(id: bigint): boolean {
    return this.#leases.has(id);
  }

  /**
   * Keep-alive on the primary: restarts the lease's full TTL and returns it in seconds.
   * Throws {@linkcode LeaseNotPrimaryError} on a non-primary, and
   * {@linkcode LeaseNotFoundError} for an unknown lease or one already past its expiry (its
   * revoke is on the way; etcd waits for it and then answers "not found" too).
   */
  renew(id: bigint): number {
    if (!this.#primary) throw new LeaseNotPrimaryError();
    const lease = this.#leases.get(id);
    if (!lease) throw new LeaseNotFoundError(id);
    const now = this.#clock();
    if (lease.expiryMs <= now) throw new LeaseNotFoundError(id);
    this.#setExpiry(lease, now + lease.ttlSeconds * 1000);
    return lease.ttlSeconds;
  }

  /** The remaining and granted TTL and the keys of lease `id`, or null if it does not exist. */
  timeToLive(id: bigint): LeaseTimeToLive | null {
    const lease = this.#leases.get(id);
    if (!lease) return null;
    const remainingMs = lease.expiryMs - this.#clock();
    return {
      // `+ 0` turns the -0 of a just-expired lease into 0.
      ttlSeconds: Number.isFinite(remainingMs)
        ? Math.trunc(remainingMs / 1000) + 0
        : lease.ttlSeconds,
      grantedTtlSeconds: lease.ttlSeconds,
      keys: sortedKeys(lease),
    };
  }

  /** Every lease ID, soonest expiry first (ties by ID), as etcd lists them. */
  leases(): bigint[] {
    return [...this.#leases.values()]
      .sort((a, b) => a.expiryMs - b.expiryMs || compareIds(a.id, b.id))
      .map((l) => l.id);
  }

  /**
   * This member became leader: it now tracks expiries, and every lease restarts its full TTL
   * plus `extendMs` (etcd extends by the election timeout), so no lease expires because the
   * old leader's renewals were lost. Expiries are then spread so that at most
   * `maxExpiriesPerSecond` fall in any one second.
   */
  promote(extendMs: number): void {
    assert(extendMs >= 0, "promotion extension must not be negative");
    this.#primary = true;
    const now = this.#clock();
    const leases = [...this.#leases.values()];
    for (const lease of leases) lease.expiryMs = now + extendMs + lease.ttlSeconds * 1000;
    leases.sort((a, b) => a.expiryMs - b.expiryMs || compareIds(a.id, b.id));
    // Walk in expiry order through one-second windows, each starting at the first expiry in
    // it; a full window shifts the next one second on and pulls later leases into it.
    let windowStartMs = -Infinity;
    let inWindow = 0;
    for (const lease of leases) {
      if (lease.expiryMs >= windowStartMs + 1000) {
        windowStartMs = lease.expiryMs;
        inWindow = 0;
      } else if (inWindow >= this.#maxExpiriesPerSecond) {
        windowStartMs += 1000;
        inWindow = 0;
      }
      lease.expiryMs = Math.max(lease.expiryMs, windowStartMs);
      inWindow++;
    }
    for (const lease of leases) {
      lease.heapSeq = ++this.#seq;
      lease.checkAtMs = lease.expiryMs;
    }
    this.#rebuildHeap();
  }

  /** This member is no longer leader: leases never expire here until the next promotion. */
  demote(): void {
    this.#primary = false;
    for (const lease of this.#leases.values()) {
      lease.expiryMs = Infinity;
      lease.checkAtMs = Infinity;
    }
    this.#heap.reset();
  }

  /**
   * Primary only (otherwise empty): up to `limit` leases past their expiry, the longest
   * expired first. The server proposes a revoke for each. A reported lease is reported again
   * after `expiredRetryMs` if it still exists, in case its revoke was lost.
   */
  expired(limit: number): bigint[] {
    const out: bigint[] = [];
    if (!this.#primary) return out;
    const now = this.#clock();
    while (out.length < limit) {
      const top = this.#heap.peek();
      if (!top || top.atMs > now) break;
      this.#heap.pop();
      const lease = this.#leases.get(top.id);
      if (!lease || lease.heapSeq !== top.seq) continue; // stale
      if (lease.expiryMs <= now) {
        out.push(lease.id);
        this.#schedule(lease, now + this.#expiredRetryMs);
      } else {
        this.#schedule(lease, lease.expiryMs);
      }
    }
    return out;
  }

  #newState(id: bigint, ttlSeconds: number): LeaseState {
    return { id, ttlSeconds, expiryMs: Infinity, keys: new Map(), heapSeq: 0, checkAtMs: Infinity };
  }

  #setExpiry(lease: LeaseState, expiryMs: number): void {
    lease.expiryMs = expiryMs;
    this.#schedule(lease, expiryMs);
  }

  #schedule(lease: LeaseState, atMs: number): void {
    const seq = ++this.#seq;
    lease.heapSeq = seq;
    lease.checkAtMs = atMs;
    this.#heap.push({ id: lease.id, atMs, seq });
    if (this.#heap.size > 2 * this.#leases.size + heapSlackEntries) this.#rebuildHeap();
  }

  /** Drops stale entries: one entry per scheduled lease remains. */
  #rebuildHeap(): void {
    const entries = [];
    for (const lease of this.#leases.values()) {
      if (Number.isFinite(lease.checkAtMs)) {
        entries.push({ id: lease.id, atMs: lease.checkAtMs, seq: lease.heapSeq });
      }
    }
    this.#heap.reset(entries);
  }
}

function sortedKeys(lease: LeaseState): Uint8Array[] {
  return [...lease.keys.values()].sort(compareBytes);
}
