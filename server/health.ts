/**
 * The probe and metrics endpoints of the client port.
 *
 * - `/health`: etcd 3.4's answer, byte for byte: `{"health":"true"}` (200) or
 *   `{"health":"false"}` (503, with Go's `http.Error` newline) when an alarm is active (unless
 *   named in `?exclude=`), no leader is known, or a linearizable read does not complete
 *   within a second. Only GET is allowed.
 * - `/livez`, `/readyz`: not served by etcd 3.4 (it answers 404); modelled on etcd 3.5.11+ /
 *   3.6: `ok` (200), with `[+]check ok` lines under `?verbose`, or the check lines with
 *   `[-]check failed: reason` (503); `?exclude=check` skips a check and `/readyz/<check>` runs
 *   one. livez runs a serializable read; readyz adds the CORRUPT alarm, a linearizable read
 *   and "not a learner".
 * - `/metrics`: the Prometheus text exposition of {@linkcode ServerMetrics}.
 *
 * @module
 */
import type { Hono } from "hono";
import { AlarmType } from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import type { EtcdServer } from "./etcd_server.ts";
import { metricsContentType } from "./metrics.ts";

/** etcd 3.4's `/health` gives its QGET one second. */
const healthReadTimeoutMs = 1000;
/** How long a readiness check may wait for a linearizable read. */
const readyReadTimeoutMs = 5000;

const textHeaders = { "content-type": "text/plain; charset=utf-8" };
/** What Go's `http.Error` sends. */
const errorHeaders = { ...textHeaders, "x-content-type-options": "nosniff" };

function methodNotAllowed(): Response {
  return new Response("Method Not Allowed\n", {
    status: 405,
    headers: { ...errorHeaders, allow: "GET" },
  });
}

/** Resolves with `work`'s outcome, or rejects with a timeout error after `ms`. */
async function within(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("context deadline exceeded")), ms);
  });
  try {
    await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** etcd 3.4's health verdict. */
async function isHealthy(server: EtcdServer, excludedAlarms: Set<string>): Promise<boolean> {
  for (const alarm of server.alarms.list()) {
    if (!excludedAlarms.has(AlarmType[alarm.alarm] ?? String(alarm.alarm))) return false;
  }
  if (server.leader === 0n) return false;
  try {
    await within(server.linearizableRead(), healthReadTimeoutMs);
    return true;
  } catch {
    return false;
  }
}

/** A named probe check: resolves when it passes, rejects with the reason otherwise. */
type Check = (server: EtcdServer) => Promise<void>;

const serializableRead: Check = (server) => {
  server.store.read().range(new Uint8Array([0]), new Uint8Array([0]), {
    keysOnly: true,
    limit: 1,
  });
  return Promise.resolve();
};

const livezChecks: [string, Check][] = [["serializable_read", serializableRead]];

const readyzChecks: [string, Check][] = [
  [
    "data_corruption",
    (server) =>
      server.alarms.has(AlarmType.CORRUPT)
        ? Promise.reject(new Error("alarm activated: CORRUPT"))
        : Promise.resolve(),
  ],
  ["serializable_read", serializableRead],
  ["linearizable_read", (server) => within(server.linearizableRead(), readyReadTimeoutMs)],
  // A learner would fail here ("not supported for learner"); learners arrive with membership.
  ["non_learner", () => Promise.resolve()],
];

async function runSelected(
  server: EtcdServer,
  checks: [string, Check][],
  query: URLSearchParams,
): Promise<Response> {
  const excluded = new Set(query.getAll("exclude").filter((name) => name !== ""));
  let failed = false;
  let report = "";
  for (const [name, check] of checks) {
    if (excluded.has(name)) continue;
    try {
      await check(server);
      report += `[+]${name} ok\n`;
    } catch (err) {
      failed = true;
      report += `[-]${name} failed: ${err instanceof Error ? err.message : String(err)}\n`;
    }
  }
  if (failed) return new Response(`${report}\n`, { status: 503, headers: errorHeaders });
  const body = (query.has("verbose") ? report : "") + "ok\n";
  return new Response(body, { status: 200, headers: errorHeaders });
}

/** Mounts `/health`, `/livez`, `/readyz` (and their per-check paths) on `app`. */
export function mountHealth(app: Hono, server: EtcdServer): void {
  app.all("/health", async (c) => {
    if (c.req.method !== "GET") return methodNotAllowed();
    const url = new URL(c.req.url);
    const excluded = new Set(url.searchParams.getAll("exclude").filter((a) => a !== ""));
    const healthy = await isHealthy(server, excluded);
    (healthy ? server.metrics.healthSuccess : server.metrics.healthFailures).inc();
    if (healthy) return new Response('{"health":"true"}', { status: 200, headers: textHeaders });
    return new Response('{"health":"false"}\n', { status: 503, headers: errorHeaders });
  });
  for (const [root, checks] of [["/livez", livezChecks], ["/readyz", readyzChecks]] as const) {
    app.all(root, async (c) => {
      if (c.req.method !== "GET") return methodNotAllowed();
      return await runSelected(server, checks, new URL(c.req.url).searchParams);
    });
    for (const check of checks) {
      app.all(`${root}/${check[0]}`, async (c) => {
        if (c.req.method !== "GET") return methodNotAllowed();
        return await runSelected(server, [check], new URL(c.req.url).searchParams);
      });
    }
  }
}

/** Mounts `/metrics` on `app`. */
export function mountMetrics(app: Hono, server: EtcdServer): void {
  // promhttp answers any method, as this does.
  app.all("/metrics", () =>
    new Response(server.metrics.registry.render(), {
      headers: { "content-type": metricsContentType },
    }));
}
