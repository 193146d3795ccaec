import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  LeaseGrantRequestSchema,
  LeaseGrantResponseSchema,
  LeaseKeepAliveRequestSchema,
  LeaseKeepAliveResponseSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { AssertionError } from "../internal/assert.ts";
import { grpcPrefixBytes } from "./grpc_raw.ts";
import {
  keepAliveFrame,
  leaseGrantFrame,
  scanKeepAliveResponse,
  scanLeaseGrantResponse,
} from "./lease.ts";

const header = { clusterId: 14841639068965178418n, memberId: 1n, revision: 12n, raftTerm: 2n };

function unframe(frame: Uint8Array): Uint8Array {
  strictEqual(frame[0], 0);
  strictEqual(new DataView(frame.buffer, frame.byteOffset).getUint32(1), frame.length - 5);
  return frame.subarray(grpcPrefixBytes);
}

Deno.test("leaseGrantFrame asks for the TTL and lets the server choose the id", () => {
  const request = fromBinary(LeaseGrantRequestSchema, unframe(leaseGrantFrame(60)));
  strictEqual(request.TTL, 60n);
  strictEqual(request.ID, 0n);
});

Deno.test("a granted id goes back in the keep-alive unchanged, even above 2^53", () => {
  for (const id of [1n, 7587866270935498755n, 2n ** 63n - 1n]) {
    const grant = scanLeaseGrantResponse(toBinary(
      LeaseGrantResponseSchema,
      create(LeaseGrantResponseSchema, { header, ID: id, TTL: 60n }),
    ));
    strictEqual(grant.ttl, 60);
    strictEqual(grant.error, "");
    const request = fromBinary(
      LeaseKeepAliveRequestSchema,
      unframe(keepAliveFrame(grant.idVarint)),
    );
    strictEqual(request.ID, id);

    const answer = scanKeepAliveResponse(toBinary(
      LeaseKeepAliveResponseSchema,
      create(LeaseKeepAliveResponseSchema, { header, ID: id, TTL: 59n }),
    ));
    deepStrictEqual(answer.idVarint, grant.idVarint);
    strictEqual(answer.ttl, 59);
  }
});

Deno.test("lease answers that mean failure are seen as such", async (t) => {
  await t.step("a grant with an error text or without an id", () => {
    const withError = scanLeaseGrantResponse(toBinary(
      LeaseGrantResponseSchema,
      create(LeaseGrantResponseSchema, { error: "lease already exists" }),
    ));
    strictEqual(withError.error, "lease already exists");
    strictEqual(withError.idVarint.length, 0);
  });
  await t.step("a keep-alive of an unknown lease: TTL 0 or negative", () => {
    const missing = scanKeepAliveResponse(toBinary(
      LeaseKeepAliveResponseSchema,
      create(LeaseKeepAliveResponseSchema, { header, ID: 5n }),
    ));
    strictEqual(missing.ttl, 0);
    const negative = scanKeepAliveResponse(toBinary(
      LeaseKeepAliveResponseSchema,
      create(LeaseKeepAliveResponseSchema, { header, ID: 5n, TTL: -1n }),
    ));
    strictEqual(negative.ttl, -1);
  });
  await t.step("an empty id cannot be renewed", () => {
    throws(() => keepAliveFrame(new Uint8Array(0)), AssertionError);
  });
});
