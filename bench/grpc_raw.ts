/**
 * A lean unary gRPC client on raw `node:http2`: the benchmark's default load generator. It sends
 * request frames encoded once before the run (5-byte gRPC prefix + protobuf bytes) and checks the
 * answer without decoding it: HTTP status 200, one uncompressed response message whose prefix
 * length matches the bytes received, and `grpc-status: 0`. A generic client (connect-node) spends
 * most of its time per call in stream and message machinery; this one does only what a unary call
 * needs, so that the generator, not the server, stops being the limit.
 *
 * @module
 */

import * as http2 from "node:http2";
import { concatBytes } from "../internal/bytes.ts";

/** Bytes of the gRPC message prefix: compressed flag, 32-bit big-endian length. */
export const grpcPrefixBytes = 5;

/**
 * Upper bound on a response body the client buffers. The benchmark's answers are a few hundred
 * bytes; anything larger is a wrong answer, not a reason to buffer more.
 */
export const maxResponseBytes = 4 * 1024 * 1024;

/** A call that did not end with `grpc-status: 0` (or ended without a valid gRPC answer). */
export class GrpcCallError extends Error {
  /**
   * Creates the error. `code` is the gRPC status code, or undefined when the answer carried none
   * (a transport or protocol failure).
   */
  constructor(message: string, readonly code?: number) {
    super(message);
    this.name = "GrpcCallError";
  }
}

/** gRPC path of a method, e.g. `grpcPath("etcdserverpb.KV", "Put")`. */
export function grpcPath(serviceTypeName: string, methodName: string): string {
  return `/${serviceTypeName}/${methodName}`;
}

/** `message` (protobuf bytes) as one uncompressed gRPC frame. */
export function grpcFrame(message: Uint8Array): Uint8Array {
  const frame = new Uint8Array(grpcPrefixBytes + message.length);
  new DataView(frame.buffer).setUint32(1, message.length);
  frame.set(message, grpcPrefixBytes);
  return frame;
}

/** A `grpc-message` trailer as text (it is percent-encoded on the wire). */
export function decodeGrpcMessage(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text; // Not percent-encoded as the spec says: show it as it came.
  }
}

/** A header value as one string, or undefined when absent. */
export function headerText(value: string | string[] | number | undefined): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(", ") : String(value);
}

/**
 * Checks a unary answer and returns its message bytes; throws {@linkcode GrpcCallError} for a
 * non-zero or missing `grpc-status`, a non-200 HTTP status, or a body that is not exactly one
 * uncompressed gRPC message.
 */
export function checkUnaryResponse(
  httpStatus: number | undefined,
  grpcStatus: string | undefined,
  grpcMessage: string | undefined,
  body: Uint8Array,
): Uint8Array {
  if (grpcStatus !== undefined && grpcStatus !== "0") {
    const code = Number(grpcStatus);
    const text = grpcMessage !== undefined ? decodeGrpcMessage(grpcMessage) : "";
    throw new GrpcCallError(
      `grpc-status ${grpcStatus}${text ? `: ${text}` : ""}`,
      Number.isSafeInteger(code) ? code : undefined,
    );
  }
  if (httpStatus !== 200) throw new GrpcCallError(`HTTP status ${httpStatus ?? "missing"}`);
  if (grpcStatus === undefined) throw new GrpcCallError("the answer has no grpc-status");
  if (body.length < grpcPrefixBytes) {
    throw new GrpcCallError(`the answer has ${body.length} body bytes, no gRPC message`);
  }
  if (body[0] !== 0) throw new GrpcCallError(`the answer message has flags ${body[0]}`);
  const length = new DataView(body.buffer, body.byteOffset, body.length).getUint32(1);
  if (grpcPrefixBytes + length !== body.length) {
    throw new GrpcCallError(
      `the answer message says ${length} bytes but ${body.length - grpcPrefixBytes} came`,
    );
  }
  return body.subarray(grpcPrefixBytes);
}

