/**
 * A lean gRPC server on our HTTP/2 streams (`h2/`). It serves the same service implementations
 * as the Connect router, with less machinery per call than connectNodeAdapter (no compat
 * request/response objects, no async-iterable pipeline for unary calls): the profile of the
 * put path was dominated by that machinery, not by our own work. It also words transport
 * errors exactly as grpc-go (etcd's server) does, since clients show those strings.
 *
 * Wire format (gRPC over HTTP/2): each message is a 5-byte prefix (compressed flag, 32-bit
 * big-endian length) and the protobuf bytes; the status goes in trailers.
 *
 * @module
 */
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import { readUint32, writeUint32 } from "../internal/bytes.ts";
import { decodeOptions } from "./codec.ts";
import type { HeaderField, RequestHeaders, ServerStream } from "./h2/mod.ts";
import { toConnectError } from "./errors.ts";
import { implementedMethods, type MethodImpl, readyTaker } from "./service_methods.ts";

/** Anything services can be registered on: our gRPC server and Connect's router alike. */
export interface ServiceRegistrar {
  // deno-lint-ignore no-explicit-any
  service<T extends DescService>(service: T, impl: ServiceImpl<T>): any;
}

interface Route {
  service: DescService;
  method: DescMethod;
  impl: MethodImpl;
}

/** Options of the gRPC server. */
export interface GrpcServerOptions {
  /** Largest request message accepted (etcd: --max-request-bytes + 512 KiB). */
  readMaxBytes: number;
  /**
   * Bytes of unfinished request messages held across all streams (default 256 MiB). Past it,
   * new bytes fail their call with RESOURCE_EXHAUSTED instead of growing memory without bound.
   */
  maxPendingBytes?: number;
  /** Told the size of each request message received and response message sent (metrics). */
  onMessageBytes?(direction: "received" | "sent", bytes: number): void;
  /**
   * Faster encoders of particular response messages, by type name (they must write what
   * `toBinary` writes); the rest use `toBinary`.
   */
  encoders?: ReadonlyMap<string, (message: never, headroom: number) => Uint8Array>;
}

const defaultMaxPendingBytes = 256 * 1024 * 1024;

/** A shared allowance of bytes, taken while buffered and given back once consumed. */
class ByteBudget {
  #used = 0;
  constructor(readonly maxBytes: number) {}

