import { create } from "@bufbuild/protobuf";
import { ConnectError, createHandlerContext } from "@connectrpc/connect";
import { Hono } from "hono";
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { utf8 } from "../internal/bytes.ts";
import { LeaseExistsError, Lessor } from "../lease/mod.ts";
import {
  Lease,
  type LeaseGrantRequest,
  type LeaseGrantResponse,
  LeaseGrantResponseSchema,
  type LeaseKeepAliveRequest,
  LeaseKeepAliveRequestSchema,
  type LeaseKeepAliveResponse,
  type LeaseLeasesResponse,
  type LeaseRevokeRequest,
  type LeaseRevokeResponse,
  LeaseRevokeResponseSchema,
  type ResponseHeader,
  ResponseHeaderSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { Errors } from "./errors.ts";
import { mountGateway } from "./gateway.ts";
import {
  leaseErrorToEtcd,
  leaseGatewayPaths,
  leaseGatewayRoutes,
  leaseService,
  type LeaseServiceDeps,
} from "./lease_service.ts";

const clusterId = 11n;
const memberId = 22n;
const raftTerm = 3n;

/**
 * A member without raft: proposals apply at once, the way apply must handle them (grant:
 * lessor.grant and {header.revision, ID, TTL}; revoke: lessor.revoke, delete the returned
 * keys in one revision, {header.revision}), over a key -> lease map standing in for mvcc.
 */
function fakeMember(options: { primary?: boolean } = {}) {
  const clock = { now: 5_000 };
  const state = {
    rev: 1,
    keys: new Map<string, bigint>(),
    proposals: [] as { leaseGrant?: LeaseGrantRequest; leaseRevoke?: LeaseRevokeRequest }[],
    reads: 0,
    nextId: 0x1000n,
    /** Runs during each linearizable read, to change state while a request waits. */
    onRead: () => {},
  };
  const lessor = new Lessor({
    clock: () => clock.now,
    minTtlSeconds: 2,
    persistence: { saveLease() {}, deleteLease() {} },
  });
  if (options.primary ?? true) lessor.promote(0);
  const header = (revision = state.rev) =>
    create(ResponseHeaderSchema, { clusterId, memberId, revision: BigInt(revision), raftTerm });
  const put = (key: string, lease: bigint) => {
    state.rev++;
    state.keys.set(key, lease);
    if (lease !== 0n) lessor.attach(lease, utf8(key));
  };
  const deps: LeaseServiceDeps = {
    lessor,
    // deno-lint-ignore require-await
    async propose(init) {
      state.proposals.push(init);
      try {
        if (init.leaseGrant) {
          const granted = lessor.grant(init.leaseGrant.ID, Number(init.leaseGrant.TTL));
          return create(LeaseGrantResponseSchema, {
            header: create(ResponseHeaderSchema, { revision: BigInt(state.rev) }),
            ID: granted.id,
            TTL: BigInt(granted.ttlSeconds),
          }) as never;
        }
        if (init.leaseRevoke) {
          const keys = lessor.revoke(init.leaseRevoke.ID);
          if (keys.length > 0) state.rev++;
          for (const key of keys) state.keys.delete(new TextDecoder().decode(key));
          return create(LeaseRevokeResponseSchema, {
            header: create(ResponseHeaderSchema, { revision: BigInt(state.rev) }),
          }) as never;
        }
      } catch (err) {
        throw leaseErrorToEtcd(err);
      }
      throw new Error("unexpected proposal");
    },
    header: () => header(),
    fillHeader(h: ResponseHeader | undefined) {
      const out = h ?? header();
      out.clusterId = clusterId;
      out.memberId = memberId;
      out.raftTerm = raftTerm;
      return out;
    },
    // deno-lint-ignore require-await
    async waitAppliedIndex() {
      state.reads++;
      state.onRead();
    },
    newLeaseId: () => state.nextId++,
  };
  return { clock, state, lessor, deps, service: leaseService(deps), header, put };
}

const ctx = createHandlerContext({
  service: Lease,
  method: Lease.method.leaseGrant,
  protocolName: "test",
  requestMethod: "POST",
  url: "/",
});

function grantReq(TTL: bigint, ID = 0n) {
  return create(Lease.method.leaseGrant.input, { TTL, ID });
}

async function* from<T>(items: T[]): AsyncIterable<T> {
  for (const item of items) yield await Promise.resolve(item);
}

async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of stream) out.push(item);
  return out;
}

