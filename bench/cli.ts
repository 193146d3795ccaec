/**
 * Command-line flags of `deno task bench`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { clusterSizes } from "./cluster.ts";
import { type LeaseCaseName, leaseCases } from "./lease.ts";
import { type ClientKind, clientKinds } from "./load.ts";
import { allTargets, type Target } from "./server_process.ts";
import {
  defaultOfferedEventsPerSecond,
  defaultStreamsPerConn,
  defaultWatchConns,
  defaultWatcherCounts,
  maxPutRate,
  maxStreamsPerConn,
  maxWatchers,
  type WatchCaseName,
  watchCases,
} from "./watch.ts";
import { type CaseName, resolveCases, validateShape, type WorkloadShape } from "./workload.ts";

/** Thrown for a bad command line; main prints it with the usage text. */
export class UsageError extends Error {
  /** Creates the error with what is wrong. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Everything one benchmark run needs to know. */
export interface BenchConfig {
  /** Servers to measure, in run order. */
  targets: Target[];
  /** Whether the targets were narrowed with --only (then a missing one is an error). */
  onlyGiven: boolean;
  /** KV cases to run, in run order. */
  cases: CaseName[];
  /** Watch fan-out cases to run, in run order (after the KV cases). */
  watchCases: WatchCaseName[];
  /** Lease cases to run (after the watch cases). */
  leaseCases: LeaseCaseName[];
  /** Watcher counts, each run for every watch case. */
  watchers: number[];
  /** Watch streams per HTTP/2 connection. */
  streamsPerConn: number;
  /** The watch writer's puts per second, or undefined for the default per watcher count. */
  putRate?: number;
  /** The gRPC client that generates the load. */
  client: ClientKind;
  /** Concurrent client counts, each run for every case. */
  clients: number[];
  /** HTTP/2 connections, or undefined for min(clients, defaultMaxConns). */
  conns?: number;
  /** Measurement window per (case, clients) in duration mode. */
  durationMs: number;
  /** Unrecorded lead-in per (case, clients). */
  warmupMs: number;
  /** Measurements per (case, clients); the least disturbed one is reported. */
  repeat: number;
  /** Count mode: requests per (case, clients) instead of a window. */
  totalRequests?: number;
  /** Data sizes. */
  shape: WorkloadShape;
  /** Print markdown tables (for docs/benchmarks.md) instead of plain ones. */
  markdown: boolean;
  /** Skip the generator-ceiling measurement. */
  skipOverhead: boolean;
  /** Smoke-run mode (short windows). */
  quick: boolean;
  /** etcd binary. */
  etcdBinary: string;
  /** Our entry point (mod.ts). */
  oursEntry: string;
  /** Directory for the JSON dump. */
  outDir: string;
  /** Show the usage text and exit. */
  help: boolean;
  /** Members per server: 1, or a cluster of 3 or 5 on loopback with the load on its leader. */
  cluster: number;
}

/** Connections used by default: min(clients, this), as etcd's benchmark spreads --clients over --conns. */
export const defaultMaxConns = 8;
/** Upper bound on any window or warm-up given on the command line. */
export const maxDurationMs = 10 * 60_000;
/** Upper bound on --repeat. */
export const maxRepeat = 10;
/** Upper bound on concurrent clients. */
export const maxClients = 1_024;

const watcherDefault = defaultWatcherCounts.join(",");
const offered = defaultOfferedEventsPerSecond;

/** Usage text. */
export const usage = `deno task bench [flags]

Drives our server and etcd 3.4.23 (same flags, same machine, one after the other) with gRPC
load and prints req/s and latency for both, with ratios.

  --only ours|etcd      measure one server only (default: both; ours is skipped with a note
                        while mod.ts does not exist)
  --cluster N           run each server as an N-member cluster on loopback (1, 3 or 5;
                        default 1); the load goes to the leader, server CPU sums all members
  --cases LIST          groups put, range, all (= put + range), watch, lease, or case names:
                        put-single, put-random, range-linearizable, range-serializable,
                        watch-key, watch-prefix, lease-keepalive (default: all)
  --client raw|connect  gRPC client of the load generator: raw (pre-encoded frames on
                        node:http2, lean; default) or connect (connect-node's client); the
                        watch and lease cases always use raw streams
  --clients LIST        concurrent clients of the KV and lease cases, e.g. 1,16,64
                        (default: 1,16,64)
  --conns N             HTTP/2 connections (default: min(clients, ${defaultMaxConns}); for
                        the watch cases ${defaultWatchConns})
  --watchers LIST       watcher counts of the watch cases (default: ${watcherDefault})
  --streams N           watch streams per connection (default ${defaultStreamsPerConn}); the watchers
                        are spread over conns x streams streams, many per stream
  --put-rate N          the watch writer's puts/s (default: ${offered} events/s offered,
                        i.e. ${offered} / watchers puts/s)
  --duration D          measurement window per case and client count, e.g. 5s, 500ms (default 5s)
  --warmup D            unrecorded lead-in before each window (default 1s)
  --total N             measure N requests instead of a window (bounded at 60 s; KV cases
                        only, the watch and lease cases always use --duration)
  --repeat N            measure each cell N times, in N rounds in which the servers take
                        turns (each started fresh; the first of a round goes last in the
                        next), and report the attempt that other work on the machine
                        disturbed least (default 1)
  --quick               smoke run: 1s windows, 250ms warm-up, 10k keyspace
  --keyspace N          distinct keys of put-random and watch-prefix (default 100000)
  --key-size N          key bytes (default 8)
  --val-size N          value bytes (default 256)
  --seed N              PRNG seed for values and random keys (default 1)
  --no-overhead         skip the load generator's own ceiling measurement
  --markdown            print the tables as markdown for docs/benchmarks.md
  --etcd PATH           etcd binary (default /usr/bin/etcd)
  --ours PATH           our entry point (default <repo>/mod.ts)
  --out DIR             where the JSON dump goes (default <repo>/bench/out)
  --help                this text
`;

/** Parses a duration such as "5s", "500ms", "1.5s", "2m" or a bare number of seconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!match) throw new UsageError(`bad duration "${text}" (use e.g. 5s, 500ms, 1m)`);
  const value = Number(match[1]);
  const unit = match[2] ?? "s";
  const ms = unit === "ms" ? value : unit === "s" ? value * 1000 : value * 60_000;
  if (ms > maxDurationMs) throw new UsageError(`duration "${text}" is above ${maxDurationMs} ms`);
  return Math.round(ms);
}

function positiveInt(text: string, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(text.trim())) throw new UsageError(`${what} must be a positive integer`);
  const n = Number(text);
  if (n < 1 || n > max) throw new UsageError(`${what} must be in [1, ${max}]`);
  return n;
}

function list(text: string): string[] {
  return text.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** `--cases` items split into the watch and lease cases (and groups) and the rest (KV). */
export function splitStreamCases(
  items: readonly string[],
): { kv: string[]; watch: WatchCaseName[]; lease: LeaseCaseName[] } {
  const kv: string[] = [];
  const watch = new Set<WatchCaseName>();
  const lease = new Set<LeaseCaseName>();
  for (const item of items) {
    if (item === "watch") watchCases.forEach((c) => watch.add(c));
    else if (item === "lease") leaseCases.forEach((c) => lease.add(c));
    else if ((watchCases as readonly string[]).includes(item)) watch.add(item as WatchCaseName);
    else if ((leaseCases as readonly string[]).includes(item)) lease.add(item as LeaseCaseName);
    else kv.push(item);
  }
  return {
    kv,
    watch: watchCases.filter((c) => watch.has(c)),
    lease: leaseCases.filter((c) => lease.has(c)),
  };
}

/** Parses the command line; `repoRoot` anchors the default paths. */
export function parseConfig(args: string[], repoRoot: string): BenchConfig {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        only: { type: "string" },
        cases: { type: "string" },
        client: { type: "string" },
        clients: { type: "string" },
        conns: { type: "string" },
        duration: { type: "string" },
        warmup: { type: "string" },
        total: { type: "string" },
        repeat: { type: "string" },
        quick: { type: "boolean" },
        keyspace: { type: "string" },
        "key-size": { type: "string" },
        "val-size": { type: "string" },
        seed: { type: "string" },
        "no-overhead": { type: "boolean" },
        markdown: { type: "boolean" },
        etcd: { type: "string" },
        ours: { type: "string" },
        out: { type: "string" },
        help: { type: "boolean" },
        cluster: { type: "string" },
        watchers: { type: "string" },
        streams: { type: "string" },
        "put-rate": { type: "string" },
      },
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const v = parsed.values;
  const quick = v.quick ?? false;

