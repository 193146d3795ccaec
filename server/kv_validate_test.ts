import { strictEqual, throws } from "node:assert/strict";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { utf8 } from "../internal/bytes.ts";
import {
  CompareSchema,
  DeleteRangeRequestSchema,
  PutRequestSchema,
  RangeRequestSchema,
  type RequestOp,
  RequestOpSchema,
  type TxnRequest,
  TxnRequestSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { Errors, type EtcdError } from "./errors.ts";
import {
  checkDeleteRangeRequest,
  checkPutRequest,
  checkRangeRequest,
  checkTxnRequest,
  DEFAULT_MAX_TXN_OPS,
} from "./kv_validate.ts";

function put(key: string, init: MessageInitShape<typeof PutRequestSchema> = {}): RequestOp {
  return create(RequestOpSchema, {
    request: { case: "requestPut", value: { key: utf8(key), ...init } },
  });
}

function del(key: string, end?: string | Uint8Array): RequestOp {
  const rangeEnd = end === undefined ? undefined : typeof end === "string" ? utf8(end) : end;
  return create(RequestOpSchema, {
    request: { case: "requestDeleteRange", value: { key: utf8(key), rangeEnd } },
  });
}

function get(key: string): RequestOp {
  return create(RequestOpSchema, { request: { case: "requestRange", value: { key: utf8(key) } } });
}

function txn(success: RequestOp[], failure: RequestOp[] = [], compare: string[] = []): TxnRequest {
  return create(TxnRequestSchema, {
    success,
    failure,
    compare: compare.map((k) => create(CompareSchema, { key: utf8(k) })),
  });
}

function nested(t: TxnRequest): RequestOp {
  return create(RequestOpSchema, { request: { case: "requestTxn", value: t } });
}

function expect(fn: () => void, error: EtcdError | undefined): void {
  if (error === undefined) fn();
  else throws(fn, (err) => err === error);
}

Deno.test("single requests", async (t) => {
  const cases: [string, () => void, EtcdError | undefined][] = [
    [
      "range with a key",
      () => checkRangeRequest(create(RangeRequestSchema, { key: utf8("a") })),
      undefined,
    ],
    [
      "range without a key",
      () => checkRangeRequest(create(RangeRequestSchema, {})),
      Errors.emptyKey,
    ],
    [
      "range with only a range end",
      () => checkRangeRequest(create(RangeRequestSchema, { rangeEnd: utf8("z") })),
      Errors.emptyKey,
    ],
    ["put", () => checkPutRequest(create(PutRequestSchema, { key: utf8("a") })), undefined],
    ["put without a key", () => checkPutRequest(create(PutRequestSchema, {})), Errors.emptyKey],
    [
      "ignore_value without a value",
      () => checkPutRequest(create(PutRequestSchema, { key: utf8("a"), ignoreValue: true })),
      undefined,
    ],
    [
      "ignore_value with a value",
      () =>
        checkPutRequest(
          create(PutRequestSchema, { key: utf8("a"), ignoreValue: true, value: utf8("v") }),
        ),
      Errors.valueProvided,
    ],
    [
      "ignore_lease with a lease",
      () =>
        checkPutRequest(create(PutRequestSchema, { key: utf8("a"), ignoreLease: true, lease: 5n })),
      Errors.leaseProvided,
    ],
    [
      "empty key beats value provided",
      () => checkPutRequest(create(PutRequestSchema, { ignoreValue: true, value: utf8("v") })),
      Errors.emptyKey,
    ],
    [
      "delete",
      () => checkDeleteRangeRequest(create(DeleteRangeRequestSchema, { key: utf8("a") })),
      undefined,
    ],
    [
      "delete without a key",
      () => checkDeleteRangeRequest(create(DeleteRangeRequestSchema, {})),
      Errors.emptyKey,
    ],
  ];
  for (const [name, fn, error] of cases) await t.step(name, () => expect(fn, error));
});

/** A txn nested `depth` levels deep around one put, as a single op. */
function deep(depth: number): RequestOp {
  let op = put("deep");
  for (let i = 0; i < depth; i++) op = nested(txn([op]));
  return op;
}

Deno.test("txn op budget", async (t) => {
  const many = (n: number, prefix = "k") =>
    Array.from({ length: n }, (_, i) => put(`${prefix}${i}`));
  const cases: [string, TxnRequest, EtcdError | undefined][] = [
    ["128 puts", txn(many(128)), undefined],
    ["129 puts", txn(many(129)), Errors.tooManyOps],
    ["129 failure ops", txn([], many(129)), Errors.tooManyOps],
    ["129 compares", txn([], [], many(129).map((_, i) => `c${i}`)), Errors.tooManyOps],
    // The budget is the largest of the three lists, not their sum.
    ["128 of each", txn(many(128), many(128), many(128).map((_, i) => `c${i}`)), undefined],
    // Measured on etcd 3.4.23: 127 nested levels pass, 128 do not.
    ["127 nested levels", txn([deep(127)]), undefined],
    ["128 nested levels", txn([deep(128)]), Errors.tooManyOps],
    [
      "a nested txn gets what its parent leaves (measured)",
      txn([...many(100), nested(txn(many(28, "n")))]),
      Errors.tooManyOps,
    ],
    [
      "a nested txn within the leftover",
      txn([...many(100), nested(txn(many(27, "n")))]),
      undefined,
    ],
  ];
  for (const [name, req, error] of cases) {
    await t.step(name, () => expect(() => checkTxnRequest(req, DEFAULT_MAX_TXN_OPS), error));
  }
  await t.step("the budget is configurable", () => {
    throws(() => checkTxnRequest(txn(many(3)), 2), (e) => e === Errors.tooManyOps);
    checkTxnRequest(txn(many(2)), 2);
  });
});

Deno.test("txn op contents", async (t) => {
  const cases: [string, TxnRequest, EtcdError | undefined][] = [
    ["an empty txn", txn([]), undefined],
    ["a compare without a key", txn([], [], [""]), Errors.emptyKey],
    ["an empty op", txn([create(RequestOpSchema)]), Errors.keyNotFound],
    ["an empty op in failure", txn([], [create(RequestOpSchema)]), Errors.keyNotFound],
    ["a range without a key", txn([get("")]), Errors.emptyKey],
    [
      "a put with ignore_value and a value",
      txn([put("a", { ignoreValue: true, value: utf8("v") })]),
      Errors.valueProvided,
    ],
    ["a nested empty op", txn([nested(txn([create(RequestOpSchema)]))]), Errors.keyNotFound],
    ["a nested compare without a key", txn([nested(txn([], [], [""]))]), Errors.emptyKey],
    // Ops are checked before overlaps.
    ["an empty key before a duplicate", txn([put("a"), put("a"), get("")]), Errors.emptyKey],
  ];
  for (const [name, req, error] of cases) {
    await t.step(name, () => expect(() => checkTxnRequest(req), error));
  }
});

Deno.test("txn duplicate keys (each answer measured on etcd 3.4.23)", async (t) => {
  const cases: [string, TxnRequest, EtcdError | undefined][] = [
    ["two puts of one key", txn([put("a"), put("a")]), Errors.duplicateKey],
    ["puts of different keys", txn([put("a"), put("b")]), undefined],
    ["the same key in success and failure", txn([put("a")], [put("a")]), undefined],
    ["a put inside a deleted range", txn([del("a", "c"), put("b")]), Errors.duplicateKey],
    ["a put at a range's end", txn([del("a", "c"), put("c")]), undefined],
    ["a put before its delete", txn([put("b"), del("a", "c")]), Errors.duplicateKey],
    ["a put of a deleted single key", txn([del("b"), put("b")]), Errors.duplicateKey],
    ["a put just after a deleted single key", txn([del("a"), put("a\0")]), undefined],
    // A from-key delete ("\0" end) makes an interval that ends before it starts.
    ["a put after a from-key delete", txn([del("a", new Uint8Array([0])), put("b")]), undefined],
    ["overlapping deletes", txn([del("a", "z"), del("b", "c")]), undefined],
    ["a delete in success, a put in failure", txn([del("a")], [put("a")]), undefined],
    [
      "a nested put, then a nested delete",
      txn([nested(txn([put("q")])), nested(txn([del("q")]))]),
      undefined,
    ],
    [
      "a nested delete, then a nested put",
      txn([nested(txn([del("q")])), nested(txn([put("q")]))]),
      Errors.duplicateKey,
    ],
    ["nested then and else put one key", txn([nested(txn([put("q")], [put("q")]))]), undefined],
    ["nested then delete, else put", txn([nested(txn([del("q")], [put("q")]))]), undefined],
    [
      "an outer put and a nested put",
      txn([put("q"), nested(txn([put("q")]))]),
      Errors.duplicateKey,
    ],
    [
      "an outer delete and a nested put",
      txn([del("q"), nested(txn([put("q")]))]),
      Errors.duplicateKey,
    ],
    [
      "a nested delete and an outer put",
      txn([nested(txn([del("q")])), put("q")]),
      Errors.duplicateKey,
    ],
    [
      "a put in two nested txns",
      txn([nested(txn([put("q")])), nested(txn([], [put("q")]))]),
      Errors.duplicateKey,
    ],
    [
      "deep nested duplicate",
      txn([nested(txn([nested(txn([put("q")]))])), put("q")]),
      Errors.duplicateKey,
    ],
    ["a duplicate in the failure branch", txn([], [put("a"), put("a")]), Errors.duplicateKey],
  ];
  for (const [name, req, error] of cases) {
    await t.step(name, () => expect(() => checkTxnRequest(req), error));
  }
  await t.step("many deletes and puts stay fast", () => {
    const ops: RequestOp[] = [];
    for (let i = 0; i < 60; i++) {
      const inner: RequestOp[] = [];
      for (let j = 0; j < 60; j++) {
        inner.push(del(`d${i}-${j}`, `d${i}-${j}x`), put(`p${i}-${j}`));
      }
      ops.push(nested(txn(inner)));
    }
    const started = performance.now();
    checkTxnRequest(txn(ops), 1_000);
    strictEqual(performance.now() - started < 2_000, true);
  });
});
