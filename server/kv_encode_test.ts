import { deepStrictEqual } from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { SeededRandom, seedFromEnv } from "../internal/seeded_random.ts";
import { type KeyValue, KeyValueSchema } from "../proto/gen/etcd/mvccpb/kv_pb.ts";
import {
  DeleteRangeResponseSchema,
  PutResponseSchema,
  RangeResponseSchema,
  type ResponseHeader,
  ResponseHeaderSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { encodeDeleteRangeResponse, encodePutResponse, encodeRangeResponse } from "./kv_encode.ts";

const seed = seedFromEnv("KV_ENCODE_SEED");

/** An int64: mostly ordinary, sometimes zero, a varint length boundary, huge or negative. */
function int64(random: SeededRandom): bigint {
  switch (random.int(8)) {
    case 0:
      return 0n;
    case 1:
      return (1n << BigInt(7 * (1 + random.int(8)))) - BigInt(random.int(2));
    case 2:
      return (1n << 63n) - 1n;
    case 3:
      return -BigInt(1 + random.int(1000)); // a ten-byte varint
    default:
      return BigInt(random.int(1_000_000));
  }
}

function u64(random: SeededRandom): bigint {
  return random.chance(0.2)
    ? 0n
    : random.chance(0.3)
    ? (1n << 64n) - 1n
    : BigInt.asUintN(64, (BigInt(random.int(2 ** 32)) << 32n) | BigInt(random.int(2 ** 32)));
}

function header(random: SeededRandom): ResponseHeader | undefined {
  if (random.chance(0.1)) return undefined;
  return create(ResponseHeaderSchema, {
    clusterId: u64(random),
    memberId: u64(random),
    revision: int64(random),
    raftTerm: u64(random),
  });
}

function kv(random: SeededRandom): KeyValue {
  return create(KeyValueSchema, {
    key: random.bytes(random.int(20)),
    createRevision: int64(random),
    modRevision: int64(random),
    version: int64(random),
    value: random.bytes(random.pick([0, 1, 127, 128, 256, 20_000])),
    lease: int64(random),
  });
}

const kvs = (random: SeededRandom) => Array.from({ length: random.int(4) }, () => kv(random));

/** The encoders write behind headroom left for the gRPC prefix: it must stay theirs. */
function behindHeadroom(out: Uint8Array, headroom: number): Uint8Array {
  return out.subarray(headroom);
}

Deno.test(`KV responses encode as toBinary does (seed ${seed})`, () => {
  const random = new SeededRandom(seed);
  for (let i = 0; i < 1500; i++) {
    const headroom = random.pick([0, 5]);
    const range = create(RangeResponseSchema, {
      header: header(random),
      kvs: kvs(random),
      more: random.chance(0.3),
      count: int64(random),
    });
    deepStrictEqual(
      behindHeadroom(encodeRangeResponse(range, headroom), headroom),
      toBinary(RangeResponseSchema, range),
      `range ${i}`,
    );
    const put = create(PutResponseSchema, {
      header: header(random),
      prevKv: random.chance(0.5) ? kv(random) : undefined,
    });
    deepStrictEqual(
      behindHeadroom(encodePutResponse(put, headroom), headroom),
      toBinary(PutResponseSchema, put),
      `put ${i}`,
    );
    const del = create(DeleteRangeResponseSchema, {
      header: header(random),
      deleted: int64(random),
      prevKvs: kvs(random),
    });
    deepStrictEqual(
      behindHeadroom(encodeDeleteRangeResponse(del, headroom), headroom),
      toBinary(DeleteRangeResponseSchema, del),
      `delete ${i}`,
    );
  }
});

Deno.test("an empty message field is still written, as toBinary writes it", () => {
  const put = create(PutResponseSchema, {
    header: create(ResponseHeaderSchema),
    prevKv: create(KeyValueSchema),
  });
  deepStrictEqual(encodePutResponse(put), toBinary(PutResponseSchema, put));
  deepStrictEqual([...encodePutResponse(put)], [0x0a, 0, 0x12, 0]);
});