  take(n: number): boolean {
    if (this.#used + n > this.maxBytes) return false;
    this.#used += n;
    return true;
  }

  release(n: number): void {
    this.#used -= n;
  }
}

const prefixBytes = 5;
/** Frozen, so the connection encodes each once. */
const okHeaders: readonly HeaderField[] = Object.freeze([
  [":status", "200"],
  ["content-type", "application/grpc"],
]);
const okTrailers: readonly HeaderField[] = Object.freeze([["grpc-status", "0"]]);
/** A streaming call's request bytes held before the stream is paused. */
const maxBufferedRequestBytes = 1024 * 1024;

/** gRPC's percent-encoding of grpc-message: printable ASCII except '%' stays as is. */
function encodeGrpcMessage(message: string): string {
  const bytes = new TextEncoder().encode(message);
  let out = "";
  for (const b of bytes) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25
      ? String.fromCharCode(b)
      : "%" + b.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/** Writes a gRPC message prefix (not compressed, big-endian length) at the start of `out`. */
function writePrefix(out: Uint8Array, length: number): void {
  out[0] = 0;
  writeUint32(out, 1, length);
}

function envelope(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(prefixBytes + message.length);
  writePrefix(out, message.length);
  out.set(message, prefixBytes);
  return out;
}

/** Splits a byte stream into gRPC messages, checking each length before buffering it. */
class EnvelopeReader {
  #buffered: Uint8Array[] = [];
  #bufferedBytes = 0;
  readonly #readMaxBytes: number;
  readonly #budget: ByteBudget;

  constructor(readMaxBytes: number, budget: ByteBudget) {
    this.#readMaxBytes = readMaxBytes;
    this.#budget = budget;
  }

  push(chunk: Uint8Array): void {
    if (!this.#budget.take(chunk.length)) {
      throw new ConnectError(
        "grpc: server holds too many unfinished request bytes",
        Code.ResourceExhausted,
      );
    }
    this.#buffered.push(chunk);
    this.#bufferedBytes += chunk.length;
  }

  /** Gives back every buffered byte (the call ended). */
  dispose(): void {
    this.#budget.release(this.#bufferedBytes);
    this.#buffered = [];
    this.#bufferedBytes = 0;
  }

  get pendingBytes(): number {
    return this.#bufferedBytes;
  }

  /** The next complete message, null when more bytes are needed; throws for bad frames. */
  next(): Uint8Array | null {
    if (this.#bufferedBytes < prefixBytes) return null;
    const head = this.#peek(prefixBytes);
    const length = readUint32(head, 1);
    if (length > this.#readMaxBytes) {
      throw new ConnectError(
        `grpc: received message larger than max (${length} vs. ${this.#readMaxBytes})`,
        Code.ResourceExhausted,
      );
    }
    if (head[0] !== 0) {
      throw new ConnectError(
        "grpc: compressed flag set with identity or empty encoding",
        Code.Internal,
      );
    }
    if (this.#bufferedBytes < prefixBytes + length) return null;
    const whole = this.#take(prefixBytes + length);
    return whole.subarray(prefixBytes);
  }

  #peek(n: number): Uint8Array {
    if (this.#buffered[0].length >= n) return this.#buffered[0];
    this.#flatten();
    return this.#buffered[0];
  }

  #take(n: number): Uint8Array {
    if (this.#buffered[0].length < n) this.#flatten();
    const first = this.#buffered[0];
    const taken = first.subarray(0, n);
    if (first.length === n) this.#buffered.shift();
    else this.#buffered[0] = first.subarray(n);
    this.#bufferedBytes -= n;
    this.#budget.release(n);
    return taken;
  }

  #flatten(): void {
    const all = new Uint8Array(this.#bufferedBytes);
    let at = 0;
    for (const c of this.#buffered) {
      all.set(c, at);
      at += c.length;
    }
    this.#buffered = [all];
  }
}

/** A HandlerContext that builds its signal and headers only if a service asks for them. */
class LazyContext implements HandlerContext {
  readonly method: DescMethod;
  readonly service: DescService;
  readonly requestMethod = "POST";
  readonly protocolName = "grpc";
  readonly url: string;
  readonly values = createContextValues();
  readonly #headers: RequestHeaders;
  #controller: AbortController | undefined;
  #requestHeader: Headers | undefined;
  #responseHeader: Headers | undefined;
  #responseTrailer: Headers | undefined;

  constructor(route: Route, headers: RequestHeaders) {
    this.method = route.method;
    this.service = route.service;
    this.url = String(headers[":path"]);
    this.#headers = headers;
  }

  get signal(): AbortSignal {
    return (this.#controller ??= new AbortController()).signal;
  }

  abort(reason?: unknown): void {
    this.#controller?.abort(reason);
  }

  timeoutMs(): number | undefined {
    return undefined;
  }

  get requestHeader(): Headers {
    if (!this.#requestHeader) {
      this.#requestHeader = new Headers();
      for (const [name, value] of Object.entries(this.#headers)) {
        if (name.startsWith(":")) continue;
        this.#requestHeader.set(name, value);
      }
    }
    return this.#requestHeader;
  }

  get responseHeader(): Headers {
    return (this.#responseHeader ??= new Headers());
  }

  get responseTrailer(): Headers {
    return (this.#responseTrailer ??= new Headers());
  }
}

/** Serves registered services over gRPC on HTTP/2 streams. */
export class GrpcServer implements ServiceRegistrar {
  readonly #routes = new Map<string, Route>();
  readonly #options: GrpcServerOptions;
  readonly #budget: ByteBudget;

  /** Creates an empty server; register services, then pass streams to `handle`. */
  constructor(options: GrpcServerOptions) {
    this.#options = options;
    this.#budget = new ByteBudget(options.maxPendingBytes ?? defaultMaxPendingBytes);
  }

  /** Registers a service's methods under `/<package.Service>/<Method>`. */
  service<T extends DescService>(service: T, impl: ServiceImpl<T>): this {
    for (const [method, call] of implementedMethods(service, impl)) {
      this.#routes.set(`/${service.typeName}/${method.name}`, { service, method, impl: call });
    }
    return this;
  }

  /** True when the request is gRPC (this server answers it). */
  static isGrpc(headers: RequestHeaders): boolean {
    const type = headers["content-type"];
    return typeof type === "string" && /^application\/grpc(\+proto)?(;|$)/.test(type);
  }

  /** Serves one gRPC stream. */
  handle(stream: ServerStream): void {
    stream.resetWhenAnsweredEarly = true;
    const headers = stream.headers;
    const path = String(headers[":path"] ?? "");
    const route = this.#routes.get(path);
    const fail = (err: unknown) => this.#fail(stream, err);
    if (headers[":method"] !== "POST") {
      return fail(
        new ConnectError(`grpc: method ${headers[":method"]} not allowed`, Code.Internal),
      );
    }
    const encoding = headers["grpc-encoding"];
    if (typeof encoding === "string" && encoding !== "identity") {
      return fail(
        new ConnectError(
          `grpc: Decompressor is not installed for grpc-encoding "${encoding}"`,
          Code.Unimplemented,
        ),
      );
    }
    if (!route) {
      const [, svc, method] = path.split("/");
      const known = [...this.#routes.keys()].some((p) => p.startsWith(`/${svc}/`));
      return fail(
        new ConnectError(
          known ? `unknown method ${method} for service ${svc}` : `unknown service ${svc}`,
          Code.Unimplemented,
        ),
      );
    }
    const context = new LazyContext(route, headers);
    if (route.method.methodKind === "unary") this.#unary(stream, route, context);
    else if (route.method.methodKind === "bidi_streaming") this.#streaming(stream, route, context);
    else if (route.method.methodKind === "server_streaming") {
      this.#streaming(stream, route, context);
    } else fail(new ConnectError("client streaming is not served", Code.Unimplemented));
  }

  /**
   * A unary call is served as soon as its first message is complete, as grpc-go serves it.
   * Nothing after that message is buffered: a client that keeps sending is paused (HTTP/2
   * flow control then stops it) and, once answered, reset with NO_ERROR, as grpc-go does.
   */
  #unary(stream: ServerStream, route: Route, context: LazyContext): void {
    const reader = new EnvelopeReader(this.#options.readMaxBytes, this.#budget);
    let done = false;
    const finish = () => {
      done = true;
      reader.dispose();
    };
    const onclose = () => {
      finish();
      context.abort();
    };
    const ondata = (chunk: Uint8Array) => {
      if (done) {
        stream.pause();
        return;
      }
      let message: Uint8Array | null;
      try {
        reader.push(chunk);
        message = reader.next();
      } catch (err) {
        finish();
        return this.#fail(stream, err);
      }
      if (message === null) return;
      let request;
      try {
        request = this.#decode(route.method.input, message);
      } catch (err) {
        finish();
        return this.#fail(stream, err);
      }
      finish();
      Promise.resolve()
        .then(() => route.impl(request, context))
        .then((output) => this.#respond(stream, this.#encodeEnveloped(route.method.output, output)))
        .catch((err) => this.#fail(stream, err));
    };
    const onend = () => {
      if (done) return;
      finish();
      this.#fail(
        stream,
        new ConnectError("grpc: error unmarshalling request: unexpected EOF", Code.Internal),
      );
    };
    // Through listen(), not stream.on* = here: see ServerStream.listen.
    stream.listen(ondata, onend, onclose);
  }

  #streaming(stream: ServerStream, route: Route, context: LazyContext): void {
    const chunks = new ChunkQueue(stream, maxBufferedRequestBytes);
    const closed = new Promise<void>((resolve) => {
      stream.onclose = () => {
        chunks.close();
        context.abort();
        resolve();
      };
    });
    const requests = this.#requests(chunks, route, context);
    const input = route.method.methodKind === "bidi_streaming" ? requests : null;
    const run = async () => {
      const arg = input ?? await firstOnly(requests);
      let headersSent = false;
      const output = route.impl(arg, context) as AsyncIterable<unknown>;
      const ready = readyTaker(output);
      const schema = route.method.output;
      // Breaking out of for-await calls the generator's return(), so the service cleans up.
      for await (const message of output) {
        if (stream.closed) break;
        if (!headersSent) {
          stream.respond(okHeaders);
          headersSent = true;
        }
        // The client waits for this message; what else is ready joins it in the turn's write.
        let ok = stream.write(this.#encodeEnveloped(schema, message), true);
        // What else the service has ready goes out now, short of back-pressure.
        while (ok && ready !== undefined && !stream.closed) {
          const more = ready();
          if (more === undefined) break;
          ok = stream.write(this.#encodeEnveloped(schema, more));
        }
        if (stream.closed) break;
        if (!ok) {
          await Promise.race([new Promise<void>((r) => (stream.ondrain = r)), closed]);
        }
      }
      if (stream.closed) return;
      if (!headersSent) stream.respond(okHeaders);
      stream.end(okTrailers);
    };
    run().catch((err) => this.#fail(stream, err));
  }

  /** The request stream as messages; decode and framing errors end the call. */
  async *#requests(
    chunks: ChunkQueue,
    route: Route,
    context: LazyContext,
  ): AsyncGenerator<unknown> {
    const reader = new EnvelopeReader(this.#options.readMaxBytes, this.#budget);
    try {
      for await (const chunk of chunks) {
        if (context.signal.aborted) return;
        reader.push(chunk);
        for (let m = reader.next(); m !== null; m = reader.next()) {
          yield this.#decode(route.method.input, m);
        }
      }
      if (reader.pendingBytes > 0) {
        throw new ConnectError("grpc: error unmarshalling request: unexpected EOF", Code.Internal);
      }
    } finally {
      reader.dispose();
    }
  }

  #decode<I extends DescMessage>(schema: I, bytes: Uint8Array): MessageShape<I> {
    this.#options.onMessageBytes?.("received", bytes.length);
    try {
      return fromBinary(schema, bytes, decodeOptions);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new ConnectError(`grpc: error unmarshalling request: ${why}`, Code.Internal);
    }
  }

  /** A response message with its gRPC prefix, written in place by a fast encoder if any. */
  #encodeEnveloped(schema: DescMessage, output: unknown): Uint8Array {
    const typed = (output as { $typeName?: string }).$typeName === schema.typeName;
    const encoder = this.#options.encoders?.get(schema.typeName) as
      | ((m: unknown, headroom: number) => Uint8Array)
      | undefined;
    let out: Uint8Array;
    if (encoder && typed) {
      out = encoder(output, prefixBytes);
      writePrefix(out, out.length - prefixBytes);
    } else {
      const message = typed
        ? output as MessageShape<DescMessage>
        : create(schema, output as Record<string, unknown>);
      out = envelope(toBinary(schema, message));
    }
    this.#options.onMessageBytes?.("sent", out.length - prefixBytes);
    return out;
  }

  #respond(stream: ServerStream, message: Uint8Array): void {
    if (stream.closed) return;
    stream.respond(okHeaders);
    stream.write(message);
    stream.end(okTrailers);
  }

  /** Ends the call with an error status: trailers-only if nothing was sent yet. */
  #fail(stream: ServerStream, err: unknown): void {
    if (stream.closed) return;
    const ce = toConnectError(err);
    const status: HeaderField[] = [
      ["grpc-status", String(ce.code)],
      ["grpc-message", encodeGrpcMessage(ce.rawMessage)],
    ];
    if (!stream.headersSent) {
      stream.respond([[":status", "200"], ["content-type", "application/grpc"], ...status], true);
      return;
    }
    stream.end(status);
  }
}

async function firstOnly(requests: AsyncGenerator<unknown>): Promise<unknown> {
  const first = await requests.next();
  if (first.done) {
    throw new ConnectError("grpc: error unmarshalling request: unexpected EOF", Code.Internal);
  }
  const extra = await requests.next();
  if (!extra.done) {
    throw new ConnectError(
      "grpc: too many request messages for a server stream",
      Code.Unimplemented,
    );
  }
  return first.value;
}

/**
 * A stream's request bytes as an async iterable, holding at most `maxBytes` before the stream
 * is paused (HTTP/2 flow control then stops the client).
 */
class ChunkQueue implements AsyncIterable<Uint8Array> {
  #chunks: Uint8Array[] = [];
  #bytes = 0;
  #ended = false;
  #wake: (() => void) | null = null;
  readonly #stream: ServerStream;
  readonly #maxBytes: number;

  constructor(stream: ServerStream, maxBytes: number) {
    this.#stream = stream;
    this.#maxBytes = maxBytes;
    stream.ondata = (chunk) => {
      this.#chunks.push(chunk);
      this.#bytes += chunk.length;
      if (this.#bytes >= this.#maxBytes) stream.pause();
      this.#signal();
    };
    stream.onend = () => this.close();
  }

  close(): void {
    this.#ended = true;
    this.#signal();
  }

  #signal(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    while (true) {
      const chunk = this.#chunks.shift();
      if (chunk !== undefined) {
        this.#bytes -= chunk.length;
        if (this.#bytes < this.#maxBytes / 2) this.#stream.resume();
        yield chunk;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }
}
