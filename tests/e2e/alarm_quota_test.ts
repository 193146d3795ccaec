/**
 * The quota, alarms, HashKV and the HTTP probes, driven with etcdctl, curl-style requests
 * and `/metrics`, against our member and, where etcd 3.4 serves the same thing, against
 * real etcd with the same script: both transcripts must be equal once member IDs are masked.
 *
 * @module
 */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  ETCD_BIN,
  etcdctl,
  ETCDCTL_BIN,
  type Impl,
  type Member,
  memberCommand,
  requireBinary,
  startMember,
} from "./harness.ts";
import { lineDiff } from "./normalize.ts";

const available = requireBinary(ETCDCTL_BIN);
const etcdAvailable = available && requireBinary(ETCD_BIN);

/** Small enough to fill in a few puts, large enough for either backend to start. */
const quotaBytes = 200_000;
const valueBytes = 20_000;
/** Far more puts than either backend needs to reach the quota. */
const maxFillPuts = 40;

/** Masks what differs between two members: IDs, ports and hashes. */
function mask(text: string, member: Member): string {
  return text
    .replaceAll(member.clientUrl.replace(/^http:\/\//, ""), "<endpoint>")
    .replace(/"(cluster_id|member_id)":"\d+"/g, `"$1":"<id>"`)
    .replace(/memberID:\d+/g, "memberID:<id>")
    .replace(/"memberID":"\d+"/g, `"memberID":"<id>"`)
    .replace(/"raft_term":"\d+"/g, `"raft_term":"<term>"`);
}

/** etcdctl's last line of error output (the rest is its client's retry logging). */
function lastLine(text: string): string {
  return text.trim().split("\n").at(-1) ?? "";
}

async function http(
  member: Member,
  path: string,
  body?: unknown,
): Promise<{ status: number; text: string }> {
  const res = await fetch(`${member.clientUrl}${path}`, {
    method: body === undefined ? "GET" : "POST",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, text: await res.text() };
}

/** How long a restarted member may take to serve again. */
const restartTimeoutMs = 30_000;

/**
 * Restarts a stopped member on its data dir and ports. The harness waits for `/health` to be
 * true, which an active alarm prevents, so this waits for `/health?exclude=NOSPACE`.
 */
async function restartWithAlarm(member: Member, flags: string[]): Promise<() => Promise<void>> {
  const { cmd, args } = memberCommand(member.impl, [
    `--name=${member.name}`,
    `--data-dir=${member.dataDir}`,
    `--listen-client-urls=${member.clientUrl}`,
    `--advertise-client-urls=${member.clientUrl}`,
    `--listen-peer-urls=${member.peerUrl}`,
    `--initial-advertise-peer-urls=${member.peerUrl}`,
    `--initial-cluster=${member.name}=${member.peerUrl}`,
    ...flags,
  ]);
  const child = new Deno.Command(cmd, { args, stdin: "null", stdout: "null", stderr: "null" })
    .spawn();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* exited already */ }
    await child.status;
  };
  const deadline = Date.now() + restartTimeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${member.clientUrl}/health?exclude=NOSPACE`);
      await res.body?.cancel();
      if (res.status === 200) return stop;
    } catch { /* not listening yet */ }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await stop();
  throw new Error(`${member.impl} did not serve again within ${restartTimeoutMs} ms`);
}

/** The script both servers run; returns its transcript. */
async function quotaScript(impl: Impl): Promise<string> {
  const dataDir = await Deno.makeTempDir({ prefix: `e2e-quota-${impl}-` });
  const flags = [`--quota-backend-bytes=${quotaBytes}`];
  const member = await startMember({ impl, flags, dataDir });
  let stopRestarted = () => Promise.resolve();
  const log: string[] = [];
  const note = (what: string, value: string | number | boolean) =>
    log.push(`${what}: ${mask(String(value), member)}`);
  try {
    const e = member.clientUrl.replace(/^http:\/\//, "");
    const value = "x".repeat(valueBytes);
    let refused = "";
    for (let i = 0; i < maxFillPuts && refused === ""; i++) {
      const r = await etcdctl(e, "put", `k${i}`, value);
      if (r.code !== 0) refused = lastLine(r.stderr);
    }
    note("put past the quota", refused);
    note("alarm list", (await etcdctl(e, "alarm", "list")).stdout);
    const gatewayPut = await http(member, "/v3/kv/put", { key: "YQ==", value: "Yg==" });
    note("gateway put", `${gatewayPut.status} ${gatewayPut.text}`);
    const grant = await etcdctl(e, "lease", "grant", "10");
    note("lease grant", lastLine(grant.stderr));
    const health = await http(member, "/health");
    note("health", `${health.status} ${JSON.stringify(health.text)}`);
    const excluded = await http(member, "/health?exclude=NOSPACE");
    note("health excluding NOSPACE", `${excluded.status} ${JSON.stringify(excluded.text)}`);
    const status = JSON.parse((await etcdctl(e, "endpoint", "status", "-w", "json")).stdout);
    note("status errors", JSON.stringify(status[0].Status.errors));

    // Reads, deletes, compaction and defrag still work; the alarm stays until disarmed.
    note("get", (await etcdctl(e, "get", "k0", "--keys-only")).stdout.trim());
    note("del", (await etcdctl(e, "del", "k0")).stdout.trim());
    const rev = JSON.parse((await etcdctl(e, "get", "k1", "-w", "json")).stdout).header.revision;
    note("compaction", (await etcdctl(e, "compaction", String(rev))).code === 0);
    note("defrag", (await etcdctl(e, "defrag")).code === 0);
    note("put after compact and defrag", lastLine((await etcdctl(e, "put", "a", "b")).stderr));

    // Alarms are persisted state: a restart keeps them.
    await member.stop();
    stopRestarted = await restartWithAlarm(member, flags);
    note("alarm list after restart", (await etcdctl(e, "alarm", "list")).stdout);
    note("alarm disarm", (await etcdctl(e, "alarm", "disarm")).stdout);
    note("alarm list after disarm", JSON.stringify((await etcdctl(e, "alarm", "list")).stdout));
    note("gateway alarm GET", (await http(member, "/v3/maintenance/alarm", {})).text);
    const healthAfter = await http(member, "/health");
    note("health after disarm", `${healthAfter.status} ${healthAfter.text}`);

    // HashKV: the compact revision is reported, and refused as a hash revision.
    const hashkv = JSON.parse((await etcdctl(e, "endpoint", "hashkv", "-w", "json")).stdout);
    note("hashkv compact_revision is the compaction", hashkv[0].HashKV.compact_revision === rev);
    const atCompact = await etcdctl(e, "endpoint", "hashkv", `--rev=${rev}`);
    note("hashkv at the compact revision", `${atCompact.code} ${lastLine(atCompact.stderr)}`);
    const future = await etcdctl(e, "endpoint", "hashkv", "--rev=100000");
    note("hashkv in the future", `${future.code} ${lastLine(future.stderr)}`);
    const gatewayHash = await http(member, "/v3/maintenance/hash", { revision: "1" });
    note("gateway /hash answers Hash", JSON.stringify(Object.keys(JSON.parse(gatewayHash.text))));
    return log.join("\n");
  } finally {
    await member.stop();
    await stopRestarted();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

Deno.test({
  name: "quota, NOSPACE alarm, disarm and HashKV: ours answers as etcd 3.4",
  ignore: !etcdAvailable,
  async fn() {
    const expected = await quotaScript("etcd");
    const actual = await quotaScript("ours");
    if (actual !== expected) throw new Error(`transcripts differ:\n${lineDiff(expected, actual)}`);
    // The script must have reached the quota at all, or it proves nothing.
    strictEqual(
      expected.includes("put past the quota: Error: etcdserver: mvcc: database space exceeded"),
      true,
      expected,
    );
  },
});

/** Metric names (and types) that dashboards and alerts read; etcd 3.4 has each of them. */
const requiredMetrics: [string, string][] = [
  ["etcd_server_has_leader", "gauge"],
  ["etcd_server_is_leader", "gauge"],
  ["etcd_server_leader_changes_seen_total", "counter"],
  ["etcd_server_proposals_committed_total", "gauge"],
  ["etcd_server_proposals_applied_total", "gauge"],
  ["etcd_server_proposals_pending", "gauge"],
  ["etcd_server_proposals_failed_total", "counter"],
  ["etcd_server_quota_backend_bytes", "gauge"],
  ["etcd_server_health_success", "counter"],
  ["etcd_server_health_failures", "counter"],
  ["etcd_server_id", "gauge"],
  ["etcd_server_version", "gauge"],
  ["etcd_mvcc_db_total_size_in_bytes", "gauge"],
  ["etcd_mvcc_db_total_size_in_use_in_bytes", "gauge"],
  ["etcd_debugging_mvcc_db_total_size_in_bytes", "gauge"],
  ["etcd_debugging_mvcc_keys_total", "gauge"],
  ["etcd_debugging_mvcc_current_revision", "gauge"],
  ["etcd_debugging_mvcc_compact_revision", "gauge"],
  ["etcd_disk_wal_fsync_duration_seconds", "histogram"],
  ["etcd_disk_backend_commit_duration_seconds", "histogram"],
  ["etcd_disk_backend_defrag_duration_seconds", "histogram"],
  ["etcd_mvcc_hash_duration_seconds", "histogram"],
  ["etcd_mvcc_hash_rev_duration_seconds", "histogram"],
  ["etcd_network_client_grpc_received_bytes_total", "counter"],
  ["etcd_network_client_grpc_sent_bytes_total", "counter"],
  ["grpc_server_started_total", "counter"],
  ["grpc_server_handled_total", "counter"],
  ["process_resident_memory_bytes", "gauge"],
  ["process_start_time_seconds", "gauge"],
  ["process_cpu_seconds_total", "counter"],
];

/** `name -> type` from the `# TYPE` lines of an exposition. */
function metricTypes(text: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1], m[2]);
  return types;
}

