/**
 * Leases: the lessor (grant, revoke, renew, attach/detach, expiry queue) on an injected clock,
 * and its expected errors. It knows nothing of mvcc or gRPC: `server/` wires both.
 *
 * @module
 */
export {
  LeaseExistsError,
  LeaseNotFoundError,
  LeaseNotPrimaryError,
  LeaseTtlTooLargeError,
  maxLeaseTtlSeconds,
} from "./errors.ts";
export {
  type Lease,
  type LeasePersistence,
  type LeaseTimeToLive,
  Lessor,
  type LessorOptions,
} from "./lessor.ts";
