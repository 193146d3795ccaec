import { strictEqual } from "node:assert/strict";
import { lineDiff, Normalizer, stripAnsi } from "./normalize.ts";

Deno.test("normaliser masks run-specific values and keeps the rest", async (t) => {
  await t.step("etcdctl -w json header, learning the IDs for later text", () => {
    const n = new Normalizer();
    strictEqual(
      n.text(
        '{"header":{"cluster_id":10101560796677756362,"member_id":10221683743416816908,' +
          '"revision":4,"raft_term":2}}',
      ),
      '{"header":{"cluster_id":"<cluster_id>","member_id":"<member_id>","revision":4,' +
        '"raft_term":"<raft_term>"}}',
    );
    // Hex forms of learnt IDs are masked too (member list, error texts).
    strictEqual(n.text("8ddab73534be950c, started"), "<member_id>, started");
  });
  await t.step("gateway header with string fields", () => {
    const n = new Normalizer();
    strictEqual(
      JSON.stringify(
        n.json({ header: { cluster_id: "1", member_id: "2", revision: "7", raft_term: "3" } }),
      ),
      '{"header":{"cluster_id":"<cluster_id>","member_id":"<member_id>","revision":"7",' +
        '"raft_term":"<raft_term>"}}',
    );
  });
  await t.step("fields output", () => {
    strictEqual(
      new Normalizer().text('"ClusterID" : 123\n"Revision" : 5\n"RaftTerm" : 2\n'),
      '"ClusterID" : <ClusterID>\n"Revision" : 5\n"RaftTerm" : <RaftTerm>\n',
    );
  });
  await t.step("retry warnings: timestamp, client UUID, endpoint", () => {
    const n = new Normalizer(["http://127.0.0.1:40123"]);
    strictEqual(
      n.text(
        '{"level":"warn","ts":"2026-11-24T02:08:07.860Z","target":"endpoint://client-' +
          'bd0769d0-eb9e-46e9-8aee-c7ebfadd95d3/127.0.0.1:40123","attempt":0}',
      ),
      '{"level":"warn","ts":"<ts>","target":"endpoint://client-<uuid>/<endpoint>","attempt":0}',
    );
  });
  await t.step("aliased lease IDs in every form etcdctl prints", () => {
    const n = new Normalizer();
    n.alias(0x0368a20b5443da3dn, "lease1");
    strictEqual(n.text("lease 0368a20b5443da3d granted"), "lease <lease1> granted");
    strictEqual(n.text("lease 368a20b5443da3d revoked"), "lease <lease1> revoked");
    strictEqual(n.text('"lease":245624349233764925}'), '"lease":<lease1>}');
  });
  await t.step("revisions, values and keys are untouched", () => {
    const text = '{"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":3,"value":"MTIz"}]}';
    strictEqual(new Normalizer().text(text), text);
  });
});

Deno.test("stripAnsi and lineDiff", () => {
  strictEqual(stripAnsi("\x1b[0m\x1b[32mok\x1b[0m | 1 passed"), "ok | 1 passed");
  strictEqual(lineDiff("a\nb\nc", "a\nx\nc"), "  a\n- b\n+ x\n  c");
  strictEqual(lineDiff("a", "a\nb"), "  a\n+ b");
});
