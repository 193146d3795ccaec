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
      ["--cases", "txn"],
      ["--cases", "watch-range"],
      ["--watchers", "0"],
      ["--watchers", "10001"],
      ["--watchers", ","],
      ["--streams", "0"],
      ["--streams", "257"],
      ["--put-rate", "0"],
      ["--put-rate", "1.5"],
      ["--put-rate", "100001"],
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

Deno.test("parseConfig: watch and lease cases and their flags", async (t) => {
  await t.step("defaults: no stream case; 100 and 1000 watchers, 4 streams, default rate", () => {
    const c = parseConfig([], "/r");
    deepStrictEqual(c.watchCases, []);
    deepStrictEqual(c.leaseCases, []);
    deepStrictEqual(c.watchers, [100, 1000]);
    strictEqual(c.streamsPerConn, 4);
    strictEqual(c.putRate, undefined);
  });
  await t.step("groups and names mix with KV cases, each kind in run order", () => {
    const c = parseConfig(["--cases", "lease,watch-prefix,range-serializable,watch-key"], "/r");
    deepStrictEqual(c.cases, ["range-serializable"]);
    deepStrictEqual(c.watchCases, ["watch-key", "watch-prefix"]);
    deepStrictEqual(c.leaseCases, ["lease-keepalive"]);
    const w = parseConfig(["--cases", "watch"], "/r");
    deepStrictEqual(w.cases, []);
    deepStrictEqual(w.watchCases, ["watch-key", "watch-prefix"]);
    deepStrictEqual(w.leaseCases, []);
  });
  await t.step("--watchers, --streams, --put-rate", () => {
    const c = parseConfig(
      ["--cases", "watch-key", "--watchers", "1000,10", "--streams", "8", "--put-rate", "250"],
      "/r",
    );
    deepStrictEqual(c.watchers, [1000, 10]);
    strictEqual(c.streamsPerConn, 8);
    strictEqual(c.putRate, 250);
  });
  await t.step("an unknown case names the stream cases too", () => {
    throws(
      () => parseConfig(["--cases", "watch-range"], "/r"),
      (e: unknown) => e instanceof UsageError && /watch-key/.test(e.message),
    );
  });
});
