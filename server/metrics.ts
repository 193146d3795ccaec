/**
 * A small Prometheus registry (counters, gauges, histograms, labelled families) rendered in
 * the text exposition format 0.0.4, and the metrics a member exposes on `/metrics` under
 * etcd 3.4's names, help texts, types and histogram buckets, so dashboards and alerts built
 * for etcd (and `etcdctl check datascale`) read them unchanged.
 *
 * Observations sit on hot paths (every gRPC call, every WAL fsync), so they never allocate:
 * a counter is a number, a histogram a preallocated array of bucket counts, and labelled
 * children are looked up once, when a call site is set up, not per observation. Values that
 * the server already tracks (leader, indexes, sizes) are read only when scraped.
 *
 * @module
 */
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { cpuUsage } from "node:process";
import { toConnectError } from "./errors.ts";
import { type ReadyResponses, readyTaker, takeReady, wrapMethods } from "./service_methods.ts";
import { formatId } from "./ids.ts";
import { serverVersion } from "./version.ts";

/** `count` bucket bounds starting at `start`, each `factor` times the previous one. */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  const bounds: number[] = [];
  let bound = start;
  for (let i = 0; i < count; i++) {
    bounds.push(bound);
    bound *= factor;
  }
  return bounds;
}

/** A monotonically increasing count. */
export class Counter {
  #value = 0;

  /** Adds `n` (default 1); negative amounts are ignored, as a counter never decreases. */
  inc(n = 1): void {
    if (n > 0) this.#value += n;
  }

  /** The current count. */
  get value(): number {
    return this.#value;
  }
}

/** A value that goes up and down. */
export class Gauge {
  #value = 0;

  /** Sets the value. */
  set(value: number): void {
    this.#value = value;
  }

  /** Adds `n` (default 1). */
  inc(n = 1): void {
    this.#value += n;
  }

  /** Subtracts `n` (default 1). */
  dec(n = 1): void {
    this.#value -= n;
  }

  /** The current value. */
  get value(): number {
    return this.#value;
  }
}

/** Observations counted into fixed buckets, with their sum and count. */
export class Histogram {
  /** Upper bounds of the buckets, ascending; +Inf is implied. */
  readonly bounds: readonly number[];
  /** Per-bucket counts (not cumulative); the last slot is the +Inf bucket. */
  readonly #counts: Float64Array;
  #sum = 0;
  #count = 0;

  /** Creates an empty histogram over ascending `bounds`. */
  constructor(bounds: readonly number[]) {
    for (let i = 1; i < bounds.length; i++) {
      if (!(bounds[i] > bounds[i - 1])) throw new RangeError("bucket bounds must ascend");
    }
    this.bounds = [...bounds];
    this.#counts = new Float64Array(bounds.length + 1);
  }

  /** Records one observation. */
  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]) i++;
    this.#counts[i]++;
    this.#sum += value;
    this.#count++;
  }

  /** Number of observations. */
  get count(): number {
    return this.#count;
  }

  /** Sum of observations. */
  get sum(): number {
    return this.#sum;
  }

  /** Cumulative counts per bound, then the +Inf total (what the exposition format shows). */
  cumulative(): number[] {
    const out: number[] = [];
    let running = 0;
    for (const c of this.#counts) {
      running += c;
      out.push(running);
    }
    return out;
  }
}

type MetricType = "counter" | "gauge" | "histogram";

/** One named metric family: its samples are rendered on demand. */
interface Family {
  name: string;
  help: string;
  type: MetricType;
  /** Appends the sample lines (without HELP/TYPE). */
  render(out: string[]): void;
}

/** A family of counters told apart by label values. */
export class CounterFamily {
  readonly #labelNames: readonly string[];
  readonly #children = new Map<string, { labels: string; counter: Counter }>();

  /** Creates an empty family with these label names. */
  constructor(labelNames: readonly string[]) {
    this.#labelNames = labelNames;
  }