function keepAlive(m: ReturnType<typeof fakeMember>, ids: bigint[]) {
  const requests = ids.map((ID) => create(LeaseKeepAliveRequestSchema, { ID }));
  return collect(m.service.leaseKeepAlive(from(requests), ctx)) as Promise<
    LeaseKeepAliveResponse[]
  >;
}

/** Asserts that `promise` rejects with etcd's error `expected` (as EtcdError or on the wire). */
async function rejectsWith(promise: Promise<unknown>, expected: typeof Errors.noLeader) {
  await rejects(promise, (err: unknown) => {
    if (err === expected) return true;
    ok(err instanceof ConnectError, `unexpected ${err}`);
    strictEqual(err.rawMessage, expected.message);
    strictEqual(err.code, expected.code);
    return true;
  });
}

Deno.test("LeaseGrant", async (t) => {
  await t.step(
    "ID 0: the member picks one; the answer carries ID, TTL and a full header",
    async () => {
      const m = fakeMember();
      const res = await m.service.leaseGrant(grantReq(60n), ctx) as LeaseGrantResponse;
      strictEqual(res.ID, 0x1000n);
      strictEqual(res.TTL, 60n);
      deepStrictEqual(res.header, m.header());
      strictEqual(m.state.proposals[0].leaseGrant?.ID, 0x1000n);
      strictEqual(m.lessor.exists(0x1000n), true);
    },
  );

  await t.step("a requested ID is used as is", async () => {
    const m = fakeMember();
    const res = await m.service.leaseGrant(grantReq(60n, -78n), ctx) as LeaseGrantResponse;
    strictEqual(res.ID, -78n);
    strictEqual(m.state.nextId, 0x1000n);
  });

  await t.step("TTL 1 is raised to the minimum (etcdctl lease grant 1 -> TTL 2)", async () => {
    const m = fakeMember();
    const res = await m.service.leaseGrant(grantReq(1n), ctx) as LeaseGrantResponse;
    strictEqual(res.TTL, 2n);
  });

  await t.step("the largest TTL is granted", async () => {
    const m = fakeMember();
    const res = await m.service.leaseGrant(grantReq(9_000_000_000n), ctx) as LeaseGrantResponse;
    strictEqual(res.TTL, 9_000_000_000n);
  });

  await t.step("a larger TTL is refused without a proposal", async () => {
    const m = fakeMember();
    await rejectsWith(
      Promise.resolve(m.service.leaseGrant(grantReq(9_000_000_001n, 77n), ctx)),
      Errors.leaseTTLTooLarge,
    );
    deepStrictEqual(m.state.proposals, []);
  });

  await t.step("an ID in use: lease already exists", async () => {
    const m = fakeMember();
    await m.service.leaseGrant(grantReq(5n, 77n), ctx);
    await rejectsWith(
      Promise.resolve(m.service.leaseGrant(grantReq(5n, 77n), ctx)),
      Errors.leaseExist,
    );
  });

  await t.step(
    "a lessor error that apply did not convert still reaches the client as etcd's",
    async () => {
      const m = fakeMember();
      m.deps.propose = () => Promise.reject(new LeaseExistsError(77n));
      const service = leaseService(m.deps);
      await rejectsWith(
        Promise.resolve(service.leaseGrant(grantReq(5n, 77n), ctx)),
        Errors.leaseExist,
      );
    },
  );
});

Deno.test("LeaseRevoke", async (t) => {
  await t.step("deletes the attached keys in one revision", async () => {
    const m = fakeMember();
    await m.service.leaseGrant(grantReq(60n, 9n), ctx);
    m.put("b", 9n);
    m.put("a", 9n);
    m.put("other", 0n);
    strictEqual(m.state.rev, 4);
    const res = await m.service.leaseRevoke(
      create(Lease.method.leaseRevoke.input, { ID: 9n }),
      ctx,
    ) as LeaseRevokeResponse;
    strictEqual(m.state.rev, 5);
    deepStrictEqual(res.header, m.header(5));
    deepStrictEqual([...m.state.keys.keys()], ["other"]);
    strictEqual(m.lessor.exists(9n), false);
  });

  await t.step("unknown lease: requested lease not found", async () => {
    const m = fakeMember();
    const revoke = (ID: bigint) =>
      Promise.resolve(m.service.leaseRevoke(create(Lease.method.leaseRevoke.input, { ID }), ctx));
    await rejectsWith(revoke(12345n), Errors.leaseNotFound);
    strictEqual(m.state.proposals.length, 1);
    await rejectsWith(revoke(0n), Errors.leaseNotFound);
    strictEqual(m.state.proposals.length, 1, "ID 0 needs no proposal");
  });
});

