import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { utf8 } from "../internal/bytes.ts";
import { MvccStore } from "../mvcc/mod.ts";
import {
  AlarmMemberSchema,
  AlarmType,
  PutRequestSchema,
  TxnRequestSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { AlarmStore, BackendQuota, formatAlarm, quotaCost } from "./alarms.ts";

/** A member ID with the top bit set: it must survive SQLite's signed integers. */
const bigMember = 0x886b03c4ae679a15n;

Deno.test("alarm store: activate, list, deactivate", () => {
  const store = MvccStore.open(":memory:");
  try {
    const alarms = new AlarmStore(store);
    strictEqual(alarms.size, 0);
    const raised = alarms.activate(bigMember, AlarmType.NOSPACE);
    strictEqual(
      alarms.activate(bigMember, AlarmType.NOSPACE),
      raised,
      "activating twice keeps one",
    );
    alarms.activate(5n, AlarmType.NOSPACE);
    alarms.activate(7n, AlarmType.CORRUPT);
    alarms.activate(5n, AlarmType.NONE);
    deepStrictEqual(
      alarms.list().map((a) => [a.alarm, a.memberID]),
      [[AlarmType.NONE, 5n], [AlarmType.NOSPACE, 5n], [AlarmType.NOSPACE, bigMember], [
        AlarmType.CORRUPT,
        7n,
      ]],
    );
    deepStrictEqual(alarms.list(AlarmType.CORRUPT).map((a) => a.memberID), [7n]);
    strictEqual(alarms.has(AlarmType.NOSPACE), true);
    strictEqual(alarms.hasFor(bigMember, AlarmType.CORRUPT), false);
    strictEqual(alarms.deactivate(9n, AlarmType.NOSPACE), undefined, "nothing to clear");
    strictEqual(alarms.deactivate(5n, AlarmType.NOSPACE)?.memberID, 5n);
    strictEqual(alarms.has(AlarmType.NOSPACE), true, "another member's NOSPACE remains");
    alarms.deactivate(bigMember, AlarmType.NOSPACE);
    strictEqual(alarms.has(AlarmType.NOSPACE), false);
  } finally {
    store.close();
  }
});

Deno.test("alarm store: alarms survive a restart of the backend", async () => {
  const dir = await Deno.makeTempDir({ prefix: "alarms-" });
  try {
    const path = `${dir}/db`;
    const first = MvccStore.open(path);
    const alarms = new AlarmStore(first);
    alarms.activate(bigMember, AlarmType.NOSPACE);
    alarms.activate(3n, AlarmType.CORRUPT);
    alarms.deactivate(3n, AlarmType.CORRUPT);
    first.close();
    const second = MvccStore.open(path);
    const reloaded = new AlarmStore(second);
    deepStrictEqual(reloaded.list().map((a) => [a.memberID, a.alarm]), [[
      bigMember,
      AlarmType.NOSPACE,
    ]]);
    second.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("alarms print as etcdctl shows them", () => {
  strictEqual(
    formatAlarm(create(AlarmMemberSchema, { memberID: bigMember, alarm: AlarmType.NOSPACE })),
    "memberID:9829954754940738069 alarm:NOSPACE ",
  );
  strictEqual(
    formatAlarm(create(AlarmMemberSchema, { memberID: 5n, alarm: AlarmType.NONE })),
    "memberID:5 ",
  );
  strictEqual(
    formatAlarm(create(AlarmMemberSchema, { memberID: 5n, alarm: 9 as AlarmType })),
    "memberID:5 alarm:9 ",
  );
});

Deno.test("quota cost: etcd's estimates, nested puts included", () => {
  const put = (key: string, value: string) => ({
    request: {
      case: "requestPut" as const,
      value: create(PutRequestSchema, { key: utf8(key), value: utf8(value) }),
    },
  });
  const read = { request: { case: "requestRange" as const, value: {} } };
  strictEqual(quotaCost({ put: { key: utf8("k"), value: utf8("vv") } }), 256 + 3);
  strictEqual(quotaCost({ leaseGrant: {} }), 64);
  strictEqual(quotaCost({}), 0, "deletes, compaction, alarms cost nothing");
  // A txn costs its costlier branch: only one of them runs.
  strictEqual(
    quotaCost({
      txn: create(TxnRequestSchema, {
        success: [put("a", "1"), read],
        failure: [put("bb", "22"), put("c", "")],
      }),
    }),
    (256 + 4) + (256 + 1),
  );
  strictEqual(quotaCost({ txn: create(TxnRequestSchema, { success: [read] }) }), 0);
  const nested = create(TxnRequestSchema, {
    success: [{
      request: {
        case: "requestTxn",
        value: create(TxnRequestSchema, { failure: [put("n", "1")] }),
      },
    }],
  });
  strictEqual(quotaCost({ txn: nested }), 256 + 2);
});

Deno.test("backend quota: measured at refresh, estimated in between", () => {
  let size = 1000;
  const quota = new BackendQuota(2000, () => size);
  strictEqual(quota.admit(0), true, "free requests always pass");
  strictEqual(quota.admit(500), true);
  strictEqual(quota.estimatedBytes, 1500);
  strictEqual(quota.admit(500), false, "size + cost must stay below the quota, as etcd's check");
  strictEqual(quota.admit(499), true);
  size = 1200; // the batch committed; the file is smaller than the estimate
  quota.refresh();
  strictEqual(quota.estimatedBytes, 1200);
  strictEqual(quota.admit(700), true);
  const unlimited = new BackendQuota(Infinity, () => 1e12);
  strictEqual(unlimited.admit(1e9), true);
  throws(() => new BackendQuota(0, () => 0));
});
