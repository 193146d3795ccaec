/**
 * The one mapping from expected failures to etcd's wire errors. Clients (clientv3, etcdctl,
 * the npm etcd3 client) match on these exact message strings, so each appears only here.
 *
 * @module
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** An expected failure with etcd's exact message and gRPC status code. */
export class EtcdError extends Error {
  /** Creates an error carrying etcd's message and gRPC code. */
  constructor(message: string, readonly code: Code) {
    super(message);
    this.name = "EtcdError";
  }
}

function def(message: string, code: Code): EtcdError {
  return new EtcdError(message, code);
}

/**
 * etcd 3.4's error catalog (`rpctypes/error.go`). Throw these values directly: they are
 * immutable descriptions, and {@linkcode toConnectError} turns them into wire errors.
 */
export const Errors = {
  emptyKey: def("etcdserver: key is not provided", Code.InvalidArgument),
  keyNotFound: def("etcdserver: key not found", Code.InvalidArgument),
  valueProvided: def("etcdserver: value is provided", Code.InvalidArgument),
  leaseProvided: def("etcdserver: lease is provided", Code.InvalidArgument),
  tooManyOps: def("etcdserver: too many operations in txn request", Code.InvalidArgument),
  duplicateKey: def("etcdserver: duplicate key given in txn request", Code.InvalidArgument),
  requestTooLarge: def("etcdserver: request is too large", Code.InvalidArgument),
  compacted: def("etcdserver: mvcc: required revision has been compacted", Code.OutOfRange),
  futureRev: def("etcdserver: mvcc: required revision is a future revision", Code.OutOfRange),
  noSpace: def("etcdserver: mvcc: database space exceeded", Code.ResourceExhausted),
  leaseNotFound: def("etcdserver: requested lease not found", Code.NotFound),
  leaseExist: def("etcdserver: lease already exists", Code.FailedPrecondition),
  leaseTTLTooLarge: def("etcdserver: too large lease TTL", Code.OutOfRange),
  memberExist: def("etcdserver: member ID already exist", Code.FailedPrecondition),
  peerURLExist: def("etcdserver: Peer URLs already exists", Code.FailedPrecondition),
  memberNotEnoughStarted: def(
    "etcdserver: re-configuration failed due to not enough started members",
    // v3rpc maps it to rpctypes' client-side error value, which gRPC cannot read a code
    // from, so it reaches clients as Unknown (measured live on 3.4.23).
    Code.Unknown,
  ),
  memberBadURLs: def("etcdserver: given member URLs are invalid", Code.InvalidArgument),
  memberNotFound: def("etcdserver: member not found", Code.NotFound),
  memberNotLearner: def("etcdserver: can only promote a learner member", Code.FailedPrecondition),
  learnerNotReady: def(
    "etcdserver: can only promote a learner member which is in sync with leader",
    Code.FailedPrecondition,
  ),
  tooManyLearners: def("etcdserver: too many learner members in cluster", Code.FailedPrecondition),
  noLeader: def("etcdserver: no leader", Code.Unavailable),
  notLeader: def("etcdserver: not leader", Code.FailedPrecondition),
  leaderChanged: def("etcdserver: leader changed", Code.Unavailable),
  notCapable: def("etcdserver: not capable", Code.Unavailable),
  stopped: def("etcdserver: server stopped", Code.Unavailable),
  timeout: def("etcdserver: request timed out", Code.Unavailable),
  timeoutDueToLeaderFail: def(
    "etcdserver: request timed out, possibly due to previous leader failure",
    Code.Unavailable,
  ),
  unhealthy: def("etcdserver: unhealthy cluster", Code.Unavailable),
  timeoutWaitAppliedIndex: def(
    "etcdserver: request timed out, waiting for the applied index took too long",
    Code.Unavailable,
  ),
  timeoutLeaderTransfer: def(
    "etcdserver: request timed out, leader transfer took too long",
    // etcd's v3rpc has no mapping for it, so gRPC reports it as Unknown.
    Code.Unknown,
  ),
  corrupt: def("etcdserver: corrupt cluster", Code.DataLoss),
  badLeaderTransferee: def("etcdserver: bad leader transferee", Code.FailedPrecondition),
  tooManyRequests: def("etcdserver: too many requests", Code.ResourceExhausted),
  learnerNotSupported: def("etcdserver: rpc not supported for learner", Code.Unavailable),
} as const;

/** HTTP statuses the 3.4 grpc-gateway uses for each gRPC code (measured live where noted). */
const httpStatusByCode: Record<number, number> = {
  [Code.Canceled]: 408,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 412,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

/** The gateway's HTTP status for a gRPC code. */
export function httpStatusFor(code: Code): number {
  return httpStatusByCode[code] ?? 500;
}

/**
 * Converts any thrown value to a ConnectError. EtcdErrors keep their message verbatim
 * (`rawMessage` so Connect does not prefix the code name); anything else is an internal
 * error whose message is kept for the operator.
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof EtcdError) return new ConnectError(err.message, err.code);
  const message = err instanceof Error ? err.message : String(err);
  return new ConnectError(message, Code.Internal);
}
