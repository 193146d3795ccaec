/**
 * The server side of one HTTP/2 connection (RFC 9113), over a socket whose first bytes are the
 * client preface: framing, HPACK, stream states, flow control in both directions, SETTINGS,
 * PING, RST_STREAM and GOAWAY. It exists for speed: node:http2 in Deno spent about 40 % of the
 * CPU of a gRPC call in its own machinery (a Duplex stream object per call, several socket
 * writes per response). Here the frames of every response produced in one event-loop turn go
 * out in one socket write (or in pieces of `earlyWriteBytes` when a turn produces much, and
 * with the first streaming message a client waits for written at once), the messages a stream
 * gets in that time share DATA frames, and a stream is a plain object with callbacks.
 *
 * What it bounds: frame sizes (SETTINGS_MAX_FRAME_SIZE, checked from the frame header before
 * the payload is buffered), header blocks (compressed and decoded), concurrent streams, request
 * bytes in flight (the flow-control windows we grant), and bytes queued for a slow reader (the
 * socket's buffer; a stream's `write` reports back-pressure past its high-water mark).
 *
 * @module
 */
import type * as net from "node:net";
import { assert } from "../../internal/assert.ts";
import { readUint32, writeUint32 } from "../../internal/bytes.ts";
import { IdTable } from "../../internal/id_table.ts";
import { type HeaderField, HpackDecoder, HpackEncoder, HpackError } from "./hpack.ts";
import {
  clientPreface,
  defaultMaxFrameBytes,
  defaultWindowBytes,
  ErrorCode,
  Flag,
  frameHeaderBytes,
  FrameType,
  maxAllowedFrameBytes,
  maxWindowBytes,
  Setting,
} from "./frames.ts";
import { OutputBuffer } from "./output.ts";

/** Request headers by lower-case name; repeated fields are joined with ", ". */
export type RequestHeaders = Readonly<Record<string, string>>;

/** Options of a connection. */
export interface H2ConnectionOptions {
  /** Called for each new request stream, synchronously, before any of its DATA arrives. */
  onStream(stream: ServerStream): void;
  /** SETTINGS_MAX_CONCURRENT_STREAMS: streams past it are refused. */
  maxConcurrentStreams: number;
  /** The receive window granted to each stream, in bytes (default 1 MiB). */
  streamWindowBytes?: number;
  /** The receive window of the whole connection, in bytes (default 16 MiB). */
  connectionWindowBytes?: number;
  /** Largest decoded request header list, in bytes (RFC 9113 §6.5.2 accounting). */
  maxHeaderListBytes?: number;
  /** A stream's `write` returns false once this many bytes wait to be sent. */
  streamHighWaterBytes?: number;
  /** DATA stops moving to the socket while it holds more than this many unsent bytes. */
  maxSocketBufferedBytes?: number;
  /**
   * Output at which the connection writes to the socket without waiting for the turn to end
   * (default 16 KiB).
   */
  earlyWriteBytes?: number;
}

const defaultStreamWindowBytes = 1024 * 1024;
const defaultConnectionWindowBytes = 16 * 1024 * 1024;
const defaultMaxHeaderListBytes = 256 * 1024;
const defaultStreamHighWaterBytes = 64 * 1024;
const defaultMaxSocketBufferedBytes = 4 * 1024 * 1024;
/**
 * A turn that fans one put out to a thousand watchers produces about 25 KiB per connection over
 * a couple of milliseconds. Written only when the turn ends, none of it reached the client
 * before the server had encoded half of it, and the client, which then had to take all of it
 * in at once, saw the last events late; writing as the output grows lets the client read while
 * the server encodes (with 4 KiB, the first event reached the client about 0.9 ms sooner). Each
 * write is a system call, though, whose cost the loopback TCP stack makes large: at 4 KiB the
 * socket writes were 15 % of the server's CPU with 1 000 watchers. 16 KiB writes a quarter as
 * often; in alternating runs server CPU fell (39 -> 29 % on one key) and p99 did not get worse
 * (against 64 KiB neither moved beyond the runs' noise). Ordinary turns (unary answers) stay
 * under it and keep their single write.
 */
const defaultEarlyWriteBytes = 16 * 1024;
/** Our HPACK dynamic table (SETTINGS_HEADER_TABLE_SIZE is left at its default). */
const headerTableBytes = 4096;
/** After a GOAWAY for an error, the socket is destroyed if the peer has not closed it by then. */
const closeGraceMs = 1000;
const prefaceBytes = new TextEncoder().encode(clientPreface);

/** A violation that ends the connection with GOAWAY (RFC 9113 §5.4.1). */
class ConnectionError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** One request stream, seen from the server. */
export class ServerStream {
  /** The stream identifier. */
  readonly id: number;
  /** The request's header fields (pseudo-headers included). */
  readonly headers: RequestHeaders;
  /** Receives request body bytes (the array is the caller's to keep). */
  ondata: ((chunk: Uint8Array) => void) | null = null;
  /** The client finished sending. */
  onend: (() => void) | null = null;
  /** The stream is over (answered, reset by either side, or the connection went away). */
  onclose: (() => void) | null = null;
  /** Bytes queued by `write` fell below the high-water mark again. */
  ondrain: (() => void) | null = null;
  /**
   * What happens when the response is complete while the client is still sending: true sends
   * RST_STREAM(NO_ERROR), which tells it to stop without failing the call (RFC 9113 §8.1), as
   * grpc-go does; false (the default, what node:http2 did) reads and drops the rest, since
   * some clients (Deno's node:http2) never report such a reset to their caller.
   */
  resetWhenAnsweredEarly = false;

