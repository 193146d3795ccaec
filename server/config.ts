/**
 * etcd 3.4 compatible command line and environment configuration.
 *
 * The parser follows Go's `flag` package, which etcd uses: `-flag value`, `--flag value`,
 * `--flag=value`; boolean flags take no separate value (`--pre-vote`, `--pre-vote=false`);
 * parsing stops at the first argument that is not a flag, and `--` ends the flags. Every flag
 * can also come from `ETCD_<FLAG_IN_UPPER_SNAKE_CASE>`; giving both is an error, as in etcd.
 *
 * Error messages repeat etcd's own wording so that scripts and people who know etcd recognise
 * them. Errors etcd reports while parsing carry exit code 2 and those it reports while
 * validating carry exit code 1 ({@linkcode ConfigError.exitCode}).
 *
 * Deliberate differences from etcd 3.4, each an improvement that no working etcd setup
 * depends on:
 * - `--pre-vote` defaults to true (etcd 3.5 made the same change): a member rejoining after a
 *   partition no longer disrupts a healthy leader.
 * - When `--initial-cluster` is not given, it is derived from `--name` and
 *   `--initial-advertise-peer-urls` even for the default name; etcd keeps
 *   `default=http://localhost:2380` then and fails to bootstrap when the peer URLs differ.
 * - `--initial-cluster` is checked for syntax at parse time, not only when bootstrapping.
 * - Only `--enable-v2=false` is accepted; unix sockets, discovery, proxies and config files
 *   are refused with a message saying so instead of being half supported.
 *
 * @module
 */

/** The etcd release whose behaviour this server reproduces. */
export const ETCD_VERSION = "3.4.23";

/** A failed parse or validation, with etcd's wording and exit status. */
export class ConfigError extends Error {
  /**
   * Creates the error. `exitCode` is 2 for flag syntax errors (Go's flag package) and 1 for
   * values that parse but fail validation, matching etcd's process exit status.
   */
  constructor(message: string, readonly exitCode: 1 | 2 = 1) {
    super(message);
    this.name = "ConfigError";
  }
}

/** One member of `--initial-cluster`. */
export interface InitialClusterMember {
  /** The member's `--name`. */
  name: string;
  /** Its peer URLs, sorted as etcd sorts them. */
  peerUrls: string[];
}

/** TLS settings for the client or the peer listener (`--cert-file`, `--peer-cert-file`, ...). */
export interface TlsConfig {
  /** PEM certificate file; "" when unset. */
  certFile: string;
  /** PEM private key file; "" when unset. */
  keyFile: string;
  /** CA bundle used to verify the other side's certificate; "" when unset. */
  trustedCaFile: string;
  /** Require and verify certificates presented by the other side. */
  clientCertAuth: boolean;
  /** Generate a self-signed certificate when none is given. */
  autoTls: boolean;
  /** Certificate revocation list file; "" when unset. */
  crlFile: string;
  /** Allowed hostname (SAN) of the other side's certificate; "" when unset. */
  allowedHostname: string;
  /** Allowed common name of the other side's certificate (peer only); "" when unset. */
  allowedCn: string;
}

/** What the process should do with the parsed flags. */
export type ConfigAction = "serve" | "help" | "version";

/**
 * A member's configuration, with etcd's defaults filled in. Numeric fields carry their unit
 * in their name; URL lists are sorted and without duplicates, as etcd keeps them.
 */
export interface Config {
  /** `serve` normally; `help` or `version` when asked (print {@linkcode USAGE} or {@linkcode versionText}, exit 0). */
  action: ConfigAction;
  /** `--name`. */
  name: string;
  /** `--data-dir`; `${name}.etcd` when unset or empty. */
  dataDir: string;
  /** `--wal-dir`; "" means the WAL lives inside the data dir. */
  walDir: string;
  /** `--listen-client-urls`. */
  listenClientUrls: string[];
  /** `--advertise-client-urls`. */
  advertiseClientUrls: string[];
  /** `--listen-peer-urls`. */
  listenPeerUrls: string[];
  /** `--initial-advertise-peer-urls`. */
  initialAdvertisePeerUrls: string[];
  /** `--listen-metrics-urls` (empty when unset). */
  listenMetricsUrls: string[];
  /** `--initial-cluster`, in the order the names first appear. */
  initialCluster: InitialClusterMember[];
  /** `--initial-cluster-state`. */
  initialClusterState: "new" | "existing";
  /** `--initial-cluster-token`. */
  initialClusterToken: string;
  /** `--max-request-bytes`. */
  maxRequestBytes: number;
  /** `--max-txn-ops`. */
  maxTxnOps: number;
  /** `--quota-backend-bytes`, effective: 0 becomes 2 GiB, a negative value Infinity (no quota). */
  quotaBackendBytes: number;
  /** `--snapshot-count`. */
  snapshotCount: number;
  /** `--heartbeat-interval`. */
  heartbeatIntervalMs: number;
  /** `--election-timeout`. */
  electionTimeoutMs: number;
  /** `--auto-compaction-mode` ("" disables auto compaction, like a retention of 0). */
  autoCompactionMode: "periodic" | "revision" | "";
  /** `--auto-compaction-retention` as given. */
  autoCompactionRetention: string;
  /** Periodic mode: compact away history older than this; 0 = off. Hours when given as an integer. */
  autoCompactionPeriodMs: number;
  /** Revision mode: keep this many revisions; 0 = off. */
  autoCompactionRetentionRevisions: number;
  /** `--experimental-watch-progress-notify-interval`: 10 min by default, never below 100 ms. */
  watchProgressNotifyIntervalMs: number;
  /** `--pre-vote` (default true here; false in etcd 3.4). */
  preVote: boolean;
  /** `--strict-reconfig-check`. */
  strictReconfigCheck: boolean;
  /** `--enable-v2`: always false (true is refused). */
  enableV2: false;
  /** `--logger`. */
  logger: "capnslog" | "zap";
  /** `--log-level` (`debug` when `--debug` is set). */
  logLevel: string;
  /** `--log-outputs`. */
  logOutputs: string[];
  /** `--max-snapshots` (0 = unlimited). */
  maxSnapshots: number;
  /** `--max-wals` (0 = unlimited). */
  maxWals: number;
  /** `--force-new-cluster`. */
  forceNewCluster: boolean;
  /** `--enable-pprof`. */
  enablePprof: boolean;
  /** `--metrics` (`basic` or `extensive`). */
  metrics: string;
  /** `--auth-token` (`simple` or `jwt,...`). */
  authToken: string;
  /** `--auth-token-ttl`. */
  authTokenTtlSeconds: number;
  /** `--bcrypt-cost`. */
  bcryptCost: number;
  /** `--grpc-keepalive-min-time`. */
  grpcKeepaliveMinTimeMs: number;
  /** `--grpc-keepalive-interval` (0 disables). */
  grpcKeepaliveIntervalMs: number;
  /** `--grpc-keepalive-timeout` (0 disables). */
  grpcKeepaliveTimeoutMs: number;
  /** `--max-concurrent-streams`. */
  maxConcurrentStreams: number;
  /** `--initial-election-tick-advance`. */
  initialElectionTickAdvance: boolean;
  /** `--backend-batch-interval`; 0 means the backend's default (100 ms). */
  backendBatchIntervalMs: number;
  /** `--backend-batch-limit`; 0 means the backend's default (10 000). */
  backendBatchLimit: number;
  /** `--experimental-enable-lease-checkpoint`. */
  leaseCheckpoint: boolean;
  /** `--experimental-enable-lease-checkpoint-persist`. */
  leaseCheckpointPersist: boolean;
  /** `--experimental-compaction-batch-limit`; 0 means the default (1000). */
  compactionBatchLimit: number;
  /** `--experimental-initial-corrupt-check`. */
  initialCorruptCheck: boolean;
  /** `--experimental-corrupt-check-time` (0 = off). */
  corruptCheckTimeMs: number;
  /** `--experimental-warning-apply-duration`. */
  warningApplyDurationMs: number;
  /** `--unsafe-no-fsync`. */
  unsafeNoFsync: boolean;
  /** `--enable-grpc-gateway`. */
  enableGrpcGateway: boolean;
  /** `--cors` (`*` = any origin). */
  cors: string[];
  /** `--host-whitelist` (`*` = any host). */
  hostWhitelist: string[];
  /** `--cipher-suites` (empty = runtime defaults). */
  cipherSuites: string[];
  /** Client listener TLS flags. */
  clientTls: TlsConfig;
  /** Peer listener TLS flags. */
  peerTls: TlsConfig;
  /** Things etcd would log as warnings while reading the configuration. */
  warnings: string[];
}

