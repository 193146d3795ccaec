import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import {
  type Config,
  ConfigError,
  flagToEnv,
  parseConfig,
  parseGoDurationMs,
  resolveListenAddress,
  USAGE,
  verifyBootstrap,
  versionText,
} from "./config.ts";

/** Flags every test needs when it sets the client URLs explicitly (etcd requires both). */
const LOCAL = [
  "--listen-client-urls=http://127.0.0.1:1",
  "--advertise-client-urls=http://127.0.0.1:1",
];

function expectError(args: string[], env: Record<string, string>, message: string, code: 1 | 2) {
  throws(() => parseConfig(args, env), (e: unknown) => {
    if (!(e instanceof ConfigError)) throw e;
    strictEqual(e.message, message);
    strictEqual(e.exitCode, code);
    return true;
  });
}

Deno.test("defaults are etcd 3.4's (pre-vote aside)", () => {
  const c = parseConfig([], {});
  strictEqual(c.action, "serve");
  strictEqual(c.name, "default");
  strictEqual(c.dataDir, "default.etcd");
  strictEqual(c.walDir, "");
  deepStrictEqual(c.listenClientUrls, ["http://localhost:2379"]);
  deepStrictEqual(c.advertiseClientUrls, ["http://localhost:2379"]);
  deepStrictEqual(c.listenPeerUrls, ["http://localhost:2380"]);
  deepStrictEqual(c.initialAdvertisePeerUrls, ["http://localhost:2380"]);
  deepStrictEqual(c.listenMetricsUrls, []);
  deepStrictEqual(c.initialCluster, [{ name: "default", peerUrls: ["http://localhost:2380"] }]);
  strictEqual(c.initialClusterState, "new");
  strictEqual(c.initialClusterToken, "etcd-cluster");
  strictEqual(c.maxRequestBytes, 1572864);
  strictEqual(c.maxTxnOps, 128);
  strictEqual(c.quotaBackendBytes, 2 * 1024 ** 3);
  strictEqual(c.snapshotCount, 100000);
  strictEqual(c.heartbeatIntervalMs, 100);
  strictEqual(c.electionTimeoutMs, 1000);
  strictEqual(c.autoCompactionMode, "periodic");
  strictEqual(c.autoCompactionRetention, "0");
  strictEqual(c.autoCompactionPeriodMs, 0);
  strictEqual(c.autoCompactionRetentionRevisions, 0);
  strictEqual(c.watchProgressNotifyIntervalMs, 600_000);
  strictEqual(c.preVote, true);
  strictEqual(c.strictReconfigCheck, true);
  strictEqual(c.enableV2, false);
  strictEqual(c.logger, "capnslog");
  strictEqual(c.logLevel, "info");
  deepStrictEqual(c.logOutputs, ["default"]);
  strictEqual(c.maxSnapshots, 5);
  strictEqual(c.maxWals, 5);
  strictEqual(c.forceNewCluster, false);
  strictEqual(c.enablePprof, false);
  strictEqual(c.metrics, "basic");
  strictEqual(c.authToken, "simple");
  strictEqual(c.authTokenTtlSeconds, 300);
  strictEqual(c.bcryptCost, 10);
  strictEqual(c.grpcKeepaliveMinTimeMs, 5000);
  strictEqual(c.grpcKeepaliveIntervalMs, 7_200_000);
  strictEqual(c.grpcKeepaliveTimeoutMs, 20_000);
  strictEqual(c.maxConcurrentStreams, 4294967295);
  strictEqual(c.enableGrpcGateway, true);
  deepStrictEqual(c.cors, ["*"]);
  deepStrictEqual(c.cipherSuites, []);
  strictEqual(c.clientTls.certFile, "");
  strictEqual(c.peerTls.clientCertAuth, false);
  deepStrictEqual(c.warnings, []);
  verifyBootstrap(c);
});

