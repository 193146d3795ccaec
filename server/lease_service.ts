/**
 * The Lease service over one member, answering as etcd 3.4's v3rpc lease server does:
 * grants and revokes go through raft (apply runs the lessor), keep-alives and time-to-live
 * are answered by the primary lessor after the member has caught up, and an unknown lease is
 * an answer (TTL 0 for a keep-alive, TTL -1 for time-to-live), not an error.
 *
 * @module
 */
import { create, type Message } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  LeaseExistsError,
  LeaseNotFoundError,
  LeaseNotPrimaryError,
  LeaseTtlTooLargeError,
  type Lessor,
  maxLeaseTtlSeconds,
} from "../lease/mod.ts";
import {
  Lease,
  type LeaseGrantRequest,
  LeaseGrantRequestSchema,
  type LeaseGrantResponse,
  LeaseKeepAliveResponseSchema,
  LeaseLeasesResponseSchema,
  type LeaseRevokeRequest,
  LeaseRevokeRequestSchema,
  type LeaseRevokeResponse,
  LeaseStatusSchema,
  type LeaseTimeToLiveRequest,
  type LeaseTimeToLiveResponse,
  LeaseTimeToLiveResponseSchema,
  type ResponseHeader,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { Errors, toConnectError } from "./errors.ts";
import { type GatewayRoute, route } from "./gateway.ts";

/** What the Lease service needs from its member (the lead provides it from EtcdServer). */
export interface LeaseServiceDeps {
  /** Proposes through raft; resolves with apply's response, rejects with apply's EtcdError. */
  propose<T extends Message>(
    init: { leaseGrant?: LeaseGrantRequest; leaseRevoke?: LeaseRevokeRequest },
  ): Promise<T>;
  /** The member's lessor (primary while this member leads). */
  lessor: Lessor;
  /** A response header at the current revision. */
  header(): ResponseHeader;
  /** Fills the member fields of a header produced by apply (a fresh one when absent). */
  fillHeader(h: ResponseHeader | undefined): ResponseHeader;
  /** Resolves once this member has applied everything committed when it was called. */
  waitAppliedIndex(): Promise<void>;
  /** A fresh lease ID, never 0 (etcd: the request ID generator masked to positive int64). */
  newLeaseId(): bigint;
  /**
   * On a follower (whose lessor is not primary): asks the leader, which alone knows when
   * leases expire, as etcd forwards over its peer port.
   */
  forward?: {
    renew(id: bigint): Promise<number>;
    timeToLive(req: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse>;
  };
}

/**
 * Maps the lessor's expected failures to etcd's wire errors; anything else passes through.
 * Apply uses it too, so that lessor errors reach clients with etcd's exact messages.
 */
export function leaseErrorToEtcd(err: unknown): unknown {
  if (err instanceof LeaseNotFoundError) return Errors.leaseNotFound;
  if (err instanceof LeaseExistsError) return Errors.leaseExist;
  if (err instanceof LeaseTtlTooLargeError) return Errors.leaseTTLTooLarge;
  // A follower cannot vouch for expiries, and this member does not yet forward to the leader
  // as etcd does; "no leader" (Unavailable) makes clients retry rather than give up.
  if (err instanceof LeaseNotPrimaryError) return Errors.noLeader;
  return err;
}

const maxTtl = BigInt(maxLeaseTtlSeconds);

/** The Lease service implementation. */
export function leaseService(deps: LeaseServiceDeps): ServiceImpl<typeof Lease> {
  const { lessor } = deps;

  /** Renews on the primary once caught up; an unknown or expired lease renews to 0. */
  async function renew(id: bigint): Promise<number> {
    if (!lessor.isPrimary && deps.forward) return await deps.forward.renew(id);
    // etcd waits for apply to catch up first, so a revoke already committed is seen.
    await deps.waitAppliedIndex();
    try {
      return lessor.renew(id);
    } catch (err) {
      if (err instanceof LeaseNotFoundError) return 0;
      throw leaseErrorToEtcd(err);
    }
  }

  return {
    async leaseGrant(req) {
      // etcd finds this in apply; checking first saves a raft entry with the same answer.
      if (req.TTL > maxTtl) throw Errors.leaseTTLTooLarge;
      const request = create(LeaseGrantRequestSchema, {
        TTL: req.TTL,
        ID: req.ID === 0n ? deps.newLeaseId() : req.ID,
      });
      const response = await propose<LeaseGrantResponse>({ leaseGrant: request });
      response.header = deps.fillHeader(response.header);
      return response;
    },

    async leaseRevoke(req) {
      // No lease has ID 0, so this needs no trip through raft.
      if (req.ID === 0n) throw Errors.leaseNotFound;
      const request = create(LeaseRevokeRequestSchema, { ID: req.ID });
      const response = await propose<LeaseRevokeResponse>({ leaseRevoke: request });
      response.header = deps.fillHeader(response.header);
      return response;
    },

    // One request at a time: the next is read only after this response has been taken, so
    // a stream holds at most one request and one response.
    async *leaseKeepAlive(requests) {
      try {
        for await (const req of requests) {
          // The header is taken before the renewal, as etcd does, so a client never sees a
          // renewal at a revision after the one that revoked the lease.
          const header = deps.header();
          const ttl = await renew(req.ID);
          yield create(LeaseKeepAliveResponseSchema, { header, ID: req.ID, TTL: BigInt(ttl) });
        }
      } catch (err) {
        // Interceptors do not see errors raised while a stream is consumed.
        throw toConnectError(leaseErrorToEtcd(err));
      }
    },

    async leaseTimeToLive(req) {
      if (!lessor.isPrimary && deps.forward) {
        const answer = await deps.forward.timeToLive(req).catch((err) => {
          throw leaseErrorToEtcd(err);
        });
        answer.header = deps.fillHeader(answer.header);
        return answer;
      }
      await deps.waitAppliedIndex();
      if (!lessor.isPrimary) throw leaseErrorToEtcd(new LeaseNotPrimaryError());
      const info = lessor.timeToLive(req.ID);
      if (!info) {
        return create(LeaseTimeToLiveResponseSchema, {
          header: deps.header(),
          ID: req.ID,
          TTL: -1n,
        });
      }
      return create(LeaseTimeToLiveResponseSchema, {
        header: deps.header(),
        ID: req.ID,
        TTL: BigInt(info.ttlSeconds),
        grantedTTL: BigInt(info.grantedTtlSeconds),
        keys: req.keys ? info.keys : [],
      });
    },

    leaseLeases() {
      return create(LeaseLeasesResponseSchema, {
        header: deps.header(),
        leases: lessor.leases().map((ID) => create(LeaseStatusSchema, { ID })),
      });
    },
  };

  async function propose<T extends Message>(
    init: { leaseGrant?: LeaseGrantRequest; leaseRevoke?: LeaseRevokeRequest },
  ): Promise<T> {
    try {
      return await deps.propose<T>(init);
    } catch (err) {
      throw leaseErrorToEtcd(err);
    }
  }
}

/** The unary Lease methods the JSON gateway serves. */
export type LeaseGatewayMethod = "leaseGrant" | "leaseRevoke" | "leaseTimeToLive" | "leaseLeases";

/**
 * The JSON gateway paths of the Lease service (etcd 3.4's `rpc.proto` http rules). The
 * streaming `/v3/lease/keepalive` is not here: `lease_keepalive_gateway.ts` serves it.
 */
export const leaseGatewayPaths: readonly { path: string; method: LeaseGatewayMethod }[] = [
  { path: "/v3/lease/grant", method: "leaseGrant" },
  { path: "/v3/lease/revoke", method: "leaseRevoke" },
  { path: "/v3/kv/lease/revoke", method: "leaseRevoke" },
  { path: "/v3/lease/timetolive", method: "leaseTimeToLive" },
  { path: "/v3/kv/lease/timetolive", method: "leaseTimeToLive" },
  { path: "/v3/lease/leases", method: "leaseLeases" },
  { path: "/v3/kv/lease/leases", method: "leaseLeases" },
];

/** Gateway routes for {@linkcode leaseGatewayPaths} over a Lease service implementation. */
export function leaseGatewayRoutes(impl: ServiceImpl<typeof Lease>): GatewayRoute[] {
  return leaseGatewayPaths.map(({ path, method }) => {
    switch (method) {
      case "leaseGrant":
        return route(path, Lease.method.leaseGrant, impl.leaseGrant);
      case "leaseRevoke":
        return route(path, Lease.method.leaseRevoke, impl.leaseRevoke);
      case "leaseTimeToLive":
        return route(path, Lease.method.leaseTimeToLive, impl.leaseTimeToLive);
      case "leaseLeases":
        return route(path, Lease.method.leaseLeases, impl.leaseLeases);
    }
  });
}
