import { deepStrictEqual, notStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import {
  type PutRequest,
  PutRequestSchema,
  RangeRequestSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { AssertionError } from "../internal/assert.ts";
import { grpcPrefixBytes } from "./grpc_raw.ts";
import {
  kvPaths,
  type KvRequest,
  makeKey,
  prepareCase,
  type PreparedCase,
  resolveCases,
  validateShape,
} from "./workload.ts";

const shape = { keyspace: 100, keySize: 8, valueSize: 32, seed: 9 };
const text = new TextDecoder();

/** The message inside a gRPC frame, checking the prefix as a server would. */
function unframe(frame: Uint8Array): Uint8Array {
  strictEqual(frame[0], 0, "uncompressed");
  const length = new DataView(frame.buffer, frame.byteOffset).getUint32(1);
  strictEqual(frame.length, grpcPrefixBytes + length, "prefix length matches");
  return frame.subarray(grpcPrefixBytes);
}

function framedPut(c: PreparedCase): PutRequest {
  return fromBinary(PutRequestSchema, unframe(c.nextFrame()));
}

function put(request: KvRequest): PutRequest {
  strictEqual(request.method, "put");
  return request.message as PutRequest;
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

Deno.test("kvPaths are etcd's gRPC paths", () => {
  deepStrictEqual(kvPaths, { put: "/etcdserverpb.KV/Put", range: "/etcdserverpb.KV/Range" });
});

Deno.test("put-single sends one prebuilt request with the configured sizes", () => {
  const c = prepareCase("put-single", shape);
  strictEqual(c.setup.length, 0);
  strictEqual(c.method, "put");
  const message = put(c.nextMessage());
  strictEqual(c.nextMessage().message, message, "the message is built once");
  strictEqual(c.nextFrame(), c.nextFrame(), "the frame is encoded once");
  deepStrictEqual(message.key, makeKey(0, 8));
  strictEqual(message.value.length, 32);
  // The frame is what the server receives: the same request.
  const wire = framedPut(c);
  deepStrictEqual(wire.key, message.key);
  deepStrictEqual(wire.value, message.value);
});

Deno.test("put-random spreads keys over the keyspace, the same for the same seed", async (t) => {
  const drawFrames = (seed: number, s = shape) => {
    const c = prepareCase("put-random", { ...s, seed });
    return Array.from({ length: 2000 }, () => text.decode(framedPut(c).key));
  };
  const drawMessages = (seed: number) => {
    const c = prepareCase("put-random", { ...shape, seed });
    return Array.from({ length: 2000 }, () => text.decode(put(c.nextMessage()).key));
  };
  const keys = drawFrames(9);
  await t.step("uniform over the keyspace", () => {
    const distinct = new Set(keys);
    ok(distinct.size > 90, `only ${distinct.size} of 100 keys drawn`);
    for (const k of distinct) ok(/^\d{8}$/.test(k) && Number(k) < 100, k);
  });
  await t.step("seeded", () => {
    deepStrictEqual(drawFrames(9), keys);
    ok(drawFrames(10).join() !== keys.join());
  });
  await t.step("raw frames and connect messages carry the same keys", () => {
    deepStrictEqual(drawMessages(9), keys);
  });
  await t.step("every frame is a whole put with the case's value", () => {
    const c = prepareCase("put-random", shape);
    const single = put(prepareCase("put-single", shape).nextMessage());
    const a = c.nextFrame();
    const b = c.nextFrame();
    notStrictEqual(a.buffer, b.buffer, "frames in flight are never rewritten");
    for (const frame of [a, b]) {
      const wire = fromBinary(PutRequestSchema, unframe(frame));
      deepStrictEqual(wire.value, single.value);
      strictEqual(wire.lease, 0n);
    }
  });
  await t.step("long keys (two-byte length) are rewritten in the right place", () => {
    const long = { ...shape, keySize: 200, keyspace: 1000 };
    const drawn = drawFrames(9, long);
    for (const k of drawn) ok(/^\d{200}$/.test(k) && Number(k) < 1000, k);
    ok(new Set(drawn).size > 500);
  });
});

Deno.test("range cases write their key first and read it with the right consistency", async (t) => {
  const cases = [["range-linearizable", false], ["range-serializable", true]] as const;
  for (const [name, serializable] of cases) {
    await t.step(name, () => {
      const c = prepareCase(name, shape);
      strictEqual(c.setup.length, 1);
      const written = put(c.setup[0]);
      strictEqual(c.method, "range");
      const request = c.nextMessage();
      strictEqual(request.method, "range");
      deepStrictEqual(request.message.key, written.key);
      strictEqual(request.message.serializable, serializable);
      const wire = fromBinary(RangeRequestSchema, unframe(c.nextFrame()));
      deepStrictEqual(wire.key, makeKey(0, 8));
      strictEqual(wire.serializable, serializable);
    });
  }
});
