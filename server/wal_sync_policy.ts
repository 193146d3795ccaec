/**
 * Where each WAL save waits for its fdatasync: on the event loop's own thread (blocking it)
 * or on the thread pool (the loop serves other requests meanwhile, and pays a round trip
 * through the pool to learn the sync is done).
 *
 * @module
 */

/** Saves of at most this many entries sync inline on a member with peers. */
const smallSaveEntries = 2;

/**
 * Decides, save by save, whether the fdatasync runs inline.
 *
 * - A lone member that only writes has nothing to overlap with its disk wait: the pool's
 *   round trip is pure latency, behind every request that arrived meanwhile (measured, 64
 *   clients: 7 400 -> 10 700 puts/s inline).
 * - A lone member that also answers from local state (reads, lease keep-alives, watch
 *   events) would hold those answers behind every sync; they go out while the pool syncs
 *   (measured, one client granting leases while it keeps one alive: 2 500 -> 4 900
 *   keep-alives/s, grants 1 450 -> 1 200/s).
 * - With peers, the wait overlaps replication and the peers' answers, so only small saves
 *   (low load) sync inline (3 members, 16 clients: 1 760 -> 2 300 puts/s with the pool).
 */
export class WalSyncPolicy {
  #localAnswers = 0;
  #localAnswersAtLastSave = 0;

  /** Records a request answered without a raft write (a read, a lease renewal, watch events). */
  noteLocalAnswer(): void {
    this.#localAnswers++;
  }

  /** Whether the next save, of `entryCount` entries, syncs on the calling thread. */
  inlineFor(hasPeers: boolean, entryCount: number): boolean {
    const answeredLocally = this.#localAnswers !== this.#localAnswersAtLastSave;
    this.#localAnswersAtLastSave = this.#localAnswers;
    if (hasPeers) return entryCount <= smallSaveEntries;
    return !answeredLocally;
  }
}
