import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { LoadResult } from "./load.ts";
import {
  type CaseRun,
  formatMs,
  formatRatio,
  renderCaseTables,
  renderTable,
  renderWatchTables,
  watchRoundLegend,
  watchRoundRows,
  type WatchRun,
} from "./report.ts";
import type { WatchResult } from "./watch.ts";

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

/** A watch attempt with the figures the round table reads; the rest is not looked at. */
function watchAttempt(p99Ms: number, firstEventP99Ms: number, spreadP99Ms: number): WatchResult {
  const summary = (p: number) => ({ p50Ms: p / 4, p99Ms: p });
  return {
    watchers: 1000,
    putsPerSecond: 100,
    eventsPerSecond: 100_000,
    latency: { ...summary(p99Ms), count: 1000 },
    perPut: { firstEvent: summary(firstEventP99Ms), spread: summary(spreadP99Ms) },
    missingEvents: 0,
    errors: 0,
    putErrors: 0,
    serverCpuPct: 20,
    serverCpuMicrosPerEvent: 2,
    clientCpuPct: 20,
    otherCpuPct: 5,
    streams: 16,
    conns: 4,
  } as unknown as WatchResult;
}

function watchRun(target: "etcd" | "ours", attempts: WatchResult[]): WatchRun {
  return {
    target,
    caseName: "watch-key",
    title: "one key",
    watchers: 1000,
    result: attempts[0],
    ...(attempts.length > 1 ? { attempts } : {}),
  };
}

Deno.test("the round table lists every attempt's p99 and divides the medians", () => {
  const runs = [
    watchRun("etcd", [watchAttempt(10, 8, 6), watchAttempt(40, 30, 20), watchAttempt(30, 20, 10)]),
    watchRun("ours", [watchAttempt(20, 16, 2), watchAttempt(12, 10, 3), watchAttempt(15, 12, 4)]),
  ];
  deepStrictEqual(watchRoundRows(runs), [
    ["1000", "etcd", "10.0, 40.0, 30.0", "30.0", "20.0", "10.0", "7.50"],
    ["1000", "ours", "20.0, 12.0, 15.0", "15.0", "12.0", "3.00", "3.75"],
    ["1000", "ratio", "", "2.00x", "1.67x", "3.33x", "2.00x"],
  ]);
  // A single measurement has no rounds to summarise.
  deepStrictEqual(watchRoundRows([watchRun("ours", [watchAttempt(20, 16, 2)])]), []);
  ok(renderWatchTables(runs, false).includes(watchRoundLegend));
  const single = runs.map(({ attempts: _, ...run }) => run);
  strictEqual(renderWatchTables(single, false).includes(watchRoundLegend), false);
});