Deno.test("each flag sets its field", async (t) => {
  const cases: [string[], (c: Config) => unknown, unknown][] = [
    [["--name", "n1"], (c) => [c.name, c.dataDir], ["n1", "n1.etcd"]],
    [["--name=n1", "--data-dir", "/d"], (c) => c.dataDir, "/d"],
    [["--data-dir="], (c) => c.dataDir, "default.etcd"],
    [["--wal-dir", "/w"], (c) => c.walDir, "/w"],
    [
      [
        "--listen-client-urls",
        "http://127.0.0.1:2,http://127.0.0.1:1,http://127.0.0.1:2",
        "--advertise-client-urls",
        "http://127.0.0.1:1",
      ],
      (c) => c.listenClientUrls,
      ["http://127.0.0.1:1", "http://127.0.0.1:2"],
    ],
    [
      ["--advertise-client-urls", " HTTP://a.example:1"],
      (c) => c.advertiseClientUrls,
      ["http://a.example:1"],
    ],
    [["--listen-peer-urls", "https://0.0.0.0:7"], (c) => c.listenPeerUrls, ["https://0.0.0.0:7"]],
    [["--listen-metrics-urls", "http://[::1]:9"], (c) => c.listenMetricsUrls, ["http://[::1]:9"]],
    [
      ["--initial-cluster", "a=http://h:1,b=http://h:2,a=http://h:0"],
      (c) => c.initialCluster,
      [{ name: "a", peerUrls: ["http://h:0", "http://h:1"] }, {
        name: "b",
        peerUrls: ["http://h:2"],
      }],
    ],
    [["--initial-cluster-state", "existing"], (c) => c.initialClusterState, "existing"],
    [["--initial-cluster-token", "tok"], (c) => c.initialClusterToken, "tok"],
    [["--max-request-bytes", "10"], (c) => c.maxRequestBytes, 10],
    [["--max-txn-ops", "0x10"], (c) => c.maxTxnOps, 16],
    [["--max-txn-ops", "0100"], (c) => c.maxTxnOps, 64],
    [["--max-txn-ops", "1_000"], (c) => c.maxTxnOps, 1000],
    [["--quota-backend-bytes", "1024"], (c) => c.quotaBackendBytes, 1024],
    [["--quota-backend-bytes", "-1"], (c) => c.quotaBackendBytes, Infinity],
    [["--snapshot-count", "5"], (c) => c.snapshotCount, 5],
    [
      ["--heartbeat-interval", "50", "--election-timeout", "250"],
      (c) => [c.heartbeatIntervalMs, c.electionTimeoutMs],
      [50, 250],
    ],
    [
      ["--auto-compaction-retention", "2"],
      (c) => [c.autoCompactionPeriodMs, c.autoCompactionRetentionRevisions],
      [7_200_000, 0],
    ],
    [["--auto-compaction-retention", "5m"], (c) => c.autoCompactionPeriodMs, 300_000],
    [
      ["--auto-compaction-mode", "revision", "--auto-compaction-retention", "1000"],
      (c) => [c.autoCompactionMode, c.autoCompactionRetentionRevisions, c.autoCompactionPeriodMs],
      ["revision", 1000, 0],
    ],
    [
      ["--experimental-watch-progress-notify-interval", "1h30m"],
      (c) => c.watchProgressNotifyIntervalMs,
      5_400_000,
    ],
    [
      ["--experimental-watch-progress-notify-interval", "1ms"],
      (c) => c.watchProgressNotifyIntervalMs,
      100,
    ],
    [
      ["--experimental-watch-progress-notify-interval", "0"],
      (c) => c.watchProgressNotifyIntervalMs,
      600_000,
    ],
    [["--pre-vote=false"], (c) => c.preVote, false],
    [["-pre-vote=0"], (c) => c.preVote, false],
    [["--pre-vote=false", "--pre-vote"], (c) => c.preVote, true],
    [["--strict-reconfig-check=F"], (c) => c.strictReconfigCheck, false],
    [["--enable-v2=false"], (c) => c.enableV2, false],
    [["--logger", "zap", "--log-level", "warn"], (c) => [c.logger, c.logLevel], ["zap", "warn"]],
    [["--debug"], (c) => c.logLevel, "debug"],
    [["--log-outputs", "stdout,stderr,stdout"], (c) => c.logOutputs, ["stderr", "stdout"]],
    [["--max-snapshots", "0", "--max-wals", "3"], (c) => [c.maxSnapshots, c.maxWals], [0, 3]],
    [["--force-new-cluster"], (c) => c.forceNewCluster, true],
    [["--enable-pprof"], (c) => c.enablePprof, true],
    [["--metrics", "extensive"], (c) => c.metrics, "extensive"],
    [
      ["--auth-token-ttl", "60", "--bcrypt-cost", "4"],
      (c) => [c.authTokenTtlSeconds, c.bcryptCost],
      [60, 4],
    ],
    [["--grpc-keepalive-interval", "0"], (c) => c.grpcKeepaliveIntervalMs, 0],
    [["--max-concurrent-streams", "7"], (c) => c.maxConcurrentStreams, 7],
    [["--backend-batch-interval", "10ms"], (c) => c.backendBatchIntervalMs, 10],
    [
      ["--experimental-enable-lease-checkpoint", "--experimental-enable-lease-checkpoint-persist"],
      (c) => [c.leaseCheckpoint, c.leaseCheckpointPersist],
      [true, true],
    ],
    [["--unsafe-no-fsync"], (c) => c.unsafeNoFsync, true],
    [["--cert-file", "c", "--key-file", "k"], (c) => [c.clientTls.certFile, c.clientTls.keyFile], [
      "c",
      "k",
    ]],
    [
      ["--peer-client-cert-auth", "--peer-cert-allowed-cn", "x"],
      (c) => [c.peerTls.clientCertAuth, c.peerTls.allowedCn],
      [true, "x"],
    ],
    [["--peer-heartbeat-interval"], (c) => c.warnings, [
      `flag "-peer-heartbeat-interval" is no longer supported - ignoring.`,
    ]],
  ];
  for (const [args, pick, want] of cases) {
    await t.step(args.join(" "), () => deepStrictEqual(pick(parseConfig(args, {})), want));
  }
});

