/**
 * Raw wire clients for robustness tests: gRPC calls on node:http2 with hand-made frames (so a
 * test can send what no real client would), and plain TCP exchanges for HTTP/1.1 and
 * connection-level input. Every wait is bounded by a timeout.
 *
 * @module
 */
import * as http2 from "node:http2";

/** gRPC's 5-byte message prefix: a compressed flag and a 32-bit big-endian length. */
export const grpcPrefixBytes = 5;

/**
 * Frames `message` as one gRPC message. `length` overrides the declared length (to lie about
 * it), `flag` the compressed flag.
 */
export function grpcFrame(
  message: Uint8Array,
  opts: { length?: number; flag?: number } = {},
): Uint8Array {
  const out = new Uint8Array(grpcPrefixBytes + message.length);
  out[0] = opts.flag ?? 0;
  new DataView(out.buffer).setUint32(1, opts.length ?? message.length);
  out.set(message, grpcPrefixBytes);
  return out;
}

/** What a gRPC call answered. */
export interface GrpcReply {
  /** The HTTP status, undefined when the stream ended before response headers. */
  httpStatus: number | undefined;
  /** `grpc-status` from trailers (or trailers-only headers); undefined when absent. */
  grpcStatus: number | undefined;
  /** `grpc-message`, percent-decoded. */
  grpcMessage: string | undefined;
  /** The response messages, unframed. */
  messages: Uint8Array[];
  /** True when the stream was reset or the session failed before a status arrived. */
  reset: boolean;
  /** True when the response body was not a whole number of well-formed gRPC frames. */
  badFraming: boolean;
}

/** Options of {@linkcode grpcCall}. */
export interface GrpcCallOptions {
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** Whether to end the request stream after the body (default true). */
  endStream?: boolean;
  /** Gives up (and resets the stream) after this long. */
  timeoutMs?: number;
}

const defaultCallTimeoutMs = 10_000;

function decodeGrpcMessage(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  const text = String(value);
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function splitFrames(body: Uint8Array): { messages: Uint8Array[]; bad: boolean } {
  const messages: Uint8Array[] = [];
  let at = 0;
  while (at < body.length) {
    if (body.length - at < grpcPrefixBytes) return { messages, bad: true };
    const length = new DataView(body.buffer, body.byteOffset + at + 1, 4).getUint32(0);
    if (body[at] !== 0 || body.length - at - grpcPrefixBytes < length) {
      return { messages, bad: true };
    }
    messages.push(body.slice(at + grpcPrefixBytes, at + grpcPrefixBytes + length));
    at += grpcPrefixBytes + length;
  }
  return { messages, bad: false };
}

/**
 * One gRPC call on `session` with a raw request body (already framed, or deliberately not).
 * Never rejects: transport failures come back as `reset`.
 */
export function grpcCall(
  session: http2.ClientHttp2Session,
  path: string,
  body: Uint8Array | Uint8Array[],
  opts: GrpcCallOptions = {},
): Promise<GrpcReply> {
  return new Promise((resolve) => {
    const reply: GrpcReply = {
      httpStatus: undefined,
      grpcStatus: undefined,
      grpcMessage: undefined,
      messages: [],
      reset: false,
      badFraming: false,
    };
    const chunks: Uint8Array[] = [];
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const total = chunks.reduce((n, c) => n + c.length, 0);
      const all = new Uint8Array(total);
      let at = 0;
      for (const c of chunks) (all.set(c, at), at += c.length);
      const { messages, bad } = splitFrames(all);
      reply.messages = messages;
      reply.badFraming = bad;
      if (reply.grpcStatus === undefined) reply.reset = true;
      resolve(reply);
    };
    let req: http2.ClientHttp2Stream;
    try {
      req = session.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        te: "trailers",
        ...opts.headers,
      }, { endStream: false });
    } catch {
      reply.reset = true;
      resolve(reply);
      return;
    }
    const timer = setTimeout(() => {
      req.close(http2.constants.NGHTTP2_CANCEL);
      finish();
    }, opts.timeoutMs ?? defaultCallTimeoutMs);
    const status = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] === undefined) return;
      reply.grpcStatus = Number(h["grpc-status"]);
      reply.grpcMessage = decodeGrpcMessage(h["grpc-message"]);
    };
    req.on("response", (h) => {
      reply.httpStatus = Number(h[":status"]);
      status(h);
    });
    req.on("trailers", status);
    req.on("data", (c: Uint8Array) => chunks.push(c));
    req.on("end", finish);
    req.on("close", finish);
    req.on("error", finish);
    const parts = Array.isArray(body) ? body : [body];
    for (const p of parts) req.write(p);
    if (opts.endStream ?? true) req.end();
  });
}

