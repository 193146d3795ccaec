/**
 * The load generator: N concurrent clients spread over M HTTP/2 connections (h2c, gRPC), each
 * client a closed loop (send, await the answer, send the next). A warm-up period opens the
 * connections and lets the JIT settle; then a measurement window counts completions and records
 * latencies into a {@linkcode Histogram}. Nothing is logged per request. The gRPC client is either
 * the lean raw one ({@linkcode RawGrpcConnection}, the default) or connect-node's.
 *
 * @module
 */

import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import process from "node:process";
import { KV } from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { assert } from "../internal/assert.ts";
import { machineBusySeconds } from "./cpu.ts";
import { RawGrpcConnection } from "./grpc_raw.ts";
import { Histogram, type LatencySummary } from "./stats.ts";
import {
  encodeRequest,
  type KVClient,
  kvPaths,
  type KvRequest,
  type PreparedCase,
} from "./workload.ts";

/**
 * Which gRPC client generates the load: `raw` sends pre-encoded frames on `node:http2` (lean, the
 * default); `connect` is connect-node's generated client (ordinary client code, about three times
 * the CPU per call).
 */
export type ClientKind = "raw" | "connect";

/** Every client kind; the first is the default. */
export const clientKinds: readonly ClientKind[] = ["raw", "connect"];

/** How long and how hard to drive one case. */
export interface LoadOptions {
  /** The gRPC client that sends the requests. */
  client: ClientKind;
  /** Concurrent clients (closed loops). */
  clients: number;
  /** HTTP/2 connections the clients are spread over (round robin). */
  conns: number;
  /** Unrecorded lead-in before the measurement window. */
  warmupMs: number;
  /** Length of the measurement window (duration mode). */
  durationMs: number;
  /** If set: measure exactly this many requests instead of a fixed window (count mode). */
  totalRequests?: number;
  /** Count mode stops here even if the count was not reached. */
  maxMeasureMs: number;
  /** After the window, requests still in flight get this long before connections are cut. */
  drainTimeoutMs: number;
}

/** What one run of one case measured. */
export interface LoadResult {
  /** Requests that completed inside the measurement window. */
  requests: number;
  /** Requests that failed inside the measurement window. */
  errors: number;
  /** First error seen (warm-up included), for the report. */
  firstError?: string;
  /** Length of the measurement window actually used. */
  elapsedMs: number;
  /** requests / elapsed seconds. */
  throughput: number;
  /** Latencies of the completed requests. */
  latency: LatencySummary;
  /** Non-empty histogram buckets [upper bound ms, count]. */
  buckets: Array<[number, number]>;
  /** CPU the load generator process used during the window, in % of one core. */
  clientCpuPct: number;
  /** CPU the server used during the window, in % of one core (if a probe was given). */
  serverCpuPct?: number;
  /**
   * CPU everything else on the machine used during the window, in % of one core (machine busy
   * time less generator and server). High values mean the figures are disturbed.
   */
  otherCpuPct?: number;
  /** Generator CPU time per completed request, in µs: its cost, whatever the server. */
  clientCpuMicrosPerRequest: number;
  /**
   * Server CPU time per completed request, in µs (if a probe was given): its efficiency, which
   * stays comparable when the generator, not the server, limits the throughput.
   */
  serverCpuMicrosPerRequest?: number;
}

/** Reads a process's CPU seconds so far (for the server side of the CPU columns). */
export type CpuProbe = () => Promise<number>;

/** Failures beyond this count end a case early: the figures would be meaningless. */
const maxErrorsPerCase = 1_000;

/** One HTTP/2 connection of the generator, able to send the requests of a case. */
export interface KvConnection {
  /** Sends one request; resolves once it was answered with gRPC status OK. */
  send(request: KvRequest): Promise<unknown>;
  /** The hot-loop call of `testCase` on this connection: sends its next request. */
  sender(testCase: PreparedCase): () => Promise<unknown>;
  /** Closes the connection; calls in flight fail. */
  close(): void;
}

class RawKvConnection implements KvConnection {
  readonly #grpc: RawGrpcConnection;

  constructor(baseUrl: string) {
    this.#grpc = new RawGrpcConnection(baseUrl);
  }

  send(request: KvRequest): Promise<unknown> {
    return this.#grpc.unary(kvPaths[request.method], encodeRequest(request));
  }

  sender(testCase: PreparedCase): () => Promise<unknown> {
    const grpc = this.#grpc;
    const path = kvPaths[testCase.method];
    return () => grpc.unary(path, testCase.nextFrame());
  }

  close(): void {
    this.#grpc.close();
  }
}

class ConnectKvConnection implements KvConnection {
  readonly #manager: Http2SessionManager;
  readonly #client: KVClient;

  constructor(baseUrl: string) {
    // Our own manager per transport: one TCP connection each, and a handle to close it. The
    // gRPC transport of connect-node always speaks HTTP/2 (h2c for an http:// base URL).
    this.#manager = new Http2SessionManager(baseUrl);
    const transport = createGrpcTransport({
      baseUrl,
      sessionManager: this.#manager,
      // No response compression: we measure the servers, not gzip.
      acceptCompression: [],
    });
    this.#client = createClient(KV, transport);
  }

  send(request: KvRequest): Promise<unknown> {
    return request.method === "put"
      ? this.#client.put(request.message)
      : this.#client.range(request.message);
  }

  sender(testCase: PreparedCase): () => Promise<unknown> {
    return () => this.send(testCase.nextMessage());
  }

  close(): void {
    this.#manager.abort();
  }
}

/** Pool of HTTP/2 connections of one client kind. */
export class ConnectionPool {
  /** The connections; clients are spread over them round robin. */
  readonly connections: KvConnection[] = [];