Deno.test("LeaseKeepAlive", async (t) => {
  await t.step("renews known leases; unknown ones answer TTL 0", async () => {
    const m = fakeMember();
    await m.service.leaseGrant(grantReq(10n, 1n), ctx);
    m.clock.now += 8_000;
    const responses = await keepAlive(m, [1n, 1234n, 1n]);
    deepStrictEqual(
      responses.map((r) => ({ header: r.header, ID: r.ID, TTL: r.TTL })),
      [
        { header: m.header(), ID: 1n, TTL: 10n },
        { header: m.header(), ID: 1234n, TTL: 0n },
        { header: m.header(), ID: 1n, TTL: 10n },
      ],
    );
    strictEqual(m.lessor.timeToLive(1n)?.ttlSeconds, 10);
    strictEqual(m.state.reads, 3, "each renewal waits for the member to catch up");
  });

  await t.step("a lease past its expiry, revoke pending, answers TTL 0", async () => {
    const m = fakeMember();
    await m.service.leaseGrant(grantReq(2n, 1n), ctx);
    m.clock.now += 2_000;
    deepStrictEqual((await keepAlive(m, [1n])).map((r) => r.TTL), [0n]);
  });

  await t.step("the header is taken before the renewal", async () => {
    const m = fakeMember();
    await m.service.leaseGrant(grantReq(10n, 1n), ctx);
    // A revoke lands while the keep-alive waits to catch up.
    m.state.onRead = () => {
      m.lessor.revoke(1n);
      m.state.rev = 7;
    };
    const [res] = await keepAlive(m, [1n]);
    strictEqual(res.header?.revision, 1n);
    strictEqual(res.TTL, 0n);
  });

  await t.step("reads the next request only after the previous answer is taken", async () => {
    const m = fakeMember();
    await m.service.leaseGrant(grantReq(10n, 1n), ctx);
    let pulled = 0;
    const requests: AsyncIterable<LeaseKeepAliveRequest> = {
      [Symbol.asyncIterator]: () => ({
        next: () => {
          pulled++;
          return Promise.resolve(
            pulled <= 3
              ? { done: false, value: create(LeaseKeepAliveRequestSchema, { ID: 1n }) }
              : { done: true, value: undefined },
          );
        },
      }),
    };
    const responses = m.service.leaseKeepAlive(requests, ctx)[Symbol.asyncIterator]();
    strictEqual(pulled, 0);
    await responses.next();
    strictEqual(pulled, 1);
    await responses.next();
    strictEqual(pulled, 2);
    await responses.next();
    strictEqual((await responses.next()).done, true);
    strictEqual(pulled, 4);
  });

  await t.step("a member that does not lead answers no leader", async () => {
    const m = fakeMember({ primary: false });
    await m.service.leaseGrant(grantReq(10n, 1n), ctx);
    await rejectsWith(keepAlive(m, [1n]), Errors.noLeader);
  });

  await t.step("an error from the read ends the stream with etcd's error", async () => {
    const m = fakeMember();
    m.deps.waitAppliedIndex = () => Promise.reject(Errors.stopped);
    const requests = from([create(LeaseKeepAliveRequestSchema, { ID: 1n })]);
    await rejectsWith(collect(leaseService(m.deps).leaseKeepAlive(requests, ctx)), Errors.stopped);
  });
});

Deno.test("LeaseTimeToLive", async (t) => {
  const timeToLive = (m: ReturnType<typeof fakeMember>, ID: bigint, keys = false) =>
    Promise.resolve(
      m.service.leaseTimeToLive(create(Lease.method.leaseTimeToLive.input, { ID, keys }), ctx),
    );

  await t.step("unknown lease: TTL -1, not an error", async () => {
    const m = fakeMember();
    const res = await timeToLive(m, 305441741n, true);
    deepStrictEqual(
      res,
      create(Lease.method.leaseTimeToLive.output, { header: m.header(), ID: 305441741n, TTL: -1n }),
    );
    strictEqual(m.state.reads, 1);
  });

  await t.step("remaining seconds truncated, granted TTL, keys only when asked", async () => {
    const m = fakeMember();
    await m.service.leaseGrant(grantReq(10n, 4n), ctx);
    m.put("k2", 4n);
    m.put("k1", 4n);
    m.clock.now += 1;
    deepStrictEqual(
      await timeToLive(m, 4n),
      create(Lease.method.leaseTimeToLive.output, {
        header: m.header(),
        ID: 4n,
        TTL: 9n,
        grantedTTL: 10n,
      }),
    );
    deepStrictEqual((await timeToLive(m, 4n, true)).keys, [utf8("k1"), utf8("k2")]);
  });

  await t.step("a member that does not lead answers no leader", async () => {
    const m = fakeMember({ primary: false });
    await rejectsWith(timeToLive(m, 1n), Errors.noLeader);
  });
});