  /**
   * The counter for `labelValues` (in label-name order), created at 0 on first use. Look
   * children up when setting up a call site, not per observation.
   */
  child(...labelValues: string[]): Counter {
    if (labelValues.length !== this.#labelNames.length) {
      throw new RangeError(`want ${this.#labelNames.length} label values`);
    }
    const key = labelValues.join("\u0000");
    let child = this.#children.get(key);
    if (!child) {
      child = { labels: formatLabels(this.#labelNames, labelValues), counter: new Counter() };
      this.#children.set(key, child);
    }
    return child.counter;
  }

  /** Renders every child, ordered by their label text. */
  render(name: string, out: string[]): void {
    const children = [...this.#children.values()].sort((a, b) =>
      a.labels < b.labels ? -1 : a.labels > b.labels ? 1 : 0
    );
    for (const c of children) out.push(`${name}${c.labels} ${formatValue(c.counter.value)}`);
  }
}

/** Labels as `{a="x",b="y"}`, sorted by name as Prometheus' Go client writes them. */
function formatLabels(names: readonly string[], values: readonly string[]): string {
  if (names.length === 0) return "";
  const pairs = names.map((n, i) => [n, values[i]] as const).sort((a, b) => a[0] < b[0] ? -1 : 1);
  return `{${pairs.map(([n, v]) => `${n}="${escapeLabelValue(v)}"`).join(",")}}`;
}

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(help: string): string {
  return help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/**
 * A sample value as Go's `strconv.FormatFloat(v, 'g', -1, 64)` writes it, which is what
 * etcd's exposition shows: the shortest digits that round-trip, in exponent form whenever
 * the decimal exponent is below -4 or at least 6 (`2.476032e+07`, `200000`, `0.001`).
 */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  if (value === 0) return Object.is(value, -0) ? "-0" : "0";
  const [mantissa, exponentText] = value.toExponential().split("e");
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= 6) {
    const sign = exponent < 0 ? "-" : "+";
    return `${mantissa}e${sign}${String(Math.abs(exponent)).padStart(2, "0")}`;
  }
  return String(value);
}

/** Metric families by name, rendered in name order. */
export class MetricsRegistry {
  readonly #families = new Map<string, Family>();

  /** Registers a counter. */
  counter(name: string, help: string): Counter {
    const counter = new Counter();
    this.#add({
      name,
      help,
      type: "counter",
      render: (out) => out.push(`${name} ${formatValue(counter.value)}`),
    });
    return counter;
  }

  /** Registers a counter whose value is read from `read` at scrape time. */
  counterFunc(name: string, help: string, read: () => number): void {
    this.#add({
      name,
      help,
      type: "counter",
      render: (out) => out.push(`${name} ${formatValue(read())}`),
    });
  }

  /** Registers a gauge. */
  gauge(name: string, help: string): Gauge {
    const gauge = new Gauge();
    this.#add({
      name,
      help,
      type: "gauge",
      render: (out) => out.push(`${name} ${formatValue(gauge.value)}`),
    });
    return gauge;
  }

  /** Registers a gauge whose value is read from `read` at scrape time. */
  gaugeFunc(name: string, help: string, read: () => number): void {
    this.#add({
      name,
      help,
      type: "gauge",
      render: (out) => out.push(`${name} ${formatValue(read())}`),
    });
  }

  /** Registers a constant gauge of 1 carrying information in its labels. */
  info(name: string, help: string, labels: Record<string, string>): void {
    const text = formatLabels(Object.keys(labels), Object.values(labels));
    this.#add({ name, help, type: "gauge", render: (out) => out.push(`${name}${text} 1`) });
  }

  /** Registers a histogram with these bucket bounds. */
  histogram(name: string, help: string, bounds: readonly number[]): Histogram {
    const histogram = new Histogram(bounds);
    this.#add({
      name,
      help,
      type: "histogram",
      render: (out) => {
        const cumulative = histogram.cumulative();
        histogram.bounds.forEach((bound, i) => {
          out.push(`${name}_bucket{le="${formatValue(bound)}"} ${formatValue(cumulative[i])}`);
        });
        out.push(`${name}_bucket{le="+Inf"} ${formatValue(cumulative[cumulative.length - 1])}`);
        out.push(`${name}_sum ${formatValue(histogram.sum)}`);
        out.push(`${name}_count ${formatValue(histogram.count)}`);
      },
    });
    return histogram;
  }

  /** Registers a family of counters with these label names. */
  counterFamily(name: string, help: string, labelNames: readonly string[]): CounterFamily {
    const family = new CounterFamily(labelNames);
    this.#add({ name, help, type: "counter", render: (out) => family.render(name, out) });
    return family;
  }

  /** The exposition text of every family. A family whose reader throws is left out. */
  render(): string {
    const out: string[] = [];
    const names = [...this.#families.keys()].sort();
    for (const name of names) {
      const family = this.#families.get(name)!;
      const samples: string[] = [];
      try {
        family.render(samples);
      } catch {
        continue; // e.g. a size read while the backend is closing; the next scrape has it
      }
      out.push(`# HELP ${name} ${escapeHelp(family.help)}`, `# TYPE ${name} ${family.type}`);
      out.push(...samples);
    }
    return out.join("\n") + "\n";
  }

  #add(family: Family): void {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(family.name)) {
      throw new RangeError(`invalid metric name ${family.name}`);
    }
    if (this.#families.has(family.name)) {
      throw new RangeError(`metric ${family.name} registered twice`);
    }
    this.#families.set(family.name, family);
  }
}

