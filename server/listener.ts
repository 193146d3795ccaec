/**
 * The client listener: one port, like etcd's cmux. Each connection's first bytes decide: the
 * HTTP/2 preface goes to our HTTP/2 connection (`h2/`; native gRPC needs trailers, which
 * Deno.serve cannot send, and node:http2 cost more CPU per call than everything else a put
 * does), anything else to node:http, where the Hono app serves Connect, gRPC-web and the
 * gateway.
 *
 * @module
 */
import * as http from "node:http";
import * as net from "node:net";
import type { Hono } from "hono";
import type { EtcdServer } from "./etcd_server.ts";
import { grpcOverheadBytes } from "./limits.ts";
import { GrpcServer } from "./grpc_server.ts";
import { H2Connection, type ServerStream } from "./h2/mod.ts";
import { nodeHandlerFor, serveFetchOnStream } from "./node_fetch.ts";
import { routes } from "./routes.ts";
import { encodeWatchResponse } from "./watch_encode.ts";
import {
  DeleteRangeResponseSchema,
  PutResponseSchema,
  RangeResponseSchema,
  WatchResponseSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { encodeDeleteRangeResponse, encodePutResponse, encodeRangeResponse } from "./kv_encode.ts";

const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/** Bytes read to classify a connection; a preface is 24 bytes. */
const sniffBytes = http2Preface.length;
/**
 * Streams one HTTP/2 connection may have open. etcd leaves it unbounded; every Go client puts
 * all its RPCs on one connection, so the bound is generous, and bytes held in unfinished
 * messages are bounded separately (GrpcServerOptions.maxPendingBytes).
 */
const maxConcurrentStreamsPerConnection = 10_000;
/** A connection that sends nothing classifiable within this time is closed. */
const sniffTimeoutMs = 10_000;
/** How often an unclassified connection is read again without waiting for 'readable'. */
const sniffPollMs = 100;

/** A listening client port. */
export class ClientListener {
  readonly #tcp: net.Server;
  readonly #sockets: Set<net.Socket>;
  readonly #h1: http.Server;
  /** The bound address. */
  readonly address: { hostname: string; port: number };

  private constructor(
    tcp: net.Server,
    h1: http.Server,
    sockets: Set<net.Socket>,
    address: { hostname: string; port: number },
  ) {
    this.#sockets = sockets;
    this.#tcp = tcp;
    this.#h1 = h1;
    this.address = address;
  }

  /** Listens on `hostname:port` (port 0 picks a free port). */
  static listen(
    server: EtcdServer,
    app: Hono,
    hostname: string,
    port: number,
  ): Promise<ClientListener> {
    const origin = `http://${hostname}:${port}`;
    const fetchHandler = (req: Request) => app.fetch(req);
    const grpc = new GrpcServer({
      readMaxBytes: server.config.maxRequestBytes + grpcOverheadBytes,
      encoders: new Map<string, (message: never, headroom: number) => Uint8Array>([
        [WatchResponseSchema.typeName, encodeWatchResponse],
        [RangeResponseSchema.typeName, encodeRangeResponse],
        [PutResponseSchema.typeName, encodePutResponse],
        [DeleteRangeResponseSchema.typeName, encodeDeleteRangeResponse],
      ]),
      onMessageBytes: (direction, bytes) =>
        (direction === "received" ? server.metrics.grpcReceivedBytes : server.metrics.grpcSentBytes)
          .inc(bytes),
    });
    routes(server)(grpc);
    const h2Options = {
      maxConcurrentStreams: maxConcurrentStreamsPerConnection,
      onStream: (stream: ServerStream) => {
        if (GrpcServer.isGrpc(stream.headers)) grpc.handle(stream);
        // Non-gRPC requests over HTTP/2 (curl --http2-prior-knowledge) reach the same app.
        else serveFetchOnStream(stream, fetchHandler, origin);
      },
    };
    const h1 = http.createServer(nodeHandlerFor(fetchHandler, origin));
    // h1 never listens itself: it is handed connections. Deno 2.9's node:http destroys a
    // keep-alive connection after each response when its server is not listening, so every
    // client that reuses a connection races the close ("connection closed before message
    // completed", ~3% of requests under load) and pays a new connection per request.
    Object.defineProperty(h1, "listening", { get: () => true });
    const sockets = new Set<net.Socket>();
    const tcp = net.createServer((socket) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      classify(socket, (isHttp2) => {
        if (!isHttp2) {
          h1.emit("connection", socket);
          return;
        }
        // Destroying the socket (close()) closes the connection and its streams.
        new H2Connection(socket, h2Options);
      });
    });
    return new Promise((resolve, reject) => {
      tcp.once("error", reject);
      tcp.listen(port, hostname, () => {
        tcp.off("error", reject);
        const bound = tcp.address() as net.AddressInfo;
        resolve(new ClientListener(tcp, h1, sockets, { hostname, port: bound.port }));
      });
    });
  }

  /** Stops accepting and closes every open connection. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#tcp.close(() => resolve()));
    for (const s of this.#sockets) s.destroy();
    this.#h1.close();
    await closed;
  }
}

/**
 * Reads enough of a connection to tell HTTP/2 from HTTP/1.x, then hands the socket on. The
 * socket stays in paused mode throughout (reads on 'readable', never 'data'), so no bytes can
 * flow past the ones pushed back: pausing and resuming a flowing socket reordered bytes under
 * load, and the HTTP/1.1 parser then saw a body before its head.
 *
 * Besides the 'readable' event, the socket is polled every `sniffPollMs`: under a loaded full
 * test run, a connection whose request had arrived was once left unclassified until the sniff
 * timeout (no further 'readable' came), and the client saw its socket hang up. A poll costs
 * one `read()` on a connection that is normally classified within the first poll.
 */
function classify(socket: net.Socket, route: (isHttp2: boolean) => void): void {
  let seen: Buffer = Buffer.alloc(0);
  let waitedMs = 0;
  const poll = setInterval(() => {
    waitedMs += sniffPollMs;
    if (waitedMs >= sniffTimeoutMs) {
      clearInterval(poll);
      socket.destroy();
    } else {
      onReadable();
    }
  }, sniffPollMs);
  const onReadable = () => {
    for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read()) {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]) as Buffer;
    }
    if (seen.length === 0) return;
    const n = Math.min(seen.length, sniffBytes);
    const isPrefaceSoFar = seen.subarray(0, n).toString("latin1") === http2Preface.slice(0, n);
    // Decide as soon as the bytes cannot be a preface, or are a whole one.
    if (isPrefaceSoFar && seen.length < sniffBytes) return;
    clearInterval(poll);
    socket.off("readable", onReadable);
    socket.off("error", onError);
    socket.unshift(seen);
    route(isPrefaceSoFar);
  };
  const onError = () => {
    clearInterval(poll);
    socket.destroy();
  };
  socket.on("readable", onReadable);
  socket.on("error", onError);
  socket.once("close", () => clearInterval(poll));
}