  /** Opens nothing yet: connections are made by the first calls. */
  constructor(baseUrl: string, conns: number, kind: ClientKind) {
    assert(Number.isSafeInteger(conns) && conns >= 1, "conns must be >= 1");
    for (let i = 0; i < conns; i++) {
      this.connections.push(
        kind === "raw" ? new RawKvConnection(baseUrl) : new ConnectKvConnection(baseUrl),
      );
    }
  }

  /** Closes every connection. */
  close(): void {
    for (const c of this.connections) c.close();
  }
}

interface LoopState {
  stop: boolean;
  recording: boolean;
  seq: number;
  /** In count mode, no request with seq >= limit is sent. */
  limit: number;
  completed: number;
  errors: number;
  firstError?: string;
  onCountReached?: () => void;
  countTarget: number;
}

async function clientLoop(
  call: () => Promise<unknown>,
  state: LoopState,
  histogram: Histogram,
): Promise<void> {
  while (!state.stop) {
    const seq = state.seq++;
    if (seq >= state.limit) return;
    const start = performance.now();
    try {
      await call();
    } catch (error) {
      if (state.firstError === undefined) state.firstError = String(error);
      if (state.recording) state.errors++;
      if (state.errors >= maxErrorsPerCase) state.stop = true;
      continue;
    }
    if (state.recording) {
      histogram.record(performance.now() - start);
      if (++state.completed === state.countTarget) state.onCountReached?.();
    }
  }
}

function cpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

/**
 * Drives `testCase` against the gRPC endpoint `baseUrl` with `options.clients` closed-loop
 * clients over `options.conns` fresh connections of the `options.client` kind, and returns the
 * figures of the measurement window. The connections are closed before it returns. A setup
 * request that fails rejects (the case cannot run); load requests that fail are counted.
 */
export async function runLoad(
  baseUrl: string,
  testCase: PreparedCase,
  options: LoadOptions,
  serverCpu?: CpuProbe,
): Promise<LoadResult> {
  assert(Number.isSafeInteger(options.clients) && options.clients >= 1, "clients must be >= 1");
  const pool = new ConnectionPool(
    baseUrl,
    Math.min(options.conns, options.clients),
    options.client,
  );
  try {
    return await drive(pool, testCase, options, serverCpu);
  } finally {
    pool.close();
  }
}

async function drive(
  pool: ConnectionPool,
  testCase: PreparedCase,
  options: LoadOptions,
  serverCpu?: CpuProbe,
): Promise<LoadResult> {
  for (const request of testCase.setup) await pool.connections[0].send(request);
  const histogram = new Histogram();
  const state: LoopState = {
    stop: false,
    recording: false,
    seq: 0,
    limit: Infinity,
    completed: 0,
    errors: 0,
    countTarget: -1,
  };
  const loops: Promise<void>[] = [];
  for (let i = 0; i < options.clients; i++) {
    const connection = pool.connections[i % pool.connections.length];
    loops.push(clientLoop(connection.sender(testCase), state, histogram));
  }
  const all = Promise.all(loops);

  await Promise.race([all, sleep(options.warmupMs)]);
  const serverCpuStart = serverCpu ? await serverCpu() : 0;
  const machineStart = await machineBusySeconds();
  const clientCpuStart = cpuSeconds();
  const windowStart = performance.now();
  state.recording = true;

  let windowEnd = windowStart;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const windowDone = new Promise<void>((resolve) => {
    const end = () => {
      if (!state.recording) return;
      windowEnd = performance.now();
      state.recording = false;
      state.stop = true;
      resolve();
    };
    if (options.totalRequests !== undefined) {
      state.countTarget = options.totalRequests;
      state.limit = state.seq + options.totalRequests;
      state.onCountReached = end;
      timer = setTimeout(end, options.maxMeasureMs);
    } else {
      timer = setTimeout(end, options.durationMs);
    }
    // Every loop may end early (too many errors): close the window then too.
    all.then(end, end);
  });
  await windowDone;
  clearTimeout(timer);
  const clientCpu = cpuSeconds() - clientCpuStart;
  const machineEnd = await machineBusySeconds();
  const serverCpuEnd = serverCpu ? await serverCpu() : 0;
  if (await Promise.race([all.then(() => true), sleep(options.drainTimeoutMs).then(() => false)])) {
    // Drained.
  } else {
    // A hung server must not hang the benchmark: cutting the connections fails the calls.
    pool.close();
    await all;
  }

  const elapsedMs = windowEnd - windowStart;
  const seconds = elapsedMs / 1000;
  const pct = (cpu: number) => (seconds > 0 ? (cpu / seconds) * 100 : 0);
  const perRequest = (cpu: number) => (histogram.count > 0 ? (cpu / histogram.count) * 1e6 : NaN);
  const serverCpuSeconds = serverCpuEnd - serverCpuStart;
  const otherCpuSeconds = machineStart !== undefined && machineEnd !== undefined
    ? Math.max(0, machineEnd - machineStart - clientCpu - serverCpuSeconds)
    : undefined;
  return {
    requests: histogram.count,
    errors: state.errors,
    firstError: state.firstError,
    elapsedMs,
    throughput: seconds > 0 ? histogram.count / seconds : 0,
    latency: histogram.summary(),
    buckets: histogram.buckets(),
    clientCpuPct: pct(clientCpu),
    serverCpuPct: serverCpu ? pct(serverCpuSeconds) : undefined,
    otherCpuPct: otherCpuSeconds !== undefined ? pct(otherCpuSeconds) : undefined,
    clientCpuMicrosPerRequest: perRequest(clientCpu),
    serverCpuMicrosPerRequest: serverCpu ? perRequest(serverCpuSeconds) : undefined,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
