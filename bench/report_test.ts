import { ok, strictEqual } from "node:assert/strict";
import type { LoadResult } from "./load.ts";
import { type CaseRun, formatMs, formatRatio, renderCaseTables, renderTable } from "./report.ts";

function result(throughput: number, latencyMs: number): LoadResult {
  return {
    requests: 100,
    errors: 0,
    elapsedMs: 1000,
    throughput,
    latency: {
      count: 100,
      avgMs: latencyMs,
      minMs: latencyMs,
      p50Ms: latencyMs,
      p90Ms: latencyMs,
      p99Ms: latencyMs,
      p999Ms: latencyMs,
      maxMs: latencyMs,
    },
    buckets: [],
    clientCpuPct: 50,
    serverCpuPct: 25,
    otherCpuPct: 5,
    clientCpuMicrosPerRequest: 500,
    serverCpuMicrosPerRequest: 250,
  };
}

Deno.test("formatRatio and formatMs", async (t) => {
  await t.step("ratio", () => {
    strictEqual(formatRatio(3, 2), "1.50x");
    strictEqual(formatRatio(1, 0), "-");
    strictEqual(formatRatio(undefined, 2), "-");
    strictEqual(formatRatio(NaN, 2), "-");
  });
  await t.step("ms keeps about three significant digits", () => {
    strictEqual(formatMs(0.12345), "0.123");
    strictEqual(formatMs(1.2345), "1.23");
    strictEqual(formatMs(12.345), "12.3");
    strictEqual(formatMs(123.45), "123");
    strictEqual(formatMs(NaN), "-");
  });
});

Deno.test("renderTable aligns plain tables and writes markdown ones", () => {
  const plain = renderTable(["a", "b", "num"], [["x", "yy", "1"], ["xx", "y", "100"]], false);
  strictEqual(plain, ["a   b   num", "--  --  ---", "x   yy    1", "xx  y   100"].join("\n"));
  const md = renderTable(["a", "b", "num"], [["x", "y", "1"]], true);
  strictEqual(md, ["| a | b | num |", "| --- | --- | ---: |", "| x | y | 1 |"].join("\n"));
});

Deno.test("case tables put ours/etcd for req/s and etcd/ours for latency", () => {
  const runs: CaseRun[] = [
    {
      target: "etcd",
      caseName: "put-single",
      title: "put",
      clients: 1,
      conns: 1,
      result: result(1000, 2),
    },
    {
      target: "ours",
      caseName: "put-single",
      title: "put",
      clients: 1,
      conns: 1,
      result: { ...result(500, 4), serverCpuMicrosPerRequest: 500 },
    },
  ];
  const text = renderCaseTables(runs, false);
  const ratioRow = text.split("\n").find((l) => l.includes("ratio") && !l.startsWith("ratio:"));
  ok(ratioRow, text);
  // Ours is half as fast, twice as slow and needs twice the CPU per request: every ratio is
  // 0.50x (< 1 = etcd is better).
  strictEqual(ratioRow.match(/0\.50x/g)?.length, 5, ratioRow);
  ok(text.includes("> 1 means ours is better"));
  const etcdOnly = renderCaseTables([runs[0]], true);
  ok(!etcdOnly.includes("ratio"), etcdOnly);
  ok(etcdOnly.includes("| 1 | etcd | 1000 | 2.00 |"), etcdOnly);
});

Deno.test("rows measured while other work used the CPUs are marked disturbed", () => {
  const quiet = result(1000, 1);
  const busy = { ...result(1000, 1), otherCpuPct: 80 };
  const run = (r: LoadResult, clients: number): CaseRun => ({
    target: "etcd",
    caseName: "range-serializable",
    title: "range",
    clients,
    conns: 1,
    result: r,
  });
  const calm = renderCaseTables([run(quiet, 1)], false);
  ok(!calm.includes("!"), calm);
  const text = renderCaseTables([run(quiet, 1), run(busy, 16)], false);
  const rows = text.split("\n");
  ok(rows.some((l) => l.startsWith("16") && l.endsWith("80% !")), text);
  ok(rows.some((l) => l.startsWith("1 ") && l.endsWith("5%")), text);
  ok(text.includes("disturbed"), text);
});