/** Where a listen URL binds: `localhost` resolves to 127.0.0.1, IPv6 brackets are removed. */
export interface ListenAddress {
  /** An IP address literal. */
  hostname: string;
  /** The port; 0 asks the OS for a free one. */
  port: number;
  /** True for `https` URLs. */
  tls: boolean;
}

type FlagKind = "string" | "bool" | "uint" | "uint32" | "int" | "duration" | "urls" | "strings";

interface FlagSpec {
  kind: FlagKind;
  def: string;
  help: string;
  /** Allowed values (Go's SelectiveStringValue). */
  choices?: readonly string[];
}

const DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024;
const MAX_RECOMMENDED_QUOTA_BYTES = 8 * 1024 * 1024 * 1024;
const MAX_ELECTION_TIMEOUT_MS = 50000;
const DEFAULT_PROGRESS_NOTIFY_MS = 10 * 60 * 1000;
const MIN_PROGRESS_NOTIFY_MS = 100;
const DEFAULT_NAME = "default";
const LOG_LEVELS = ["debug", "info", "warn", "error", "dpanic", "panic", "fatal"];

/** Every flag this server accepts, with etcd's name, type and default. */
const FLAGS: Record<string, FlagSpec> = {
  // member
  "name": { kind: "string", def: DEFAULT_NAME, help: "Human-readable name for this member." },
  "data-dir": {
    kind: "string",
    def: "",
    help: "Path to the data directory (default ${name}.etcd).",
  },
  "wal-dir": { kind: "string", def: "", help: "Path to a dedicated WAL directory." },
  "snapshot-count": {
    kind: "uint",
    def: "100000",
    help: "Number of committed transactions that trigger a snapshot to disk.",
  },
  "heartbeat-interval": { kind: "uint", def: "100", help: "Heartbeat interval in milliseconds." },
  "election-timeout": { kind: "uint", def: "1000", help: "Election timeout in milliseconds." },
  "initial-election-tick-advance": {
    kind: "bool",
    def: "true",
    help: "Fast-forward the initial election ticks on boot for a faster election.",
  },
  "listen-peer-urls": {
    kind: "urls",
    def: "http://localhost:2380",
    help: "URLs to listen on for peer traffic.",
  },
  "listen-client-urls": {
    kind: "urls",
    def: "http://localhost:2379",
    help: "URLs to listen on for client traffic.",
  },
  "max-snapshots": { kind: "uint", def: "5", help: "Snapshot files to keep (0 = unlimited)." },
  "max-wals": { kind: "uint", def: "5", help: "WAL files to keep (0 = unlimited)." },
  "quota-backend-bytes": {
    kind: "int",
    def: "0",
    help: "Raise the NOSPACE alarm when the backend exceeds this size (0 = 2 GiB, <0 = none).",
  },
  "backend-batch-interval": {
    kind: "duration",
    def: "0",
    help: "Longest time before a backend commit (0 = 100ms).",
  },
  "backend-batch-limit": {
    kind: "int",
    def: "0",
    help: "Most operations before a backend commit (0 = 10000).",
  },
  "max-txn-ops": { kind: "uint", def: "128", help: "Most operations allowed in a transaction." },
  "max-request-bytes": {
    kind: "uint",
    def: "1572864",
    help: "Largest client request, in bytes, the server accepts.",
  },
  "max-concurrent-streams": {
    kind: "uint32",
    def: "4294967295",
    help: "Most concurrent streams each client connection may open.",
  },
  "grpc-keepalive-min-time": {
    kind: "duration",
    def: "5s",
    help: "Shortest interval a client should wait between pings.",
  },
  "grpc-keepalive-interval": {
    kind: "duration",
    def: "2h",
    help: "How often the server pings an idle connection (0 = never).",
  },
  "grpc-keepalive-timeout": {
    kind: "duration",
    def: "20s",
    help: "How long to wait for a ping reply before closing (0 = forever).",
  },
  // clustering
  "initial-advertise-peer-urls": {
    kind: "urls",
    def: "http://localhost:2380",
    help: "This member's peer URLs, as advertised to the rest of the cluster.",
  },
  "advertise-client-urls": {
    kind: "urls",
    def: "http://localhost:2379",
    help: "This member's client URLs, as advertised to clients.",
  },
  "initial-cluster": {
    kind: "string",
    def: "",
    help:
      "Initial cluster for bootstrapping, name=url,... (default ${name}=<advertise peer urls>).",
  },
  "initial-cluster-token": {
    kind: "string",
    def: "etcd-cluster",
    help: "Token that keeps separately bootstrapped clusters apart.",
  },
  "initial-cluster-state": {
    kind: "string",
    def: "new",
    choices: ["new", "existing"],
    help: "Initial cluster state ('new' or 'existing').",
  },
  "strict-reconfig-check": {
    kind: "bool",
    def: "true",
    help: "Reject membership changes that would lose quorum.",
  },
  "enable-v2": { kind: "bool", def: "false", help: "The v2 API is not served; only false." },
  "pre-vote": {
    kind: "bool",
    def: "true",
    help: "Run raft's pre-vote phase before an election (default true, unlike etcd 3.4).",
  },
  "auto-compaction-retention": {
    kind: "string",
    def: "0",
    help: "History to keep: hours or a duration (periodic), or revisions (revision). 0 = off.",
  },
  "auto-compaction-mode": {
    kind: "string",
    def: "periodic",
    help: "How to read the retention: 'periodic' or 'revision'.",
  },
  // security
  "cert-file": { kind: "string", def: "", help: "Client TLS certificate file." },
  "key-file": { kind: "string", def: "", help: "Client TLS key file." },
  "client-cert-auth": { kind: "bool", def: "false", help: "Require client certificates." },
  "client-crl-file": { kind: "string", def: "", help: "Client certificate revocation list." },
  "client-cert-allowed-hostname": {
    kind: "string",
    def: "",
    help: "Allowed hostname of client certificates.",
  },
  "trusted-ca-file": { kind: "string", def: "", help: "CA file for client certificates." },
  "auto-tls": { kind: "bool", def: "false", help: "Client TLS with a generated certificate." },
  "peer-cert-file": { kind: "string", def: "", help: "Peer TLS certificate file." },
  "peer-key-file": { kind: "string", def: "", help: "Peer TLS key file." },
  "peer-client-cert-auth": { kind: "bool", def: "false", help: "Require peer certificates." },
  "peer-trusted-ca-file": { kind: "string", def: "", help: "CA file for peer certificates." },
  "peer-auto-tls": { kind: "bool", def: "false", help: "Peer TLS with a generated certificate." },
  "peer-crl-file": { kind: "string", def: "", help: "Peer certificate revocation list." },
  "peer-cert-allowed-cn": { kind: "string", def: "", help: "Required CN of peer certificates." },
  "peer-cert-allowed-hostname": {
    kind: "string",
    def: "",
    help: "Allowed hostname of peer certificates.",
  },
  "cipher-suites": { kind: "strings", def: "", help: "Comma-separated TLS cipher suites." },
  "cors": { kind: "strings", def: "*", help: "Allowed CORS origins (* = all)." },
  "host-whitelist": {
    kind: "strings",
    def: "*",
    help: "Allowed Host headers on plain HTTP (* = all).",
  },
  // auth
  "auth-token": { kind: "string", def: "simple", help: "Auth token type: 'simple' or 'jwt,...'." },
  "auth-token-ttl": { kind: "uint", def: "300", help: "Lifetime of a simple token, in seconds." },
  "bcrypt-cost": { kind: "uint", def: "10", help: "bcrypt cost for password hashes (4-31)." },
  // monitoring
  "enable-pprof": { kind: "bool", def: "false", help: "Serve profiling data." },
  "metrics": { kind: "string", def: "basic", help: "Metrics detail: 'basic' or 'extensive'." },
  "listen-metrics-urls": {
    kind: "urls",
    def: "",
    help: "Extra URLs serving only /metrics and /health.",
  },
  "enable-grpc-gateway": {
    kind: "bool",
    def: "true",
    help: "Serve the JSON gateway (/v3/...).",
  },
  // logging
  "logger": { kind: "string", def: "capnslog", help: "Log format: 'capnslog' or 'zap'." },
  "log-outputs": { kind: "strings", def: "default", help: "Log targets: 'stderr', 'stdout'..." },
  "log-output": { kind: "strings", def: "default", help: "Deprecated: use --log-outputs." },
  "log-level": {
    kind: "string",
    def: "info",
    help: "Log level: debug, info, warn, error, panic or fatal.",
  },
  "debug": { kind: "bool", def: "false", help: "Deprecated: use --log-level=debug." },
  "log-package-levels": { kind: "string", def: "", help: "Deprecated; accepted and ignored." },
  // experimental
  "experimental-initial-corrupt-check": {
    kind: "bool",
    def: "false",
    help: "Check data consistency with the peers before serving.",
  },
  "experimental-corrupt-check-time": {
    kind: "duration",
    def: "0s",
    help: "Interval between corruption checks (0 = off).",
  },
  "experimental-enable-lease-checkpoint": {
    kind: "bool",
    def: "false",
    help: "Checkpoint lease TTLs so a new leader does not reset them.",
  },
  "experimental-enable-lease-checkpoint-persist": {
    kind: "bool",
    def: "false",
    help: "Persist lease checkpoints (needs --experimental-enable-lease-checkpoint).",
  },
  "experimental-compaction-batch-limit": {
    kind: "int",
    def: "0",
    help: "Most revisions deleted per compaction batch (0 = 1000).",
  },
  "experimental-watch-progress-notify-interval": {
    kind: "duration",
    def: "10m",
    help: "Interval of watch progress notifications (at least 100ms).",
  },
  "experimental-warning-apply-duration": {
    kind: "duration",
    def: "100ms",
    help: "Warn about applies that take longer than this.",
  },
  // unsafe
  "unsafe-no-fsync": { kind: "bool", def: "false", help: "Never fsync: loses data on a crash." },
  "force-new-cluster": {
    kind: "bool",
    def: "false",
    help: "Restart as a one-member cluster, discarding the others.",
  },
  "version": { kind: "bool", def: "false", help: "Print the version and exit." },
};

