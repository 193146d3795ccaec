/**
 * The services a member serves, registered once for both the gRPC (HTTP/2) path and the
 * Connect/gRPC-web (fetch) path, plus their JSON gateway routes.
 *
 * @module
 */
import type { Interceptor, ServiceImpl } from "@connectrpc/connect";
import { Cluster, KV, Lease, Maintenance, Watch } from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { WebWatch } from "../proto/gen/etcdweb/web_watch_pb.ts";
import type { EtcdServer } from "./etcd_server.ts";
import { toConnectError } from "./errors.ts";
import { type GatewayRoute, route } from "./gateway.ts";
import type { ServiceRegistrar } from "./grpc_server.ts";
import { type ClusterBackend, clusterGatewayRoutes, clusterService } from "./cluster_service.ts";
import { kvService } from "./kv_service.ts";
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

function leaseDeps(server: EtcdServer): LeaseServiceDeps {
  return {
    propose: (init) => server.propose(init),
    lessor: server.lessor,
    header: () => server.header(),
    fillHeader: (h) => server.fillHeader(h),
    linearizableRead: () => server.linearizableRead(),
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

/** What the Watch services need, from `server`. */
export function watchDeps(server: EtcdServer): WatchServiceDeps {
  return {
    hub: server.watchHub,
    header: (revision) => server.header(revision),
    hasLeader: () => server.leader !== 0n,
    progressNotifyIntervalMs: server.config.watchProgressNotifyIntervalMs,
    // etcd cuts fragments at --max-request-bytes plus its gRPC overhead.
    maxRequestBytes: server.config.maxRequestBytes + grpcOverheadBytes,
    electionTimeoutMs: server.config.electionTimeoutMs,
  };
}

/** Registers every service of `server` on a Connect router. */
export function routes(server: EtcdServer): (router: ServiceRegistrar) => void {
  // Each call counts in the grpc_server_* metrics, as etcd's gRPC interceptors count it.
  const metrics = server.metrics;
  const kv = metrics.instrument(KV, kvService(server)) as ServiceImpl<typeof KV>;
  const lease = metrics.instrument(Lease, leaseService(leaseDeps(server))) as ServiceImpl<
    typeof Lease
  >;
  const watch = metrics.instrument(Watch, watchService(watchDeps(server))) as ServiceImpl<
    typeof Watch
  >;
  const cluster = metrics.instrument(Cluster, clusterOf(server));
  const maintenance = metrics.instrument(Maintenance, maintenanceService(server));
  const webWatch = metrics.instrument(WebWatch, webWatchService(watchDeps(server))) as ServiceImpl<
    typeof WebWatch
  >;
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
  const kv = kvService(server);
  return [
    route("/v3/kv/range", KV.method.range, kv.range),
    route("/v3/kv/put", KV.method.put, kv.put),
    route("/v3/kv/deleterange", KV.method.deleteRange, kv.deleteRange),
    route("/v3/kv/txn", KV.method.txn, kv.txn),
    route("/v3/kv/compaction", KV.method.compact, kv.compact),
    ...leaseGatewayRoutes(leaseService(leaseDeps(server))),
    ...clusterGatewayRoutes(clusterOf(server)),
    route("/v3/maintenance/status", Maintenance.method.status, maintenanceService(server).status!),
    route("/v3/maintenance/alarm", Maintenance.method.alarm, maintenanceService(server).alarm!),
    // etcd 3.4 maps both Hash and HashKV to /hash, where Hash wins; later versions serve
    // HashKV at /hashkv, which 3.4 answers with 404.
    route("/v3/maintenance/hash", Maintenance.method.hash, maintenanceService(server).hash!),
    route("/v3/maintenance/hashkv", Maintenance.method.hashKV, maintenanceService(server).hashKV!),
    route(
      "/v3/maintenance/defragment",
      Maintenance.method.defragment,
      maintenanceService(server).defragment!,
    ),
    route(
      "/v3/maintenance/transfer-leadership",
      Maintenance.method.moveLeader,
      maintenanceService(server).moveLeader!,
    ),
  ];
}
