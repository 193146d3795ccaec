import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type PutRequest,
  PutRequestSchema,
  type RangeRequest,
  RangeRequestSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import type { KVClient } from "./workload.ts";
import { makeKey, prepareCase, resolveCases, validateShape } from "./workload.ts";
import { AssertionError } from "../internal/assert.ts";

const shape = { keyspace: 100, keySize: 8, valueSize: 32, seed: 9 };

/** A fake client that records the messages a case sends. */
function recorder() {
  const puts: PutRequest[] = [];
  const ranges: RangeRequest[] = [];
  const client = {
    put: (req: PutRequest) => (puts.push(req), Promise.resolve({})),
    range: (req: RangeRequest) => (ranges.push(req), Promise.resolve({})),
  } as unknown as KVClient;
  return { client, puts, ranges };
}

Deno.test("makeKey pads to exactly keySize bytes", () => {
  deepStrictEqual(makeKey(42, 8), new TextEncoder().encode("00000042"));
  strictEqual(makeKey(99_999, 8).length, 8);
  throws(() => makeKey(1000, 3), AssertionError);
});

Deno.test("validateShape", () => {
  strictEqual(validateShape(shape), undefined);
  ok(validateShape({ ...shape, keyspace: 0 }));
  ok(validateShape({ ...shape, keySize: 2, keyspace: 101 }));
  strictEqual(validateShape({ ...shape, keySize: 2, keyspace: 100 }), undefined);
  ok(validateShape({ ...shape, valueSize: -1 }));
});

Deno.test("resolveCases expands groups in run order and rejects unknown names", () => {
  deepStrictEqual(resolveCases(["range", "put-single"]), [
    "put-single",
    "range-linearizable",
    "range-serializable",
  ]);
  deepStrictEqual(resolveCases(["all"]).length, 4);
  strictEqual(typeof resolveCases(["nope"]), "string");
});

Deno.test("put-single sends one prebuilt message with the configured sizes", async () => {
  const { client, puts } = recorder();
  const c = prepareCase("put-single", shape);
  await c.setup(client);
  strictEqual(puts.length, 0);
  await c.call(client, 0);
  await c.call(client, 1);
  strictEqual(puts[0], puts[1], "the message is built once");
  strictEqual(puts[0].key.length, 8);
  strictEqual(puts[0].value.length, 32);
  // Round trip through the wire format: what etcd receives.
  const wire = fromBinary(PutRequestSchema, toBinary(PutRequestSchema, puts[0]));
  deepStrictEqual(wire.key, makeKey(0, 8));
});

Deno.test("put-random spreads keys over the keyspace, the same for the same seed", async () => {
  const draw = async (seed: number) => {
    const { client, puts } = recorder();
    const c = prepareCase("put-random", { ...shape, seed });
    for (let i = 0; i < 2000; i++) await c.call(client, i);
    return puts.map((p) => new TextDecoder().decode(p.key));
  };
  const keys = await draw(9);
  const distinct = new Set(keys);
  ok(distinct.size > 90, `only ${distinct.size} of 100 keys drawn`);
  for (const k of distinct) ok(/^\d{8}$/.test(k) && Number(k) < 100, k);
  deepStrictEqual(await draw(9), keys);
  ok((await draw(10)).join() !== keys.join());
});

Deno.test("range cases write their key first and read it with the right consistency", async (t) => {
  for (
    const [name, serializable] of [["range-linearizable", false], [
      "range-serializable",
      true,
    ]] as const
  ) {
    await t.step(name, async () => {
      const { client, puts, ranges } = recorder();
      const c = prepareCase(name, shape);
      await c.setup(client);
      strictEqual(puts.length, 1);
      await c.call(client, 0);
      strictEqual(ranges.length, 1);
      deepStrictEqual(ranges[0].key, puts[0].key);
      strictEqual(ranges[0].serializable, serializable);
      deepStrictEqual(
        fromBinary(RangeRequestSchema, toBinary(RangeRequestSchema, ranges[0])).key,
        makeKey(0, 8),
      );
    });
  }
});
