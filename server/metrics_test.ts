import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import type { HandlerContext } from "@connectrpc/connect";
import { KV, Maintenance, Watch } from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { Errors } from "./errors.ts";
import { type ReadyResponses, readyTaker, takeReady } from "./service_methods.ts";
import {
  exponentialBuckets,
  formatValue,
  Histogram,
  MetricsRegistry,
  type MetricsSource,
  ServerMetrics,
} from "./metrics.ts";

Deno.test("values are written as Go's strconv 'g' shortest form (what etcd shows)", () => {
  const cases: [number, string][] = [
    [0, "0"],
    [1, "1"],
    [-1, "-1"],
    [20480, "20480"],
    [200000, "200000"],
    [1e6, "1e+06"],
    [24760320, "2.476032e+07"],
    [2147483648, "2.147483648e+09"],
    [1796005744.82, "1.79600574482e+09"],
    [18446744073709552000, "1.8446744073709552e+19"],
    [0.001, "0.001"],
    [0.0001, "0.0001"],
    [0.00001, "1e-05"],
    [0.006525054000000001, "0.006525054000000001"],
    [409.6, "409.6"],
    [Infinity, "+Inf"],
    [-Infinity, "-Inf"],
    [NaN, "NaN"],
  ];
  for (const [value, text] of cases) strictEqual(formatValue(value), text, String(value));
});

Deno.test("histograms: etcd's buckets, upper bounds inclusive, cumulative output", () => {
  deepStrictEqual(exponentialBuckets(0.001, 2, 14).map(formatValue).slice(-3), [
    "2.048",
    "4.096",
    "8.192",
  ]);
  const h = new Histogram([0.1, 0.2, 0.4]);
  for (const v of [0.05, 0.1, 0.15, 0.4, 7]) h.observe(v);
  deepStrictEqual(h.cumulative(), [2, 3, 4, 5]);
  strictEqual(h.count, 5);
  strictEqual(Math.round(h.sum * 100) / 100, 7.7);
  throws(() => new Histogram([0.2, 0.1]));
});

Deno.test("registry renders the text exposition format, families by name", () => {
  const r = new MetricsRegistry();
  r.counter("b_total", "Second.\nLine").inc(3);
  r.gaugeFunc("a_gauge", "First.", () => 1.5);
  const h = r.histogram("c_seconds", "Third.", [0.5, 1]);
  h.observe(0.7);
  const family = r.counterFamily("d_total", "Labelled.", ["z", "a"]);
  family.child('q"x', "1").inc();
  family.child("p", "2");
  r.info("e_info", "Info.", { version: "1.2" });
  throws(() => r.counter("a_gauge", "again"), /registered twice/);
  strictEqual(
    r.render(),
    [
      "# HELP a_gauge First.",
      "# TYPE a_gauge gauge",
      "a_gauge 1.5",
      "# HELP b_total Second.\\nLine",
      "# TYPE b_total counter",
      "b_total 3",
      "# HELP c_seconds Third.",
      "# TYPE c_seconds histogram",
      'c_seconds_bucket{le="0.5"} 0',
      'c_seconds_bucket{le="1"} 1',
      'c_seconds_bucket{le="+Inf"} 1',
      "c_seconds_sum 0.7",
      "c_seconds_count 1",
      "# HELP d_total Labelled.",
      "# TYPE d_total counter",
      'd_total{a="1",z="q\\"x"} 1',
      'd_total{a="2",z="p"} 0',
      "# HELP e_info Info.",
      "# TYPE e_info gauge",
      'e_info{version="1.2"} 1',
      "",
    ].join("\n"),
  );
});

function fakeSource(): MetricsSource {
  return {
    memberId: 0x886b03c4ae679a15n,
    quotaBytes: 2 * 1024 ** 3,
    hasLeader: () => true,
    isLeader: () => true,
    committedIndex: () => 12,
    appliedIndex: () => 11,
    pendingProposals: () => 1,
    dbSizeBytes: () => 196608,
    dbSizeInUseBytes: () => 98304,
    keys: () => 8,
    currentRev: () => 11,
    compactRev: () => -1,
  };
}

/** `name value` of each unlabelled sample, and a check that every line is well formed. */
function samples(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.trimEnd().split("\n")) {
    if (line.startsWith("# HELP ") || line.startsWith("# TYPE ")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    strictEqual(match !== null, true, `malformed sample line: ${line}`);
    // Go's ParseFloat (etcdctl check datascale) accepts every value we write.
    strictEqual(Number.isNaN(Number(match![3].replace("+Inf", "Infinity"))), false, line);
    if (!match![2]) out.set(match![1], match![3]);
  }
  return out;
}

