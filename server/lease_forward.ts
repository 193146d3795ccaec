/**
 * Lease requests only the leader can answer, forwarded from followers over the peer port as
 * etcd does: a keep-alive (`POST /leases`) and a time-to-live (`POST /leases/internal`). Only
 * the leader's lessor knows when a lease expires; a follower's copy is never primary.
 *
 * Bodies are protobuf: LeaseKeepAliveRequest/Response for `/leases`, and (our own choice,
 * since only our members talk to each other here) LeaseTimeToLiveRequest/Response for
 * `/leases/internal`.
 *
 * @module
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BodyTooLargeError, readBounded } from "../internal/bounded_reader.ts";
import type { Lessor } from "../lease/mod.ts";
import { LeaseNotFoundError } from "../lease/mod.ts";
import {
  LeaseKeepAliveRequestSchema,
  type LeaseKeepAliveResponse,
  LeaseKeepAliveResponseSchema,
  type LeaseTimeToLiveRequest,
  LeaseTimeToLiveRequestSchema,
  type LeaseTimeToLiveResponse,
  LeaseTimeToLiveResponseSchema,
  type ResponseHeader,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { decodeOptions } from "./codec.ts";
import { Errors } from "./errors.ts";

/** Bound on a forwarded lease request or answer: a few IDs and a header. */
const maxLeaseMessageBytes = 64 * 1024;
const protobufType = "application/protobuf";

/** The leader side: what the handler needs from the member. */
export interface LeaseForwardTarget {
  lessor: Lessor;
  header(): ResponseHeader;
  waitAppliedIndex(): Promise<void>;
}

/** Serves `/leases` and `/leases/internal` on the peer port. */
export async function serveLeaseForward(
  req: Request,
  target: LeaseForwardTarget,
): Promise<Response> {
  if (req.method !== "POST") return new Response("Method Not Allowed\n", { status: 405 });
  let body: Uint8Array;
  try {
    body = await readBounded(req.body, maxLeaseMessageBytes);
  } catch (err) {
    const tooLarge = err instanceof BodyTooLargeError;
    return new Response(tooLarge ? "body too large\n" : "error reading body\n", {
      status: tooLarge ? 413 : 400,
    });
  }
  // Not the leader (any more): the follower reports "no leader" and its client retries.
  if (!target.lessor.isPrimary) {
    return new Response(`${Errors.notLeader.message}\n`, { status: 503 });
  }
  try {
    const path = new URL(req.url).pathname;
    if (path === "/leases") {
      const { ID } = fromBinary(LeaseKeepAliveRequestSchema, body, decodeOptions);
      const header = target.header();
      await target.waitAppliedIndex();
      let ttl = 0;
      try {
        ttl = target.lessor.renew(ID);
      } catch (err) {
        if (!(err instanceof LeaseNotFoundError)) throw err;
      }
      const answer = create(LeaseKeepAliveResponseSchema, { header, ID, TTL: BigInt(ttl) });
      return protobuf(toBinary(LeaseKeepAliveResponseSchema, answer));
    }
    const request = fromBinary(LeaseTimeToLiveRequestSchema, body, decodeOptions);
    await target.waitAppliedIndex();
    const info = target.lessor.timeToLive(request.ID);
    const answer = create(LeaseTimeToLiveResponseSchema, {
      header: target.header(),
      ID: request.ID,
      TTL: info ? BigInt(info.ttlSeconds) : -1n,
      grantedTTL: info ? BigInt(info.grantedTtlSeconds) : 0n,
      keys: info && request.keys ? info.keys : [],
    });
    return protobuf(toBinary(LeaseTimeToLiveResponseSchema, answer));
  } catch (err) {
    return new Response(`${err instanceof Error ? err.message : String(err)}\n`, { status: 500 });
  }
}

function protobuf(bytes: Uint8Array): Response {
  return new Response(bytes as Uint8Array<ArrayBuffer>, {
    headers: { "Content-Type": protobufType },
  });
}

/** The follower side: asks the leader at `leaderPeerUrl`. */
export class LeaseForwarder {
  readonly #timeoutMs: number;

  /** Requests give up after `timeoutMs` (etcd's request timeout). */
  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  /** Renews lease `id` on the leader; the TTL it now has, 0 when unknown or expired. */
  async renew(leaderPeerUrl: string, id: bigint): Promise<LeaseKeepAliveResponse> {
    const body = toBinary(
      LeaseKeepAliveRequestSchema,
      create(LeaseKeepAliveRequestSchema, { ID: id }),
    );
    const bytes = await this.#post(new URL("/leases", leaderPeerUrl), body);
    return fromBinary(LeaseKeepAliveResponseSchema, bytes, decodeOptions);
  }

  /** Asks the leader for a lease's remaining time. */
  async timeToLive(
    leaderPeerUrl: string,
    request: LeaseTimeToLiveRequest,
  ): Promise<LeaseTimeToLiveResponse> {
    const body = toBinary(LeaseTimeToLiveRequestSchema, request);
    const bytes = await this.#post(new URL("/leases/internal", leaderPeerUrl), body);
    return fromBinary(LeaseTimeToLiveResponseSchema, bytes, decodeOptions);
  }

  async #post(url: URL, body: Uint8Array): Promise<Uint8Array> {
    let res: Response;
    try {
      res = await fetch(url, {
        method: "POST",
        body: body as Uint8Array<ArrayBuffer>,
        headers: { "Content-Type": protobufType },
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      if (err instanceof DOMException && err.name === "TimeoutError") throw Errors.timeout;
      throw Errors.noLeader;
    }
    const bytes = await readBounded(res.body, maxLeaseMessageBytes).catch(() => null);
    if (!res.ok || bytes === null) throw Errors.noLeader;
    return bytes;
  }
}