  readonly #conn: H2Connection;
  /** Bytes we may still send on this stream (the peer's window; may go negative). */
  sendWindow: number;
  /** Bytes the peer may still send us. */
  recvWindow: number;
  /** Delivered bytes not yet returned to the peer with WINDOW_UPDATE. */
  recvUnacked = 0;
  /** Response bytes waiting for window or socket room. */
  queue: Uint8Array[] = [];
  queuedBytes = 0;
  /** end() was called: trailers (or END_STREAM) follow the queue. */
  endQueued = false;
  /** In the connection's list of streams to pump before the next socket write. */
  pumpPending = false;
  /** Bytes written since this stream was last pumped (its share of the connection's count). */
  unpumpedBytes = 0;
  trailers: readonly HeaderField[] | null = null;
  /** Request bytes received while paused or before `ondata` was set. */
  inbox: Uint8Array[] = [];
  #headersSent = false;
  #localEnded = false;
  #remoteEnded = false;
  #endDelivered = false;
  #closed = false;
  #paused = false;
  #wantDrain = false;

  /** Made by the connection. */
  constructor(conn: H2Connection, id: number, headers: RequestHeaders, windows: {
    send: number;
    recv: number;
  }) {
    this.#conn = conn;
    this.id = id;
    this.headers = headers;
    this.sendWindow = windows.send;
    this.recvWindow = windows.recv;
  }

  /** True once nothing more can be sent or received. */
  get closed(): boolean {
    return this.#closed;
  }

  /** True once response headers went out. */
  get headersSent(): boolean {
    return this.#headersSent;
  }

  /** True once the client finished sending. */
  get remoteEnded(): boolean {
    return this.#remoteEnded;
  }

  /** True once END_STREAM went out. */
  get endSent(): boolean {
    return this.#localEnded;
  }

  /** True once end() or respond(..., true) was called. */
  get localEnded(): boolean {
    return this.#localEnded || this.endQueued;
  }

  /**
   * Sets the request callbacks in one call. A consumer that stores closures over the stream on
   * the stream itself, from the function that made them, made V8's unoptimized code keep every
   * request's objects alive through young-generation GCs (about 2 MB promoted per scavenge at
   * 16 clients, until the path was optimized); the same closures stored from here are not kept.
   */
  listen(
    ondata: ((chunk: Uint8Array) => void) | null,
    onend: (() => void) | null,
    onclose: (() => void) | null,
  ): void {
    this.ondata = ondata;
    this.onend = onend;
    this.onclose = onclose;
  }

