/**
 * Long-lived gRPC calls on raw `node:http2` for the stream benchmarks (watch fan-out, lease
 * keep-alive): a reader that cuts gRPC messages out of DATA chunks, a bidi stream that sends
 * pre-encoded frames and hands every answer message to a callback, a unary call on the same
 * session, and a minimal protobuf reader, so that the hot path reads the few fields it needs
 * instead of building message objects. Like `RawGrpcConnection` (grpc_raw.ts), it does only what the
 * benchmark needs, so that the generator is not the limit.
 *
 * @module
 */

import * as http2 from "node:http2";
import { assert } from "../internal/assert.ts";
import { decodeGrpcMessage, GrpcCallError, grpcPrefixBytes, headerText } from "./grpc_raw.ts";

/** Upper bound on one message a stream reader accepts: the benchmark's are under 1 KiB. */
export const maxStreamMessageBytes = 4 * 1024 * 1024;

/**
 * HTTP/2 flow-control window the client offers per stream and per session. Node's default
 * (64 KiB) makes a server pause on every busy watch stream until the client's window update
 * arrives; etcd's clients offer more, too.
 */
export const clientWindowBytes = 4 * 1024 * 1024;

/**
 * Cuts gRPC messages (5-byte prefix: flags, 32-bit big-endian length) out of a byte stream that
 * arrives in arbitrary chunks. A message inside one chunk is passed on without copying; one split
 * over chunks is assembled in a buffer of its exact size.
 */
export class GrpcMessageReader {
  readonly #onMessage: (message: Uint8Array) => void;
  readonly #maxMessageBytes: number;
  readonly #header = new Uint8Array(grpcPrefixBytes);
  #headerFill = 0;
  #message: Uint8Array | undefined;
  #messageFill = 0;

  /**
   * `onMessage` gets each message's protobuf bytes; it must not keep the array after it returns
   * (it may be a view of the caller's chunk). Messages above `maxMessageBytes` are an error.
   */
  constructor(
    onMessage: (message: Uint8Array) => void,
    maxMessageBytes: number = maxStreamMessageBytes,
  ) {
    this.#onMessage = onMessage;
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** Whether the bytes so far end at a message boundary. */
  get atBoundary(): boolean {
    return this.#headerFill === 0 && this.#message === undefined;
  }

  #length(bytes: Uint8Array, offset: number): number {
    if (bytes[offset] !== 0) {
      throw new GrpcCallError(`a stream message has flags ${bytes[offset]} (compressed?)`);
    }
    const length = ((bytes[offset + 1] << 24) >>> 0) + (bytes[offset + 2] << 16) +
      (bytes[offset + 3] << 8) + bytes[offset + 4];
    if (length > this.#maxMessageBytes) {
      throw new GrpcCallError(
        `a stream message has ${length} bytes, above ${this.#maxMessageBytes}`,
      );
    }
    return length;
  }