Deno.test("a member's metrics carry etcd's names and read the member at scrape time", () => {
  const metrics = new ServerMetrics(fakeSource());
  metrics.leaderChanges.inc();
  metrics.walFsyncSeconds.observe(0.0015);
  const text = metrics.registry.render();
  const values = samples(text);
  for (
    const [name, value] of [
      ["etcd_server_has_leader", "1"],
      ["etcd_server_is_leader", "1"],
      ["etcd_server_leader_changes_seen_total", "1"],
      ["etcd_server_proposals_committed_total", "12"],
      ["etcd_server_proposals_applied_total", "11"],
      ["etcd_server_proposals_pending", "1"],
      ["etcd_server_proposals_failed_total", "0"],
      ["etcd_server_quota_backend_bytes", "2.147483648e+09"],
      ["etcd_mvcc_db_total_size_in_bytes", "196608"],
      ["etcd_debugging_mvcc_db_total_size_in_bytes", "196608"],
      ["etcd_mvcc_db_total_size_in_use_in_bytes", "98304"],
      ["etcd_debugging_mvcc_keys_total", "8"],
      ["etcd_debugging_mvcc_compact_revision", "-1"],
      ["etcd_disk_wal_fsync_duration_seconds_count", "1"],
      ["etcd_disk_backend_commit_duration_seconds_count", "0"],
      ["etcd_network_client_grpc_received_bytes_total", "0"],
    ]
  ) {
    strictEqual(values.get(name), value, name);
  }
  strictEqual(text.includes('etcd_disk_wal_fsync_duration_seconds_bucket{le="0.002"} 1\n'), true);
  strictEqual(text.includes('etcd_server_id{server_id="886b03c4ae679a15"} 1'), true);
  strictEqual(text.includes('etcd_server_version{server_version="3.4.23"} 1'), true);
  strictEqual(Number(values.get("process_resident_memory_bytes")) > 1e6, true);
  const start = Number(values.get("process_start_time_seconds"));
  strictEqual(Math.abs(start - Date.now() / 1000) < 3600, true, "started within the hour");
  strictEqual(Number(values.get("process_open_fds")) > 0, true);
});

const context = {} as HandlerContext;

Deno.test("instrumented services count started, handled by code, and messages", async () => {
  const metrics = new ServerMetrics(fakeSource());
  let fail = false;
  const kv = metrics.instrument(KV, {
    put: () => {
      if (fail) throw Errors.noSpace;
      return {};
    },
  });
  await kv.put!({} as never, context);
  fail = true;
  await rejects(async () => await kv.put!({} as never, context));
  const maintenance = metrics.instrument(Maintenance, {
    async *snapshot() {
      yield {};
      yield {};
    },
  });
  for await (const _ of maintenance.snapshot!({} as never, context)) break; // client cancels
  const watch = metrics.instrument(Watch, {
    watch(requests) {
      const out: AsyncGenerator<Record<never, never>> & ReadyResponses = (async function* () {
        for await (const _ of requests) yield {};
      })();
      // One more response, ready after the first: taken without the iterator, counted all the same.
      let extra = 1;
      out[takeReady] = () => extra-- > 0 ? {} : undefined;
      return out;
    },
  });
  async function* twoRequests() {
    yield {} as never;
    yield {} as never;
  }
  const output = watch.watch!(twoRequests(), context);
  const take = readyTaker(output);
  ok(take, "the instrumented output passes takeReady on");
  for await (const _ of output) while (take() !== undefined) { /* taken without a promise */ }

  const text = metrics.registry.render();
  const line = (family: string, labels: string) => {
    const found = text.split("\n").find((l) => l.startsWith(`${family}{${labels}} `));
    return found?.slice(found.lastIndexOf(" ") + 1);
  };
  const put = 'grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"';
  strictEqual(line("grpc_server_started_total", put), "2");
  strictEqual(line("grpc_server_handled_total", `grpc_code="OK",${put}`), "1");
  strictEqual(line("grpc_server_handled_total", `grpc_code="ResourceExhausted",${put}`), "1");
  strictEqual(line("grpc_server_handled_total", `grpc_code="Aborted",${put}`), "0");
  strictEqual(line("grpc_server_msg_sent_total", put), "1");
  const snap =
    'grpc_method="Snapshot",grpc_service="etcdserverpb.Maintenance",grpc_type="server_stream"';
  strictEqual(line("grpc_server_handled_total", `grpc_code="Canceled",${snap}`), "1");
  strictEqual(line("grpc_server_msg_sent_total", snap), "1");
  const w = 'grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"';
  strictEqual(line("grpc_server_msg_received_total", w), "2");
  strictEqual(line("grpc_server_msg_sent_total", w), "3");
  strictEqual(line("grpc_server_handled_total", `grpc_code="OK",${w}`), "1");
});
