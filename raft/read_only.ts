/**
 * Linearizable reads without writing to the log (Raft thesis §6.4, ReadIndex, the "safe"
 * variant that does not trust clocks): the leader records its commit index as the read
 * index, confirms that it is still leader with a round of heartbeats carrying the request's
 * context, and releases the read once a majority of voters answered that round.
 *
 * Heartbeats are answered in order, so an acknowledgement of request R also confirms every
 * request queued before R: releasing R releases them all.
 *
 * @module
 */
import { assert } from "../internal/assert.ts";

/** A read waiting for its leadership confirmation. */
export interface ReadIndexRequest {
  /** The leader's commit index when the read arrived. */
  index: number;
  /** The requester's opaque context, echoed back with the answer. */
  requestCtx: Uint8Array;
  /** The member that asked (the leader itself for local reads). */
  from: bigint;
  /** Members that acknowledged a heartbeat carrying this context. */
  acks: Set<bigint>;
}

/** The key of a context in the pending map. */
function ctxKey(ctx: Uint8Array): string {
  let s = "";
  for (const b of ctx) s += String.fromCharCode(b);
  return s;
}

/** Reads waiting for a heartbeat quorum, in arrival order, at most `maxPendingReads`. */
export class ReadOnly {
  readonly maxPendingReads: number;
  #pending = new Map<string, ReadIndexRequest>();
  #queue: string[] = [];

  /** Creates an empty queue bounded to `maxPendingReads` requests. */
  constructor(maxPendingReads: number) {
    assert(maxPendingReads > 0, "maxPendingReads must be positive");
    this.maxPendingReads = maxPendingReads;
  }

  /** Number of reads waiting. */
  get size(): number {
    return this.#queue.length;
  }

  /** True when no further read can be queued. */
  full(): boolean {
    return this.#queue.length >= this.maxPendingReads;
  }

  /**
   * Queues a read at `index`. Returns false when a read with the same context is already
   * queued (a retry: it will be answered once, with the first one).
   */
  add(index: number, requestCtx: Uint8Array, from: bigint): boolean {
    const key = ctxKey(requestCtx);
    if (this.#pending.has(key)) return false;
    assert(!this.full(), "read-only queue is full");
    this.#pending.set(key, { index, requestCtx, from, acks: new Set() });
    this.#queue.push(key);
    return true;
  }

  /** Records `from`'s heartbeat answer carrying `ctx`; returns who acknowledged it so far. */
  recvAck(from: bigint, ctx: Uint8Array): Set<bigint> | null {
    const req = this.#pending.get(ctxKey(ctx));
    if (!req) return null;
    req.acks.add(from);
    return req.acks;
  }

  /** Removes and returns every read up to and including the one with `ctx`, oldest first. */
  advance(ctx: Uint8Array): ReadIndexRequest[] {
    const key = ctxKey(ctx);
    const at = this.#queue.indexOf(key);
    if (at < 0) return [];
    const released = this.#queue.splice(0, at + 1).map((k) => {
      const req = this.#pending.get(k);
      assert(req, "queued read without its request");
      this.#pending.delete(k);
      return req;
    });
    return released;
  }

  /** The context of the newest queued read, to piggyback on heartbeats; null when none. */
  lastPendingCtx(): Uint8Array | null {
    if (this.#queue.length === 0) return null;
    const req = this.#pending.get(this.#queue[this.#queue.length - 1]);
    return req ? req.requestCtx : null;
  }

  /** Drops every queued read (leadership is lost: they can no longer be confirmed). */
  reset(): void {
    this.#pending.clear();
    this.#queue = [];
  }
}
