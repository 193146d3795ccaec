import { deepStrictEqual } from "node:assert/strict";
import type { HandlerContext } from "@connectrpc/connect";
import { KV } from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { implementedMethods, wrapMethods } from "./service_methods.ts";

Deno.test("only implemented methods are walked and wrapped, each bound to its object", () => {
  const impl = {
    revision: 7n,
    range(this: { revision: bigint }) {
      return { header: { revision: this.revision } };
    },
  };
  deepStrictEqual([...implementedMethods(KV, impl)].map(([m]) => m.name), ["Range"]);
  const seen: string[] = [];
  const wrapped = wrapMethods(KV, impl, (method, call) => (request, context) => {
    seen.push(method.name);
    return call(request, context);
  }) as Record<string, (r: unknown, c: HandlerContext) => unknown>;
  deepStrictEqual(Object.keys(wrapped), ["range"]);
  deepStrictEqual(wrapped.range({}, {} as HandlerContext), { header: { revision: 7n } });
  deepStrictEqual(seen, ["Range"]);
});
