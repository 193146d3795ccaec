import { deepStrictEqual, notStrictEqual, strictEqual } from "node:assert/strict";
import type { ResponseHeader } from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { sharedHeaders } from "./routes.ts";

Deno.test("watch headers: one object per revision and term, a fresh one for the current revision", () => {
  const member = {
    term: 2,
    currentRev: 7n,
    made: 0,
    header(revision?: bigint): ResponseHeader {
      this.made++;
      return {
        $typeName: "etcdserverpb.ResponseHeader",
        clusterId: 1n,
        memberId: 2n,
        revision: revision ?? this.currentRev,
        raftTerm: BigInt(this.term),
      };
    },
  };
  const header = sharedHeaders(member);
  const first = header(5n);
  strictEqual(header(5n), first, "the same revision shares the header");
  strictEqual(member.made, 1);
  const next = header(6n);
  deepStrictEqual([next.revision, next.raftTerm], [6n, 2n]);
  member.term = 3;
  const afterElection = header(6n);
  notStrictEqual(afterElection, next, "a new term makes a new header");
  strictEqual(afterElection.raftTerm, 3n);
  // Without a revision (create, cancel, progress answers) the header is the member's current one.
  notStrictEqual(header(), header());
  strictEqual(header().revision, 7n);
});