  /** Sends the response headers; `endStream` ends the response with them. */
  respond(headers: readonly HeaderField[], endStream = false): void {
    if (this.#closed) return;
    assert(!this.#headersSent, "h2: response headers sent twice");
    this.#headersSent = true;
    this.#conn.sendHeaders(this, headers, endStream);
    if (endStream) this.markLocalEnded();
  }

  /**
   * Queues response body bytes; false means the caller should wait for `ondrain`. With
   * `flushNow` (a streaming response's next message, which its client is waiting for) they
   * leave at once if the connection has not written yet in this event-loop turn; otherwise,
   * and always without it, they join the turn's one write (see `earlyWriteBytes`).
   */
  write(data: Uint8Array, flushNow = false): boolean {
    if (this.#closed) return false;
    assert(this.#headersSent && !this.endQueued, "h2: write outside the response body");
    if (data.length > 0) {
      this.queue.push(data);
      this.queuedBytes += data.length;
      this.#conn.queued(this, data.length, flushNow);
    }
    if (this.#closed || this.queuedBytes < this.#conn.streamHighWaterBytes) return true;
    this.#wantDrain = true;
    return false;
  }

  /** Ends the response after the queued body, with `trailers` if given. */
  end(trailers?: readonly HeaderField[]): void {
    if (this.#closed || this.endQueued || this.#localEnded) return;
    assert(this.#headersSent, "h2: end before respond");
    this.endQueued = true;
    this.trailers = trailers ?? null;
    this.#conn.pump(this);
  }

  /** Ends the stream at once with RST_STREAM. */
  reset(code: number = ErrorCode.cancel): void {
    if (this.#closed) return;
    this.#conn.resetStream(this, code);
  }

  /** Stops delivering request bytes (and returning window for them) until resume(). */
  pause(): void {
    this.#paused = true;
  }

  /** Delivers what arrived while paused, then delivers as bytes arrive. */
  resume(): void {
    this.#paused = false;
    this.deliverInbox();
  }

  /** Called by the connection with request bytes. */
  receive(chunk: Uint8Array): void {
    if (this.#localEnded) {
      this.#conn.consumed(this, chunk.length); // answered already: dropped
      return;
    }
    if (this.#paused || this.ondata === null || this.inbox.length > 0) {
      this.inbox.push(chunk);
      return;
    }
    this.#conn.consumed(this, chunk.length);
    this.ondata(chunk);
  }

  /** Called by the connection when the client ends its side. */
  remoteEnd(): void {
    this.#remoteEnded = true;
    this.deliverInbox();
  }

  /** Hands buffered request bytes (and the end) to the consumer, unless paused. */
  deliverInbox(): void {
    while (!this.#paused && this.ondata !== null && this.inbox.length > 0 && !this.#closed) {
      const chunk = this.inbox.shift()!;
      this.#conn.consumed(this, chunk.length);
      this.ondata(chunk);
    }
    if (
      this.#remoteEnded && !this.#endDelivered && this.inbox.length === 0 && !this.#paused &&
      !this.#closed
    ) {
      this.#endDelivered = true;
      this.onend?.();
      if (this.#localEnded) this.#conn.closeStream(this);
    }
  }

  /** Called by the connection once END_STREAM went out. */
  markLocalEnded(): void {
    this.#localEnded = true;
  }

  /** Called by the connection when queued bytes drop below the high-water mark. */
  maybeDrain(): void {
    if (!this.#wantDrain || this.queuedBytes >= this.#conn.streamHighWaterBytes) return;
    this.#wantDrain = false;
    this.ondrain?.();
  }

  /** Called by the connection when the stream ends for good. */
  markClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.queue = [];
    this.queuedBytes = 0;
    this.inbox = [];
    this.onclose?.();
  }
}

/** One HTTP/2 connection, server side. */
export class H2Connection {
  readonly #socket: net.Socket;
  readonly #options: H2ConnectionOptions;
  readonly #decoder: HpackDecoder;
  readonly #encoder = new HpackEncoder();
  /** Header blocks encoded before, valid while no table size update is pending. */
  readonly #encoded = new WeakMap<readonly HeaderField[], Uint8Array>();
  #tableUpdatePending = false;
  readonly #out = new OutputBuffer();
  /** Open streams by id (an IdTable: see there why not a Map). */
  readonly #streams = new IdTable<ServerStream>();
  /** Streams with bytes or an end waiting for window or socket room. */
  readonly #blocked = new Set<ServerStream>();
  /**
   * Streams written to since the last socket write, pumped just before it (each at most once:
   * `ServerStream.pumpPending`), so that the messages a stream gets in one turn share DATA frames.
   */
  #pumpPending: ServerStream[] = [];
  /** Bytes written to the streams in `#pumpPending` since they were last pumped. */
  #pumpPendingBytes = 0;
  readonly #streamWindowBytes: number;
  readonly #connectionWindowBytes: number;
  /** The high-water mark of each stream's queue. */
  readonly streamHighWaterBytes: number;
  readonly #maxSocketBufferedBytes: number;
  readonly #earlyWriteBytes: number;
  readonly #maxHeaderBlockBytes: number;

  #input: Uint8Array | null = null;
  #prefaceSeen = false;
  #settingsSeen = false;
  #lastStreamId = 0;
  #peerInitialWindow = defaultWindowBytes;
  #peerMaxFrameBytes = defaultMaxFrameBytes;
  #sendWindow = defaultWindowBytes;
  #recvWindow: number;
  #recvUnacked = 0;
  /** A header block in progress (HEADERS without END_HEADERS, then CONTINUATION). */
  #pendingHeaders:
    | { streamId: number; flags: number; fragments: Uint8Array[]; bytes: number }
    | null = null;
  #flushScheduled = false;
  /** Inside #write: pumping may append output, which must not start another write. */
  #writing = false;
  #socketFull = false;
  #goingAway = false;
  #closed = false;

  /** Starts serving `socket` (in paused mode, positioned at the client preface). */
  constructor(socket: net.Socket, options: H2ConnectionOptions) {
    this.#socket = socket;
    this.#options = options;
    this.#streamWindowBytes = options.streamWindowBytes ?? defaultStreamWindowBytes;
    this.#connectionWindowBytes = options.connectionWindowBytes ?? defaultConnectionWindowBytes;
    this.streamHighWaterBytes = options.streamHighWaterBytes ?? defaultStreamHighWaterBytes;
    this.#maxSocketBufferedBytes = options.maxSocketBufferedBytes ??
      defaultMaxSocketBufferedBytes;
    this.#earlyWriteBytes = options.earlyWriteBytes ?? defaultEarlyWriteBytes;
    const maxHeaderListBytes = options.maxHeaderListBytes ?? defaultMaxHeaderListBytes;
    this.#maxHeaderBlockBytes = maxHeaderListBytes;
    this.#decoder = new HpackDecoder({ maxTableBytes: headerTableBytes, maxHeaderListBytes });
    this.#recvWindow = this.#connectionWindowBytes;
    socket.setNoDelay(true);
    this.#sendSettings(maxHeaderListBytes);
    socket.on("data", (chunk: Uint8Array) => this.#onData(chunk));
    socket.on("drain", () => this.#onSocketDrain());
    socket.on("error", () => this.destroy());
    socket.on("close", () => this.#onSocketClose());
  }

  /** Open streams. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** Refuses new streams (GOAWAY); the socket closes once the open ones finish. */
  close(): void {
    if (this.#goingAway || this.#closed) return;
    this.#goingAway = true;
    this.#goaway(ErrorCode.noError, "");
    if (this.#streams.size === 0) this.#endSocket();
  }

  /** Closes the socket now; open streams close. */
  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.destroy();
    this.#closeAllStreams();
  }

  // ---- sending (called by streams) ----

  /** Sends a HEADERS frame (split into CONTINUATIONs past the peer's frame size). */
  sendHeaders(stream: ServerStream, fields: readonly HeaderField[], endStream: boolean): void {
    const block = this.#encode(fields);
    const flags = endStream ? Flag.endStream : 0;
    const max = this.#peerMaxFrameBytes;
    if (block.length <= max) {
      this.#out.frame(FrameType.headers, flags | Flag.endHeaders, stream.id, block);
    } else {
      for (let at = 0; at < block.length; at += max) {
        const n = Math.min(max, block.length - at);
        const last = at + n >= block.length;
        const type = at === 0 ? FrameType.headers : FrameType.continuation;
        this.#out.frameSlice(
          type,
          (at === 0 ? flags : 0) | (last ? Flag.endHeaders : 0),
          stream.id,
          block,
          at,
          n,
        );
      }
    }
    this.#scheduleFlush();
    if (endStream) this.#afterLocalEnd(stream);
  }

  /**
   * `write` queued `bytes` on `stream`: they go into frames just before the next socket write,
   * so that the many small messages a watch stream sends in one turn travel in a few DATA
   * frames rather than one frame each. The client pays per frame too: with 1 000 watchers on
   * one key, taking in a put's thousand one-message frames was most of the client's work.
   */
  queued(stream: ServerStream, bytes: number, flushNow = false): void {
    if (!stream.pumpPending) {
      stream.pumpPending = true;
      this.#pumpPending.push(stream);
    }
    stream.unpumpedBytes += bytes;
    this.#pumpPendingBytes += bytes;
    this.#scheduleFlush(flushNow);
  }

  /** Moves a stream's queued bytes (and its end) out as far as windows and the socket allow. */
  pump(stream: ServerStream): void {
    // What is not framed now waits for window or socket room, which no early write can give.
    this.#pumpPendingBytes -= stream.unpumpedBytes;
    stream.unpumpedBytes = 0;
    if (stream.closed || stream.endSent) return;
    while (stream.queuedBytes > 0) {
      const allowed = Math.min(stream.sendWindow, this.#sendWindow, this.#peerMaxFrameBytes);
      if (this.#socketFull || allowed <= 0) {
        this.#blocked.add(stream);
        this.#scheduleFlush();
        stream.maybeDrain();
        return;
      }
      const n = Math.min(allowed, stream.queuedBytes);
      const lastByte = n === stream.queuedBytes;
      const flags = lastByte && stream.endQueued && stream.trailers === null ? Flag.endStream : 0;
      this.#out.frameWith(FrameType.data, flags, stream.id, n, (out, at) => {
        takeQueued(stream.queue, n, out, at);
      });
      stream.queuedBytes -= n;
      stream.sendWindow -= n;
      this.#sendWindow -= n;
      if (flags & Flag.endStream) {
        this.#blocked.delete(stream);
        this.#scheduleFlush();
        stream.maybeDrain();
        this.#afterLocalEnd(stream);
        return;
      }
    }
    this.#blocked.delete(stream);
    this.#scheduleFlush();
    if (stream.endQueued && !stream.closed) {
      if (stream.trailers !== null) {
        const trailers = stream.trailers;
        stream.trailers = null;
        this.sendHeaders(stream, trailers, true);
      } else {
        this.#out.frame(FrameType.data, Flag.endStream, stream.id);
        this.#afterLocalEnd(stream);
      }
      return;
    }
    stream.maybeDrain();
  }

  /** Sends RST_STREAM and closes the stream. */
  resetStream(stream: ServerStream, code: number): void {
    this.#rst(stream.id, code);
    this.closeStream(stream);
  }

  /** Forgets a finished stream and tells its consumer. */
  closeStream(stream: ServerStream): void {
    if (stream.closed) return;
    this.#streams.take(stream.id);
    this.#blocked.delete(stream);
    stream.markClosed();
    if (this.#goingAway && this.#streams.size === 0) this.#endSocket();
  }

  /** Request bytes reached the consumer: return them to the peer's windows, in batches. */
  consumed(stream: ServerStream, bytes: number): void {
    this.#returnWindow(bytes);
    if (stream.remoteEnded) return;
    stream.recvUnacked += bytes;
    if (stream.recvUnacked >= this.#streamWindowBytes / 2) {
      this.#windowUpdate(stream.id, stream.recvUnacked);
      stream.recvWindow += stream.recvUnacked;
      stream.recvUnacked = 0;
    }
  }

  // ---- receiving ----

  #onData(chunk: Uint8Array): void {
    if (this.#closed) return;
    let bytes = chunk;
    if (this.#input !== null) {
      const joined = new Uint8Array(this.#input.length + chunk.length);
      joined.set(this.#input);
      joined.set(chunk, this.#input.length);
      bytes = joined;
      this.#input = null;
    }
    try {
      const used = this.#parse(bytes);
      if (used < bytes.length) this.#input = bytes.subarray(used);
    } catch (err) {
      if (err instanceof ConnectionError) this.#fail(err.code, err.message);
      else if (err instanceof HpackError) this.#fail(ErrorCode.compressionError, err.message);
      else this.#fail(ErrorCode.internalError, "internal error");
    }
  }

  /** Handles every whole frame in `bytes`; returns how many bytes it used. */
  #parse(bytes: Uint8Array): number {
    let at = 0;
    if (!this.#prefaceSeen) {
      const seen = Math.min(bytes.length, prefaceBytes.length);
      for (let i = 0; i < seen; i++) {
        if (bytes[i] !== prefaceBytes[i]) {
          throw new ConnectionError(ErrorCode.protocolError, "bad client preface");
        }
      }
      if (seen < prefaceBytes.length) return 0;
      this.#prefaceSeen = true;
      at = prefaceBytes.length;
    }
    while (!this.#closed && bytes.length - at >= frameHeaderBytes) {
      const length = (bytes[at] << 16) | (bytes[at + 1] << 8) | bytes[at + 2];
      // Checked before anything is buffered for it (RFC 9113 §4.2).
      if (length > defaultMaxFrameBytes) {
        throw new ConnectionError(ErrorCode.frameSizeError, "frame larger than max frame size");
      }
      if (bytes.length - at < frameHeaderBytes + length) break;
      const type = bytes[at + 3];
      const flags = bytes[at + 4];
      const streamId = readUint32(bytes, at + 5) & 0x7fffffff;
      const payload = bytes.subarray(at + frameHeaderBytes, at + frameHeaderBytes + length);
      at += frameHeaderBytes + length;
      this.#frame(type, flags, streamId, payload);
    }
    return at;
  }

  #frame(type: number, flags: number, streamId: number, payload: Uint8Array): void {
    if (!this.#settingsSeen && type !== FrameType.settings) {
      throw new ConnectionError(ErrorCode.protocolError, "first frame is not SETTINGS");
    }
    if (this.#pendingHeaders !== null && type !== FrameType.continuation) {
      throw new ConnectionError(ErrorCode.protocolError, "header block interrupted");
    }
    switch (type) {
      case FrameType.data:
        return this.#onDataFrame(flags, streamId, payload);
      case FrameType.headers:
        return this.#onHeadersFrame(flags, streamId, payload);
      case FrameType.continuation:
        return this.#onContinuation(flags, streamId, payload);
      case FrameType.priority:
        if (streamId === 0) throw new ConnectionError(ErrorCode.protocolError, "PRIORITY on 0");
        return;
      case FrameType.rstStream:
        return this.#onRstStream(streamId, payload);
      case FrameType.settings:
        return this.#onSettings(flags, streamId, payload);
      case FrameType.pushPromise:
        throw new ConnectionError(ErrorCode.protocolError, "client sent PUSH_PROMISE");
      case FrameType.ping:
        return this.#onPing(flags, streamId, payload);
      case FrameType.goaway:
        if (streamId !== 0) throw new ConnectionError(ErrorCode.protocolError, "GOAWAY on stream");
        this.close();
        return;
      case FrameType.windowUpdate:
        return this.#onWindowUpdate(streamId, payload);
      default:
        return; // Unknown frame types are ignored (RFC 9113 §4.1).
    }
  }

  /** The payload without its padding (RFC 9113 §6.1, §6.2). */
  #unpad(flags: number, payload: Uint8Array): Uint8Array {
    if (!(flags & Flag.padded)) return payload;
    if (payload.length < 1 || payload[0] >= payload.length) {
      throw new ConnectionError(ErrorCode.protocolError, "padding exceeds the frame");
    }
    return payload.subarray(1, payload.length - payload[0]);
  }

  #onDataFrame(flags: number, streamId: number, payload: Uint8Array): void {
    if (streamId === 0) throw new ConnectionError(ErrorCode.protocolError, "DATA on stream 0");
    if (streamId > this.#lastStreamId) {
      throw new ConnectionError(ErrorCode.protocolError, "DATA on an idle stream");
    }
    // The whole payload, padding included, counts against the windows (RFC 9113 §6.9.1).
    const size = payload.length;
    this.#recvWindow -= size;
    if (this.#recvWindow < 0) {
      throw new ConnectionError(ErrorCode.flowControlError, "connection window exceeded");
    }
    const data = this.#unpad(flags, payload);
    const stream = this.#streams.get(streamId);
    if (stream === undefined || stream.remoteEnded) {
      // A stream we closed (answered or reset) may still receive what was in flight.
      this.#returnWindow(size);
      if (stream !== undefined) this.resetStream(stream, ErrorCode.streamClosed);
      return;
    }
    stream.recvWindow -= size;
    if (stream.recvWindow < 0) {
      this.#returnWindow(size);
      this.resetStream(stream, ErrorCode.flowControlError);
      return;
    }
    // Padding is never delivered: its window comes back at once.
    if (size > data.length) this.#returnWindow(size - data.length);
    try {
      if (data.length > 0) stream.receive(data);
      if (flags & Flag.endStream) stream.remoteEnd();
    } catch {
      if (!stream.closed) this.resetStream(stream, ErrorCode.internalError);
    }
  }

  /** Returns connection window for bytes no longer held, in batches of half the window. */
  #returnWindow(bytes: number): void {
    this.#recvUnacked += bytes;
    if (this.#recvUnacked >= this.#connectionWindowBytes / 2) {
      this.#windowUpdate(0, this.#recvUnacked);
      this.#recvWindow += this.#recvUnacked;
      this.#recvUnacked = 0;
    }
  }

  #onHeadersFrame(flags: number, streamId: number, payload: Uint8Array): void {
    if (streamId === 0) throw new ConnectionError(ErrorCode.protocolError, "HEADERS on stream 0");
    let fragment = this.#unpad(flags, payload);
    if (flags & Flag.priority) {
      if (fragment.length < 5) {
        throw new ConnectionError(ErrorCode.frameSizeError, "HEADERS priority truncated");
      }
      fragment = fragment.subarray(5);
    }
    if (flags & Flag.endHeaders) return this.#onHeaderBlock(streamId, flags, fragment);
    this.#pendingHeaders = { streamId, flags, fragments: [fragment], bytes: fragment.length };
    this.#checkHeaderBlockBytes(fragment.length);
  }

  #onContinuation(flags: number, streamId: number, payload: Uint8Array): void {
    const pending = this.#pendingHeaders;
    if (pending === null || pending.streamId !== streamId) {
      throw new ConnectionError(ErrorCode.protocolError, "unexpected CONTINUATION");
    }
    pending.fragments.push(payload);
    pending.bytes += payload.length;
    this.#checkHeaderBlockBytes(pending.bytes);
    if (!(flags & Flag.endHeaders)) return;
    this.#pendingHeaders = null;
    const block = new Uint8Array(pending.bytes);
    let at = 0;
    for (const f of pending.fragments) {
      block.set(f, at);
      at += f.length;
    }
    this.#onHeaderBlock(streamId, pending.flags, block);
  }

  #checkHeaderBlockBytes(bytes: number): void {
    if (bytes > this.#maxHeaderBlockBytes) {
      throw new ConnectionError(ErrorCode.enhanceYourCalm, "header block too large");
    }
  }

  #onHeaderBlock(streamId: number, flags: number, block: Uint8Array): void {
    // Decoded even when the stream is refused: the HPACK table must stay in step.
    const fields = this.#decoder.decode(block);
    const endStream = (flags & Flag.endStream) !== 0;
    const existing = this.#streams.get(streamId);
    if (existing !== undefined) {
      // Trailers: they must end the stream (RFC 9113 §8.1).
      if (!endStream || existing.remoteEnded) {
        this.resetStream(existing, ErrorCode.protocolError);
        return;
      }
      existing.remoteEnd();
      return;
    }
    if (streamId <= this.#lastStreamId) return; // a stream we already closed
    if ((streamId & 1) === 0) {
      throw new ConnectionError(ErrorCode.protocolError, "client opened an even stream");
    }
    this.#lastStreamId = streamId;
    if (this.#goingAway) return this.#rst(streamId, ErrorCode.refusedStream);
    if (this.#streams.size >= this.#options.maxConcurrentStreams) {
      return this.#rst(streamId, ErrorCode.refusedStream);
    }
    if (fields === null) {
      // Too large to keep: answered 431 (RFC 6585), as a server may (RFC 9113 §10.5.1).
      const stream = this.#openStream(streamId, {});
      stream.respond([[":status", "431"]], true);
      return;
    }
    const headers = requestHeaders(fields);
    if (headers === null) return this.#rst(streamId, ErrorCode.protocolError);
    const stream = this.#openStream(streamId, headers);
    try {
      this.#options.onStream(stream);
      if (endStream) stream.remoteEnd();
    } catch {
      if (!stream.closed) this.resetStream(stream, ErrorCode.internalError);
    }
  }

  #openStream(id: number, headers: RequestHeaders): ServerStream {
    const stream = new ServerStream(this, id, headers, {
      send: this.#peerInitialWindow,
      recv: this.#streamWindowBytes,
    });
    this.#streams.set(id, stream);
    return stream;
  }

  #onRstStream(streamId: number, payload: Uint8Array): void {
    if (payload.length !== 4) throw new ConnectionError(ErrorCode.frameSizeError, "bad RST_STREAM");
    if (streamId === 0) throw new ConnectionError(ErrorCode.protocolError, "RST_STREAM on 0");
    if (streamId > this.#lastStreamId) {
      throw new ConnectionError(ErrorCode.protocolError, "RST_STREAM on an idle stream");
    }
    const stream = this.#streams.get(streamId);
    if (stream !== undefined) this.closeStream(stream);
  }

  #onSettings(flags: number, streamId: number, payload: Uint8Array): void {
    if (streamId !== 0) throw new ConnectionError(ErrorCode.protocolError, "SETTINGS on stream");
    if (flags & Flag.ack) {
      if (payload.length !== 0) throw new ConnectionError(ErrorCode.frameSizeError, "SETTINGS ACK");
      return;
    }
    if (payload.length % 6 !== 0) {
      throw new ConnectionError(ErrorCode.frameSizeError, "SETTINGS length");
    }
    this.#settingsSeen = true;
    for (let at = 0; at < payload.length; at += 6) {
      const id = (payload[at] << 8) | payload[at + 1];
      const value = readUint32(payload, at + 2);
      switch (id) {
        case Setting.headerTableSize:
          this.#encoder.setPeerMaxTableBytes(value);
          this.#tableUpdatePending = true;
          break;
        case Setting.enablePush:
          if (value > 1) throw new ConnectionError(ErrorCode.protocolError, "ENABLE_PUSH");
          break;
        case Setting.initialWindowSize: {
          if (value > maxWindowBytes) {
            throw new ConnectionError(ErrorCode.flowControlError, "INITIAL_WINDOW_SIZE");
          }
          // The change applies to every open stream's window (RFC 9113 §6.9.2).
          const delta = value - this.#peerInitialWindow;
          this.#peerInitialWindow = value;
          for (const stream of this.#streams.values()) {
            stream.sendWindow += delta;
            if (stream.sendWindow > maxWindowBytes) {
              throw new ConnectionError(ErrorCode.flowControlError, "window overflow");
            }
          }
          if (delta > 0) this.#pumpBlocked();
          break;
        }
        case Setting.maxFrameSize:
          if (value < defaultMaxFrameBytes || value > maxAllowedFrameBytes) {
            throw new ConnectionError(ErrorCode.protocolError, "MAX_FRAME_SIZE");
          }
          this.#peerMaxFrameBytes = value;
          break;
        default:
          break; // MAX_CONCURRENT_STREAMS (we push nothing), MAX_HEADER_LIST_SIZE, unknown ids
      }
    }
    this.#out.frame(FrameType.settings, Flag.ack, 0);
    this.#scheduleFlush();
  }

  #onPing(flags: number, streamId: number, payload: Uint8Array): void {
    if (streamId !== 0) throw new ConnectionError(ErrorCode.protocolError, "PING on stream");
    if (payload.length !== 8) throw new ConnectionError(ErrorCode.frameSizeError, "PING length");
    if (flags & Flag.ack) return;
    this.#out.frame(FrameType.ping, Flag.ack, 0, payload);
    this.#scheduleFlush();
  }

  #onWindowUpdate(streamId: number, payload: Uint8Array): void {
    if (payload.length !== 4) throw new ConnectionError(ErrorCode.frameSizeError, "WINDOW_UPDATE");
    const increment = readUint32(payload, 0) & 0x7fffffff;
    if (streamId === 0) {
      if (increment === 0) throw new ConnectionError(ErrorCode.protocolError, "zero increment");
      this.#sendWindow += increment;
      if (this.#sendWindow > maxWindowBytes) {
        throw new ConnectionError(ErrorCode.flowControlError, "connection window overflow");
      }
      this.#pumpBlocked();
      return;
    }
    const stream = this.#streams.get(streamId);
    if (stream === undefined) {
      if (streamId > this.#lastStreamId) {
        throw new ConnectionError(ErrorCode.protocolError, "WINDOW_UPDATE on an idle stream");
      }
      return;
    }
    if (increment === 0) return this.resetStream(stream, ErrorCode.protocolError);
    stream.sendWindow += increment;
    if (stream.sendWindow > maxWindowBytes) {
      return this.resetStream(stream, ErrorCode.flowControlError);
    }
    if (stream.queuedBytes > 0 || stream.endQueued) this.pump(stream);
  }

  // ---- output ----

  #encode(fields: readonly HeaderField[]): Uint8Array {
    if (!this.#tableUpdatePending) {
      const cached = this.#encoded.get(fields);
      if (cached !== undefined) return cached;
    }
    const block = this.#encoder.encode(fields);
    if (this.#tableUpdatePending) {
      this.#tableUpdatePending = false;
      return block; // carries the size update: not reusable
    }
    if (Object.isFrozen(fields)) this.#encoded.set(fields, block);
    return block;
  }

  #sendSettings(maxHeaderListBytes: number): void {
    const settings: [number, number][] = [
      [Setting.maxConcurrentStreams, this.#options.maxConcurrentStreams],
      [Setting.initialWindowSize, this.#streamWindowBytes],
      [Setting.maxHeaderListSize, maxHeaderListBytes],
    ];
    this.#out.frameWith(FrameType.settings, 0, 0, settings.length * 6, (out, at) => {
      for (const [id, value] of settings) {
        out[at] = id >>> 8;
        out[at + 1] = id & 0xff;
        writeUint32(out, at + 2, value);
        at += 6;
      }
    });
    this.#windowUpdate(0, this.#connectionWindowBytes - defaultWindowBytes);
    this.#scheduleFlush();
  }

  #windowUpdate(streamId: number, increment: number): void {
    if (increment <= 0) return;
    this.#out.frameWith(FrameType.windowUpdate, 0, streamId, 4, (out, at) => {
      writeUint32(out, at, increment);
    });
    this.#scheduleFlush();
  }

  #rst(streamId: number, code: number): void {
    this.#out.frameWith(FrameType.rstStream, 0, streamId, 4, (out, at) => {
      writeUint32(out, at, code);
    });
    this.#scheduleFlush();
  }

  #goaway(code: number, debug: string): void {
    const text = new TextEncoder().encode(debug);
    this.#out.frameWith(FrameType.goaway, 0, 0, 8 + text.length, (out, at) => {
      writeUint32(out, at, this.#lastStreamId);
      writeUint32(out, at + 4, code);
      out.set(text, at + 8);
    });
    this.#scheduleFlush();
  }

  /** After END_STREAM went out: closes the stream, or stops a client still sending. */
  #afterLocalEnd(stream: ServerStream): void {
    stream.markLocalEnded();
    if (stream.remoteEnded) {
      // The consumer may still be owed the end of the request (delivered when it resumes).
      if (stream.inbox.length === 0) this.closeStream(stream);
      return;
    }
    if (stream.resetWhenAnsweredEarly) {
      this.resetStream(stream, ErrorCode.noError);
      return;
    }
    // The rest of the request is read and dropped (receive() does once the end is sent).
    for (const chunk of stream.inbox) this.consumed(stream, chunk.length);
    stream.inbox = [];
    stream.resume();
  }

  #pumpBlocked(): void {
    for (const stream of [...this.#blocked]) {
      if (this.#socketFull || this.#sendWindow <= 0) return;
      this.pump(stream);
    }
  }

  /**
   * Writes now if `flushNow` comes first in the turn or the output reached `earlyWriteBytes`,
   * and in any case once the turn ends. A flush scheduled means the connection has written or
   * queued output in this turn already: later `flushNow` output joins it, so a put's fan-out
   * costs one early write per connection (its first events go out at once: 0.4 ms sooner with
   * 1 000 watchers, where the first 16 KiB took that long to encode) and unary answers, which
   * never ask, keep their single write.
   */
  #scheduleFlush(flushNow = false): void {
    if (this.#closed) return;
    if (
      !this.#writing &&
      ((flushNow && !this.#flushScheduled) ||
        this.#out.pendingBytes + this.#pumpPendingBytes >= this.#earlyWriteBytes)
    ) this.#write();
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#flushScheduled = false;
    this.#write();
  }

  /** Frames what the streams queued, then hands everything appended so far to the socket. */
  #write(): void {
    if (this.#closed) return;
    if (this.#pumpPending.length > 0) {
      const streams = this.#pumpPending;
      this.#pumpPending = [];
      this.#writing = true;
      try {
        for (const stream of streams) {
          stream.pumpPending = false;
          this.pump(stream);
        }
      } finally {
        this.#writing = false;
      }
    }
    const bytes = this.#out.take();
    if (bytes === null) return;
    this.#socket.write(bytes);
    if (this.#socket.writableLength > this.#maxSocketBufferedBytes) this.#socketFull = true;
  }

  #onSocketDrain(): void {
    if (!this.#socketFull) return;
    this.#socketFull = false;
    this.#pumpBlocked();
  }

  #fail(code: number, message: string): void {
    if (this.#closed) return;
    this.#goaway(code, message);
    this.#flush();
    this.#closed = true;
    this.#closeAllStreams();
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), closeGraceMs).unref();
  }

  #endSocket(): void {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), closeGraceMs).unref();
  }

  #onSocketClose(): void {
    this.#closed = true;
    this.#closeAllStreams();
  }

  #closeAllStreams(): void {
    const streams = this.#streams.drain();
    this.#blocked.clear();
    for (const stream of streams) stream.markClosed();
  }
}