async function scrape(member: Member): Promise<{ text: string; contentType: string }> {
  const res = await fetch(`${member.clientUrl}/metrics`);
  strictEqual(res.status, 200);
  return { text: await res.text(), contentType: res.headers.get("content-type") ?? "" };
}

Deno.test({
  name: "/metrics: etcd's names and types, counting this member's work",
  ignore: !available,
  async fn(t) {
    const member = await startMember({ impl: "ours" });
    try {
      const e = member.clientUrl.replace(/^http:\/\//, "");
      strictEqual((await etcdctl(e, "put", "k", "v")).code, 0);
      const { text, contentType } = await scrape(member);
      strictEqual(contentType, "text/plain; version=0.0.4; charset=utf-8");
      const types = metricTypes(text);
      for (const [name, type] of requiredMetrics) strictEqual(types.get(name), type, name);
      const sample = (line: string) => text.split("\n").some((l) => l === line);
      strictEqual(sample("etcd_server_has_leader 1"), true);
      strictEqual(sample("etcd_debugging_mvcc_keys_total 1"), true);
      strictEqual(
        sample(
          'grpc_server_handled_total{grpc_code="OK",grpc_method="Put",' +
            'grpc_service="etcdserverpb.KV",grpc_type="unary"} 1',
        ),
        true,
      );
      // etcdctl check datascale reads this line with Go's ParseFloat.
      const rss = /^process_resident_memory_bytes (\S+)$/m.exec(text);
      strictEqual(rss !== null && Number(rss[1]) > 0, true);
      if (etcdAvailable) {
        await t.step("etcd 3.4 exposes the same names with the same types", async () => {
          const etcd = await startMember({ impl: "etcd" });
          try {
            const theirs = metricTypes((await scrape(etcd)).text);
            for (const [name, type] of requiredMetrics) strictEqual(theirs.get(name), type, name);
          } finally {
            await etcd.stop();
          }
        });
      }
    } finally {
      await member.stop();
    }
  },
});

Deno.test({
  name: "/livez and /readyz (later etcd's probes), and /health with a CORRUPT alarm",
  ignore: !available,
  async fn() {
    const member = await startMember({ impl: "ours" });
    try {
      deepStrictEqual(await http(member, "/livez"), { status: 200, text: "ok\n" });
      deepStrictEqual(await http(member, "/readyz"), { status: 200, text: "ok\n" });
      deepStrictEqual(await http(member, "/readyz?verbose"), {
        status: 200,
        text: "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n" +
          "[+]non_learner ok\nok\n",
      });
      const raised = await http(member, "/v3/maintenance/alarm", {
        action: "ACTIVATE",
        memberID: "42",
        alarm: "CORRUPT",
      });
      deepStrictEqual(JSON.parse(raised.text), {
        alarms: [{ memberID: "42", alarm: "CORRUPT" }],
      });
      deepStrictEqual(await http(member, "/readyz"), {
        status: 503,
        text: "[-]data_corruption failed: alarm activated: CORRUPT\n[+]serializable_read ok\n" +
          "[+]linearizable_read ok\n[+]non_learner ok\n\n",
      });
      deepStrictEqual(await http(member, "/readyz?exclude=data_corruption"), {
        status: 200,
        text: "ok\n",
      });
      deepStrictEqual(await http(member, "/livez"), { status: 200, text: "ok\n" });
      deepStrictEqual(await http(member, "/health"), {
        status: 503,
        text: '{"health":"false"}\n',
      });
      // A CORRUPT cluster refuses writes (etcd's corrupt applier).
      const e = member.clientUrl.replace(/^http:\/\//, "");
      const put = await etcdctl(e, "put", "a", "b");
      strictEqual(lastLine(put.stderr), "Error: etcdserver: corrupt cluster");
      strictEqual((await etcdctl(e, "alarm", "disarm")).stdout, "memberID:42 alarm:CORRUPT \n");
      deepStrictEqual(await http(member, "/health"), { status: 200, text: '{"health":"true"}' });
      strictEqual((await etcdctl(e, "put", "a", "b")).code, 0);
    } finally {
      await member.stop();
    }
  },
});