/** The content type of the text exposition format. */
export const metricsContentType = "text/plain; version=0.0.4; charset=utf-8";

/** What the member's metrics read from it at scrape time. */
export interface MetricsSource {
  memberId: bigint;
  /** Effective `--quota-backend-bytes` (Infinity when disabled). */
  quotaBytes: number;
  hasLeader(): boolean;
  isLeader(): boolean;
  committedIndex(): number;
  appliedIndex(): number;
  pendingProposals(): number;
  dbSizeBytes(): number;
  dbSizeInUseBytes(): number;
  keys(): number;
  currentRev(): number;
  compactRev(): number;
}

/** Go's `codes.Code` names, indexed by code, as grpc_prometheus labels them. */
const grpcCodeNames = [
  "OK",
  "Canceled",
  "Unknown",
  "InvalidArgument",
  "DeadlineExceeded",
  "NotFound",
  "AlreadyExists",
  "PermissionDenied",
  "ResourceExhausted",
  "FailedPrecondition",
  "Aborted",
  "OutOfRange",
  "Unimplemented",
  "Internal",
  "Unavailable",
  "DataLoss",
  "Unauthenticated",
] as const;

/** gRPC's OK status (Connect's Code enum has no member for success). */
const grpcOk = 0;

/** Counters of one RPC method, looked up once when the service is registered. */
interface MethodCounters {
  started: Counter;
  /** Indexed by gRPC code. */
  handled: Counter[];
  received: Counter;
  sent: Counter;
}

/** The gRPC server metrics of go-grpc-prometheus, which etcd 3.4 registers. */
class GrpcMetrics {
  readonly #started: CounterFamily;
  readonly #handled: CounterFamily;
  readonly #received: CounterFamily;
  readonly #sent: CounterFamily;

  constructor(registry: MetricsRegistry) {
    const labels = ["grpc_type", "grpc_service", "grpc_method"];
    this.#started = registry.counterFamily(
      "grpc_server_started_total",
      "Total number of RPCs started on the server.",
      labels,
    );
    this.#handled = registry.counterFamily(
      "grpc_server_handled_total",
      "Total number of RPCs completed on the server, regardless of success or failure.",
      [...labels, "grpc_code"],
    );
    this.#received = registry.counterFamily(
      "grpc_server_msg_received_total",
      "Total number of RPC stream messages received on the server.",
      labels,
    );
    this.#sent = registry.counterFamily(
      "grpc_server_msg_sent_total",
      "Total number of gRPC stream messages sent by the server.",
      labels,
    );
  }

  /** The counters of `method`, every code's handled counter initialised at 0 (as etcd). */
  counters(service: DescService, method: DescMethod): MethodCounters {
    const labels = [grpcTypeOf(method), service.typeName, method.name];
    return {
      started: this.#started.child(...labels),
      handled: grpcCodeNames.map((code) => this.#handled.child(...labels, code)),
      received: this.#received.child(...labels),
      sent: this.#sent.child(...labels),
    };
  }
}

function grpcTypeOf(method: DescMethod): string {
  switch (method.methodKind) {
    case "unary":
      return "unary";
    case "server_streaming":
      return "server_stream";
    case "client_streaming":
      return "client_stream";
    case "bidi_streaming":
      return "bidi_stream";
  }
}

function codeOf(err: unknown): Code {
  return toConnectError(err).code;
}

/** Reads this process's soft open-files limit once (Linux); undefined elsewhere. */
function readMaxFds(): number | undefined {
  try {
    const limits = Deno.readTextFileSync("/proc/self/limits");
    const line = limits.split("\n").find((l) => l.startsWith("Max open files"));
    const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
    return soft === undefined || soft === "unlimited" ? undefined : Number(soft);
  } catch {
    return undefined;
  }
}

function countOpenFds(): number {
  let n = 0;
  for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
  return n;
}

/** Virtual memory size from /proc/self/stat (field 23, in bytes). */
function virtualMemoryBytes(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  // The command name (field 2) may hold spaces; fields after it start past its ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[20]);
}

