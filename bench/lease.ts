/**
 * Lease benchmark: K clients spread over a few HTTP/2 connections, each running two closed loops
 * at once: one grants leases (unary LeaseGrant), the other renews the client's latest lease on
 * its own bidi LeaseKeepAlive stream (send one request, await its answer, send the next), as an
 * etcd client keeps its session alive. It reports grants/s and keep-alives/s with their latency.
 *
 * Grants go through raft and the WAL; keep-alives are answered by the leader alone. The client
 * sends each lease id back as the raw varint bytes the grant answer carried, so it never decodes
 * int64s.
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import type * as http2 from "node:http2";
import { Lease, LeaseGrantRequestSchema } from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { assert } from "../internal/assert.ts";
import { equalBytes } from "../internal/bytes.ts";
import { microsPerOperation, startCpuWindow } from "./cpu_window.ts";
import { GrpcCallError, grpcFrame, grpcPath, grpcPrefixBytes } from "./grpc_raw.ts";
import {
  openSession,
  ProtoReader,
  RawBidiStream,
  unaryOnSession,
  WireType,
} from "./grpc_stream.ts";
import type { CpuProbe } from "./load.ts";
import { Histogram, type LatencySummary } from "./stats.ts";

/** Names of the lease cases. */
export type LeaseCaseName = "lease-keepalive";

/** Every lease case, in run order. */
export const leaseCases: readonly LeaseCaseName[] = ["lease-keepalive"];

/** gRPC path of LeaseGrant. */
export const leaseGrantPath: string = grpcPath(Lease.typeName, Lease.method.leaseGrant.name);
/** gRPC path of the LeaseKeepAlive stream. */
export const leaseKeepAlivePath: string = grpcPath(
  Lease.typeName,
  Lease.method.leaseKeepAlive.name,
);

/** TTL of the granted leases: longer than any window, so none expires during a run. */
export const leaseTtlSeconds = 60;
/** Failures beyond this count end a run early. */
const maxErrorsPerRun = 1_000;
/** Bound on connecting. */
const connectTimeoutMs = 10_000;

/** The LeaseGrant request for `ttlSeconds` (server-chosen id), as a gRPC frame. */
export function leaseGrantFrame(ttlSeconds: number): Uint8Array {
  return grpcFrame(toBinary(
    LeaseGrantRequestSchema,
    create(LeaseGrantRequestSchema, { TTL: BigInt(ttlSeconds) }),
  ));
}

/** The fields of a LeaseGrantResponse the benchmark reads. */
export interface LeaseGrantScan {
  /** The lease id as its raw varint bytes (a copy), empty when the answer had none. */
  idVarint: Uint8Array;
  /** Granted TTL in seconds. */
  ttl: number;
  /** The response's `error` field (etcd leaves it empty). */
  error: string;
}

const textDecoder = new TextDecoder();

/** Reads a LeaseGrantResponse (ID = 2, TTL = 3, error = 4) without decoding it into objects. */
export function scanLeaseGrantResponse(message: Uint8Array): LeaseGrantScan {
  const scan: LeaseGrantScan = { idVarint: new Uint8Array(0), ttl: 0, error: "" };
  const r = new ProtoReader(message);
  while (!r.done) {
    const tag = r.varint();
    if (tag === ((2 << 3) | WireType.varint)) scan.idVarint = r.varintBytes().slice();
    else if (tag === ((3 << 3) | WireType.varint)) scan.ttl = r.varint();
    else if (tag === ((4 << 3) | WireType.bytes)) {
      const end = r.lengthDelimited();
      scan.error = textDecoder.decode(message.subarray(r.pos, end));
      r.pos = end;
    } else r.skip(tag & 7);
  }
  return scan;
}

/** LeaseKeepAliveRequest{ID} as a gRPC frame, the id given as its raw varint bytes. */
export function keepAliveFrame(idVarint: Uint8Array): Uint8Array {
  assert(idVarint.length >= 1 && idVarint.length <= 10, "a lease id varint has 1 to 10 bytes");
  const message = new Uint8Array(1 + idVarint.length);
  message[0] = (1 << 3) | WireType.varint;
  message.set(idVarint, 1);
  return grpcFrame(message);
}

/** The fields of a LeaseKeepAliveResponse the benchmark reads. */
export interface KeepAliveScan {
  /** The lease id's raw varint bytes (a view of the message). */
  idVarint: Uint8Array;
  /** Remaining TTL in seconds; 0 or less means the lease was not found. */
  ttl: number;
}

/** Reads a LeaseKeepAliveResponse (ID = 2, TTL = 3) without decoding it into objects. */
export function scanKeepAliveResponse(message: Uint8Array): KeepAliveScan {
  const scan: KeepAliveScan = { idVarint: new Uint8Array(0), ttl: 0 };
  const r = new ProtoReader(message);
  while (!r.done) {
    const tag = r.varint();
    if (tag === ((2 << 3) | WireType.varint)) scan.idVarint = r.varintBytes();
    else if (tag === ((3 << 3) | WireType.varint)) {
      // int64: a negative TTL is a 10-byte varint read as a huge number; only > 0 is alive.
      const ttl = r.varint();
      scan.ttl = ttl >= 2 ** 63 ? -1 : ttl;
    } else r.skip(tag & 7);
  }
  return scan;
}

