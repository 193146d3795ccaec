import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { SeededRandom, seedFromEnv } from "../internal/seeded_random.ts";
import {
  InternalRaftRequestSchema,
  RequestHeaderSchema,
} from "../proto/gen/etcd/etcdserverpb/raft_internal_pb.ts";
import { type PutRequest, PutRequestSchema } from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { encodePutProposal } from "./proposal_encode.ts";

const seed = seedFromEnv("PROPOSAL_ENCODE_SEED");

/** What propose wrote before: the generic encoding of the same request. */
const reference = (id: bigint, put: PutRequest) =>
  toBinary(
    InternalRaftRequestSchema,
    create(InternalRaftRequestSchema, { put, header: create(RequestHeaderSchema, { ID: id }) }),
  );

function randomId(random: SeededRandom): bigint {
  switch (random.int(4)) {
    case 0:
      return 0n;
    case 1:
      return BigInt(random.int(1 << 20));
    case 2:
      return (1n << 64n) - 1n;
    default:
      return (BigInt(random.int(2 ** 16)) << 48n) | BigInt(random.int(2 ** 32));
  }
}

Deno.test(`put proposals encode as toBinary does (seed ${seed})`, () => {
  const random = new SeededRandom(seed);
  for (let i = 0; i < 2000; i++) {
    const put = create(PutRequestSchema, {
      key: random.bytes(random.int(3) === 0 ? 0 : 1 + random.int(300)),
      value: random.bytes(random.pick([0, 1, 127, 128, 256, 20_000])),
      lease: random.pick([0n, 1n, 0x7fn, 0x80n, BigInt(Number.MAX_SAFE_INTEGER)]),
      prevKv: random.chance(0.5),
      ignoreValue: random.chance(0.5),
      ignoreLease: random.chance(0.5),
    });
    const id = randomId(random);
    const bytes = encodePutProposal(id, put);
    deepStrictEqual(bytes, reference(id, put), `put ${i}`);
    const decoded = fromBinary(InternalRaftRequestSchema, bytes!);
    strictEqual(decoded.header?.ID, id);
    deepStrictEqual(decoded.put, put);
  }
});

Deno.test("puts the direct encoding does not cover are left to toBinary", () => {
  const negative = create(PutRequestSchema, { key: new Uint8Array([1]), lease: -1n });
  strictEqual(encodePutProposal(1n, negative), undefined);
  const huge = create(PutRequestSchema, { key: new Uint8Array([1]), lease: 1n << 60n });
  strictEqual(encodePutProposal(1n, huge), undefined);
  // Fields a newer client sent that this build does not know are kept by toBinary.
  const withUnknown = fromBinary(PutRequestSchema, new Uint8Array([0x0a, 1, 0x61, 0x78, 5]));
  strictEqual(withUnknown.$unknown?.length, 1);
  strictEqual(encodePutProposal(1n, withUnknown), undefined);
});