/** Moves the first `bytes` of `queue` (which holds at least that many) into `out` at `at`. */
function takeQueued(queue: Uint8Array[], bytes: number, out: Uint8Array, at: number): void {
  let left = bytes;
  while (left > 0) {
    const chunk = queue[0];
    if (chunk.length <= left) {
      out.set(chunk, at);
      at += chunk.length;
      left -= chunk.length;
      queue.shift();
    } else {
      out.set(chunk.subarray(0, left), at);
      queue[0] = chunk.subarray(left);
      left = 0;
    }
  }
}

/** Fields that name a connection, not a message: HTTP/2 forbids them (RFC 9113 §8.2.2). */
export const connectionSpecificFields: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
]);
/** NUL, CR and LF may not appear in a field value (RFC 9113 §8.2.1). */
const forbiddenValueChars = /[\0\r\n]/;
const requestPseudo = new Set([":method", ":scheme", ":path", ":authority"]);

/**
 * The header fields as a record, or null for a malformed request (RFC 9113 §8.2, §8.3):
 * upper-case names, NUL/CR/LF in values, unknown or repeated pseudo-headers, pseudo-headers after regular fields,
 * connection-specific fields, or a missing :method / :path / :scheme.
 */
function requestHeaders(fields: HeaderField[]): RequestHeaders | null {
  const headers: Record<string, string> = Object.create(null);
  let regularSeen = false;
  for (let i = 0; i < fields.length; i++) {
    const name = fields[i][0];
    const value = fields[i][1];
    if (name.length === 0 || forbiddenValueChars.test(value)) return null;
    if (name.charCodeAt(0) === 0x3a) {
      if (regularSeen || !requestPseudo.has(name) || name in headers) return null;
      headers[name] = value;
      continue;
    }
    regularSeen = true;
    if (name !== name.toLowerCase() || connectionSpecificFields.has(name)) return null;
    if (name === "te" && value !== "trailers") return null;
    const prior = headers[name];
    headers[name] = prior === undefined ? value : prior + (name === "cookie" ? "; " : ", ") + value;
  }
  if (headers[":method"] === undefined) return null;
  if (headers[":method"] !== "CONNECT" && (!headers[":path"] || !headers[":scheme"])) return null;
  return headers;
}
