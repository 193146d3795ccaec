/**
 * Walking a service implementation method by method: the gRPC server registers each one, and
 * the metrics and learner guard wrap each one.
 *
 * @module
 */
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";

/** A service method's implementation, untyped. */
export type MethodImpl = (request: unknown, context: HandlerContext) => unknown;

/** The methods of `service` that `impl` implements, each bound to `impl`. */
export function* implementedMethods<T extends DescService>(
  service: T,
  impl: Partial<ServiceImpl<T>>,
): Generator<[DescMethod, MethodImpl]> {
  for (const method of service.methods) {
    const fn = (impl as Record<string, unknown>)[method.localName];
    if (typeof fn === "function") yield [method, fn.bind(impl) as MethodImpl];
  }
}

/** A copy of `impl` whose every method is `wrap(method, call)`. */
export function wrapMethods<T extends DescService>(
  service: T,
  impl: Partial<ServiceImpl<T>>,
  wrap: (method: DescMethod, call: MethodImpl) => MethodImpl,
): Partial<ServiceImpl<T>> {
  const wrapped: Record<string, MethodImpl> = {};
  for (const [method, call] of implementedMethods(service, impl)) {
    wrapped[method.localName] = wrap(method, call);
  }
  return wrapped as Partial<ServiceImpl<T>>;
}
