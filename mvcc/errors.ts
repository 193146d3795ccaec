/**
 * Expected failures of the MVCC store. The server maps them to etcd's wire errors
 * (`Errors.compacted`, `Errors.futureRev`); the store itself knows nothing of gRPC.
 *
 * @module
 */

/** A read or compaction asked for a revision that compaction has already removed. */
export class CompactedError extends Error {
  /** Creates the error for the requested revision and the store's compact revision. */
  constructor(readonly requested: number, readonly compactRev: number) {
    super(`mvcc: required revision ${requested} has been compacted (compacted at ${compactRev})`);
    this.name = "CompactedError";
  }
}

/** A read or compaction asked for a revision after the store's current revision. */
export class FutureRevError extends Error {
  /** Creates the error for the requested revision and the store's current revision. */
  constructor(readonly requested: number, readonly currentRev: number) {
    super(`mvcc: required revision ${requested} is a future revision (current ${currentRev})`);
    this.name = "FutureRevError";
  }
}
