/**
 * Walking a service implementation method by method: the gRPC server registers each one, and
 * the metrics and learner guard wrap each one; and the one extension of a streaming method's
 * output that our gRPC server knows ({@linkcode takeReady}).
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

/**
 * The key of an optional method on a streaming method's output (an async iterable): it returns
 * the next response if one is ready now, without a promise, and undefined when the next one
 * must be awaited through the iterator as usual. Our gRPC server drains it after each awaited
 * response, so a watch stream that has a response for each of its many watches sends them in
 * one synchronous loop instead of one async iteration (several promises and microtasks) each.
 * Other consumers (the Connect router, the gateway) just iterate.
 */
export const takeReady: unique symbol = Symbol("takeReady");

/** An output that may have responses ready: see {@linkcode takeReady}. */
export interface ReadyResponses {
  /** The next response if one is ready now, else undefined (await the iterator then). */
  [takeReady]?: () => unknown;
}

/** `output`'s {@linkcode takeReady} method, bound, if it has one. */
export function readyTaker(output: unknown): (() => unknown) | undefined {
  const take = (output as ReadyResponses)[takeReady];
  return typeof take === "function" ? take.bind(output) : undefined;
}