Deno.test("localhost listen URLs resolve to 127.0.0.1", async (t) => {
  const cases: [string, { hostname: string; port: number; tls: boolean }][] = [
    ["http://localhost:2379", { hostname: "127.0.0.1", port: 2379, tls: false }],
    ["https://0.0.0.0:1", { hostname: "0.0.0.0", port: 1, tls: true }],
    ["http://[::1]:5", { hostname: "::1", port: 5, tls: false }],
    ["http://127.0.0.1:", { hostname: "127.0.0.1", port: 0, tls: false }],
  ];
  for (const [url, want] of cases) {
    await t.step(url, () => deepStrictEqual(resolveListenAddress(url), want));
  }
  throws(() => resolveListenAddress("http://example.com:1"), ConfigError);
  throws(() => resolveListenAddress("http://127.0.0.1:99999"), ConfigError);
  throws(() => resolveListenAddress("ftp://127.0.0.1:1"), ConfigError);
});

Deno.test("initial cluster defaults to name=advertised peer URLs", () => {
  const c = parseConfig([
    "--name",
    "n1",
    "--initial-advertise-peer-urls",
    "http://127.0.0.1:9,http://127.0.0.1:8",
  ], {});
  deepStrictEqual(c.initialCluster, [{
    name: "n1",
    peerUrls: ["http://127.0.0.1:8", "http://127.0.0.1:9"],
  }]);
  verifyBootstrap(c);
});

Deno.test("environment variables", async (t) => {
  await t.step("fill flags", () => {
    const c = parseConfig([], {
      ETCD_NAME: "e1",
      ETCD_MAX_TXN_OPS: "7",
      ETCD_PRE_VOTE: "false",
      ETCD_LISTEN_CLIENT_URLS: "http://127.0.0.1:5",
      ETCD_ADVERTISE_CLIENT_URLS: "http://127.0.0.1:5",
      PATH: "/bin",
    });
    deepStrictEqual(
      [c.name, c.dataDir, c.maxTxnOps, c.preVote, c.listenClientUrls],
      ["e1", "e1.etcd", 7, false, ["http://127.0.0.1:5"]],
    );
  });
  await t.step("empty values are ignored", () => {
    strictEqual(parseConfig([], { ETCD_NAME: "" }).name, "default");
  });
  await t.step("unknown ETCD_ variables only warn", () => {
    deepStrictEqual(parseConfig([], { ETCD_FOO: "1" }).warnings, [
      "unrecognized environment variable ETCD_FOO=1",
    ]);
  });
  await t.step("a listen URL from the environment needs an advertised one too", () => {
    expectError(
      [],
      { ETCD_LISTEN_CLIENT_URLS: "http://127.0.0.1:1" },
      "--advertise-client-urls is required when --listen-client-urls is set explicitly",
      1,
    );
  });
  strictEqual(
    flagToEnv("experimental-watch-progress-notify-interval"),
    "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL",
  );
});

