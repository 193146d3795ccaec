/**
 * Where each WAL save waits for its fdatasync: on the event loop's own thread (blocking it)
 * or on the thread pool (the loop serves other requests meanwhile, and pays a round trip
 * through the pool to learn the sync is done).
 *
 * @module
 */

/**
 * Decides, save by save, whether the fdatasync runs inline.
 *
 * - A lone member that only writes has nothing to overlap with its disk wait: the pool's
 *   round trip is pure latency, behind every request that arrived meanwhile (measured, 64
 *   clients: 7 400 -> 10 700 puts/s inline).
 * - A lone member that also answers requests from local state (reads, lease keep-alives)
 *   would hold those answers behind every sync; they go out while the pool syncs
 *   (measured, one client granting leases while it keeps one alive: 2 500 -> 4 900
 *   keep-alives/s, grants 1 450 -> 1 200/s).
 * - Watch events are output, not requests: a sync holds them back only while some wait to be
 *   sent. Once a put's events went out, the next put's sync runs inline (measured, 1 000
 *   watchers, two quiet rounds against the pool for every sync: put-to-event p50 3.1 -> 2.7 ms,
 *   p99 11.3-14.4 -> 5.9-10.0 ms on one key, 7.6-13.5 -> 6.5-9.8 ms on a prefix).
 * - A member with peers never blocks on its disk: meanwhile the leader's appends, the
 *   followers' acknowledgements and forwarded proposals arrive, and clients keep writing.
 *   Inline syncs of small saves held a follower's event loop for most of each write
 *   (measured, 16 clients writing through a follower: 750 -> 1 220 puts/s, p50 20 -> 12 ms;
 *   through the leader no slower at 1 or 16 clients).
 */
export class WalSyncPolicy {
  #answeredSinceSave = false;

  /** Records a request answered without a raft write (a read, a lease renewal). */
  noteLocalAnswer(): void {
    this.#answeredSinceSave = true;
  }

  /**
   * Whether the next save syncs on the calling thread; `outputWaiting` says whether answers
   * (watch events) wait for the event loop now.
   */
  inlineFor(hasPeers: boolean, outputWaiting = false): boolean {
    const answeredLocally = this.#answeredSinceSave;
    this.#answeredSinceSave = false;
    return !hasPeers && !answeredLocally && !outputWaiting;
  }
}
