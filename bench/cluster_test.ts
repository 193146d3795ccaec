import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { parseConfig, UsageError } from "./cli.ts";
import { type BenchMember, clusterMemberFlags } from "./cluster.ts";

Deno.test("--cluster: 1 by default; 3 and 5 accepted; other sizes refused", () => {
  strictEqual(parseConfig([], "/repo").cluster, 1);
  strictEqual(parseConfig(["--cluster", "3"], "/repo").cluster, 3);
  strictEqual(parseConfig(["--cluster=5"], "/repo").cluster, 5);
  for (const bad of ["0", "2", "4", "7", "x"]) {
    throws(() => parseConfig(["--cluster", bad], "/repo"), UsageError, bad);
  }
});

Deno.test("clusterMemberFlags: every member names all peers and its own URLs", () => {
  const members: BenchMember[] = [
    { name: "bench1", clientPort: 1001, peerPort: 2001, dataDir: "/d1" },
    { name: "bench2", clientPort: 1002, peerPort: 2002, dataDir: "/d2" },
    { name: "bench3", clientPort: 1003, peerPort: 2003, dataDir: "/d3" },
  ];
  deepStrictEqual(clusterMemberFlags(members, 1, "tok"), [
    "--name",
    "bench2",
    "--data-dir",
    "/d2",
    "--listen-client-urls",
    "http://127.0.0.1:1002",
    "--advertise-client-urls",
    "http://127.0.0.1:1002",
    "--listen-peer-urls",
    "http://127.0.0.1:2002",
    "--initial-advertise-peer-urls",
    "http://127.0.0.1:2002",
    "--initial-cluster",
    "bench1=http://127.0.0.1:2001,bench2=http://127.0.0.1:2002,bench3=http://127.0.0.1:2003",
    "--initial-cluster-state",
    "new",
    "--initial-cluster-token",
    "tok",
  ]);
});