/** etcd flags that this server refuses, with the reason shown to the user. */
const UNSUPPORTED: Record<string, string> = {
  "config-file": "configuration files are not supported; pass flags or ETCD_* variables",
  "discovery": "discovery is not supported; use --initial-cluster",
  "discovery-fallback": "discovery is not supported; use --initial-cluster",
  "discovery-proxy": "discovery is not supported; use --initial-cluster",
  "discovery-srv": "discovery is not supported; use --initial-cluster",
  "discovery-srv-name": "discovery is not supported; use --initial-cluster",
  "proxy": "the v2 proxy is not supported",
  "proxy-failure-wait": "the v2 proxy is not supported",
  "proxy-refresh-interval": "the v2 proxy is not supported",
  "proxy-dial-timeout": "the v2 proxy is not supported",
  "proxy-write-timeout": "the v2 proxy is not supported",
  "proxy-read-timeout": "the v2 proxy is not supported",
  "experimental-enable-v2v3": "the v2 API is not supported",
};

/** Flags of old etcd releases that etcd 3.4 still accepts and ignores with a warning. */
const IGNORED = new Set([
  "cluster-active-size",
  "cluster-remove-delay",
  "cluster-sync-interval",
  "force",
  "max-result-buffer",
  "max-retry-attempts",
  "peer-heartbeat-interval",
  "peer-election-timeout",
  "retry-interval",
  "snapshot",
  "v",
  "vv",
  "experimental-backend-bbolt-freelist-type",
  "experimental-peer-skip-client-san-verification",
]);

