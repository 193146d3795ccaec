import { ok, rejects, strictEqual } from "node:assert/strict";
import { clientKinds, type LoadOptions, runLoad } from "./load.ts";
import { freePort } from "./server_process.ts";
import { startTrivialServer } from "./trivial_server.ts";
import { prepareCase } from "./workload.ts";

const shape = { keyspace: 1000, keySize: 8, valueSize: 16, seed: 3 };

const base: Omit<LoadOptions, "client"> = {
  clients: 8,
  conns: 3,
  warmupMs: 50,
  durationMs: 300,
  maxMeasureMs: 20_000,
  drainTimeoutMs: 5_000,
};

Deno.test("count mode measures exactly the requested number of requests", async (t) => {
  for (const client of clientKinds) {
    await t.step(client, async () => {
      const server = await startTrivialServer();
      try {
        const result = await runLoad(server.url, prepareCase("put-random", shape), {
          ...base,
          client,
          totalRequests: 300,
        });
        strictEqual(result.requests, 300);
        strictEqual(result.latency.count, 300);
        strictEqual(result.errors, 0);
        strictEqual(result.firstError, undefined);
        ok(server.answered() >= 300);
        ok(result.elapsedMs > 0);
        ok(Math.abs(result.throughput - 300 / (result.elapsedMs / 1000)) < 1e-6);
        ok(result.latency.p50Ms <= result.latency.p99Ms);
        ok(result.latency.p99Ms <= result.latency.maxMs);
        strictEqual(result.buckets.reduce((n, [, c]) => n + c, 0), 300);
      } finally {
        await server.close();
      }
    });
  }
});

Deno.test("duration mode measures over the window it was given", async (t) => {
  for (const client of clientKinds) {
    await t.step(client, async () => {
      const server = await startTrivialServer();
      try {
        const result = await runLoad(server.url, prepareCase("range-serializable", shape), {
          ...base,
          client,
          clients: 4,
          conns: 2,
        });
        ok(result.requests > 0, "no request completed");
        strictEqual(result.errors, 0);
        // The window closes on a timer, so it can only run late, never early.
        ok(result.elapsedMs >= 299 && result.elapsedMs < 2_000, `window ${result.elapsedMs} ms`);
        ok(result.clientCpuPct > 0);
        ok(result.clientCpuMicrosPerRequest > 0);
        strictEqual(result.serverCpuPct, undefined);
        // The range case wrote its key first, then only read.
        ok(server.answered() > result.requests);
      } finally {
        await server.close();
      }
    });
  }
});

Deno.test("answers with a non-zero grpc-status are errors, never completions", async (t) => {
  for (const client of clientKinds) {
    await t.step(client, async () => {
      const server = await startTrivialServer({
        fail: { code: 9, message: "not now", every: 3 },
      });
      try {
        const result = await runLoad(server.url, prepareCase("put-single", shape), {
          ...base,
          client,
          clients: 1,
          conns: 1,
          totalRequests: 300,
        });
        // One closed loop: every request of the window is either a completion or an error, and
        // at most one warm-up request more ends inside the window.
        const ended = result.requests + result.errors;
        ok(ended >= 300 && ended <= 301, `${ended} requests ended`);
        ok(Math.abs(result.errors - ended / 3) <= 1, `${result.errors} errors of ${ended}`);
        strictEqual(result.latency.count, result.requests);
        ok(result.firstError?.includes("not now"), result.firstError);
      } finally {
        await server.close();
      }
    });
  }
});

Deno.test("a server failing every call ends the case after the error bound", async () => {
  const server = await startTrivialServer({ fail: { code: 14, message: "down" } });
  try {
    const result = await runLoad(server.url, prepareCase("put-single", shape), {
      ...base,
      client: "raw",
      durationMs: 30_000,
    });
    strictEqual(result.requests, 0);
    ok(result.errors >= 1_000 && result.errors < 1_000 + base.clients, `${result.errors}`);
    ok(result.elapsedMs < 25_000, "the case was not cut short");
    ok(result.firstError?.includes("grpc-status 14: down"), result.firstError);
  } finally {
    await server.close();
  }
});

Deno.test("a refused connection ends the case early with errors", async (t) => {
  for (const client of clientKinds) {
    await t.step(client, async () => {
      const port = freePort(); // Nothing listens there.
      const started = performance.now();
      const result = await runLoad(`http://127.0.0.1:${port}`, prepareCase("put-single", shape), {
        ...base,
        client,
        clients: 4,
        conns: 1,
        warmupMs: 0,
        durationMs: 30_000,
        maxMeasureMs: 30_000,
      });
      ok(performance.now() - started < 25_000, "the case was not cut short");
      strictEqual(result.requests, 0);
      ok(result.errors > 0);
      ok(result.firstError !== undefined);
    });
  }
});

Deno.test("a hung server: the window closes and cutting the connections ends the calls", async () => {
  const server = await startTrivialServer({ hang: true });
  try {
    const started = performance.now();
    const result = await runLoad(server.url, prepareCase("put-single", shape), {
      ...base,
      client: "raw",
      durationMs: 100,
      drainTimeoutMs: 100,
    });
    ok(performance.now() - started < 10_000, "runLoad hung with the server");
    strictEqual(result.requests, 0);
    // The calls cut after the window are not counted: they failed outside it.
    strictEqual(result.errors, 0);
  } finally {
    await server.close();
  }
});

Deno.test("a failing setup request rejects: the case cannot run", async () => {
  const server = await startTrivialServer({ fail: { code: 3, message: "bad put" } });
  try {
    await rejects(
      runLoad(server.url, prepareCase("range-linearizable", shape), { ...base, client: "raw" }),
      /bad put/,
    );
  } finally {
    await server.close();
  }
});