function concat(chunks: Uint8Array[]): Uint8Array {
  return chunks.length === 1 ? chunks[0] : concatBytes(...chunks);
}

const emptyBody = new Uint8Array(0);

/**
 * One HTTP/2 connection (h2c or TLS, as the URL says) for unary gRPC calls. The session is opened
 * by the first call; when it has failed or been closed (e.g. refused, GOAWAY), the next call
 * opens a new one, as a generic client would.
 */
export class RawGrpcConnection {
  readonly #url: string;
  #session: http2.ClientHttp2Session | undefined;
  #closed = false;

  /** Remembers `baseUrl` (`http://host:port`); connects on the first call. */
  constructor(baseUrl: string) {
    this.#url = baseUrl;
  }

  #open(): http2.ClientHttp2Session {
    const current = this.#session;
    if (current && !current.closed && !current.destroyed) return current;
    const session = http2.connect(this.#url);
    // Without a listener a session error would be an uncaught exception; the calls on the
    // session fail by themselves, with the stream errors.
    session.on("error", () => {});
    session.on("close", () => {
      if (this.#session === session) this.#session = undefined;
    });
    this.#session = session;
    return session;
  }

  /**
   * Sends one gRPC `frame` (see {@linkcode grpcFrame}) to `path` and resolves with the answer's
   * message bytes; rejects with {@linkcode GrpcCallError} unless the call ended with
   * `grpc-status: 0`, or with the transport's error.
   */
  unary(path: string, frame: Uint8Array): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new GrpcCallError("the connection is closed"));
    return new Promise((resolve, reject) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = this.#open().request({
          ":method": "POST",
          ":path": path,
          "content-type": "application/grpc",
          te: "trailers",
        });
      } catch (error) {
        reject(error);
        return;
      }
      let httpStatus: number | undefined;
      let grpcStatus: string | undefined;
      let grpcMessage: string | undefined;
      let chunks: Uint8Array[] = [];
      let received = 0;
      let failure: unknown;
      stream.on("response", (headers: http2.IncomingHttpHeaders) => {
        const status = headers[":status"];
        httpStatus = status === undefined ? undefined : Number(status);
        // A trailers-only answer (typically an error) carries the status in the headers.
        grpcStatus = headerText(headers["grpc-status"]);
        grpcMessage = headerText(headers["grpc-message"]);
      });
      stream.on("data", (chunk: Uint8Array) => {
        received += chunk.length;
        if (received > maxResponseBytes) {
          failure ??= new GrpcCallError(`the answer exceeds ${maxResponseBytes} bytes`);
          chunks = [];
          stream.close(http2.constants.NGHTTP2_CANCEL);
          return;
        }
        chunks.push(chunk);
      });
      stream.on("trailers", (trailers: http2.IncomingHttpHeaders) => {
        grpcStatus = headerText(trailers["grpc-status"]);
        grpcMessage = headerText(trailers["grpc-message"]);
      });
      stream.on("error", (error: unknown) => {
        failure ??= error;
      });
      stream.on("close", () => {
        if (failure === undefined && grpcStatus === undefined) {
          if (httpStatus === undefined) {
            const code = stream.rstCode ? ` (HTTP/2 error code ${stream.rstCode})` : "";
            failure = new GrpcCallError(`the stream closed without an answer${code}`);
          } else if (stream.rstCode) {
            failure = new GrpcCallError(
              `the stream was reset (HTTP/2 error code ${stream.rstCode})`,
            );
          }
        }
        if (failure !== undefined) {
          reject(failure);
          return;
        }
        try {
          resolve(checkUnaryResponse(
            httpStatus,
            grpcStatus,
            grpcMessage,
            chunks.length === 0 ? emptyBody : concat(chunks),
          ));
        } catch (error) {
          reject(error);
        }
      });
      stream.end(frame);
    });
  }

  /** Closes the connection: calls in flight fail, later calls are refused. */
  close(): void {
    this.#closed = true;
    const session = this.#session;
    this.#session = undefined;
    session?.destroy();
  }
}