/** Help text printed for `-h` / `--help`. */
export const USAGE: string = buildUsage();

function buildUsage(): string {
  const lines = [
    "Usage:",
    "",
    "  deno task start [flags]       start a member (same flags as etcd 3.4)",
    "  deno task start --version     print the version",
    "  deno task start -h | --help   print this help",
    "",
    "Every flag can also be set with an environment variable ETCD_<FLAG> (upper case, '-' as",
    "'_'), e.g. ETCD_DATA_DIR; setting both a flag and its variable is an error.",
    "",
    "Flags (default in quotes):",
  ];
  for (const [name, spec] of Object.entries(FLAGS)) {
    lines.push(`  --${name} '${spec.def}'`, `      ${spec.help}`);
  }
  lines.push(
    "",
    "Accepted for compatibility and ignored: " + [...IGNORED].map((f) => `--${f}`).join(", "),
    "Refused: " + Object.keys(UNSUPPORTED).map((f) => `--${f}`).join(", "),
    "",
  );
  return lines.join("\n");
}

/** The `--version` output, shaped like etcd's so tools that read its first line keep working. */
export function versionText(): string {
  const deno =
    (globalThis as { Deno?: { version?: { deno?: string }; build?: { os: string; arch: string } } })
      .Deno;
  return [
    `etcd Version: ${ETCD_VERSION}`,
    "Git SHA: Not provided (TypeScript implementation)",
    `Deno Version: ${deno?.version?.deno ?? "unknown"}`,
    `Deno OS/Arch: ${deno?.build ? `${deno.build.os}/${deno.build.arch}` : "unknown"}`,
    "",
  ].join("\n");
}

/** The environment variable etcd reads for a flag: `max-txn-ops` → `ETCD_MAX_TXN_OPS`. */
export function flagToEnv(flag: string): string {
  return "ETCD_" + flag.replaceAll("-", "_").toUpperCase();
}

// ---------------------------------------------------------------------------------------------
// Value parsers. Each returns the parsed value or throws ValueError with Go's message, which
// the caller wraps with the flag or variable name the way Go's flag package does.

class ValueError extends Error {}

/** Go's `strconv.ParseBool`. */
function parseGoBool(s: string): boolean {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(s)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(s)) return false;
  throw new ValueError("parse error");
}

/** Go's rule for `_` in base-0 integer literals: only between digits or after a base prefix. */
function underscoresOk(s: string): boolean {
  let saw = "^";
  let i = 0;
  if (s.startsWith("-") || s.startsWith("+")) s = s.slice(1);
  let hex = false;
  if (s.length >= 2 && s[0] === "0" && "bBoOxX".includes(s[1])) {
    i = 2;
    saw = "0";
    hex = s[1] === "x" || s[1] === "X";
  }
  for (; i < s.length; i++) {
    const c = s[i];
    if ((c >= "0" && c <= "9") || (hex && /[a-fA-F]/.test(c))) {
      saw = "0";
      continue;
    }
    if (c === "_") {
      if (saw !== "0") return false;
      saw = "_";
      continue;
    }
    if (saw === "_") return false;
    saw = "!";
  }
  return saw !== "_";
}

/** Go's `strconv.ParseInt(s, 0, bits)` / `ParseUint`, returning a bigint. */
function parseGoInteger(s: string, signed: boolean, bits: number): bigint {
  let body = s;
  let negative = false;
  if (signed && (body.startsWith("-") || body.startsWith("+"))) {
    negative = body[0] === "-";
    body = body.slice(1);
  }
  if (body === "") throw new ValueError("parse error");
  let base = 10;
  if (body[0] === "0" && body.length > 1) {
    const p = body[1].toLowerCase();
    if (p === "x") [base, body] = [16, body.slice(2)];
    else if (p === "o") [base, body] = [8, body.slice(2)];
    else if (p === "b") [base, body] = [2, body.slice(2)];
    else [base, body] = [8, body.slice(1)];
  }
  if (!underscoresOk(s)) throw new ValueError("parse error");
  const digits = body.replaceAll("_", "");
  if (digits === "") throw new ValueError("parse error");
  let value = 0n;
  for (const c of digits.toLowerCase()) {
    const d = parseInt(c, 36);
    if (Number.isNaN(d) || d >= base) throw new ValueError("parse error");
    value = value * BigInt(base) + BigInt(d);
  }
  if (negative) value = -value;
  const max = signed ? (1n << BigInt(bits - 1)) - 1n : (1n << BigInt(bits)) - 1n;
  const min = signed ? -(1n << BigInt(bits - 1)) : 0n;
  if (value > max || value < min) throw new ValueError("value out of range");
  return value;
}

