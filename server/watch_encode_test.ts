import { deepStrictEqual } from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { EventSchema, KeyValueSchema } from "../proto/gen/etcd/mvccpb/kv_pb.ts";
import {
  ResponseHeaderSchema,
  type WatchResponse,
  WatchResponseSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { encodeWatchResponse } from "./watch_encode.ts";
import { SeededRandom } from "../internal/seeded_random.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);

function kv(random: SeededRandom, i: number) {
  return create(KeyValueSchema, {
    key: utf8(`key-${i}-${"x".repeat(random.int(200))}`),
    value: new Uint8Array(random.int(3000)).fill(i % 251),
    createRevision: BigInt(random.int(1_000_000)),
    modRevision: BigInt(random.int(1_000_000)),
    version: BigInt(random.int(5)),
    lease: random.int(2) === 0 ? 0n : 0x7fff_ffff_ffff_ff00n,
  });
}

Deno.test("the watch response fast path writes exactly what toBinary writes", () => {
  const random = new SeededRandom(20261130);
  const header = (rev: bigint) =>
    create(ResponseHeaderSchema, {
      clusterId: 0xfedc_ba98_7654_3210n,
      memberId: 0x8e9e05c52164694dn,
      revision: rev,
      raftTerm: 7n,
    });
  const shared = [0, 1, 2].map((i) =>
    create(EventSchema, {
      type: i % 2,
      kv: kv(random, i),
      prevKv: i === 2 ? kv(random, 9) : undefined,
    })
  );
  const cases: WatchResponse[] = [
    create(WatchResponseSchema, {}),
    create(WatchResponseSchema, { header: header(5n), watchId: 0n, created: true }),
    // Progress notifications carry watch id -1: a ten-byte varint.
    create(WatchResponseSchema, { header: header(5n), watchId: -1n }),
    create(WatchResponseSchema, {
      header: header(0n),
      watchId: 3n,
      canceled: true,
      compactRevision: 1234567890123n,
      cancelReason: "mvcc: required revision has been compacted — ünïcode",
    }),
    create(WatchResponseSchema, { header: header(9n), watchId: 300n, events: shared }),
    create(WatchResponseSchema, { header: header(9n), watchId: 301n, events: shared }),
    create(WatchResponseSchema, { header: header(2n ** 53n - 1n), watchId: 2n ** 53n - 1n }),
    create(WatchResponseSchema, { header: header(2n ** 53n), watchId: 2n ** 53n }),
    create(WatchResponseSchema, { header: header(2n ** 63n - 1n), watchId: 2n ** 63n - 1n }),
    create(WatchResponseSchema, {
      header: header(10n),
      watchId: 2n ** 40n,
      fragment: true,
      events: [shared[1]],
    }),
  ];
  for (let i = 0; i < 50; i++) {
    cases.push(create(WatchResponseSchema, {
      header: header(BigInt(random.int(2 ** 40))),
      watchId: BigInt(random.int(100_000)),
      events: Array.from(
        { length: random.int(5) },
        (_, j) => create(EventSchema, { type: j % 2, kv: kv(random, j) }),
      ),
    }));
  }
  for (const wr of cases) {
    const want = toBinary(WatchResponseSchema, wr);
    // Twice: the second time from the caches; then behind room for the gRPC prefix.
    deepStrictEqual(new Uint8Array(encodeWatchResponse(wr)), want);
    deepStrictEqual(new Uint8Array(encodeWatchResponse(wr)), want);
    deepStrictEqual(new Uint8Array(encodeWatchResponse(wr, 5).subarray(5)), want);
  }
});