  #begin(length: number): void {
    if (length === 0) this.#onMessage(new Uint8Array(0));
    else {
      this.#message = new Uint8Array(length);
      this.#messageFill = 0;
    }
  }

  /** Takes the next chunk; calls `onMessage` for every message it completes. */
  push(chunk: Uint8Array): void {
    let offset = 0;
    while (offset < chunk.length) {
      const message = this.#message;
      if (message !== undefined) {
        const take = Math.min(message.length - this.#messageFill, chunk.length - offset);
        message.set(chunk.subarray(offset, offset + take), this.#messageFill);
        this.#messageFill += take;
        offset += take;
        if (this.#messageFill === message.length) {
          this.#message = undefined;
          this.#onMessage(message);
        }
        continue;
      }
      if (this.#headerFill > 0 || chunk.length - offset < grpcPrefixBytes) {
        const take = Math.min(grpcPrefixBytes - this.#headerFill, chunk.length - offset);
        this.#header.set(chunk.subarray(offset, offset + take), this.#headerFill);
        this.#headerFill += take;
        offset += take;
        if (this.#headerFill < grpcPrefixBytes) return;
        this.#headerFill = 0;
        this.#begin(this.#length(this.#header, 0));
        continue;
      }
      const length = this.#length(chunk, offset);
      const start = offset + grpcPrefixBytes;
      if (chunk.length - start >= length) {
        offset = start + length;
        this.#onMessage(chunk.subarray(start, offset));
      } else {
        offset = start;
        this.#begin(length);
      }
    }
  }
}

/** What a {@linkcode RawBidiStream} tells its owner. */
export interface BidiStreamHandlers {
  /** Each answer message's protobuf bytes (not to be kept after the call returns). */
  onMessage(message: Uint8Array): void;
  /**
   * The stream ended: `error` is undefined when it ended with `grpc-status: 0`; otherwise a
   * {@linkcode GrpcCallError} or the transport's error. Called exactly once.
   */
  onClose(error: unknown): void;
}

/**
 * One gRPC call on an HTTP/2 stream that stays open: the caller writes pre-encoded frames (see
 * {@linkcode grpcFrame}) and gets every answer message through `onMessage`.
 */
export class RawBidiStream {
  readonly #stream: http2.ClientHttp2Stream;
  #closed = false;

  /** Opens the stream for `path` on `session` (the request headers go out at once). */
  constructor(
    session: http2.ClientHttp2Session,
    path: string,
    handlers: BidiStreamHandlers,
    maxMessageBytes: number = maxStreamMessageBytes,
  ) {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
    });
    this.#stream = stream;
    let httpStatus: number | undefined;
    let grpcStatus: string | undefined;
    let grpcMessage: string | undefined;
    let failure: unknown;
    const reader = new GrpcMessageReader(handlers.onMessage, maxMessageBytes);
    stream.on("response", (headers: http2.IncomingHttpHeaders) => {
      const status = headers[":status"];
      httpStatus = status === undefined ? undefined : Number(status);
      grpcStatus = headerText(headers["grpc-status"]);
      grpcMessage = headerText(headers["grpc-message"]);
    });
    stream.on("data", (chunk: Uint8Array) => {
      if (failure !== undefined) return;
      try {
        reader.push(chunk);
      } catch (error) {
        failure = error;
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }
    });
    stream.on("trailers", (trailers: http2.IncomingHttpHeaders) => {
      grpcStatus = headerText(trailers["grpc-status"]);
      grpcMessage = headerText(trailers["grpc-message"]);
    });
    stream.on("error", (error: unknown) => {
      failure ??= error;
    });
    stream.on("close", () => {
      this.#closed = true;
      if (failure === undefined) {
        if (grpcStatus !== undefined && grpcStatus !== "0") {
          const code = Number(grpcStatus);
          const text = grpcMessage !== undefined ? decodeGrpcMessage(grpcMessage) : "";
          failure = new GrpcCallError(
            `grpc-status ${grpcStatus}${text ? `: ${text}` : ""}`,
            Number.isSafeInteger(code) ? code : undefined,
          );
        } else if (httpStatus !== undefined && httpStatus !== 200) {
          failure = new GrpcCallError(`HTTP status ${httpStatus}`);
        } else if (grpcStatus === undefined) {
          const code = stream.rstCode ? ` (HTTP/2 error code ${stream.rstCode})` : "";
          failure = new GrpcCallError(`the stream closed without a gRPC status${code}`);
        } else if (!reader.atBoundary) {
          failure = new GrpcCallError("the stream ended inside a message");
        }
      }
      handlers.onClose(failure);
    });
  }

  /** Whether the stream has ended (then {@linkcode RawBidiStream.send} does nothing). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Queues `frame` (one or more whole gRPC frames) for sending; false if the stream ended. */
  send(frame: Uint8Array): boolean {
    if (this.#closed || this.#stream.destroyed) return false;
    this.#stream.write(frame);
    return true;
  }

  /** Half-closes: no more frames from this side; answers still arrive. */
  end(): void {
    if (!this.#closed && !this.#stream.destroyed) this.#stream.end();
  }

  /** Cancels the call (RST_STREAM CANCEL); `onClose` follows. */
  cancel(): void {
    if (!this.#closed && !this.#stream.destroyed) {
      this.#stream.close(http2.constants.NGHTTP2_CANCEL);
    }
  }
}

/**
 * A unary call on an open session: sends `frame`, half-closes, and resolves with the one answer
 * message; rejects with {@linkcode GrpcCallError} unless exactly one message came and the call
 * ended with `grpc-status: 0`.
 */
export function unaryOnSession(
  session: http2.ClientHttp2Session,
  path: string,
  frame: Uint8Array,
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    let answer: Uint8Array | undefined;
    let messages = 0;
    let stream: RawBidiStream;
    try {
      stream = new RawBidiStream(session, path, {
        onMessage(message) {
          // The message may be a view of a chunk that is reused: keep a copy.
          if (++messages === 1) answer = message.slice();
        },
        onClose(error) {
          if (error !== undefined) reject(error);
          else if (messages !== 1 || answer === undefined) {
            reject(new GrpcCallError(`a unary answer had ${messages} messages`));
          } else resolve(answer);
        },
      });
    } catch (error) {
      reject(error);
      return;
    }
    stream.send(frame);
    stream.end();
  });
}

/**
 * Opens an h2c (or TLS, as the URL says) session and resolves once it is connected; rejects on
 * an error or after `timeoutMs`. The session gets a large flow-control window (see
 * {@linkcode clientWindowBytes}).
 */
export function openSession(baseUrl: string, timeoutMs: number): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl, {
      settings: { initialWindowSize: clientWindowBytes },
    });
    const timer = setTimeout(() => {
      session.destroy();
      reject(new GrpcCallError(`no HTTP/2 connection to ${baseUrl} within ${timeoutMs} ms`));
    }, timeoutMs);
    session.once("connect", () => {
      clearTimeout(timer);
      // Stream errors surface on the calls; a session error alone must not crash the process.
      session.on("error", () => {});
      try {
        session.setLocalWindowSize(clientWindowBytes);
      } catch {
        // Not supported by this runtime: the per-stream window above still applies.
      }
      resolve(session);
    });
    session.once("error", (error: unknown) => {
      clearTimeout(timer);
      session.destroy();
      reject(error);
    });
  });
}