/** Connects an HTTP/2 session and waits until it is usable. */
export function connectH2(url: string, timeoutMs = 5_000): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`HTTP/2 connect to ${url} timed out`));
    }, timeoutMs);
    session.once("connect", () => {
      clearTimeout(timer);
      session.off("error", onError);
      // Later session errors end the calls on it; they must not become uncaught.
      session.on("error", () => {});
      resolve(session);
    });
    const onError = (err: unknown) => {
      clearTimeout(timer);
      reject(err);
    };
    session.once("error", onError);
  });
}

/** Closes a session, waiting (bounded) for it to finish. */
export function closeH2(session: http2.ClientHttp2Session, timeoutMs = 2_000): Promise<void> {
  if (session.destroyed || session.closed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      session.destroy();
      resolve();
    }, timeoutMs);
    session.close(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** What a raw TCP exchange got back. */
export interface RawExchange {
  /** Bytes received (at most `maxReplyBytes`). */
  reply: Uint8Array;
  /** True when the server closed (or reset) the connection before the deadline. */
  closedByServer: boolean;
  /** Bytes of the request that were written before the server stopped taking them. */
  written: number;
}

/** Options of {@linkcode rawExchange}. */
export interface RawExchangeOptions {
  /** Stops waiting for the server after this long (default 5 s). */
  timeoutMs?: number;
  /** Stops reading after this many reply bytes (default 64 KiB). */
  maxReplyBytes?: number;
  /** Half-closes our side after writing (default false: many servers answer before EOF). */
  closeWrite?: boolean;
  /** Resolves early once the reply so far satisfies this. */
  until?: (reply: Uint8Array) => boolean;
}

/**
 * Opens a TCP connection, writes `request` (one buffer, or a generator of buffers written in
 * order, stopping when the server stops reading), and collects the reply until the server
 * closes, `until` holds, or the timeout. Always closes the connection.
 */
export async function rawExchange(
  port: number,
  request: Uint8Array | Iterable<Uint8Array>,
  opts: RawExchangeOptions = {},
): Promise<RawExchange> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const maxReply = opts.maxReplyBytes ?? 64 * 1024;
  const deadline = Date.now() + (opts.timeoutMs ?? 5_000);
  let written = 0;
  let closedByServer = false;
  const received: Uint8Array[] = [];
  let receivedBytes = 0;
  let done = false;
  const reading = (async () => {
    const buf = new Uint8Array(16 * 1024);
    try {
      while (!done && receivedBytes < maxReply) {
        const n = await conn.read(buf);
        if (n === null) {
          closedByServer = true;
          return;
        }
        received.push(buf.slice(0, n));
        receivedBytes += n;
        if (opts.until?.(concat(received))) return;
      }
    } catch {
      closedByServer = !done;
    }
  })();
  const writing = (async () => {
    const parts = request instanceof Uint8Array ? [request] : request;
    try {
      for (const part of parts) {
        if (done || closedByServer || Date.now() > deadline) return;
        let at = 0;
        while (at < part.length) {
          at += await conn.write(part.subarray(at));
        }
        written += part.length;
      }
      if (opts.closeWrite) await conn.closeWrite();
    } catch {
      // The server closed or reset the connection; the reader reports it.
    }
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
  });
  await Promise.race([reading, timeout]);
  clearTimeout(timer);
  done = true;
  try {
    conn.close();
  } catch {
    // already closed
  }
  await Promise.allSettled([reading, writing]);
  return { reply: concat(received), closedByServer, written };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) (out.set(p, at), at += p.length);
  return out;
}

/** The status code of an HTTP/1.x response head, or undefined if `reply` does not start with one. */
export function httpStatusOf(reply: Uint8Array): number | undefined {
  const head = new TextDecoder().decode(reply.subarray(0, 64));
  const m = /^HTTP\/1\.[01] (\d{3}) /.exec(head);
  return m ? Number(m[1]) : undefined;
}
