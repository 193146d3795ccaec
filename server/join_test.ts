import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { membersJson, membersResponse, parseMembersJson } from "./join.ts";
import type { MemberInfo } from "./membership.ts";

const members: MemberInfo[] = [
  {
    id: 0xfedcba9876543210n, // beyond 2^53: must survive JSON exactly
    name: "m1",
    peerUrls: ["http://127.0.0.1:2380"],
    clientUrls: ["http://127.0.0.1:2379"],
    isLearner: false,
  },
  { id: 5n, name: "", peerUrls: ["http://127.0.0.1:12380"], clientUrls: [], isLearner: true },
];

Deno.test("the peer /members answer round-trips 64-bit IDs in etcd's JSON shape", async () => {
  const text = membersJson(members);
  strictEqual(text.startsWith(`[{"id":${0xfedcba9876543210n},"peerURLs"`), true, text);
  strictEqual(text.includes('"name":""'), false, "an unstarted member has no name field");
  deepStrictEqual(parseMembersJson(text), members);
  const res = membersResponse(0xabcn, members);
  strictEqual(res.headers.get("X-Etcd-Cluster-ID"), "abc");
  deepStrictEqual(parseMembersJson(await res.text()), members);
});

Deno.test("a malformed /members answer is refused", () => {
  throws(() => parseMembersJson('{"id":1}'), /not a list/);
  throws(() => parseMembersJson('[{"id":"x"}]'), /bad id/);
  throws(() => parseMembersJson("[{"), SyntaxError);
});
