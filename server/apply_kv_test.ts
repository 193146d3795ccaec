import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import {
  create,
  type DescMessage,
  fromJson,
  type JsonObject,
  type JsonValue,
  type Message,
  type MessageInitShape,
  toJson,
} from "@bufbuild/protobuf";
import { fromUtf8, prefixEnd, utf8 } from "../internal/bytes.ts";
import { MvccStore } from "../mvcc/mod.ts";
import {
  type CompactionRequest,
  CompactionRequestSchema,
  CompactionResponseSchema,
  type Compare,
  Compare_CompareResult as Result,
  Compare_CompareTarget as Target,
  CompareSchema,
  type DeleteRangeRequest,
  DeleteRangeRequestSchema,
  DeleteRangeResponseSchema,
  type PutRequest,
  PutRequestSchema,
  PutResponseSchema,
  type RangeRequest,
  RangeRequest_SortOrder as Order,
  RangeRequest_SortTarget as SortBy,
  RangeRequestSchema,
  type RangeResponse,
  RangeResponseSchema,
  type RequestOp,
  RequestOpSchema,
  type TxnRequest,
  TxnRequestSchema,
  type TxnResponse,
  TxnResponseSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import type { KeyValue as PbKeyValue } from "../proto/gen/etcd/mvccpb/kv_pb.ts";
import {
  applyCompaction,
  applyDeleteRange,
  applyPut,
  applyRange,
  applyTxn,
  applyTxnReadOnly,
  isTxnReadOnly,
  isTxnSerializable,
  type KvApplyDeps,
} from "./apply_kv.ts";
import { Errors, EtcdError } from "./errors.ts";
import {
  checkDeleteRangeRequest,
  checkPutRequest,
  checkRangeRequest,
  checkTxnRequest,
} from "./kv_validate.ts";

const ZERO = new Uint8Array([0]);

function setup(leases: bigint[] = []): KvApplyDeps & { close(): void } {
  const store = MvccStore.open(":memory:");
  const known = new Set(leases);
  return { store, leaseExists: (id) => known.has(id), close: () => store.close() };
}

function putReq(key: string, value: string, init: MessageInitShape<typeof PutRequestSchema> = {}) {
  return create(PutRequestSchema, { key: utf8(key), value: utf8(value), ...init });
}

function put(deps: KvApplyDeps, key: string, value: string, lease = 0n) {
  return applyPut(deps, putReq(key, value, { lease }));
}

function rangeReq(
  key: string | Uint8Array,
  end?: string | Uint8Array,
  init: MessageInitShape<typeof RangeRequestSchema> = {},
): RangeRequest {
  const bytes = (s: string | Uint8Array) => (typeof s === "string" ? utf8(s) : s);
  return create(RangeRequestSchema, {
    key: bytes(key),
    rangeEnd: end === undefined ? undefined : bytes(end),
    ...init,
  });
}

/** key=value@create/mod/version[+lease] */
function show(kv: PbKeyValue): string {
  const lease = kv.lease === 0n ? "" : `+${kv.lease}`;
  return `${fromUtf8(kv.key)}=${
    fromUtf8(kv.value)
  }@${kv.createRevision}/${kv.modRevision}/${kv.version}${lease}`;
}

function keys(resp: RangeResponse): string[] {
  return resp.kvs.map((kv) => fromUtf8(kv.key));
}

function throwsEtcd(fn: () => unknown, error: EtcdError): void {
  throws(fn, (err) => err === error);
}

Deno.test("range", async (t) => {
  const deps = setup();
  put(deps, "a", "3"); // 2
  put(deps, "b", "1"); // 3
  put(deps, "c", "2"); // 4
  put(deps, "b", "0"); // 5
  put(deps, "d", "9"); // 6
  put(deps, "a", "3"); // 7
  // a: create 2 mod 7 ver 2; b: create 3 mod 5 ver 2; c: create 4 mod 4 ver 1; d: 6 6 1
  const view = () => deps.store.read();
  const all = (init: MessageInitShape<typeof RangeRequestSchema> = {}) =>
    applyRange(view(), rangeReq("a", "z", init));

  await t.step("single key, header at the current revision", () => {
    const resp = applyRange(view(), rangeReq("b"));
    deepStrictEqual(resp.kvs.map(show), ["b=0@3/5/2"]);
    strictEqual(resp.count, 1n);
    strictEqual(resp.more, false);
    strictEqual(resp.header?.revision, 7n);
  });
  await t.step("a past revision keeps the current revision in the header", () => {
    const resp = applyRange(view(), rangeReq("b", undefined, { revision: 3n }));
    deepStrictEqual(resp.kvs.map(show), ["b=1@3/3/1"]);
    strictEqual(resp.header?.revision, 7n);
  });
  await t.step("from key and all keys", () => {
    deepStrictEqual(keys(applyRange(view(), rangeReq("c", ZERO))), ["c", "d"]);
    deepStrictEqual(keys(applyRange(view(), rangeReq(ZERO, ZERO))), ["a", "b", "c", "d"]);
  });
  await t.step("limit sets more and keeps the total count", () => {
    const resp = all({ limit: 2n });
    deepStrictEqual(keys(resp), ["a", "b"]);
    strictEqual(resp.more, true);
    strictEqual(resp.count, 4n);
    strictEqual(all({ limit: 4n }).more, false);
    strictEqual(all({ limit: -1n }).kvs.length, 4);
    strictEqual(all({ limit: 1n << 62n }).kvs.length, 4);
  });
  await t.step("keys only and count only", () => {
    deepStrictEqual(all({ keysOnly: true }).kvs.map(show), [
      "a=@2/7/2",
      "b=@3/5/2",
      "c=@4/4/1",
      "d=@6/6/1",
    ]);
    const counted = all({ countOnly: true });
    strictEqual(counted.kvs.length, 0);
    strictEqual(counted.count, 4n);
  });

  const sorts: [string, Order, SortBy, string[]][] = [
    ["none by key is key order", Order.NONE, SortBy.KEY, ["a", "b", "c", "d"]],
    ["ascend by key", Order.ASCEND, SortBy.KEY, ["a", "b", "c", "d"]],
    ["descend by key", Order.DESCEND, SortBy.KEY, ["d", "c", "b", "a"]],
    // etcd sorts ascending when a target other than the key is given without an order.
    ["none by version sorts ascending", Order.NONE, SortBy.VERSION, ["c", "d", "a", "b"]],
    ["descend by version, ties in key order", Order.DESCEND, SortBy.VERSION, ["a", "b", "c", "d"]],
    ["ascend by create", Order.ASCEND, SortBy.CREATE, ["a", "b", "c", "d"]],
    ["descend by create", Order.DESCEND, SortBy.CREATE, ["d", "c", "b", "a"]],
    ["ascend by mod", Order.ASCEND, SortBy.MOD, ["c", "b", "d", "a"]],
    ["descend by mod", Order.DESCEND, SortBy.MOD, ["a", "d", "b", "c"]],
    ["ascend by value", Order.ASCEND, SortBy.VALUE, ["b", "c", "a", "d"]],
    ["descend by value", Order.DESCEND, SortBy.VALUE, ["d", "a", "c", "b"]],
  ];
  for (const [name, sortOrder, sortTarget, want] of sorts) {
    await t.step(`sort: ${name}`, () => {
      deepStrictEqual(keys(all({ sortOrder, sortTarget })), want);
    });
  }
  await t.step("sort then limit", () => {
    const resp = all({ sortOrder: Order.DESCEND, sortTarget: SortBy.MOD, limit: 1n });
    deepStrictEqual(keys(resp), ["a"]);
    strictEqual(resp.more, true);
    strictEqual(resp.count, 4n);
  });
  await t.step("a target without an order sorts only the first limit + 1 keys, as etcd", () => {
    // Measured on etcd 3.4.23: the limit goes to the store first, then the sort.
    const resp = all({ sortTarget: SortBy.VALUE, limit: 2n });
    deepStrictEqual(keys(resp), ["b", "c"]); // of a, b, c by value: b=0, c=2, a=3
    strictEqual(resp.more, true);
    deepStrictEqual(keys(all({ sortTarget: SortBy.VALUE, limit: 1n })), ["b"]);
    deepStrictEqual(keys(all({ sortOrder: Order.ASCEND, sortTarget: SortBy.VALUE, limit: 2n })), [
      "b",
      "c",
    ]);
    deepStrictEqual(keys(all({ sortTarget: SortBy.MOD, limit: 2n })), ["c", "b"]);
    deepStrictEqual(keys(all({ sortOrder: Order.ASCEND, sortTarget: SortBy.MOD, limit: 2n })), [
      "c",
      "b",
    ]);
    deepStrictEqual(keys(all({ sortTarget: SortBy.MOD, limit: 1n })), ["b"]);
  });
  await t.step("sort by value with keys only sorts by the values, returns none", () => {
    const resp = all({ sortOrder: Order.ASCEND, sortTarget: SortBy.VALUE, keysOnly: true });
    deepStrictEqual(keys(resp), ["b", "c", "a", "d"]);
    deepStrictEqual(resp.kvs.map((kv) => kv.value.length), [0, 0, 0, 0]);
  });

  const filters: [string, MessageInitShape<typeof RangeRequestSchema>, string[]][] = [
    ["max mod revision", { maxModRevision: 5n }, ["b", "c"]],
    ["min mod revision", { minModRevision: 6n }, ["a", "d"]],
    ["max create revision", { maxCreateRevision: 3n }, ["a", "b"]],
    ["min create revision", { minCreateRevision: 4n }, ["c", "d"]],
    ["mod window", { minModRevision: 5n, maxModRevision: 6n }, ["b", "d"]],
  ];
  for (const [name, init, want] of filters) {
    await t.step(`filter: ${name} runs after the count`, () => {
      const resp = all(init);
      deepStrictEqual(keys(resp), want);
      strictEqual(resp.count, 4n);
    });
  }
  await t.step("filter then limit", () => {
    const resp = all({ minCreateRevision: 3n, limit: 1n });
    deepStrictEqual(keys(resp), ["b"]);
    strictEqual(resp.more, true);
    strictEqual(resp.count, 4n);
  });
  await t.step("election-style: max create revision, newest first, limit 1", () => {
    const resp = all({
      maxCreateRevision: 5n,
      sortOrder: Order.DESCEND,
      sortTarget: SortBy.CREATE,
      limit: 1n,
    });
    deepStrictEqual(keys(resp), ["c"]);
  });
  await t.step("revision errors", () => {
    throwsEtcd(
      () => applyRange(view(), rangeReq("a", undefined, { revision: 8n })),
      Errors.futureRev,
    );
    throwsEtcd(
      () => applyRange(view(), rangeReq("a", undefined, { revision: 1n << 62n })),
      Errors.futureRev,
    );
    applyCompaction(deps.store, create(CompactionRequestSchema, { revision: 5n }));
    throwsEtcd(
      () => applyRange(view(), rangeReq("a", undefined, { revision: 4n })),
      Errors.compacted,
    );
    strictEqual(applyRange(view(), rangeReq("a", undefined, { revision: 5n })).count, 1n);
    // A negative revision outside a txn reads the current revision, as etcd does.
    strictEqual(applyRange(view(), rangeReq("a", undefined, { revision: -5n })).count, 1n);
  });
  deps.close();
});

Deno.test("put", async (t) => {
  await t.step("revisions, prev_kv and leases", () => {
    const deps = setup([7n]);
    const first = applyPut(deps, putReq("a", "1", { prevKv: true }));
    strictEqual(first.response.header?.revision, 2n);
    strictEqual(first.response.prevKv, undefined);
    deepStrictEqual(first.events.map((e) => e.type), ["put"]);
    const second = applyPut(deps, putReq("a", "2", { prevKv: true, lease: 7n }));
    strictEqual(second.response.header?.revision, 3n);
    strictEqual(show(second.response.prevKv!), "a=1@2/2/1");
    strictEqual(second.events[0].prevKv?.modRevision, 2);
    const third = applyPut(deps, putReq("a", "3"));
    strictEqual(third.response.prevKv, undefined);
    deepStrictEqual(applyRange(deps.store.read(), rangeReq("a")).kvs.map(show), ["a=3@2/4/3"]);
    deps.close();
  });
  await t.step("an unknown lease writes nothing", () => {
    const deps = setup([7n]);
    throwsEtcd(() => applyPut(deps, putReq("a", "1", { lease: 8n })), Errors.leaseNotFound);
    strictEqual(deps.store.currentRev, 1);
    deps.close();
  });
  await t.step("ignore_value keeps the value, ignore_lease the lease", () => {
    const deps = setup([7n, 9n]);
    put(deps, "a", "1", 7n);
    applyPut(deps, putReq("a", "", { ignoreValue: true, lease: 9n }));
    deepStrictEqual(applyRange(deps.store.read(), rangeReq("a")).kvs.map(show), ["a=1@2/3/2+9"]);
    applyPut(deps, putReq("a", "2", { ignoreLease: true }));
    deepStrictEqual(applyRange(deps.store.read(), rangeReq("a")).kvs.map(show), ["a=2@2/4/3+9"]);
    deps.close();
  });
  await t.step("ignore_* on a missing key fails without a new revision", () => {
    const deps = setup();
    throwsEtcd(() => applyPut(deps, putReq("a", "", { ignoreValue: true })), Errors.keyNotFound);
    throwsEtcd(() => applyPut(deps, putReq("a", "v", { ignoreLease: true })), Errors.keyNotFound);
    strictEqual(deps.store.currentRev, 1);
    strictEqual(put(deps, "b", "1").response.header?.revision, 2n);
    deps.close();
  });
});

Deno.test("delete range", async (t) => {
  const deps = setup();
  for (const k of ["a", "b", "c", "d"]) put(deps, k, k); // 2..5
  await t.step("deletes a range with prev_kvs", () => {
    const { response, events } = applyDeleteRange(
      deps,
      create(DeleteRangeRequestSchema, { key: utf8("a"), rangeEnd: utf8("c"), prevKv: true }),
    );
    strictEqual(response.deleted, 2n);
    deepStrictEqual(response.prevKvs.map(show), ["a=a@2/2/1", "b=b@3/3/1"]);
    strictEqual(response.header?.revision, 6n);
    deepStrictEqual(events.map((e) => `${e.type} ${fromUtf8(e.kv.key)}@${e.kv.modRevision}`), [
      "delete a@6",
      "delete b@6",
    ]);
  });
  await t.step("without prev_kv the response lists none", () => {
    const { response } = applyDeleteRange(
      deps,
      create(DeleteRangeRequestSchema, { key: utf8("c") }),
    );
    strictEqual(response.deleted, 1n);
    deepStrictEqual(response.prevKvs, []);
  });
  await t.step("deleting nothing keeps the revision", () => {
    const { response, events } = applyDeleteRange(
      deps,
      create(DeleteRangeRequestSchema, { key: utf8("zz"), rangeEnd: ZERO }),
    );
    strictEqual(response.deleted, 0n);
    strictEqual(response.header?.revision, 7n);
    deepStrictEqual(events, []);
    strictEqual(deps.store.currentRev, 7);
  });
  await t.step("from key", () => {
    const { response } = applyDeleteRange(
      deps,
      create(DeleteRangeRequestSchema, { key: utf8("a"), rangeEnd: ZERO }),
    );
    strictEqual(response.deleted, 1n);
    strictEqual(applyRange(deps.store.read(), rangeReq(ZERO, ZERO)).count, 0n);
  });
  deps.close();
});

// --- txn helpers ---

function op(init: MessageInitShape<typeof RequestOpSchema>["request"]): RequestOp {
  return create(RequestOpSchema, { request: init });
}
const opPut = (key: string, value: string, init: MessageInitShape<typeof PutRequestSchema> = {}) =>
  op({ case: "requestPut", value: { key: utf8(key), value: utf8(value), ...init } });
const opGet = (key: string, init: MessageInitShape<typeof RangeRequestSchema> = {}) =>
  op({ case: "requestRange", value: { key: utf8(key), ...init } });
const opDel = (key: string, end?: Uint8Array) =>
  op({ case: "requestDeleteRange", value: { key: utf8(key), rangeEnd: end } });
const opTxn = (t: TxnRequest) => op({ case: "requestTxn", value: t });

function txn(compare: Compare[], success: RequestOp[], failure: RequestOp[] = []): TxnRequest {
  return create(TxnRequestSchema, { compare, success, failure });
}

function cmp(
  key: string,
  target: Target,
  result: Result,
  value: bigint | string,
  rangeEnd?: string,
): Compare {
  const union = target === Target.VALUE
    ? { case: "value" as const, value: utf8(value as string) }
    : target === Target.VERSION
    ? { case: "version" as const, value: value as bigint }
    : target === Target.CREATE
    ? { case: "createRevision" as const, value: value as bigint }
    : target === Target.MOD
    ? { case: "modRevision" as const, value: value as bigint }
    : { case: "lease" as const, value: value as bigint };
  return create(CompareSchema, {
    key: utf8(key),
    target,
    result,
    targetUnion: union,
    rangeEnd: rangeEnd === undefined ? undefined : utf8(rangeEnd),
  });
}

Deno.test("txn compares", async (t) => {
  const deps = setup([5n]);
  put(deps, "a", "m", 5n); // 2: a create 2 mod 2 ver 1 lease 5
  put(deps, "b", "x"); // 3
  put(deps, "b", "y"); // 4: b create 3 mod 4 ver 2
  const cases: [string, Compare, boolean][] = [
    ["version equal", cmp("b", Target.VERSION, Result.EQUAL, 2n), true],
    ["version greater", cmp("b", Target.VERSION, Result.GREATER, 1n), true],
    ["version less", cmp("b", Target.VERSION, Result.LESS, 2n), false],
    ["version not equal", cmp("b", Target.VERSION, Result.NOT_EQUAL, 2n), false],
    ["create equal", cmp("b", Target.CREATE, Result.EQUAL, 3n), true],
    ["mod equal", cmp("b", Target.MOD, Result.EQUAL, 4n), true],
    ["mod less", cmp("b", Target.MOD, Result.LESS, 5n), true],
    ["value equal", cmp("a", Target.VALUE, Result.EQUAL, "m"), true],
    ["value greater", cmp("a", Target.VALUE, Result.GREATER, "l"), true],
    ["value less", cmp("a", Target.VALUE, Result.LESS, "mm"), true],
    ["value not equal", cmp("a", Target.VALUE, Result.NOT_EQUAL, "m"), false],
    ["lease equal", cmp("a", Target.LEASE, Result.EQUAL, 5n), true],
    ["lease of a key without one", cmp("b", Target.LEASE, Result.EQUAL, 0n), true],
    // A missing key: version, create, mod and lease compare as 0; a value compare fails.
    ["missing key version == 0", cmp("zz", Target.VERSION, Result.EQUAL, 0n), true],
    ["missing key create == 0", cmp("zz", Target.CREATE, Result.EQUAL, 0n), true],
    ["missing key mod < 1", cmp("zz", Target.MOD, Result.LESS, 1n), true],
    ["missing key lease == 0", cmp("zz", Target.LEASE, Result.EQUAL, 0n), true],
    ["missing key value != x", cmp("zz", Target.VALUE, Result.NOT_EQUAL, "x"), false],
    ["missing key value == ''", cmp("zz", Target.VALUE, Result.EQUAL, ""), false],
    // With a range end every key in the range must satisfy the compare.
    ["range: all versions > 0", cmp("a", Target.VERSION, Result.GREATER, 0n, "c"), true],
    ["range: all versions == 2", cmp("a", Target.VERSION, Result.EQUAL, 2n, "c"), false],
    ["range: all values > 'a'", cmp("a", Target.VALUE, Result.GREATER, "a", "c"), true],
    ["empty range: version == 0", cmp("x", Target.VERSION, Result.EQUAL, 0n, "y"), true],
    ["from key", cmp("a", Target.MOD, Result.GREATER, 1n, "\0"), true],
  ];
  for (const [name, compare, want] of cases) {
    await t.step(name, () => {
      strictEqual(applyTxnReadOnly(deps.store.read(), txn([compare], [])).succeeded, want);
    });
  }
  await t.step("a compare whose value field does not match the target compares with 0", () => {
    const c = cmp("b", Target.VERSION, Result.GREATER, 0n);
    c.targetUnion = { case: "modRevision", value: 100n };
    strictEqual(applyTxnReadOnly(deps.store.read(), txn([c], [])).succeeded, true);
  });
  await t.step("every compare must hold", () => {
    const ok = cmp("b", Target.VERSION, Result.EQUAL, 2n);
    const bad = cmp("b", Target.VERSION, Result.EQUAL, 3n);
    strictEqual(applyTxnReadOnly(deps.store.read(), txn([ok, ok], [])).succeeded, true);
    strictEqual(applyTxnReadOnly(deps.store.read(), txn([ok, bad], [])).succeeded, false);
  });
  deps.close();
});

function responseShape(resp: TxnResponse): unknown {
  return {
    revision: resp.header?.revision,
    succeeded: resp.succeeded,
    responses: resp.responses.map((r) => {
      const v = r.response;
      switch (v.case) {
        case "responseRange":
          return { range: v.value.kvs.map(show), rev: v.value.header?.revision };
        case "responsePut":
          return { put: v.value.header?.revision };
        case "responseDeleteRange":
          return { deleted: v.value.deleted, rev: v.value.header?.revision };
        case "responseTxn":
          return { txn: responseShape(v.value) };
        default:
          return {};
      }
    }),
  };
}

Deno.test("txn execution", async (t) => {
  await t.step("branches, nesting and one revision for everything", () => {
    const deps = setup();
    put(deps, "x", "0"); // 2
    const req = txn([cmp("x", Target.VALUE, Result.EQUAL, "0")], [
      opPut("a", "1"),
      opGet("a"),
      opTxn(txn([cmp("a", Target.VERSION, Result.EQUAL, 0n)], [opPut("b", "then")], [
        opPut("b", "else"),
      ])),
      opDel("x"),
      opGet("x"),
    ], [opPut("never", "1")]);
    const { response, events } = applyTxn(deps, req);
    deepStrictEqual(responseShape(response), {
      revision: 3n,
      succeeded: true,
      responses: [
        { put: 3n },
        { range: ["a=1@3/3/1"], rev: 3n },
        // The nested compare saw the state before the txn (a missing), as etcd does, and
        // nested txn responses carry an empty header.
        { txn: { revision: 0n, succeeded: true, responses: [{ put: 3n }] } },
        { deleted: 1n, rev: 3n },
        { range: [], rev: 3n },
      ],
    });
    const nested = response.responses[2].response;
    strictEqual(nested.case === "responseTxn" && nested.value.header !== undefined, true);
    deepStrictEqual(events.map((e) => `${e.type} ${fromUtf8(e.kv.key)}`), [
      "put a",
      "put b",
      "delete x",
    ]);
    strictEqual(fromUtf8(applyRange(deps.store.read(), rangeReq("b")).kvs[0].value), "then");
    strictEqual(deps.store.currentRev, 3);
    deps.close();
  });

  await t.step("the failure branch", () => {
    const deps = setup();
    const { response } = applyTxn(
      deps,
      txn([cmp("x", Target.VERSION, Result.GREATER, 0n)], [opPut("a", "1")], [
        opPut("b", "1"),
        opGet("a"),
      ]),
    );
    deepStrictEqual(responseShape(response), {
      revision: 2n,
      succeeded: false,
      responses: [{ put: 2n }, { range: [], rev: 2n }],
    });
    deps.close();
  });

  await t.step("a branch without writes keeps the revision", () => {
    const deps = setup();
    put(deps, "a", "1"); // 2
    const reads = applyTxn(deps, txn([], [opGet("a")], [opPut("b", "1")]));
    deepStrictEqual(responseShape(reads.response), {
      revision: 2n,
      succeeded: true,
      responses: [{ range: ["a=1@2/2/1"], rev: 2n }],
    });
    deepStrictEqual(reads.events, []);
    const noop = applyTxn(deps, txn([], [opDel("nothing")]));
    deepStrictEqual(responseShape(noop.response), {
      revision: 2n,
      succeeded: true,
      responses: [{ deleted: 0n, rev: 2n }],
    });
    strictEqual(deps.store.currentRev, 2);
    deps.close();
  });

  await t.step("a range at the revision before the txn does not see its writes", () => {
    const deps = setup();
    put(deps, "a", "1"); // 2
    const { response } = applyTxn(deps, txn([], [opPut("a", "2"), opGet("a", { revision: 2n })]));
    deepStrictEqual(responseShape(response), {
      revision: 3n,
      succeeded: true,
      responses: [{ put: 3n }, { range: ["a=1@2/2/1"], rev: 3n }],
    });
    deps.close();
  });

  await t.step("ignore_value in a txn", () => {
    const deps = setup();
    put(deps, "a", "kept"); // 2
    applyTxn(deps, txn([], [opPut("a", "", { ignoreValue: true, prevKv: true })]));
    strictEqual(fromUtf8(applyRange(deps.store.read(), rangeReq("a")).kvs[0].value), "kept");
    deps.close();
  });

  await t.step("put prev_kv and delete prev_kv inside a txn", () => {
    const deps = setup();
    put(deps, "a", "1"); // 2
    put(deps, "b", "1"); // 3
    const { response } = applyTxn(
      deps,
      txn([], [
        opPut("a", "2", { prevKv: true }),
        op({ case: "requestDeleteRange", value: { key: utf8("b"), prevKv: true } }),
      ]),
    );
    const [p, d] = response.responses.map((r) => r.response);
    strictEqual(p.case === "responsePut" && show(p.value.prevKv!), "a=1@2/2/1");
    strictEqual(d.case === "responseDeleteRange" && show(d.value.prevKvs[0]), "b=1@3/3/1");
    deps.close();
  });
});

Deno.test("txn checks run before any write", async (t) => {
  const cases: [string, TxnRequest, EtcdError][] = [
    [
      "ignore_value on a missing key after other writes",
      txn([], [opPut("a", "1"), opPut("missing", "", { ignoreValue: true })]),
      Errors.keyNotFound,
    ],
    [
      "ignore_lease on a missing key in a nested txn",
      txn([], [opPut("a", "1"), opTxn(txn([], [opPut("missing", "", { ignoreLease: true })]))]),
      Errors.keyNotFound,
    ],
    [
      // The check sees the state before the txn, so a key the txn creates does not count.
      "ignore_value on a key created earlier in the same txn",
      txn([], [opPut("new", "1"), opTxn(txn([], [opPut("new", "", { ignoreValue: true })]))]),
      Errors.keyNotFound,
    ],
    [
      "an unknown lease",
      txn([], [opPut("a", "1"), opPut("b", "1", { lease: 99n })]),
      Errors.leaseNotFound,
    ],
    [
      "a future revision",
      txn([], [opPut("a", "1"), opGet("x", { revision: 100n })]),
      Errors.futureRev,
    ],
    // Inside a txn etcd checks a negative revision against the compact revision.
    [
      "a negative revision",
      txn([], [opPut("a", "1"), opGet("x", { revision: -5n })]),
      Errors.compacted,
    ],
    [
      // etcd lets a from-key delete and a put in its range share a txn, then panics when the
      // put needs the deleted key; we refuse such a txn up front.
      "ignore_value on a key a from-key delete removed earlier",
      txn([], [opDel("e", ZERO), opPut("exists", "", { ignoreValue: true })]),
      Errors.keyNotFound,
    ],
  ];
  for (const [name, req, error] of cases) {
    await t.step(name, () => {
      const deps = setup([7n]);
      put(deps, "exists", "1"); // 2
      throwsEtcd(() => applyTxn(deps, req), error);
      strictEqual(deps.store.currentRev, 2);
      deepStrictEqual(keys(applyRange(deps.store.read(), rangeReq(ZERO, ZERO))), ["exists"]);
      deps.close();
    });
  }
  await t.step("checks only the branch taken", () => {
    const deps = setup();
    const { response } = applyTxn(
      deps,
      txn([], [opPut("a", "1")], [opPut("missing", "", { ignoreValue: true })]),
    );
    strictEqual(response.succeeded, true);
    deps.close();
  });
  await t.step("an ignore_value put before a from-key delete is fine", () => {
    const deps = setup();
    put(deps, "exists", "1");
    const { response } = applyTxn(
      deps,
      txn([], [opPut("exists", "", { ignoreValue: true }), opDel("e", ZERO)]),
    );
    strictEqual(response.header?.revision, 3n);
    strictEqual(applyRange(deps.store.read(), rangeReq(ZERO, ZERO)).count, 0n);
    deps.close();
  });
});

Deno.test("read-only txns", async (t) => {
  const deps = setup();
  put(deps, "a", "1"); // 2
  const readOnly = txn([cmp("a", Target.VERSION, Result.EQUAL, 1n)], [opGet("a")], [opGet("b")]);
  await t.step("classification", () => {
    strictEqual(isTxnReadOnly(readOnly), true);
    strictEqual(isTxnReadOnly(txn([], [opGet("a")], [opPut("b", "1")])), false);
    strictEqual(isTxnReadOnly(txn([], [opDel("a")])), false);
    // A nested txn counts as a write even if it only reads, as in etcd.
    strictEqual(isTxnReadOnly(txn([], [opTxn(txn([], [opGet("a")]))])), false);
    strictEqual(isTxnReadOnly(txn([], [])), true);
    strictEqual(isTxnSerializable(readOnly), false);
    strictEqual(isTxnSerializable(txn([], [opGet("a", { serializable: true })])), true);
  });
  await t.step("served from a view", () => {
    deepStrictEqual(responseShape(applyTxnReadOnly(deps.store.read(), readOnly)), {
      revision: 2n,
      succeeded: true,
      responses: [{ range: ["a=1@2/2/1"], rev: 2n }],
    });
  });
  await t.step("the same result through applyTxn, without a new revision", () => {
    const { response, events } = applyTxn(deps, readOnly);
    deepStrictEqual(
      responseShape(response),
      responseShape(applyTxnReadOnly(deps.store.read(), readOnly)),
    );
    deepStrictEqual(events, []);
    strictEqual(deps.store.currentRev, 2);
  });
  await t.step("revision checks", () => {
    throwsEtcd(
      () => applyTxnReadOnly(deps.store.read(), txn([], [opGet("a", { revision: 3n })])),
      Errors.futureRev,
    );
    throwsEtcd(
      () => applyTxnReadOnly(deps.store.read(), txn([], [opGet("a", { revision: -5n })])),
      Errors.compacted,
    );
    // Never compacted, the compact revision is -1: -1 itself is not below it.
    strictEqual(
      applyTxnReadOnly(deps.store.read(), txn([], [opGet("a", { revision: -1n })])).succeeded,
      true,
    );
  });
  deps.close();
});

Deno.test("compaction", async (t) => {
  const deps = setup();
  const compact = (revision: bigint) =>
    applyCompaction(deps.store, create(CompactionRequestSchema, { revision }));
  await t.step("revision 0 on a fresh store, as etcd allows, then not again", () => {
    strictEqual(compact(0n).header?.revision, 1n);
    throwsEtcd(() => compact(0n), Errors.compacted);
  });
  await t.step("the header carries the current revision", () => {
    for (let i = 0; i < 5; i++) put(deps, "a", `${i}`); // 2..6
    strictEqual(compact(4n).header?.revision, 6n);
    throwsEtcd(
      () => applyRange(deps.store.read(), rangeReq("a", undefined, { revision: 3n })),
      Errors.compacted,
    );
  });
  await t.step("errors", () => {
    throwsEtcd(() => compact(4n), Errors.compacted);
    throwsEtcd(() => compact(-3n), Errors.compacted);
    throwsEtcd(() => compact(7n), Errors.futureRev);
    throwsEtcd(() => compact(1n << 63n), Errors.futureRev);
  });
  await t.step("a prefix range stays readable at the compact revision", () => {
    const resp = applyRange(
      deps.store.read(),
      rangeReq("a", prefixEnd(utf8("a")), { revision: 4n }),
    );
    deepStrictEqual(resp.kvs.map(show), ["a=2@2/4/3"]);
  });
  deps.close();
});

// --- differential test against a real etcd 3.4 ---

const ETCD_BIN = "/usr/bin/etcd";
const etcdInstalled = (() => {
  try {
    return Deno.statSync(ETCD_BIN).isFile;
  } catch {
    return false;
  }
})();

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Starts a single-member etcd on loopback in a temp dir; `stop` kills it and cleans up. */
async function startEtcd(): Promise<{ url: string; stop(): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "apply_kv_etcd_" });
  const client = `http://127.0.0.1:${freePort()}`;
  const peer = `http://127.0.0.1:${freePort()}`;
  const child = new Deno.Command(ETCD_BIN, {
    args: [
      "--name=diff",
      `--data-dir=${dir}/data`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=diff=${peer}`,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
    await Deno.remove(dir, { recursive: true });
  };
  const deadline = Date.now() + 15_000;
  for (let attempt = 0; attempt < 300 && Date.now() < deadline; attempt++) {
    try {
      const resp = await fetch(`${client}/health`);
      const body = await resp.json();
      if (body.health === "true") return { url: client, stop };
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await stop();
  throw new Error("etcd did not become healthy");
}

Deno.test({
  name: "the same requests get the same answers as etcd 3.4",
  ignore: !etcdInstalled,
  async fn() {
    const etcd = await startEtcd();
    const deps = setup();
    const store = deps.store;
    type Kind = [
      DescMessage,
      DescMessage,
      (req: never) => Message,
      (req: never) => void,
    ];
    const kinds: Record<string, Kind> = {
      range: [
        RangeRequestSchema,
        RangeResponseSchema,
        (r: RangeRequest) => applyRange(store.read(), r),
        checkRangeRequest,
      ],
      put: [
        PutRequestSchema,
        PutResponseSchema,
        (r: PutRequest) => applyPut(deps, r).response,
        checkPutRequest,
      ],
      deleterange: [
        DeleteRangeRequestSchema,
        DeleteRangeResponseSchema,
        (r: DeleteRangeRequest) => applyDeleteRange(deps, r).response,
        checkDeleteRangeRequest,
      ],
      txn: [
        TxnRequestSchema,
        TxnResponseSchema,
        (r: TxnRequest) => applyTxn(deps, r).response,
        (r: TxnRequest) => checkTxnRequest(r),
      ],
      compaction: [
        CompactionRequestSchema,
        CompactionResponseSchema,
        (r: CompactionRequest) => applyCompaction(store, r),
        () => {},
      ],
    };
    const ours = (path: string, body: JsonObject): JsonValue => {
      const [reqSchema, respSchema, apply, check] = kinds[path];
      const req = fromJson(reqSchema, body) as never;
      try {
        check(req);
        return toJson(respSchema, apply(req), { useProtoFieldName: true });
      } catch (err) {
        if (err instanceof EtcdError) return { error: err.message };
        throw err;
      }
    };
    const theirs = async (path: string, body: JsonObject): Promise<JsonValue> => {
      const resp = await fetch(`${etcd.url}/v3/kv/${path}`, {
        method: "POST",
        body: JSON.stringify(body),
      });
      const json = await resp.json();
      if (json.error !== undefined) return { error: json.error };
      // Cluster id, member id and term are the server's part of the header.
      if (json.header !== undefined) json.header = { revision: json.header.revision };
      return json;
    };
    const sorted = (value: unknown): string =>
      JSON.stringify(
        value,
        (_k, v) =>
          v !== null && typeof v === "object" && !Array.isArray(v)
            ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)))
            : v,
      );
    const mismatches: string[] = [];
    let total = 0;
    const check = async (path: string, body: JsonObject) => {
      total++;
      const want = sorted(await theirs(path, body));
      const got = sorted(ours(path, body));
      if (want !== got) {
        mismatches.push(`${path} ${JSON.stringify(body)}\n  etcd: ${want}\n  ours: ${got}`);
      }
    };
    try {
      await differentialScenario(check);
    } finally {
      deps.close();
      await etcd.stop();
    }
    deepStrictEqual(mismatches, []);
    strictEqual(total > 400, true);
  },
});

/** Base64 of a latin1 string, for the gateway's JSON. */
function b64(s: string): string {
  return btoa(s);
}

/** A scripted workload run against both etcd and our appliers. */
async function differentialScenario(
  check: (path: string, body: JsonObject) => Promise<void>,
): Promise<void> {
  const put = (k: string, v: string, extra: JsonObject = {}) =>
    check("put", { key: b64(k), value: b64(v), ...extra });
  const get = (k: string, extra: JsonObject = {}) => check("range", { key: b64(k), ...extra });
  const del = (k: string, extra: JsonObject = {}) =>
    check("deleterange", { key: b64(k), ...extra });
  const compare = (
    key: string,
    target: string,
    result: string,
    field: string,
    value: string,
    extra: JsonObject = {},
  ): JsonObject => ({ key: b64(key), target, result, [field]: value, ...extra });
  const txn = (c: JsonObject[], success: JsonObject[], failure: JsonObject[] = []) =>
    check("txn", { compare: c, success, failure });
  const P = (k: string, v: string, extra: JsonObject = {}) => ({
    request_put: { key: b64(k), value: b64(v), ...extra },
  });
  const G = (k: string, extra: JsonObject = {}) => ({ request_range: { key: b64(k), ...extra } });
  const D = (k: string, extra: JsonObject = {}) => ({
    request_delete_range: { key: b64(k), ...extra },
  });
  const T = (c: JsonObject[], success: JsonObject[], failure: JsonObject[] = []) => ({
    request_txn: { compare: c, success, failure },
  });
  const l = b64("l");

  for (let i = 0; i < 6; i++) await put(`k${i}`, `v${(i * 7) % 5}`);
  await put("k2", "again", { prev_kv: true });
  await put("k3", "x", { prev_kv: true });
  await put("k3", "", { ignore_value: true, prev_kv: true });
  await put("nokey", "", { ignore_value: true });
  await put("nokey", "", { ignore_lease: true });
  await put("", "x");
  await put("k1", "v", { ignore_value: true });
  await put("k1", "", { lease: "5" });
  await del("k4", { prev_kv: true });
  await del("k4", { prev_kv: true });
  await put("k4", "reborn");
  await put("k\xff", "high");
  await put("\xff\xff", "top");
  for (const sort_order of ["NONE", "ASCEND", "DESCEND"]) {
    for (const sort_target of ["KEY", "VERSION", "CREATE", "MOD", "VALUE"]) {
      const sort = { range_end: l, sort_order, sort_target };
      await get("k", sort);
      await get("k", { ...sort, limit: "2" });
      await get("k", { ...sort, limit: "2", keys_only: true });
    }
  }
  for (const f of ["min_mod_revision", "max_mod_revision", "min_create_revision"]) {
    for (const v of ["3", "5", "8", "-1"]) {
      await get("k", { range_end: l, [f]: v });
      await get("k", { range_end: l, [f]: v, limit: "1" });
      await get("k", { range_end: l, [f]: v, count_only: true });
    }
  }
  for (const v of ["3", "5", "8", "-1"]) await get("k", { range_end: l, max_create_revision: v });
  for (let rev = 0; rev <= 16; rev++) {
    await get("\0", { range_end: b64("\0"), revision: `${rev}` });
    await get("k", { range_end: b64("\0"), revision: `${rev}`, limit: "3" });
    await get("k2", { revision: `${rev}` });
  }
  await get("\xff", { range_end: b64("\0") });
  await get("k", { range_end: b64("a") });
  await get("k", { count_only: true, range_end: b64("\0") });
  await get("k", { limit: "-3", range_end: b64("\0") });
  await get("");

  const fields: Record<string, string> = {
    VERSION: "version",
    CREATE: "create_revision",
    MOD: "mod_revision",
    LEASE: "lease",
  };
  const results = ["EQUAL", "GREATER", "LESS", "NOT_EQUAL"];
  for (const [target, field] of Object.entries(fields)) {
    for (const result of results) {
      for (const v of ["0", "2", "9"]) {
        await txn([compare("k2", target, result, field, v)], [G("k2")], [G("k1")]);
        await txn([compare("missing", target, result, field, v)], [G("k2")], [G("k1")]);
        await txn([compare("k", target, result, field, v, { range_end: l })], [G("k2")], [G("k1")]);
      }
    }
  }
  for (const result of results) {
    for (const v of ["", "again", "v", "zzz"]) {
      const value = b64(v);
      await txn([compare("k2", "VALUE", result, "value", value)], [G("k2")], [G("k1")]);
      await txn([compare("missing", "VALUE", result, "value", value)], [G("k2")], [G("k1")]);
      await txn([compare("k", "VALUE", result, "value", value, { range_end: l })], [G("k2")], [
        G("k1"),
      ]);
    }
  }
  await txn([], [
    P("t1", "a"),
    G("t1"),
    T([compare("t1", "VERSION", "EQUAL", "version", "0")], [P("t2", "then"), G("t2")], [
      P("t2", "else"),
    ]),
    D("k0", { prev_kv: true }),
    G("k0"),
  ]);
  await txn([], [G("k1"), T([], [G("k2")]), D("nothing")]);
  await txn([], [G("k1", { revision: "3" }), G("k1", { revision: "1000" })]);
  await txn([], [P("z", "1"), G("k1", { revision: "-5" })]);
  await txn([], [P("z", "1"), P("z", "2")]);
  await txn([], [P("z", "1"), D("y", { range_end: b64("zz") })]);
  await txn([], [P("z", "1", { lease: "77" })]);
  await txn([], [P("z", "", { ignore_value: true })]);
  await txn([], [
    P("t1", "", { ignore_value: true, prev_kv: true }),
    P("t2", "", { ignore_lease: true, prev_kv: true }),
  ]);
  await txn([], [{}]);
  await txn([compare("", "VERSION", "EQUAL", "version", "0")], []);
  await txn([], []);
  await check("compaction", { revision: "5" });
  await check("compaction", { revision: "5" });
  await check("compaction", { revision: "4" });
  await check("compaction", { revision: "100000" });
  for (let rev = 3; rev <= 8; rev++) {
    await get("\0", { range_end: b64("\0"), revision: `${rev}` });
    await txn([], [G("k1", { revision: `${rev}` })]);
  }
  await check("compaction", { revision: "0" });
  await check("compaction", { revision: "-1" });
  await put("e", "");
  await get("e");
  await txn([compare("e", "VALUE", "EQUAL", "value", "")], [G("e")], [G("k1")]);
  await del("k", { range_end: b64("k3"), prev_kv: true });
  await del("t", { range_end: b64("\0") });
  await put("k1", "back");
  await txn([compare("k0", "CREATE", "EQUAL", "create_revision", "0")], [P("k0", "x")], [G("k0")]);
  await del("\0", { range_end: b64("\0"), prev_kv: true });
  await get("\0", { range_end: b64("\0") });
  await put("p/a", "1");
  await put("p/b", "2");
  await put("q", "3");
  await txn([compare("p/", "MOD", "GREATER", "mod_revision", "0", { range_end: b64("p0") })], [
    D("p/", { range_end: b64("p0"), prev_kv: true }),
    P("q", "4", { prev_kv: true }),
  ]);
  await check("compaction", { revision: "45" });
  for (let rev = 44; rev <= 52; rev++) {
    await get("\0", { range_end: b64("\0"), revision: `${rev}` });
  }
}