/** How to run the lease case. */
export interface LeaseOptions {
  /** Concurrent clients (each a grant loop and a keep-alive loop). */
  clients: number;
  /** HTTP/2 connections the clients are spread over. */
  conns: number;
  /** Unrecorded lead-in. */
  warmupMs: number;
  /** Measurement window. */
  durationMs: number;
  /** After the window, calls in flight get this long before the connections are cut. */
  drainTimeoutMs: number;
}

/** What one lease run measured. */
export interface LeaseResult {
  /** Concurrent clients. */
  clients: number;
  /** HTTP/2 connections. */
  conns: number;
  /** Grants answered in the window. */
  grants: number;
  /** Keep-alives answered in the window. */
  keepAlives: number;
  /** Failed calls in the window (errors, unknown leases, wrong ids). */
  errors: number;
  /** First failure seen (warm-up included). */
  firstError?: string;
  /** Length of the window. */
  elapsedMs: number;
  /** grants / window seconds. */
  grantsPerSecond: number;
  /** keep-alives / window seconds. */
  keepAlivesPerSecond: number;
  /** Grant latency (request sent to answer). */
  grantLatency: LatencySummary;
  /** Keep-alive latency (request written on the stream to its answer). */
  keepAliveLatency: LatencySummary;
  /** Non-empty grant latency buckets [upper bound ms, count]. */
  grantBuckets: Array<[number, number]>;
  /** Non-empty keep-alive latency buckets [upper bound ms, count]. */
  keepAliveBuckets: Array<[number, number]>;
  /** CPU of the generator in % of one core. */
  clientCpuPct: number;
  /** CPU of the server in % of one core. */
  serverCpuPct?: number;
  /** CPU of everything else on the machine in % of one core. */
  otherCpuPct?: number;
  /** Generator CPU per answered call (grant or keep-alive), µs. */
  clientCpuMicrosPerOp: number;
  /** Server CPU per answered call (grant or keep-alive), µs. */
  serverCpuMicrosPerOp?: number;
}

/** The description of the lease case for the report. */
export function leaseCaseTitle(): string {
  return `each client: a closed LeaseGrant loop (TTL ${leaseTtlSeconds} s) and a closed ` +
    "keep-alive loop on its own LeaseKeepAlive stream, renewing its latest lease";
}

interface RunState {
  stop: boolean;
  recording: boolean;
  grants: number;
  keepAlives: number;
  errors: number;
  firstError?: string;
}

function fail(state: RunState, error: unknown): void {
  state.firstError ??= String(error);
  if (state.recording) state.errors++;
  if (state.errors >= maxErrorsPerRun) state.stop = true;
}

/** One client: its connection, keep-alive stream and latest lease. */
class LeaseClient {
  readonly #session: http2.ClientHttp2Session;
  #stream: RawBidiStream | undefined;
  #pending:
    | { expected: Uint8Array; resolve: () => void; reject: (error: unknown) => void }
    | undefined;
  /** Keep-alive frame of the latest granted lease. */
  keepAlive: Uint8Array | undefined;
  /** Resolves once the first lease was granted (or the run stops). */
  readonly firstLease: Promise<void>;
  #markFirstLease!: () => void;

