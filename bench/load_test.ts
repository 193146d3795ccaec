import { ok, strictEqual } from "node:assert/strict";
import { runLoad } from "./load.ts";
import { startTrivialServer } from "./overhead.ts";
import { freePort } from "./server_process.ts";
import { prepareCase } from "./workload.ts";

const shape = { keyspace: 1000, keySize: 8, valueSize: 16, seed: 3 };

Deno.test("count mode measures exactly the requested number of requests", async () => {
  const server = await startTrivialServer();
  try {
    const result = await runLoad(server.url, prepareCase("put-random", shape), {
      clients: 8,
      conns: 3,
      warmupMs: 50,
      durationMs: 0,
      totalRequests: 300,
      maxMeasureMs: 20_000,
      drainTimeoutMs: 5_000,
    });
    strictEqual(result.requests, 300);
    strictEqual(result.latency.count, 300);
    strictEqual(result.errors, 0);
    strictEqual(result.firstError, undefined);
    ok(result.elapsedMs > 0);
    ok(Math.abs(result.throughput - 300 / (result.elapsedMs / 1000)) < 1e-6);
    ok(result.latency.p50Ms <= result.latency.p99Ms);
    ok(result.latency.p99Ms <= result.latency.maxMs);
    strictEqual(result.buckets.reduce((n, [, c]) => n + c, 0), 300);
  } finally {
    await server.close();
  }
});

Deno.test("duration mode measures over the window it was given", async () => {
  const server = await startTrivialServer();
  try {
    const result = await runLoad(server.url, prepareCase("range-serializable", shape), {
      clients: 4,
      conns: 2,
      warmupMs: 50,
      durationMs: 300,
      maxMeasureMs: 20_000,
      drainTimeoutMs: 5_000,
    });
    ok(result.requests > 0, "no request completed");
    strictEqual(result.errors, 0);
    // The window closes on a timer, so it can only run late, never early.
    ok(result.elapsedMs >= 299 && result.elapsedMs < 2_000, `window ${result.elapsedMs} ms`);
    ok(result.clientCpuPct > 0);
    strictEqual(result.serverCpuPct, undefined);
  } finally {
    await server.close();
  }
});

Deno.test("a server that refuses every call ends the case early with errors", async () => {
  const port = freePort(); // Nothing listens there.
  const started = performance.now();
  const result = await runLoad(`http://127.0.0.1:${port}`, prepareCase("put-single", shape), {
    clients: 4,
    conns: 1,
    warmupMs: 0,
    durationMs: 30_000,
    maxMeasureMs: 30_000,
    drainTimeoutMs: 5_000,
  });
  ok(performance.now() - started < 25_000, "the case was not cut short");
  strictEqual(result.requests, 0);
  ok(result.errors > 0);
  ok(result.firstError !== undefined);
});
