import { strictEqual } from "node:assert/strict";
import { clusterIdFor, formatId, memberIdFor } from "./ids.ts";

// Expected values were read from a real etcd 3.4.23 started with these flags
// (`etcdctl member list -w json` and the response header's cluster_id).
Deno.test("member and cluster ids match etcd's for the same flags", () => {
  const member = memberIdFor(["http://localhost:2380"], "etcd-cluster");
  strictEqual(formatId(member), "8e9e05c52164694d");
  strictEqual(formatId(clusterIdFor([member])), "cdf818194e3a8c32");
});

Deno.test("member id does not depend on peer URL order", () => {
  strictEqual(
    memberIdFor(["http://b:2380", "http://a:2380"], "t"),
    memberIdFor(["http://a:2380", "http://b:2380"], "t"),
  );
});