/** The metrics of one member, under etcd 3.4's names. */
export class ServerMetrics {
  /** Every family, for `/metrics`. */
  readonly registry: MetricsRegistry = new MetricsRegistry();
  /** Leader changes seen (a new non-zero leader). */
  readonly leaderChanges: Counter;
  /** Proposals that failed: timed out, dropped, or cut short by a stop. */
  readonly proposalsFailed: Counter;
  /** ReadIndex requests that failed. */
  readonly readIndexesFailed: Counter;
  /** WAL writes with their fdatasync, in seconds. */
  readonly walFsyncSeconds: Histogram;
  /** Backend batch commits, in seconds. */
  readonly backendCommitSeconds: Histogram;
  /** Defragmentations, in seconds. */
  readonly defragSeconds: Histogram;
  /** 1 while a defragmentation runs. */
  readonly defragInflight: Gauge;
  /** Backend snapshots (Maintenance.Snapshot), in seconds. */
  readonly snapshotSeconds: Histogram;
  /** Maintenance.Hash, in seconds. */
  readonly hashSeconds: Histogram;
  /** Maintenance.HashKV, in seconds. */
  readonly hashRevSeconds: Histogram;
  /** `/health` answers that were true. */
  readonly healthSuccess: Counter;
  /** `/health` answers that were false. */
  readonly healthFailures: Counter;
  /** Leases granted by apply. */
  readonly leaseGranted: Counter;
  /** Leases revoked by apply. */
  readonly leaseRevoked: Counter;
  /** Expired leases this member proposed to revoke. */
  readonly leaseExpired: Counter;
  /** Snapshots (backends) sent to a peer, by outcome, labelled with the peer's ID. */
  readonly snapshotSendSuccess: CounterFamily;
  readonly snapshotSendFailures: CounterFamily;
  /** Snapshots received from a peer, labelled with the sender's ID. */
  readonly snapshotReceiveSuccess: CounterFamily;
  readonly snapshotReceiveFailures: CounterFamily;
  /** Bytes of gRPC request messages received. */
  readonly grpcReceivedBytes: Counter;
  /** Bytes of gRPC response messages sent. */
  readonly grpcSentBytes: Counter;
  readonly #grpc: GrpcMetrics;

