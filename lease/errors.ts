/**
 * Expected failures of the lessor. The server maps them to etcd's wire errors
 * (`Errors.leaseNotFound`, `Errors.leaseExist`, `Errors.leaseTTLTooLarge`); the lessor itself
 * knows nothing of gRPC.
 *
 * @module
 */

/** The lease does not exist (never granted, revoked, or expired awaiting its revoke). */
export class LeaseNotFoundError extends Error {
  /** Creates the error for lease `id`. */
  constructor(readonly id: bigint) {
    super(`lease ${id} not found`);
    this.name = "LeaseNotFoundError";
  }
}

/** A grant named an ID that is already in use. */
export class LeaseExistsError extends Error {
  /** Creates the error for lease `id`. */
  constructor(readonly id: bigint) {
    super(`lease ${id} already exists`);
    this.name = "LeaseExistsError";
  }
}

/** A grant asked for a TTL above {@linkcode maxLeaseTtlSeconds}. */
export class LeaseTtlTooLargeError extends Error {
  /** Creates the error for the requested TTL. */
  constructor(readonly ttlSeconds: number) {
    super(`lease TTL ${ttlSeconds}s is too large`);
    this.name = "LeaseTtlTooLargeError";
  }
}

/**
 * A renew reached a lessor that is not the primary (this member is not the raft leader), so
 * it cannot vouch for expiries; the caller should ask the leader.
 */
export class LeaseNotPrimaryError extends Error {
  /** Creates the error. */
  constructor() {
    super("not a primary lessor");
    this.name = "LeaseNotPrimaryError";
  }
}

/** The largest TTL a lease may be granted, in seconds (etcd's `MaxLeaseTTL`). */
export const maxLeaseTtlSeconds = 9_000_000_000;
