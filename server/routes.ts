/**
 * The services a member serves, registered once for both the gRPC (HTTP/2) path and the
 * Connect/gRPC-web (fetch) path, plus their JSON gateway routes.
 *
 * @module
 */
import type { DescService } from "@bufbuild/protobuf";
import type { Interceptor, ServiceImpl } from "@connectrpc/connect";
import {
  Cluster,
  KV,
  Lease,
  Maintenance,
  type ResponseHeader,
  Watch,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { WebWatch } from "../proto/gen/etcdweb/web_watch_pb.ts";
import type { EtcdServer } from "./etcd_server.ts";
import { toConnectError } from "./errors.ts";
import { type GatewayRoute, route } from "./gateway.ts";
import type { ServiceRegistrar } from "./grpc_server.ts";
import { type ClusterBackend, clusterGatewayRoutes, clusterService } from "./cluster_service.ts";
import { kvService } from "./kv_service.ts";
import { guardLearner } from "./learner_guard.ts";
import { maintenanceService } from "./maintenance_service.ts";
import { leaseGatewayRoutes, leaseService, type LeaseServiceDeps } from "./lease_service.ts";
import { grpcOverheadBytes } from "./limits.ts";
import { watchService, type WatchServiceDeps, webWatchService } from "./watch_service.ts";

/** Turns the services' EtcdErrors into wire errors with etcd's messages and codes. */
const etcdErrors: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } catch (err) {
    throw toConnectError(err);
  }
};

/** Interceptors every router uses. */
export const interceptors: Interceptor[] = [etcdErrors];

/** What the Lease service needs, from `server`. */
export function leaseDeps(server: EtcdServer): LeaseServiceDeps {
  return {
    propose: (init) => server.propose(init),
    lessor: server.lessor,
    header: () => server.header(),
    fillHeader: (h) => server.fillHeader(h),
    waitAppliedIndex: () => server.waitAppliedIndex(),
    newLeaseId: () => server.newLeaseId(),
    forward: {
      renew: (id) => server.forwardLeaseRenew(id),
      timeToLive: (req) => server.forwardLeaseTimeToLive(req),
    },
  };
}

/** What the Cluster service needs, from `server`. */
function clusterBackend(server: EtcdServer): ClusterBackend {
  return {
    memberId: server.memberId,
    clusterId: server.clusterId,
    header: () => server.header(),
    members: () => server.members,
    isRemoved: (id) => server.membership.isRemoved(id),
    proposeConfChange: (change) => server.proposeConfChange(change),
    progress: () => server.progress(),
    newMemberId: (peerUrls, now) => server.newMemberId(peerUrls, now),
    linearizableRead: () => server.linearizableRead(),
  };
}

/** The Cluster service of `server`, with its `--strict-reconfig-check`. */
function clusterOf(server: EtcdServer): ServiceImpl<typeof Cluster> {
  return clusterService(clusterBackend(server), {
    strictReconfigCheck: server.config.strictReconfigCheck,
  });
}

/**
 * Response headers for the Watch services: responses only read them, so while the term holds,
 * one header object serves every watcher sent a revision (one per revision, not one per event:
 * the headers, with their two bigints, were a fifth of what a put's fan-out to 1 000 watchers
 * allocated).
 */
export function sharedHeaders(
  server: Pick<EtcdServer, "header" | "term">,
): (revision?: bigint) => ResponseHeader {
  let last: ResponseHeader | undefined;
  let lastTerm = -1;
  return (revision) => {
    if (revision === undefined) return server.header();
    if (last === undefined || last.revision !== revision || lastTerm !== server.term) {
      lastTerm = server.term;
      last = server.header(revision);
    }
    return last;
  };
}