/**
 * The SETTINGS_MAX_CONCURRENT_STREAMS a server advertised on `session`, or undefined when it
 * advertised none (no limit) or the runtime does not say.
 */
export function advertisedMaxStreams(session: http2.ClientHttp2Session): number | undefined {
  const value = session.remoteSettings?.maxConcurrentStreams;
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

/** Protobuf wire types (the only ones proto3 messages use). */
export const WireType = { varint: 0, fixed64: 1, bytes: 2, fixed32: 5 } as const;

/**
 * A cursor over protobuf bytes that reads tags, varints and length-delimited fields without
 * building objects. Varints are returned as numbers: exact below 2^53, which covers every field
 * the benchmark reads as a number (ids it compares are read as raw bytes).
 */
export class ProtoReader {
  /** The bytes being read. */
  bytes: Uint8Array;
  /** Next byte to read. */
  pos: number;
  /** One past the last byte of this (sub)message. */
  end: number;

  /** Reads `bytes[start, end)`. */
  constructor(bytes: Uint8Array, start = 0, end = bytes.length) {
    assert(start >= 0 && start <= end && end <= bytes.length, "ProtoReader bounds are inside");
    this.bytes = bytes;
    this.pos = start;
    this.end = end;
  }

  /** Whether every byte has been read. */
  get done(): boolean {
    return this.pos >= this.end;
  }

  /** The next varint (throws on truncation or more than 10 bytes). */
  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new RangeError("truncated varint");
      const byte = this.bytes[this.pos++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
    throw new RangeError("varint longer than 10 bytes");
  }

  /** The next varint as its raw bytes (a view), e.g. an int64 id to send back unchanged. */
  varintBytes(): Uint8Array {
    const start = this.pos;
    this.varint();
    return this.bytes.subarray(start, this.pos);
  }

  /** The next length prefix; returns the end of the field's bytes, which start at `pos`. */
  lengthDelimited(): number {
    const length = this.varint();
    const end = this.pos + length;
    if (end > this.end) throw new RangeError("truncated length-delimited field");
    return end;
  }

  /** Skips the value of a field of `wireType` (the tag was read). */
  skip(wireType: number): void {
    switch (wireType) {
      case WireType.varint:
        this.varint();
        return;
      case WireType.fixed64:
        this.pos += 8;
        break;
      case WireType.bytes:
        this.pos = this.lengthDelimited();
        return;
      case WireType.fixed32:
        this.pos += 4;
        break;
      default:
        throw new RangeError(`unsupported wire type ${wireType}`);
    }
    if (this.pos > this.end) throw new RangeError("truncated fixed-size field");
  }
}
