import { deepStrictEqual, rejects, strictEqual, throws } from "node:assert/strict";
import type { HandlerContext } from "@connectrpc/connect";
import { KV, Maintenance, Watch } from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { Errors } from "./errors.ts";
import { guardLearner } from "./learner_guard.ts";

const ctx = {} as HandlerContext;

Deno.test("a learner serves Status and serializable ranges only, as etcd's", async () => {
  let learner = true;
  const kv = guardLearner(KV, {
    range: () => ({ count: 1n }),
    put: () => ({}),
  }, () => learner) as Record<string, (req: unknown, ctx: HandlerContext) => unknown>;
  deepStrictEqual(kv.range({ serializable: true }, ctx), { count: 1n });
  throws(() => kv.range({ serializable: false }, ctx), (e) => e === Errors.learnerNotSupported);
  throws(() => kv.put({}, ctx), (e) => e === Errors.learnerNotSupported);
  const maintenance = guardLearner(Maintenance, {
    status: () => ({ version: "3.4.23" }),
    defragment: () => ({}),
  }, () => learner) as Record<string, (req: unknown, ctx: HandlerContext) => unknown>;
  deepStrictEqual(maintenance.status({}, ctx), { version: "3.4.23" });
  throws(() => maintenance.defragment({}, ctx), (e) => e === Errors.learnerNotSupported);

  async function* events() {
    yield { watchId: 1n };
  }
  const watch = guardLearner(Watch, { watch: () => events() }, () => learner) as Record<
    string,
    (req: unknown, ctx: HandlerContext) => AsyncIterable<unknown>
  >;
  const drain = async (it: AsyncIterable<unknown>) => {
    const out: unknown[] = [];
    for await (const m of it) out.push(m);
    return out;
  };
  await rejects(drain(watch.watch({}, ctx)), (e) => e === Errors.learnerNotSupported);
  learner = false; // promoted: everything passes through untouched
  deepStrictEqual(await drain(watch.watch({}, ctx)), [{ watchId: 1n }]);
  strictEqual((kv.put({}, ctx) as object) !== undefined, true);
});