/** What the Watch services need, from `server`. */
export function watchDeps(server: EtcdServer): WatchServiceDeps {
  return {
    hub: server.watchHub,
    header: sharedHeaders(server),
    hasLeader: () => server.leader !== 0n,
    progressNotifyIntervalMs: server.config.watchProgressNotifyIntervalMs,
    // etcd cuts fragments at --max-request-bytes plus its gRPC overhead.
    maxRequestBytes: server.config.maxRequestBytes + grpcOverheadBytes,
    electionTimeoutMs: server.config.electionTimeoutMs,
  };
}

/** Whether `server` is a learner now (etcd then refuses most RPCs, see learner_guard.ts). */
export function learnerCheck(server: EtcdServer): () => boolean {
  return () => server.membership.get(server.memberId)?.isLearner === true;
}

/** Registers every service of `server` on a Connect router. */
export function routes(server: EtcdServer): (router: ServiceRegistrar) => void {
  // Each call counts in the grpc_server_* metrics, as etcd's gRPC interceptors count it.
  const metrics = server.metrics;
  const isLearner = learnerCheck(server);
  /** etcd's gRPC interceptors: the learner rule, then the metrics. */
  const wrap = <T extends DescService>(service: T, impl: Partial<ServiceImpl<T>>) =>
    metrics.instrument(service, guardLearner(service, impl, isLearner)) as ServiceImpl<T>;
  const kv = wrap(KV, kvService(server));
  const lease = wrap(Lease, leaseService(leaseDeps(server)));
  const watch = wrap(Watch, watchService(watchDeps(server)));
  const cluster = wrap(Cluster, clusterOf(server));
  const maintenance = wrap(Maintenance, maintenanceService(server));
  const webWatch = wrap(WebWatch, webWatchService(watchDeps(server)));
  return (router) => {
    router.service(KV, kv);
    router.service(Lease, lease);
    router.service(Watch, watch);
    router.service(Cluster, cluster as ServiceImpl<typeof Cluster>);
    router.service(Maintenance, maintenance as ServiceImpl<typeof Maintenance>);
    router.service(WebWatch, webWatch);
  };
}

/** The JSON gateway's routes over the same service implementations. */
export function gatewayRoutes(server: EtcdServer): GatewayRoute[] {
  // The gateway calls the same services, behind the same learner rule as gRPC.
  const isLearner = learnerCheck(server);
  const kv = guardLearner(KV, kvService(server), isLearner) as ServiceImpl<typeof KV>;
  const lease = guardLearner(Lease, leaseService(leaseDeps(server)), isLearner);
  const maintenance = guardLearner(Maintenance, maintenanceService(server), isLearner);
  return [
    route("/v3/kv/range", KV.method.range, kv.range),
    route("/v3/kv/put", KV.method.put, kv.put),
    route("/v3/kv/deleterange", KV.method.deleteRange, kv.deleteRange),
    route("/v3/kv/txn", KV.method.txn, kv.txn),
    route("/v3/kv/compaction", KV.method.compact, kv.compact),
    ...leaseGatewayRoutes(lease as ServiceImpl<typeof Lease>),
    ...clusterGatewayRoutes(
      guardLearner(Cluster, clusterOf(server), isLearner) as ServiceImpl<typeof Cluster>,
    ),
    route("/v3/maintenance/status", Maintenance.method.status, maintenance.status!),
    route("/v3/maintenance/alarm", Maintenance.method.alarm, maintenance.alarm!),
    // etcd 3.4 maps both Hash and HashKV to /hash, where Hash wins; later versions serve
    // HashKV at /hashkv, which 3.4 answers with 404.
    route("/v3/maintenance/hash", Maintenance.method.hash, maintenance.hash!),
    route("/v3/maintenance/hashkv", Maintenance.method.hashKV, maintenance.hashKV!),
    route("/v3/maintenance/defragment", Maintenance.method.defragment, maintenance.defragment!),
    route(
      "/v3/maintenance/transfer-leadership",
      Maintenance.method.moveLeader,
      maintenance.moveLeader!,
    ),
  ];
}