Deno.test("help and version", () => {
  strictEqual(parseConfig(["-h"], {}).action, "help");
  strictEqual(parseConfig(["--help"], {}).action, "help");
  strictEqual(parseConfig(["--name", "x", "-help", "--bogus"], {}).action, "help");
  strictEqual(parseConfig(["--version"], {}).action, "version");
  strictEqual(parseConfig(["--version", "--heartbeat-interval", "999"], {}).action, "version");
  strictEqual(versionText().split("\n")[0], "etcd Version: 3.4.23");
  for (const flag of ["--name", "--pre-vote", "--experimental-watch-progress-notify-interval"]) {
    strictEqual(USAGE.includes(flag), true, flag);
  }
});

Deno.test("errors carry etcd's wording and exit code", async (t) => {
  const cases: [string[], Record<string, string>, string, 1 | 2][] = [
    [["--foo"], {}, "flag provided but not defined: -foo", 2],
    [["---foo"], {}, "bad flag syntax: ---foo", 2],
    [["--name"], {}, "flag needs an argument: -name", 2],
    [["--max-txn-ops", "abc"], {}, `invalid value "abc" for flag -max-txn-ops: parse error`, 2],
    [["--max-txn-ops=-1"], {}, `invalid value "-1" for flag -max-txn-ops: parse error`, 2],
    [["--max-txn-ops=1__0"], {}, `invalid value "1__0" for flag -max-txn-ops: parse error`, 2],
    [
      ["--max-concurrent-streams=4294967296"],
      {},
      `invalid value "4294967296" for flag -max-concurrent-streams: strconv.ParseUint: parsing "4294967296": value out of range`,
      2,
    ],
    [["--pre-vote=maybe"], {}, `invalid boolean value "maybe" for -pre-vote: parse error`, 2],
    [
      ["--experimental-watch-progress-notify-interval", "10"],
      {},
      `invalid value "10" for flag -experimental-watch-progress-notify-interval: parse error`,
      2,
    ],
    [
      ["--listen-client-urls", "foo://x:1"],
      {},
      `invalid value "foo://x:1" for flag -listen-client-urls: URL scheme must be http, https, unix, or unixs: foo://x:1`,
      2,
    ],
    [
      ["--listen-client-urls", "http://x"],
      {},
      `invalid value "http://x" for flag -listen-client-urls: URL address does not have the form "host:port": http://x`,
      2,
    ],
    [
      ["--listen-peer-urls", "http://127.0.0.1:1/p"],
      {},
      `invalid value "http://127.0.0.1:1/p" for flag -listen-peer-urls: URL must not contain a path: http://127.0.0.1:1/p`,
      2,
    ],
    [
      ["--listen-peer-urls", "unix://x:1"],
      {},
      `invalid value "unix://x:1" for flag -listen-peer-urls: unix sockets are not supported: unix://x:1`,
      2,
    ],
    [
      ["--initial-cluster-state", "bogus"],
      {},
      `invalid value "bogus" for flag -initial-cluster-state: invalid value`,
      2,
    ],
    [
      ["--discovery", "x"],
      {},
      "--discovery is not supported: discovery is not supported; use --initial-cluster",
      2,
    ],
    [["extra"], {}, "'extra' is not a valid flag", 1],
    [["--pre-vote", "false"], {}, "'false' is not a valid flag", 1],
    [["--name", "a", "--", "b"], {}, "'b' is not a valid flag", 1],
    [
      ["--heartbeat-interval", "300"],
      {},
      "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]",
      1,
    ],
    [["--heartbeat-interval", "0"], {}, "--heartbeat-interval must be >0 (set to 0ms)", 1],
    [["--election-timeout", "0"], {}, "--election-timeout must be >0 (set to 0ms)", 1],
    [
      ["--election-timeout", "60000"],
      {},
      "--election-timeout[60000ms] is too long, and should be set less than 50000ms",
      1,
    ],
    [
      ["--listen-client-urls", "http://127.0.0.1:1"],
      {},
      "--advertise-client-urls is required when --listen-client-urls is set explicitly",
      1,
    ],
    [
      ["--listen-client-urls", "http://foo:1", "--advertise-client-urls", "http://foo:1"],
      {},
      "expected IP in URL for binding (http://foo:1)",
      1,
    ],
    [
      ["--advertise-client-urls", "http://:1"],
      {},
      `--advertise-client-urls "http://:1" must be "host:port" (unexpected empty host (http://:1))`,
      1,
    ],
    [["--auto-compaction-mode", "foo"], {}, `unknown auto-compaction-mode "foo"`, 1],
    [
      ["--auto-compaction-retention", "abc"],
      {},
      `error parsing CompactionRetention: time: invalid duration "abc"`,
      1,
    ],
    [
      ["--auto-compaction-retention", "10x"],
      {},
      `error parsing CompactionRetention: time: unknown unit "x" in duration "10x"`,
      1,
    ],
    [
      ["--initial-cluster", "n1=foo"],
      {},
      "error setting up initial cluster: URL scheme must be http, https, unix, or unixs: foo",
      1,
    ],
    [["--enable-v2"], {}, "--enable-v2 is not supported: this server serves only the v3 API", 1],
    [["--logger", "x"], {}, `unknown logger option "x"`, 1],
    [["--log-level", "x"], {}, `unknown level "x"`, 1],
    [
      ["--experimental-enable-lease-checkpoint-persist"],
      {},
      "setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint",
      1,
    ],
    [
      [
        "--listen-client-urls",
        "https://127.0.0.1:1",
        "--advertise-client-urls",
        "https://127.0.0.1:1",
      ],
      {},
      "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:1 with HTTPS scheme",
      1,
    ],
    [
      ["--name", "y"],
      { ETCD_NAME: "x" },
      `conflicting environment variable "ETCD_NAME" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)`,
      1,
    ],
    [
      ["--name", "y"],
      { ETCD_NAME: "" },
      `conflicting environment variable "ETCD_NAME" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)`,
      1,
    ],
    [[], { ETCD_MAX_TXN_OPS: "abc" }, `invalid value "abc" for ETCD_MAX_TXN_OPS: parse error`, 1],
    [[], { ETCD_PRE_VOTE: "maybe" }, `invalid value "maybe" for ETCD_PRE_VOTE: parse error`, 1],
    [
      [],
      { ETCD_HEARTBEAT_INTERVAL: "300" },
      "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]",
      1,
    ],
    [
      [],
      { ETCD_DISCOVERY: "http://x:1" },
      "ETCD_DISCOVERY is not supported: discovery is not supported; use --initial-cluster",
      1,
    ],
  ];
  for (const [args, env, message, code] of cases) {
    await t.step(
      `${args.join(" ")} ${JSON.stringify(env)}`,
      () => expectError(args, env, message, code),
    );
  }
});