  /** Registers every metric, reading live values from `source`. */
  constructor(source: MetricsSource) {
    const r = this.registry;
    r.info(
      "etcd_server_version",
      "Which version is running. 1 for 'server_version' label with current version.",
      { server_version: serverVersion },
    );
    r.info(
      "etcd_cluster_version",
      "Which version is running. 1 for 'cluster_version' label with current cluster version",
      { cluster_version: serverVersion.split(".").slice(0, 2).join(".") },
    );
    r.info(
      "etcd_server_id",
      "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
      { server_id: formatId(source.memberId) },
    );
    r.gaugeFunc(
      "etcd_server_has_leader",
      "Whether or not a leader exists. 1 is existence, 0 is not.",
      () => Number(source.hasLeader()),
    );
    r.gaugeFunc(
      "etcd_server_is_leader",
      "Whether or not this member is a leader. 1 if is, 0 otherwise.",
      () => Number(source.isLeader()),
    );
    r.gaugeFunc(
      "etcd_server_is_learner",
      "Whether or not this member is a learner. 1 if is, 0 otherwise.",
      () => 0,
    );
    this.leaderChanges = r.counter(
      "etcd_server_leader_changes_seen_total",
      "The number of leader changes seen.",
    );
    r.gaugeFunc(
      "etcd_server_proposals_committed_total",
      "The total number of consensus proposals committed.",
      source.committedIndex,
    );
    r.gaugeFunc(
      "etcd_server_proposals_applied_total",
      "The total number of consensus proposals applied.",
      source.appliedIndex,
    );
    r.gaugeFunc(
      "etcd_server_proposals_pending",
      "The current number of pending proposals to commit.",
      source.pendingProposals,
    );
    this.proposalsFailed = r.counter(
      "etcd_server_proposals_failed_total",
      "The total number of failed proposals seen.",
    );
    this.readIndexesFailed = r.counter(
      "etcd_server_read_indexes_failed_total",
      "The total number of failed read indexes seen.",
    );
    r.gaugeFunc(
      "etcd_server_quota_backend_bytes",
      "Current backend storage quota size in bytes.",
      // etcd shows the configured negative value when the quota is off.
      () => (source.quotaBytes === Infinity ? -1 : source.quotaBytes),
    );
    this.healthSuccess = r.counter(
      "etcd_server_health_success",
      "The total number of successful health checks",
    );
    this.healthFailures = r.counter(
      "etcd_server_health_failures",
      "The total number of failed health checks",
    );
    this.snapshotSendSuccess = r.counterFamily(
      "etcd_network_snapshot_send_success",
      "Total number of successful snapshot sends",
      ["To"],
    );
    this.snapshotSendFailures = r.counterFamily(
      "etcd_network_snapshot_send_failures",
      "Total number of snapshot send failures",
      ["To"],
    );
    this.snapshotReceiveSuccess = r.counterFamily(
      "etcd_network_snapshot_receive_success",
      "Total number of successful snapshot receives",
      ["From"],
    );
    this.snapshotReceiveFailures = r.counterFamily(
      "etcd_network_snapshot_receive_failures",
      "Total number of snapshot receive failures",
      ["From"],
    );
    this.leaseExpired = r.counter(
      "etcd_debugging_server_lease_expired_total",
      "The total number of expired leases.",
    );
    this.leaseGranted = r.counter(
      "etcd_debugging_lease_granted_total",
      "The total number of granted leases.",
    );
    this.leaseRevoked = r.counter(
      "etcd_debugging_lease_revoked_total",
      "The total number of revoked leases.",
    );

    const dbSizeHelp = "Total size of the underlying database physically allocated in bytes.";
    r.gaugeFunc("etcd_mvcc_db_total_size_in_bytes", dbSizeHelp, source.dbSizeBytes);
    r.gaugeFunc("etcd_debugging_mvcc_db_total_size_in_bytes", dbSizeHelp, source.dbSizeBytes);
    r.gaugeFunc(
      "etcd_mvcc_db_total_size_in_use_in_bytes",
      "Total size of the underlying database logically in use in bytes.",
      source.dbSizeInUseBytes,
    );
    r.gaugeFunc("etcd_debugging_mvcc_keys_total", "Total number of keys.", source.keys);
    r.gaugeFunc(
      "etcd_debugging_mvcc_current_revision",
      "The current revision of store.",
      source.currentRev,
    );
    r.gaugeFunc(
      "etcd_debugging_mvcc_compact_revision",
      "The revision of the last compaction in store.",
      source.compactRev,
    );
    this.hashSeconds = r.histogram(
      "etcd_mvcc_hash_duration_seconds",
      "The latency distribution of storage hash operation.",
      exponentialBuckets(0.01, 2, 15),
    );
    this.hashRevSeconds = r.histogram(
      "etcd_mvcc_hash_rev_duration_seconds",
      "The latency distribution of storage hash by revision operation.",
      exponentialBuckets(0.01, 2, 15),
    );

    this.walFsyncSeconds = r.histogram(
      "etcd_disk_wal_fsync_duration_seconds",
      "The latency distributions of fsync called by WAL.",
      exponentialBuckets(0.001, 2, 14),
    );
    this.backendCommitSeconds = r.histogram(
      "etcd_disk_backend_commit_duration_seconds",
      "The latency distributions of commit called by backend.",
      exponentialBuckets(0.001, 2, 14),
    );
    this.defragSeconds = r.histogram(
      "etcd_disk_backend_defrag_duration_seconds",
      "The latency distribution of backend defragmentation.",
      exponentialBuckets(0.1, 2, 13),
    );
    this.defragInflight = r.gauge(
      "etcd_disk_defrag_inflight",
      "Whether or not defrag is active on the member. 1 means active, 0 means not.",
    );
    this.snapshotSeconds = r.histogram(
      "etcd_disk_backend_snapshot_duration_seconds",
      "The latency distribution of backend snapshots.",
      exponentialBuckets(0.01, 2, 17),
    );

    this.grpcReceivedBytes = r.counter(
      "etcd_network_client_grpc_received_bytes_total",
      "The total number of bytes received from grpc clients.",
    );
    this.grpcSentBytes = r.counter(
      "etcd_network_client_grpc_sent_bytes_total",
      "The total number of bytes sent to grpc clients.",
    );
    this.#grpc = new GrpcMetrics(r);

    r.counterFunc(
      "process_cpu_seconds_total",
      "Total user and system CPU time spent in seconds.",
      () => {
        const usage = cpuUsage();
        return (usage.user + usage.system) / 1e6;
      },
    );
    r.gaugeFunc(
      "process_resident_memory_bytes",
      "Resident memory size in bytes.",
      () => Deno.memoryUsage().rss,
    );
    r.gaugeFunc(
      "process_virtual_memory_bytes",
      "Virtual memory size in bytes.",
      virtualMemoryBytes,
    );
    // The runtime's time origin is when this process started.
    const startSeconds = Math.round(performance.timeOrigin) / 1000;
    r.gaugeFunc(
      "process_start_time_seconds",
      "Start time of the process since unix epoch in seconds.",
      () => startSeconds,
    );
    r.gaugeFunc("process_open_fds", "Number of open file descriptors.", countOpenFds);
    const maxFds = readMaxFds();
    if (maxFds !== undefined) {
      r.gaugeFunc("process_max_fds", "Maximum number of open file descriptors.", () => maxFds);
    }
  }

