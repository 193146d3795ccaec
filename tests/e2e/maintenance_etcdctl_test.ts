/**
 * etcdctl's membership and maintenance commands against one member of ours: member list,
 * endpoint status/health, alarm list, defrag, snapshot save, move-leader.
 *
 * @module
 */
import { strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { etcdctl, ETCDCTL_BIN, requireBinary, startMember } from "./harness.ts";

const available = requireBinary(ETCDCTL_BIN);

Deno.test({
  name: "etcdctl maintenance (ours): member list, status, health, defrag, snapshot, move-leader",
  ignore: !available,
  async fn(t) {
    const member = await startMember({ impl: "ours" });
    const dir = await Deno.makeTempDir({ prefix: "e2e-snapshot-" });
    try {
      // With the scheme, as etcd's docs write endpoints: etcdctl's per-endpoint commands
      // (endpoint status, defrag, move-leader) then send `:authority: http://host:port`, which
      // etcd accepts (node:http2 in Deno closed the connection on it).
      const e = member.clientUrl;
      strictEqual((await etcdctl(e, "put", "k", "v")).code, 0);

      let memberId = "";
      await t.step("member list names this member with its URLs", async () => {
        const r = await etcdctl(e, "member", "list", "-w", "json");
        strictEqual(r.code, 0, r.stderr);
        const list = JSON.parse(r.stdout);
        strictEqual(list.members.length, 1);
        strictEqual(list.members[0].name, member.name);
        strictEqual(list.members[0].peerURLs[0], member.peerUrl);
        strictEqual(list.members[0].clientURLs[0], member.clientUrl);
        // JSON numbers lose a uint64's low bits; the plain output prints the ID in hex.
        const plain = await etcdctl(e, "member", "list");
        memberId = plain.stdout.split(",")[0].trim();
        strictEqual(/^[0-9a-f]+$/.test(memberId), true, plain.stdout);
      });

      await t.step("endpoint status reports this member as leader, with real sizes", async () => {
        const r = await etcdctl(e, "endpoint", "status", "-w", "json");
        strictEqual(r.code, 0, r.stderr);
        const [status] = JSON.parse(r.stdout);
        strictEqual(status.Status.version, "3.4.23");
        strictEqual(status.Status.leader, status.Status.header.member_id);
        strictEqual(status.Status.dbSize > 0, true);
        strictEqual(status.Status.raftAppliedIndex >= 2, true);
      });

      await t.step("endpoint status also works with a schemeless endpoint", async () => {
        const r = await etcdctl(e.replace(/^http:\/\//, ""), "endpoint", "status", "-w", "json");
        strictEqual(r.code, 0, r.stderr);
        strictEqual(JSON.parse(r.stdout)[0].Status.version, "3.4.23");
      });

      await t.step("endpoint health and alarm list", async () => {
        const health = await etcdctl(e, "endpoint", "health");
        strictEqual(health.code, 0, health.stderr);
        strictEqual(/is healthy/.test(health.stdout + health.stderr), true);
        const alarms = await etcdctl(e, "alarm", "list");
        strictEqual(alarms.code, 0, alarms.stderr);
        strictEqual(alarms.stdout.trim(), "");
      });

      await t.step("defrag, then the data is still there", async () => {
        const r = await etcdctl(e, "defrag");
        strictEqual(r.code, 0, r.stderr);
        strictEqual((await etcdctl(e, "get", "k", "--print-value-only")).stdout.trim(), "v");
      });

      await t.step("snapshot save writes a file etcdctl accepts", async () => {
        const path = join(dir, "snap.db");
        const r = await etcdctl(e, "snapshot", "save", path);
        strictEqual(r.code, 0, r.stderr);
        const size = (await Deno.stat(path)).size;
        strictEqual(size % 512, 32, "etcdctl's own check: pages plus a 32-byte digest");
      });

      await t.step("move-leader: unknown target refused, self accepted", async () => {
        const bad = await etcdctl(e, "move-leader", "1234");
        strictEqual(bad.code !== 0, true);
        strictEqual(bad.stderr.includes("etcdserver: bad leader transferee"), true, bad.stderr);
        const self = await etcdctl(e, "move-leader", memberId);
        strictEqual(self.code, 0, self.stderr);
      });
    } finally {
      await member.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
