import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { parseConfig, parseDuration, UsageError } from "./cli.ts";

Deno.test("parseDuration accepts ms, s, m and bare seconds", async (t) => {
  const table: Array<[string, number]> = [
    ["5s", 5000],
    ["500ms", 500],
    ["1.5s", 1500],
    ["2m", 120_000],
    ["3", 3000],
    [" 250ms ", 250],
  ];
  for (const [text, ms] of table) {
    await t.step(text, () => strictEqual(parseDuration(text), ms));
  }
  await t.step("rejects junk and huge values", () => {
    for (const bad of ["", "s", "-1s", "5h", "1e3", "abc", "11m"]) {
      throws(() => parseDuration(bad), UsageError, bad);
    }
  });
});

Deno.test("parseConfig defaults: both servers, all cases, 1/16/64 clients, 5 s", () => {
  const c = parseConfig([], "/repo");
  deepStrictEqual(c.targets, ["etcd", "ours"]);
  strictEqual(c.onlyGiven, false);
  deepStrictEqual(c.cases, [
    "put-single",
    "put-random",
    "range-linearizable",
    "range-serializable",
  ]);
  strictEqual(c.client, "raw");
  deepStrictEqual(c.clients, [1, 16, 64]);
  strictEqual(c.conns, undefined);
  strictEqual(c.durationMs, 5000);
  strictEqual(c.warmupMs, 1000);
  strictEqual(c.totalRequests, undefined);
  strictEqual(c.repeat, 1);
  deepStrictEqual(c.shape, { keyspace: 100_000, keySize: 8, valueSize: 256, seed: 1 });
  strictEqual(c.oursEntry, "/repo/mod.ts");
  strictEqual(c.outDir, "/repo/bench/out");
  strictEqual(c.etcdBinary, "/usr/bin/etcd");
  strictEqual(c.markdown, false);
});

Deno.test("parseConfig flags", async (t) => {
  await t.step("--only, --cases groups and names keep run order", () => {
    const c = parseConfig(
      ["--only", "etcd", "--cases", "range-serializable,put", "--clients", "64,1"],
      "/r",
    );
    deepStrictEqual(c.targets, ["etcd"]);
    strictEqual(c.onlyGiven, true);
    deepStrictEqual(c.cases, ["put-single", "put-random", "range-serializable"]);
    deepStrictEqual(c.clients, [64, 1]);
  });
  await t.step("--quick shortens windows and keyspace unless given", () => {
    const q = parseConfig(["--quick"], "/r");
    strictEqual(q.durationMs, 1000);
    strictEqual(q.warmupMs, 250);
    strictEqual(q.shape.keyspace, 10_000);
    const q2 = parseConfig(["--quick", "--duration", "2s", "--keyspace", "50"], "/r");
    strictEqual(q2.durationMs, 2000);
    strictEqual(q2.shape.keyspace, 50);
  });
  await t.step("--total, --conns, --markdown, --no-overhead", () => {
    const c = parseConfig(
      ["--total", "1000", "--conns", "2", "--markdown", "--no-overhead", "--repeat", "3"],
      "/r",
    );
    strictEqual(c.repeat, 3);
    strictEqual(c.totalRequests, 1000);
    strictEqual(c.conns, 2);
    strictEqual(c.markdown, true);
    strictEqual(c.skipOverhead, true);
  });
  await t.step("--client picks the gRPC client", () => {
    strictEqual(parseConfig(["--client", "connect"], "/r").client, "connect");
    strictEqual(parseConfig(["--client", "raw"], "/r").client, "raw");
  });
  await t.step("bad input is a UsageError", () => {
    const bad = [
      ["--only", "both"],
      ["--client", "grpc-js"],
      ["--cases", "watch"],
      ["--cases", ","],
      ["--clients", "0"],
      ["--clients", "x"],
      ["--clients", "5000"],
      ["--repeat", "0"],
      ["--repeat", "11"],
      ["--duration", "fast"],
      ["--keyspace", "1000000000"],
      ["--key-size", "2", "--keyspace", "1000"],
      ["--unknown"],
      ["positional"],
    ];
    for (const args of bad) throws(() => parseConfig(args, "/r"), UsageError, args.join(" "));
  });
});