  /** Times `fn` into `histogram` (seconds), also when it throws. */
  time<T>(histogram: Histogram, fn: () => T): T {
    const start = performance.now();
    try {
      return fn();
    } finally {
      histogram.observe((performance.now() - start) / 1000);
    }
  }

  /** Times an async `fn` into `histogram` (seconds), also when it rejects. */
  async timeAsync<T>(histogram: Histogram, fn: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      return await fn();
    } finally {
      histogram.observe((performance.now() - start) / 1000);
    }
  }

  /**
   * Wraps a service implementation so that each call counts in the grpc_server_* families
   * (started, handled by code, messages received and sent), as etcd's gRPC interceptors do.
   */
  instrument<T extends DescService>(
    service: T,
    impl: Partial<ServiceImpl<T>>,
  ): Partial<ServiceImpl<T>> {
    return wrapMethods(service, impl, (method, call) => {
      const counters = this.#grpc.counters(service, method);
      return method.methodKind === "unary"
        ? instrumentUnary(call, counters)
        : instrumentStream(call, counters, method.methodKind !== "server_streaming");
    });
  }
}

function instrumentUnary(
  call: (request: unknown, context: HandlerContext) => unknown,
  counters: MethodCounters,
): (request: unknown, context: HandlerContext) => Promise<unknown> {
  return async (request, context) => {
    counters.started.inc();
    counters.received.inc();
    try {
      const response = await call(request, context);
      counters.sent.inc();
      counters.handled[grpcOk].inc();
      return response;
    } catch (err) {
      counters.handled[codeOf(err)]?.inc();
      throw err;
    }
  };
}

function instrumentStream(
  call: (request: unknown, context: HandlerContext) => unknown,
  counters: MethodCounters,
  streamedInput: boolean,
): (request: unknown, context: HandlerContext) => AsyncIterable<unknown> {
  async function* countInput(requests: AsyncIterable<unknown>): AsyncGenerator<unknown> {
    for await (const request of requests) {
      counters.received.inc();
      yield request;
    }
  }
  return (request, context) => {
    counters.started.inc();
    let input = request;
    if (streamedInput) input = countInput(request as AsyncIterable<unknown>);
    else counters.received.inc();
    return countOutput(call(input, context) as AsyncIterable<unknown>, counters);
  };
}

/**
 * `responses` counted as they are taken, and the call's code once it ends: by itself (OK), by
 * failing (the error's code) or by the consumer stopping early (Canceled, as etcd counts a
 * stream the client gives up). A plain iterator rather than a generator around the service's
 * own, so that each response pays for one more promise reaction, not one more generator.
 */
function countOutput(
  responses: AsyncIterable<unknown>,
  counters: MethodCounters,
): AsyncIterable<unknown> & ReadyResponses {
  const ready = readyTaker(responses);
  return {
    // Responses taken without the iterator count too.
    [takeReady]: ready && (() => {
      const response = ready();
      if (response !== undefined) counters.sent.inc();
      return response;
    }),
    [Symbol.asyncIterator](): AsyncIterator<unknown> {
      const inner = responses[Symbol.asyncIterator]();
      let ended = false;
      const end = (code: number) => {
        if (ended) return;
        ended = true;
        counters.handled[code]?.inc();
      };
      const counted = (result: IteratorResult<unknown>) => {
        if (result.done) end(grpcOk);
        else if (!ended) counters.sent.inc();
        return result;
      };
      const failed = (err: unknown): never => {
        end(codeOf(err));
        throw err;
      };
      return {
        next: () => inner.next().then(counted, failed),
        return: (value?: unknown) => {
          end(Code.Canceled);
          return inner.return
            ? inner.return(value).then(counted, failed)
            : Promise.resolve({ done: true, value });
        },
      };
    },
  };
}