  let targets = [...allTargets];
  if (v.only !== undefined) {
    if (!(allTargets as readonly string[]).includes(v.only)) {
      throw new UsageError(`--only must be one of ${allTargets.join(", ")}`);
    }
    targets = [v.only as Target];
  }

  const client = (v.client ?? clientKinds[0]) as ClientKind;
  if (!clientKinds.includes(client)) {
    throw new UsageError(`--client must be one of ${clientKinds.join(", ")}`);
  }

  const split = splitStreamCases(list(v.cases ?? "all"));
  const cases = resolveCases(split.kv);
  if (typeof cases === "string") {
    throw new UsageError(
      `${cases}; also: watch, lease, ${[...watchCases, ...leaseCases].join(", ")}`,
    );
  }
  if (cases.length + split.watch.length + split.lease.length === 0) {
    throw new UsageError("--cases selects no case");
  }
  const watchers = list(v.watchers ?? defaultWatcherCounts.join(",")).map((w) =>
    positiveInt(w, "--watchers", maxWatchers)
  );
  if (watchers.length === 0) throw new UsageError("--watchers selects no watcher count");

  const clients = list(v.clients ?? "1,16,64").map((c) => positiveInt(c, "--clients", maxClients));
  if (clients.length === 0) throw new UsageError("--clients selects no client count");

