import { deepStrictEqual } from "node:assert/strict";
import { serverRunArgs } from "../internal/server_command.ts";
import { memberCommandLine, memberFlags, procfileMembers } from "./cluster.ts";

Deno.test("procfileMembers: etcd's Procfile layout, data dirs under the given root", () => {
  deepStrictEqual(procfileMembers("/data"), [
    { name: "infra1", clientPort: 2379, peerPort: 12380, dataDir: "/data/infra1.etcd" },
    { name: "infra2", clientPort: 22379, peerPort: 22380, dataDir: "/data/infra2.etcd" },
    { name: "infra3", clientPort: 32379, peerPort: 32380, dataDir: "/data/infra3.etcd" },
  ]);
});

Deno.test("memberFlags: each member lists every peer and serves on its own ports", () => {
  const members = procfileMembers(".");
  deepStrictEqual(memberFlags(members[1], members), [
    "--name",
    "infra2",
    "--data-dir",
    "./infra2.etcd",
    "--listen-client-urls",
    "http://127.0.0.1:22379",
    "--advertise-client-urls",
    "http://127.0.0.1:22379",
    "--listen-peer-urls",
    "http://127.0.0.1:22380",
    "--initial-advertise-peer-urls",
    "http://127.0.0.1:22380",
    "--initial-cluster-token",
    "etcd-cluster-1",
    "--initial-cluster",
    "infra1=http://127.0.0.1:12380,infra2=http://127.0.0.1:22380,infra3=http://127.0.0.1:32380",
    "--initial-cluster-state",
    "new",
  ]);
});

Deno.test("memberCommandLine: the same flags for etcd and for our mod.ts", () => {
  const members = procfileMembers(".");
  const paths = { etcdBinary: "/usr/bin/etcd", oursEntry: "/repo/mod.ts" };
  const etcd = memberCommandLine("etcd", members[0], members, paths);
  const ours = memberCommandLine("ours", members[0], members, paths);
  deepStrictEqual(etcd, { cmd: "/usr/bin/etcd", args: memberFlags(members[0], members) });
  deepStrictEqual(ours, {
    cmd: Deno.execPath(),
    args: serverRunArgs("/repo/mod.ts", memberFlags(members[0], members)),
  });
});