Deno.test("LeaseLeases lists every lease, soonest expiry first", async () => {
  const m = fakeMember();
  const leases = async () =>
    await m.service.leaseLeases(create(Lease.method.leaseLeases.input), ctx) as LeaseLeasesResponse;
  deepStrictEqual(
    await leases(),
    create(Lease.method.leaseLeases.output, { header: m.header(), leases: [] }),
  );
  await m.service.leaseGrant(grantReq(9_000_000_000n, 77n), ctx);
  await m.service.leaseGrant(grantReq(2n, 79n), ctx);
  await m.service.leaseGrant(grantReq(2n, -78n), ctx);
  deepStrictEqual((await leases()).leases.map((l) => l.ID), [-78n, 79n, 77n]);
});

Deno.test("lease gateway", async (t) => {
  const m = fakeMember();
  const app = new Hono();
  mountGateway(app, leaseGatewayRoutes(m.service), 1 << 20);
  const post = async (path: string, body: unknown) => {
    const res = await app.request(path, { method: "POST", body: JSON.stringify(body) });
    return { status: res.status, body: await res.json() };
  };
  const header = {
    cluster_id: String(clusterId),
    member_id: String(memberId),
    revision: "1",
    raft_term: String(raftTerm),
  };

  await t.step("every unary path of etcd's rpc.proto is served", () => {
    deepStrictEqual(leaseGatewayPaths.map((p) => p.path).sort(), [
      "/v3/kv/lease/leases",
      "/v3/kv/lease/revoke",
      "/v3/kv/lease/timetolive",
      "/v3/lease/grant",
      "/v3/lease/leases",
      "/v3/lease/revoke",
      "/v3/lease/timetolive",
    ]);
  });

  // The expected bodies are what etcd 3.4.23's gateway answered to the same requests.
  await t.step("grant", async () => {
    deepStrictEqual(await post("/v3/lease/grant", { TTL: -5, ID: -78 }), {
      status: 200,
      body: { header, ID: "-78", TTL: "2" },
    });
    deepStrictEqual(await post("/v3/lease/grant", { TTL: 9000000001 }), {
      status: 400,
      body: {
        error: Errors.leaseTTLTooLarge.message,
        message: Errors.leaseTTLTooLarge.message,
        code: 11,
      },
    });
    deepStrictEqual(await post("/v3/lease/grant", { TTL: 5, ID: -78 }), {
      status: 412,
      body: { error: Errors.leaseExist.message, message: Errors.leaseExist.message, code: 9 },
    });
  });

  await t.step("timetolive", async () => {
    deepStrictEqual(await post("/v3/kv/lease/timetolive", { ID: 305441741, keys: true }), {
      status: 200,
      body: { header, ID: "305441741", TTL: "-1" },
    });
    deepStrictEqual(await post("/v3/lease/timetolive", { ID: -78 }), {
      status: 200,
      body: { header, ID: "-78", TTL: "2", grantedTTL: "2" },
    });
  });

  await t.step("leases", async () => {
    deepStrictEqual(await post("/v3/kv/lease/leases", {}), {
      status: 200,
      body: { header, leases: [{ ID: "-78" }] },
    });
  });

  await t.step("revoke", async () => {
    deepStrictEqual(await post("/v3/kv/lease/revoke", { ID: -78 }), {
      status: 200,
      body: { header },
    });
    deepStrictEqual(await post("/v3/lease/revoke", { ID: 12345 }), {
      status: 404,
      body: { error: Errors.leaseNotFound.message, message: Errors.leaseNotFound.message, code: 5 },
    });
  });
});

Deno.test("leaseErrorToEtcd passes other errors through", () => {
  const other = new Error("disk on fire");
  strictEqual(leaseErrorToEtcd(other), other);
  strictEqual(leaseErrorToEtcd(Errors.timeout), Errors.timeout);
});