  const shape: WorkloadShape = {
    keyspace: v.keyspace !== undefined
      ? positiveInt(v.keyspace, "--keyspace")
      : quick
      ? 10_000
      : 100_000,
    keySize: v["key-size"] !== undefined ? positiveInt(v["key-size"], "--key-size", 1024) : 8,
    valueSize: v["val-size"] !== undefined
      ? positiveInt(v["val-size"], "--val-size", 1024 * 1024)
      : 256,
    seed: v.seed !== undefined ? positiveInt(v.seed, "--seed", 0xffffffff) : 1,
  };
  const problem = validateShape(shape);
  if (problem) throw new UsageError(problem);

  const cluster = v.cluster !== undefined ? positiveInt(v.cluster, "--cluster", 5) : 1;
  if (!clusterSizes.includes(cluster)) {
    throw new UsageError(`--cluster must be one of ${clusterSizes.join(", ")}`);
  }

  const durationMs = v.duration !== undefined ? parseDuration(v.duration) : quick ? 1000 : 5000;
  if (durationMs <= 0) throw new UsageError("--duration must be > 0");
  return {
    targets,
    onlyGiven: v.only !== undefined,
    cases,
    watchCases: split.watch,
    leaseCases: split.lease,
    watchers,
    streamsPerConn: v.streams !== undefined
      ? positiveInt(v.streams, "--streams", maxStreamsPerConn)
      : defaultStreamsPerConn,
    putRate: v["put-rate"] !== undefined
      ? positiveInt(v["put-rate"], "--put-rate", maxPutRate)
      : undefined,
    client,
    clients,
    conns: v.conns !== undefined ? positiveInt(v.conns, "--conns", maxClients) : undefined,
    durationMs,
    warmupMs: v.warmup !== undefined ? parseDuration(v.warmup) : quick ? 250 : 1000,
    repeat: v.repeat !== undefined ? positiveInt(v.repeat, "--repeat", maxRepeat) : 1,
    totalRequests: v.total !== undefined ? positiveInt(v.total, "--total") : undefined,
    shape,
    markdown: v.markdown ?? false,
    skipOverhead: v["no-overhead"] ?? false,
    quick,
    etcdBinary: v.etcd ?? "/usr/bin/etcd",
    oursEntry: v.ours ?? `${repoRoot}/mod.ts`,
    outDir: v.out ?? `${repoRoot}/bench/out`,
    help: v.help ?? false,
    cluster,
  };
}
