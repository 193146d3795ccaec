/**
 * etcd's learner rule: a learner member answers only Maintenance.Status and serializable
 * Range; every other RPC (and every stream) is refused with `etcdserver: rpc not supported for
 * learner`, so clients move on to a voting member.
 *
 * @module
 */
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { Errors } from "./errors.ts";
import { wrapMethods } from "./service_methods.ts";

/** The unary calls a learner serves (etcd's isRPCSupportedForLearner). */
function servedByLearner(method: DescMethod, request: unknown): boolean {
  if (method.parent.typeName === "etcdserverpb.Maintenance") return method.name === "Status";
  if (method.parent.typeName === "etcdserverpb.KV" && method.name === "Range") {
    return (request as { serializable?: boolean }).serializable === true;
  }
  return false;
}

/** A stream whose first read fails with the learner error. */
function refusedStream(): AsyncIterable<never> {
  return {
    [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(Errors.learnerNotSupported) }),
  };
}

/** Wraps each method of `impl` so that it refuses what a learner may not serve. */
export function guardLearner<T extends DescService>(
  service: T,
  impl: Partial<ServiceImpl<T>>,
  isLearner: () => boolean,
): Partial<ServiceImpl<T>> {
  return wrapMethods(
    service,
    impl,
    (method, call) =>
      method.methodKind === "unary"
        ? (request: unknown, context: HandlerContext) => {
          if (isLearner() && !servedByLearner(method, request)) throw Errors.learnerNotSupported;
          return call(request, context);
        }
        // Not a generator around the call: that would add an await per streamed message.
        : (request: unknown, context: HandlerContext) => {
          if (!isLearner()) return call(request, context);
          return refusedStream();
        },
  );
}