Deno.test("bootstrap checks", async (t) => {
  const cases: [string[], string][] = [
    [
      ["--name", "n1", "--initial-cluster", "n2=http://127.0.0.1:2380"],
      `couldn't find local name "n1" in the initial cluster configuration`,
    ],
    [
      ["--name", "n1", "--initial-cluster", ""],
      `couldn't find local name "n1" in the initial cluster configuration`,
    ],
    [
      ["--name", "n1", "--initial-cluster", "n1=http://127.0.0.1:9"],
      "--initial-cluster has n1=http://127.0.0.1:9 but missing from --initial-advertise-peer-urls=http://localhost:2380",
    ],
    [
      [
        "--name",
        "n1",
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:1,http://127.0.0.1:2",
        "--initial-cluster",
        "n1=http://127.0.0.1:1",
      ],
      "--initial-advertise-peer-urls has http://127.0.0.1:2 but missing from --initial-cluster=n1=http://127.0.0.1:1,n1=http://127.0.0.1:2",
    ],
    [
      ["--name", "n1", "--initial-cluster", "n1=http://localhost:2380,n2=http://localhost:2380"],
      "initial cluster n1=http://localhost:2380,n2=http://localhost:2380 has duplicate url",
    ],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" "), () => {
      const c = parseConfig([...args, ...LOCAL], {});
      throws(() => verifyBootstrap(c), { name: "ConfigError", message });
    });
  }
  await t.step("localhost matches 127.0.0.1", () => {
    verifyBootstrap(parseConfig(["--initial-cluster", "default=http://127.0.0.1:2380"], {}));
  });
});

Deno.test("Go duration syntax", async (t) => {
  const cases: [string, number][] = [
    ["0", 0],
    ["10m", 600_000],
    ["1.5s", 1500],
    ["1h2m3s4ms", 3_723_004],
    ["-2s", -2000],
    ["500us", 0.5],
    ["1µs", 0.001],
    [".5s", 500],
  ];
  for (const [text, ms] of cases) {
    await t.step(text, () => strictEqual(parseGoDurationMs(text), ms));
  }
  for (const bad of ["", "10", "s", ".s", "1x", "1.2.3s"]) {
    await t.step(`rejects ${JSON.stringify(bad)}`, () => throws(() => parseGoDurationMs(bad)));
  }
});