/** A Go integer flag that must also fit a JavaScript number exactly. */
function parseSafeInteger(s: string, signed: boolean, bits: number): number {
  const value = parseGoInteger(s, signed, bits);
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new ValueError("value out of range");
  }
  return Number(value);
}

const DURATION_UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  "μs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Go's `time.ParseDuration`, in milliseconds; throws with Go's message. */
export function parseGoDurationMs(text: string): number {
  const quoted = JSON.stringify(text);
  let s = text;
  let negative = false;
  if (s !== "" && (s[0] === "-" || s[0] === "+")) {
    negative = s[0] === "-";
    s = s.slice(1);
  }
  if (s === "0") return 0;
  if (s === "") throw new ValueError(`time: invalid duration ${quoted}`);
  let totalMs = 0;
  while (s !== "") {
    const m = /^(\d*)(?:\.(\d*))?/.exec(s);
    const whole = m?.[1] ?? "";
    const frac = m?.[2];
    if (whole === "" && (frac === undefined || frac === "")) {
      throw new ValueError(`time: invalid duration ${quoted}`);
    }
    s = s.slice(m![0].length);
    const unitMatch = /^[^\d.]*/.exec(s)!;
    const unit = unitMatch[0];
    if (unit === "") throw new ValueError(`time: missing unit in duration ${quoted}`);
    const scale = DURATION_UNIT_MS[unit];
    if (scale === undefined) {
      throw new ValueError(`time: unknown unit ${JSON.stringify(unit)} in duration ${quoted}`);
    }
    s = s.slice(unit.length);
    totalMs += Number(`${whole || "0"}.${frac || "0"}`) * scale;
  }
  return negative ? -totalMs : totalMs;
}

interface ParsedUrl {
  scheme: string;
  /** `host:port` exactly as given (IPv6 in brackets). */
  host: string;
  hostname: string;
  port: string;
}

/** Go's `net.SplitHostPort`, reduced to the checks etcd's URL validation relies on. */
function splitHostPort(hostport: string): { hostname: string; port: string } | undefined {
  if (hostport.startsWith("[")) {
    const end = hostport.indexOf("]");
    if (end < 0 || hostport[end + 1] !== ":") return undefined;
    const port = hostport.slice(end + 2);
    if (port.includes(":")) return undefined;
    return { hostname: hostport.slice(1, end), port };
  }
  const colon = hostport.lastIndexOf(":");
  if (colon < 0) return undefined;
  const hostname = hostport.slice(0, colon);
  if (hostname.includes(":")) return undefined;
  return { hostname, port: hostport.slice(colon + 1) };
}

/** etcd's `types.NewURLs` check for one URL. */
function parseEtcdUrl(raw: string): ParsedUrl {
  const s = raw.trim();
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/.exec(s);
  const scheme = m?.[1].toLowerCase() ?? "";
  if (scheme === "unix" || scheme === "unixs") {
    throw new ValueError(`unix sockets are not supported: ${s}`);
  }
  if (!m || (scheme !== "http" && scheme !== "https")) {
    throw new ValueError(`URL scheme must be http, https, unix, or unixs: ${s}`);
  }
  const host = m[2].replace(/^[^@]*@/, "");
  const hp = splitHostPort(host);
  if (!hp) throw new ValueError(`URL address does not have the form "host:port": ${s}`);
  if (m[3] !== "") throw new ValueError(`URL must not contain a path: ${s}`);
  return { scheme, host, hostname: hp.hostname, port: hp.port };
}

function urlString(u: ParsedUrl): string {
  return `${u.scheme}://${u.host}`;
}

/** A comma separated URL list, sorted like etcd's; duplicates removed when `unique`. */
function parseUrlList(s: string, unique: boolean): string[] {
  if (s === "") return [];
  const urls = s.split(",").map((part) => urlString(parseEtcdUrl(part)));
  const list = unique ? [...new Set(urls)] : urls;
  return list.sort();
}

function parseStringList(s: string): string[] {
  return [...new Set(s.split(","))].sort();
}

/** Validates `value` for a flag of this kind (throws ValueError with Go's message). */
function checkValue(spec: FlagSpec, value: string): void {
  switch (spec.kind) {
    case "string":
      if (spec.choices && !spec.choices.includes(value)) throw new ValueError("invalid value");
      return;
    case "bool":
      parseGoBool(value);
      return;
    case "uint":
      parseSafeInteger(value, false, 64);
      return;
    case "uint32":
      // etcd's own uint32 flag type passes strconv's error through unchanged.
      try {
        parseSafeInteger(value, false, 32);
      } catch (e) {
        const reason = (e as Error).message === "parse error"
          ? "invalid syntax"
          : "value out of range";
        throw new ValueError(`strconv.ParseUint: parsing ${goQuote(value)}: ${reason}`);
      }
      return;
    case "int":
      parseSafeInteger(value, true, 64);
      return;
    case "duration":
      try {
        parseGoDurationMs(value);
      } catch {
        throw new ValueError("parse error");
      }
      return;
    case "urls":
      parseUrlList(value, true);
      return;
    case "strings":
      return;
  }
}

// ---------------------------------------------------------------------------------------------

/** Flag values as strings, each already validated for its kind. */
class FlagValues {
  readonly raw = new Map<string, string>();
  readonly setByFlag = new Set<string>();
  readonly setByEnv = new Set<string>();

  constructor() {
    for (const [name, spec] of Object.entries(FLAGS)) this.raw.set(name, spec.def);
  }

  isSet(name: string): boolean {
    return this.setByFlag.has(name) || this.setByEnv.has(name);
  }

  /** Stores a value; an empty URL list keeps the previous one, as etcd's UniqueURLs does. */
  set(name: string, value: string): void {
    const spec = FLAGS[name];
    checkValue(spec, value);
    if (spec.kind === "urls" && value === "") return;
    this.raw.set(name, value);
  }

  str(name: string): string {
    return this.raw.get(name)!;
  }
  bool(name: string): boolean {
    return parseGoBool(this.str(name));
  }
  uint(name: string): number {
    return parseSafeInteger(this.str(name), false, 64);
  }
  int(name: string): number {
    return parseSafeInteger(this.str(name), true, 64);
  }
  ms(name: string): number {
    return parseGoDurationMs(this.str(name));
  }
  urls(name: string): string[] {
    return parseUrlList(this.str(name), true);
  }
  strings(name: string): string[] {
    return parseStringList(this.str(name));
  }
}

