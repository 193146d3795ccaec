import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Lessor } from "../lease/mod.ts";
import {
  LeaseKeepAliveRequestSchema,
  LeaseKeepAliveResponseSchema,
  LeaseTimeToLiveRequestSchema,
  LeaseTimeToLiveResponseSchema,
  ResponseHeaderSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { type LeaseForwardTarget, serveLeaseForward } from "./lease_forward.ts";

function target(primary: boolean): LeaseForwardTarget {
  let now = 0;
  const lessor = new Lessor({
    clock: () => now,
    minTtlSeconds: 1,
    persistence: { saveLease() {}, deleteLease() {} },
  });
  lessor.grant(7n, 30);
  if (primary) lessor.promote(0);
  now = 10_000;
  return {
    lessor,
    header: () => create(ResponseHeaderSchema, { revision: 5n }),
    waitAppliedIndex: () => Promise.resolve(),
  };
}

const post = (path: string, body: BodyInit | null, method = "POST") =>
  new Request(`http://peer${path}`, { method, body });

Deno.test("the leader renews a follower's keep-alive and reports time to live", async () => {
  const leader = target(true);
  const renew = await serveLeaseForward(
    post(
      "/leases",
      toBinary(LeaseKeepAliveRequestSchema, create(LeaseKeepAliveRequestSchema, { ID: 7n })),
    ),
    leader,
  );
  strictEqual(renew.status, 200);
  const answer = fromBinary(
    LeaseKeepAliveResponseSchema,
    new Uint8Array(await renew.arrayBuffer()),
  );
  deepStrictEqual([answer.ID, answer.TTL], [7n, 30n]);

  const unknown = await serveLeaseForward(
    post(
      "/leases",
      toBinary(LeaseKeepAliveRequestSchema, create(LeaseKeepAliveRequestSchema, { ID: 8n })),
    ),
    leader,
  );
  const zero = fromBinary(
    LeaseKeepAliveResponseSchema,
    new Uint8Array(await unknown.arrayBuffer()),
  );
  strictEqual(zero.TTL, 0n, "an unknown lease renews to TTL 0, as etcd answers");

  const ttl = await serveLeaseForward(
    post(
      "/leases/internal",
      toBinary(LeaseTimeToLiveRequestSchema, create(LeaseTimeToLiveRequestSchema, { ID: 8n })),
    ),
    leader,
  );
  const missing = fromBinary(
    LeaseTimeToLiveResponseSchema,
    new Uint8Array(await ttl.arrayBuffer()),
  );
  strictEqual(missing.TTL, -1n);
});

Deno.test("forwarded lease requests: bad input and a member that does not lead", async () => {
  const follower = await serveLeaseForward(post("/leases", new Uint8Array([8, 7])), target(false));
  strictEqual(follower.status, 503, "only the leader's lessor may answer");
  await follower.body?.cancel();
  const garbage = await serveLeaseForward(
    post("/leases", new Uint8Array([0xff, 0xff])),
    target(true),
  );
  strictEqual(garbage.status, 500);
  await garbage.body?.cancel();
  const huge = await serveLeaseForward(post("/leases", new Uint8Array(1024 * 1024)), target(true));
  strictEqual(huge.status, 413);
  await huge.body?.cancel();
  const get = await serveLeaseForward(post("/leases", null, "GET"), target(true));
  strictEqual(get.status, 405);
  await get.body?.cancel();
});