  constructor(session: http2.ClientHttp2Session) {
    this.#session = session;
    this.firstLease = new Promise((resolve) => this.#markFirstLease = resolve);
  }

  async grant(frame: Uint8Array): Promise<void> {
    const scan = scanLeaseGrantResponse(await unaryOnSession(this.#session, leaseGrantPath, frame));
    if (scan.error) throw new GrpcCallError(`LeaseGrant answered error "${scan.error}"`);
    if (scan.idVarint.length === 0 || scan.ttl <= 0) {
      throw new GrpcCallError(`LeaseGrant answered no lease (TTL ${scan.ttl})`);
    }
    this.keepAlive = keepAliveFrame(scan.idVarint);
    this.#markFirstLease();
  }

  releaseWaiters(): void {
    this.#markFirstLease();
  }

  #openStream(): RawBidiStream {
    const stream = new RawBidiStream(this.#session, leaseKeepAlivePath, {
      onMessage: (message) => {
        const pending = this.#pending;
        this.#pending = undefined;
        if (pending === undefined) return;
        try {
          const scan = scanKeepAliveResponse(message);
          if (scan.ttl <= 0) throw new GrpcCallError("keep-alive: the lease was not found");
          if (!equalBytes(scan.idVarint, pending.expected)) {
            throw new GrpcCallError("keep-alive answered for another lease");
          }
          pending.resolve();
        } catch (error) {
          pending.reject(error);
        }
      },
      onClose: (error) => {
        if (this.#stream === stream) this.#stream = undefined;
        const pending = this.#pending;
        this.#pending = undefined;
        pending?.reject(error ?? new GrpcCallError("the keep-alive stream ended"));
      },
    });
    return stream;
  }

  /** Renews the latest lease on the client's stream and resolves with its answer. */
  renew(): Promise<void> {
    const frame = this.keepAlive;
    assert(frame !== undefined, "renew after the first grant");
    assert(this.#pending === undefined, "one keep-alive in flight per client");
    return new Promise((resolve, reject) => {
      this.#pending = { expected: frame.subarray(grpcPrefixBytes + 1), resolve, reject };
      const stream = this.#stream ??= this.#openStream();
      if (!stream.send(frame)) {
        this.#pending = undefined;
        reject(new GrpcCallError("the keep-alive stream is closed"));
      }
    });
  }

  close(): void {
    this.#stream?.cancel();
  }
}

async function grantLoop(
  client: LeaseClient,
  frame: Uint8Array,
  state: RunState,
  histogram: Histogram,
): Promise<void> {
  while (!state.stop) {
    const start = performance.now();
    try {
      await client.grant(frame);
    } catch (error) {
      fail(state, error);
      continue;
    }
    if (state.recording) {
      histogram.record(performance.now() - start);
      state.grants++;
    }
  }
  client.releaseWaiters();
}

async function keepAliveLoop(
  client: LeaseClient,
  state: RunState,
  histogram: Histogram,
): Promise<void> {
  await client.firstLease;
  while (!state.stop && client.keepAlive !== undefined) {
    const start = performance.now();
    try {
      await client.renew();
    } catch (error) {
      fail(state, error);
      continue;
    }
    if (state.recording) {
      histogram.record(performance.now() - start);
      state.keepAlives++;
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Runs the lease case against `baseUrl` with `options.clients` clients and returns the figures
 * of the window. Every connection it opened is closed before it returns.
 */
export async function runLease(
  baseUrl: string,
  options: LeaseOptions,
  serverCpu?: CpuProbe,
): Promise<LeaseResult> {
  assert(options.clients >= 1 && options.conns >= 1, "clients and conns >= 1");
  const connsUsed = Math.min(options.conns, options.clients);
  const sessions: http2.ClientHttp2Session[] = [];
  const clients: LeaseClient[] = [];
  const state: RunState = { stop: false, recording: false, grants: 0, keepAlives: 0, errors: 0 };
  try {
    for (let i = 0; i < connsUsed; i++) sessions.push(await openSession(baseUrl, connectTimeoutMs));
    const grantHistogram = new Histogram();
    const keepAliveHistogram = new Histogram();
    const frame = leaseGrantFrame(leaseTtlSeconds);
    const loops: Promise<void>[] = [];
    for (let i = 0; i < options.clients; i++) {
      const client = new LeaseClient(sessions[i % connsUsed]);
      clients.push(client);
      loops.push(grantLoop(client, frame, state, grantHistogram));
      loops.push(keepAliveLoop(client, state, keepAliveHistogram));
    }
    const all = Promise.all(loops);
    await Promise.race([all, sleep(options.warmupMs)]);
    const cpu = await startCpuWindow(serverCpu);
    state.recording = true;
    await Promise.race([all, sleep(options.durationMs)]);
    state.recording = false;
    state.stop = true;
    const windowCpu = await cpu.stop();
    const drained = await Promise.race([
      all.then(() => true),
      sleep(options.drainTimeoutMs).then(() => false),
    ]);
    if (!drained) {
      // A hung server must not hang the benchmark: cutting the connections fails the calls.
      for (const session of sessions) session.destroy();
      await all;
    }
    const seconds = windowCpu.elapsedMs / 1000;
    const ops = state.grants + state.keepAlives;
    return {
      clients: options.clients,
      conns: connsUsed,
      grants: state.grants,
      keepAlives: state.keepAlives,
      errors: state.errors,
      firstError: state.firstError,
      elapsedMs: windowCpu.elapsedMs,
      grantsPerSecond: seconds > 0 ? state.grants / seconds : 0,
      keepAlivesPerSecond: seconds > 0 ? state.keepAlives / seconds : 0,
      grantLatency: grantHistogram.summary(),
      keepAliveLatency: keepAliveHistogram.summary(),
      grantBuckets: grantHistogram.buckets(),
      keepAliveBuckets: keepAliveHistogram.buckets(),
      clientCpuPct: windowCpu.clientCpuPct,
      serverCpuPct: windowCpu.serverCpuPct,
      otherCpuPct: windowCpu.otherCpuPct,
      clientCpuMicrosPerOp: microsPerOperation(windowCpu.clientCpuSeconds, ops),
      serverCpuMicrosPerOp: windowCpu.serverCpuSeconds !== undefined
        ? microsPerOperation(windowCpu.serverCpuSeconds, ops)
        : undefined,
    };
  } finally {
    state.stop = true;
    for (const client of clients) client.close();
    for (const session of sessions) session.destroy();
  }
}