/**
 * Parses etcd's command line flags and `ETCD_*` environment variables into a validated
 * {@linkcode Config}. Throws {@linkcode ConfigError} for unknown flags, malformed values and
 * combinations etcd rejects. `-h`/`--help` and `--version` return a config whose `action` says
 * so (nothing else is validated then).
 */
export function parseConfig(args: string[], env: Record<string, string | undefined>): Config {
  const values = new FlagValues();
  const warnings: string[] = [];
  let i = 0;
  while (i < args.length) {
    const arg = args[i];
    if (arg.length < 2 || arg[0] !== "-") break;
    let dashes = 1;
    if (arg[1] === "-") {
      dashes = 2;
      if (arg.length === 2) {
        i++;
        break;
      }
    }
    let name = arg.slice(dashes);
    if (name.length === 0 || name[0] === "-" || name[0] === "=") {
      throw new ConfigError(`bad flag syntax: ${arg}`, 2);
    }
    i++;
    let value: string | undefined;
    const eq = name.indexOf("=");
    if (eq > 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    if (name === "help" || name === "h") return { ...defaults(), action: "help" };
    if (name in UNSUPPORTED) {
      throw new ConfigError(`--${name} is not supported: ${UNSUPPORTED[name]}`, 2);
    }
    if (IGNORED.has(name)) {
      warnings.push(`flag "-${name}" is no longer supported - ignoring.`);
      continue;
    }
    const spec = FLAGS[name];
    if (!spec) throw new ConfigError(`flag provided but not defined: -${name}`, 2);
    if (spec.kind === "bool") {
      value ??= "true";
      try {
        values.set(name, value);
      } catch {
        throw new ConfigError(
          `invalid boolean value ${goQuote(value)} for -${name}: parse error`,
          2,
        );
      }
    } else {
      if (value === undefined) {
        if (i >= args.length) throw new ConfigError(`flag needs an argument: -${name}`, 2);
        value = args[i++];
      }
      try {
        values.set(name, value);
      } catch (e) {
        throw new ConfigError(
          `invalid value ${goQuote(value)} for flag -${name}: ${(e as Error).message}`,
          2,
        );
      }
    }
    values.setByFlag.add(name);
  }
  if (i < args.length) throw new ConfigError(`'${args[i]}' is not a valid flag`);
  if (values.bool("version")) return { ...defaults(), action: "version" };

  applyEnv(values, env, warnings);
  return validate(values, build(values, warnings));
}

/** Go's `%q` for the plain strings that appear in flag values. */
function goQuote(s: string): string {
  return JSON.stringify(s);
}

/** etcd's `SetFlagsFromEnv` + `verifyEnv`: variables fill flags not given on the command line. */
function applyEnv(
  values: FlagValues,
  env: Record<string, string | undefined>,
  warnings: string[],
): void {
  const flagByEnv = new Map<string, string>();
  for (const name of Object.keys(FLAGS)) flagByEnv.set(flagToEnv(name), name);
  for (const name of values.setByFlag) {
    const key = flagToEnv(name);
    if (env[key] !== undefined) {
      throw new ConfigError(
        `conflicting environment variable ${goQuote(key)} is shadowed by corresponding ` +
          "command-line flag (either unset environment variable or disable flag)",
      );
    }
  }
  for (const [key, raw] of Object.entries(env)) {
    if (raw === undefined || !key.startsWith("ETCD_")) continue;
    const name = flagByEnv.get(key);
    if (name === undefined) {
      const unsupported = Object.keys(UNSUPPORTED).find((f) => flagToEnv(f) === key);
      if (unsupported !== undefined && raw !== "") {
        throw new ConfigError(`${key} is not supported: ${UNSUPPORTED[unsupported]}`);
      }
      warnings.push(`unrecognized environment variable ${key}=${raw}`);
      continue;
    }
    if (raw === "" || values.setByFlag.has(name)) continue;
    try {
      values.set(name, raw);
    } catch (e) {
      throw new ConfigError(`invalid value ${goQuote(raw)} for ${key}: ${(e as Error).message}`);
    }
    values.setByEnv.add(name);
  }
}

function tls(values: FlagValues, peer: boolean): TlsConfig {
  const p = peer ? "peer-" : "";
  return {
    certFile: values.str(`${p}cert-file`),
    keyFile: values.str(`${p}key-file`),
    trustedCaFile: values.str(`${p}trusted-ca-file`),
    clientCertAuth: values.bool(`${p}client-cert-auth`),
    autoTls: values.bool(`${p}auto-tls`),
    crlFile: values.str(peer ? "peer-crl-file" : "client-crl-file"),
    allowedHostname: values.str(
      peer ? "peer-cert-allowed-hostname" : "client-cert-allowed-hostname",
    ),
    allowedCn: peer ? values.str("peer-cert-allowed-cn") : "",
  };
}

/** The configuration etcd uses with no flags (not validated; used for help/version). */
function defaults(): Config {
  return build(new FlagValues(), []);
}

/** etcd's `types.NewURLsMap` on `--initial-cluster`: `name=url` pairs, names may repeat. */
function parseInitialCluster(s: string): InitialClusterMember[] {
  const byName = new Map<string, string[]>();
  for (const entry of s.split(",")) {
    if (entry === "") continue;
    const eq = entry.indexOf("=");
    const name = eq >= 0 ? entry.slice(0, eq) : entry;
    const url = eq >= 0 ? entry.slice(eq + 1) : "";
    byName.set(name, [...(byName.get(name) ?? []), url]);
  }
  const members: InitialClusterMember[] = [];
  for (const [name, urls] of byName) {
    try {
      members.push({ name, peerUrls: urls.map((u) => urlString(parseEtcdUrl(u))).sort() });
    } catch (e) {
      throw new ConfigError(`error setting up initial cluster: ${(e as Error).message}`);
    }
  }
  return members;
}

/** etcd's `checkBindURLs`: a listen URL names an IP address or `localhost`. */
function checkBindUrls(urls: string[]): void {
  for (const u of urls) {
    const { hostname } = parseEtcdUrl(u);
    if (hostname === "localhost") continue;
    if (!isIpLiteral(hostname)) {
      throw new ConfigError(`expected IP in URL for binding (${u})`);
    }
  }
}

function isIpLiteral(host: string): boolean {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (v4) return v4.slice(1).every((octet) => Number(octet) <= 255);
  return host.includes(":") && /^[0-9a-fA-F:.]+$/.test(host) && host.split("::").length <= 2;
}

/** etcd's `checkHostURLs` for advertised URLs. */
function checkHostUrls(flag: string, urls: string[]): void {
  for (const u of urls) {
    if (parseEtcdUrl(u).hostname === "") {
      throw new ConfigError(
        `--${flag} ${goQuote(urls.join(","))} must be "host:port" (unexpected empty host (${u}))`,
      );
    }
  }
}

/** etcd's `parseCompactionRetention`: an integer is hours or revisions, else a duration. */
function compactionRetention(
  mode: string,
  retention: string,
): { periodMs: number; revisions: number } {
  if (/^[+-]?\d+$/.test(retention) && Number(retention) >= 0) {
    const n = Number(retention);
    if (mode === "revision") return { periodMs: 0, revisions: n };
    if (mode === "periodic") return { periodMs: n * 3_600_000, revisions: 0 };
    return { periodMs: 0, revisions: 0 };
  }
  let ms: number;
  try {
    ms = parseGoDurationMs(retention);
  } catch (e) {
    throw new ConfigError(`error parsing CompactionRetention: ${(e as Error).message}`);
  }
  // etcd hands the duration's nanoseconds to the revision compactor unchanged.
  if (mode === "revision") return { periodMs: 0, revisions: Math.round(ms * 1e6) };
  return { periodMs: ms, revisions: 0 };
}

function build(values: FlagValues, warnings: string[]): Config {
  const name = values.str("name");
  const initialAdvertisePeerUrls = values.urls("initial-advertise-peer-urls");
  const initialCluster = values.isSet("initial-cluster")
    ? parseInitialCluster(values.str("initial-cluster"))
    : [{ name: name === "" ? DEFAULT_NAME : name, peerUrls: initialAdvertisePeerUrls }];
  const mode = values.str("auto-compaction-mode");
  const quotaRaw = values.int("quota-backend-bytes");
  const progressRawMs = values.ms("experimental-watch-progress-notify-interval");
  const logger = values.str("logger");
  const logLevel = values.bool("debug") ? "debug" : values.str("log-level");
  return {
    action: "serve",
    name,
    dataDir: values.str("data-dir") || `${name}.etcd`,
    walDir: values.str("wal-dir"),
    listenClientUrls: values.urls("listen-client-urls"),
    advertiseClientUrls: values.urls("advertise-client-urls"),
    listenPeerUrls: values.urls("listen-peer-urls"),
    initialAdvertisePeerUrls,
    listenMetricsUrls: values.urls("listen-metrics-urls"),
    initialCluster,
    initialClusterState: values.str("initial-cluster-state") as "new" | "existing",
    initialClusterToken: values.str("initial-cluster-token"),
    maxRequestBytes: values.uint("max-request-bytes"),
    maxTxnOps: values.uint("max-txn-ops"),
    quotaBackendBytes: quotaRaw === 0
      ? DEFAULT_QUOTA_BYTES
      : quotaRaw < 0
      ? Number.POSITIVE_INFINITY
      : quotaRaw,
    snapshotCount: values.uint("snapshot-count"),
    heartbeatIntervalMs: values.uint("heartbeat-interval"),
    electionTimeoutMs: values.uint("election-timeout"),
    autoCompactionMode: mode as Config["autoCompactionMode"],
    autoCompactionRetention: values.str("auto-compaction-retention"),
    autoCompactionPeriodMs: 0,
    autoCompactionRetentionRevisions: 0,
    watchProgressNotifyIntervalMs: progressRawMs <= 0
      ? DEFAULT_PROGRESS_NOTIFY_MS
      : Math.max(progressRawMs, MIN_PROGRESS_NOTIFY_MS),
    preVote: values.bool("pre-vote"),
    strictReconfigCheck: values.bool("strict-reconfig-check"),
    enableV2: false,
    logger: logger as Config["logger"],
    logLevel,
    logOutputs: values.strings("log-outputs"),
    maxSnapshots: values.uint("max-snapshots"),
    maxWals: values.uint("max-wals"),
    forceNewCluster: values.bool("force-new-cluster"),
    enablePprof: values.bool("enable-pprof"),
    metrics: values.str("metrics"),
    authToken: values.str("auth-token"),
    authTokenTtlSeconds: values.uint("auth-token-ttl"),
    bcryptCost: values.uint("bcrypt-cost"),
    grpcKeepaliveMinTimeMs: values.ms("grpc-keepalive-min-time"),
    grpcKeepaliveIntervalMs: values.ms("grpc-keepalive-interval"),
    grpcKeepaliveTimeoutMs: values.ms("grpc-keepalive-timeout"),
    maxConcurrentStreams: values.uint("max-concurrent-streams"),
    initialElectionTickAdvance: values.bool("initial-election-tick-advance"),
    backendBatchIntervalMs: values.ms("backend-batch-interval"),
    backendBatchLimit: values.int("backend-batch-limit"),
    leaseCheckpoint: values.bool("experimental-enable-lease-checkpoint"),
    leaseCheckpointPersist: values.bool("experimental-enable-lease-checkpoint-persist"),
    compactionBatchLimit: values.int("experimental-compaction-batch-limit"),
    initialCorruptCheck: values.bool("experimental-initial-corrupt-check"),
    corruptCheckTimeMs: values.ms("experimental-corrupt-check-time"),
    warningApplyDurationMs: values.ms("experimental-warning-apply-duration"),
    unsafeNoFsync: values.bool("unsafe-no-fsync"),
    enableGrpcGateway: values.bool("enable-grpc-gateway"),
    cors: values.strings("cors"),
    hostWhitelist: values.strings("host-whitelist"),
    cipherSuites: values.str("cipher-suites") === "" ? [] : values.strings("cipher-suites"),
    clientTls: tls(values, false),
    peerTls: tls(values, true),
    warnings,
  };
}

/**
 * etcd's `Config.Validate` plus the checks it makes while starting, on a freshly built
 * configuration; also fills the values that only exist once validated (compaction retention).
 */
function validate(values: FlagValues, config: Config): Config {
  if (values.bool("enable-v2")) {
    throw new ConfigError("--enable-v2 is not supported: this server serves only the v3 API");
  }
  if (config.logger !== "capnslog" && config.logger !== "zap") {
    throw new ConfigError(`unknown logger option ${goQuote(config.logger)}`);
  }
  if (!LOG_LEVELS.includes(config.logLevel)) {
    throw new ConfigError(`unknown level ${goQuote(config.logLevel)}`);
  }
  checkBindUrls(config.listenPeerUrls);
  checkBindUrls(config.listenClientUrls);
  checkBindUrls(config.listenMetricsUrls);
  checkHostUrls("initial-advertise-peer-urls", config.initialAdvertisePeerUrls);
  // etcd drops the default advertised client URL once the listen URL is set explicitly.
  if (values.isSet("listen-client-urls") && !values.isSet("advertise-client-urls")) {
    config.advertiseClientUrls = [];
  }
  checkHostUrls("advertise-client-urls", config.advertiseClientUrls);
  const { heartbeatIntervalMs: tick, electionTimeoutMs: election } = config;
  if (tick <= 0) throw new ConfigError(`--heartbeat-interval must be >0 (set to ${tick}ms)`);
  if (election <= 0) throw new ConfigError(`--election-timeout must be >0 (set to ${election}ms)`);
  if (5 * tick > election) {
    throw new ConfigError(
      `--election-timeout[${election}ms] should be at least as 5 times as --heartbeat-interval[${tick}ms]`,
    );
  }
  if (election > MAX_ELECTION_TIMEOUT_MS) {
    throw new ConfigError(
      `--election-timeout[${election}ms] is too long, and should be set less than ${MAX_ELECTION_TIMEOUT_MS}ms`,
    );
  }
  if (config.listenClientUrls.length > 0 && config.advertiseClientUrls.length === 0) {
    throw new ConfigError(
      "--advertise-client-urls is required when --listen-client-urls is set explicitly",
    );
  }
  const mode = config.autoCompactionMode as string;
  if (mode !== "" && mode !== "periodic" && mode !== "revision") {
    throw new ConfigError(`unknown auto-compaction-mode ${goQuote(mode)}`);
  }
  if (config.leaseCheckpointPersist && !config.leaseCheckpoint) {
    throw new ConfigError(
      "setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint",
    );
  }
  const retention = compactionRetention(mode, config.autoCompactionRetention || "0");
  config.autoCompactionPeriodMs = retention.periodMs;
  config.autoCompactionRetentionRevisions = retention.revisions;
  for (const u of config.listenClientUrls) {
    const tlsConfig = config.clientTls;
    if (
      u.startsWith("https:") && !tlsConfig.autoTls && (!tlsConfig.certFile || !tlsConfig.keyFile)
    ) {
      throw new ConfigError(
        `TLS key/cert (--cert-file, --key-file) must be provided for client url ${u} with HTTPS scheme`,
      );
    }
  }
  if (
    config.quotaBackendBytes > MAX_RECOMMENDED_QUOTA_BYTES && config.quotaBackendBytes !== Infinity
  ) {
    config.warnings.push(
      `backend quota ${config.quotaBackendBytes} exceeds maximum recommended quota ${MAX_RECOMMENDED_QUOTA_BYTES}`,
    );
  }
  return config;
}

/**
 * The checks etcd makes only when bootstrapping a member with an empty data dir (they are
 * skipped on restart, where the membership comes from the WAL): this member's name must be in
 * `--initial-cluster` with exactly its advertised peer URLs, and no URL may appear twice.
 * `localhost` and 127.0.0.1 count as the same host, as etcd's DNS resolution makes them.
 */
export function verifyBootstrap(config: Config): void {
  const self = config.initialCluster.find((m) => m.name === config.name);
  if (!self) {
    throw new ConfigError(
      `couldn't find local name ${goQuote(config.name)} in the initial cluster configuration`,
    );
  }
  const canon = (u: string) => u.replace("//localhost:", "//127.0.0.1:");
  const advertised = config.initialAdvertisePeerUrls;
  const inCluster = new Set(self.peerUrls.map(canon));
  const inAdvertised = new Set(advertised.map(canon));
  const missingFromAdvertised = self.peerUrls.filter((u) => !inAdvertised.has(canon(u)));
  if (missingFromAdvertised.length > 0) {
    throw new ConfigError(
      `--initial-cluster has ${missingFromAdvertised.map((u) => `${config.name}=${u}`).join(",")}` +
        ` but missing from --initial-advertise-peer-urls=${advertised.join(",")}`,
    );
  }
  const missingFromCluster = advertised.filter((u) => !inCluster.has(canon(u)));
  if (missingFromCluster.length > 0) {
    throw new ConfigError(
      `--initial-advertise-peer-urls has ${missingFromCluster.join(",")} but missing from ` +
        `--initial-cluster=${advertised.map((u) => `${config.name}=${u}`).join(",")}`,
    );
  }
  const seen = new Set<string>();
  for (const member of config.initialCluster) {
    for (const u of member.peerUrls) {
      if (seen.has(u)) {
        const pairs = config.initialCluster
          .flatMap((m) => m.peerUrls.map((p) => `${m.name}=${p}`))
          .sort();
        throw new ConfigError(`initial cluster ${pairs.join(",")} has duplicate url`);
      }
      seen.add(u);
    }
  }
}

/**
 * Where to bind a listen URL: `localhost` becomes 127.0.0.1 (etcd binds the name, which
 * resolves there), an empty port becomes 0, and `https` asks for TLS. Throws
 * {@linkcode ConfigError} for a URL etcd would not accept.
 */
export function resolveListenAddress(url: string): ListenAddress {
  let parsed: ParsedUrl;
  try {
    parsed = parseEtcdUrl(url);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const hostname = parsed.hostname === "localhost" ? "127.0.0.1" : parsed.hostname;
  if (!isIpLiteral(hostname)) throw new ConfigError(`expected IP in URL for binding (${url})`);
  const port = parsed.port === "" ? 0 : Number(parsed.port);
  if (!/^\d*$/.test(parsed.port) || port > 65535) {
    throw new ConfigError(`invalid port in URL for binding (${url})`);
  }
  return { hostname, port, tls: parsed.scheme === "https" };
}
