/**
 * etcdctl against our server: the KV behaviours users rely on, as explicit expectations, and
 * durability of acknowledged writes across kill -9.
 *
 * `E2E_IMPL=etcd` runs the same expectations against etcd 3.4 itself, which is how they
 * were checked.
 *
 * @module
 */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  type CommandResult,
  ETCD_BIN,
  etcdctl,
  ETCDCTL_BIN,
  type Impl,
  type Member,
  requireBinary,
  runEtcdctl,
  startMember,
} from "./harness.ts";

const impl: Impl = Deno.env.get("E2E_IMPL") === "etcd" ? "etcd" : "ours";
const available = requireBinary(ETCDCTL_BIN, ...(impl === "etcd" ? [ETCD_BIN] : []));

/** A key-value as etcdctl -w json prints it (bytes base64, int64 as numbers). */
interface JsonKv {
  key: string;
  value?: string;
  create_revision: number;
  mod_revision: number;
  version: number;
  lease?: number;
}

interface JsonRange {
  header: { revision: number };
  kvs?: JsonKv[];
  more?: boolean;
  count?: number;
}

const b64 = (s: string) => btoa(s);

/** Runs etcdctl and requires exit code 0. */
async function ok(endpoint: string, ...args: string[]): Promise<string> {
  const r = await etcdctl(endpoint, ...args);
  strictEqual(r.code, 0, `etcdctl ${args.join(" ")} failed:\n${r.stderr}`);
  return r.stdout;
}

async function json<T>(endpoint: string, ...args: string[]): Promise<T> {
  return JSON.parse(await ok(endpoint, ...args, "-w", "json")) as T;
}

/** The last line etcdctl prints for a failed command: `Error: <server message>`. */
function errorLine(r: CommandResult): string {
  const lines = r.stderr.trim().split("\n");
  return lines[lines.length - 1];
}

async function fails(endpoint: string, args: string[], message: string, stdin?: string) {
  const r = await runEtcdctl({ endpoint, args, stdin });
  strictEqual(r.code, 1, `etcdctl ${args.join(" ")} should fail; stdout:\n${r.stdout}`);
  strictEqual(errorLine(r), `Error: ${message}`);
}

/** Starts a member for one test and always stops it. */
async function withMember(fn: (m: Member) => Promise<void>): Promise<void> {
  const member = await startMember({ impl });
  try {
    await fn(member);
  } finally {
    await member.stop();
  }
}

Deno.test({
  name: `etcdctl KV (${impl}): revisions, versions and history`,
  ignore: !available,
  fn: () =>
    withMember(async (m) => {
      const e = m.clientUrl;
      // A fresh store is at revision 1, so the first write is revision 2.
      const first = await json<JsonRange>(e, "put", "foo", "bar");
      strictEqual(first.header.revision, 2);
      strictEqual(await ok(e, "put", "foo", "baz", "--prev-kv"), "OK\nfoo\nbar\n");
      const got = await json<JsonRange>(e, "get", "foo");
      strictEqual(got.header.revision, 3);
      deepStrictEqual(got.kvs, [{
        key: b64("foo"),
        value: b64("baz"),
        create_revision: 2,
        mod_revision: 3,
        version: 2,
      }]);
      strictEqual(got.count, 1);
      strictEqual(await ok(e, "get", "foo", "--rev", "2", "--print-value-only"), "bar\n");
      strictEqual(await ok(e, "get", "foo", "--rev", "3", "--print-value-only"), "baz\n");
      strictEqual(await ok(e, "get", "foo", "--rev", "1"), "");
      strictEqual(await ok(e, "del", "foo"), "1\n");
      strictEqual(await ok(e, "get", "foo"), "");
      strictEqual(await ok(e, "get", "foo", "--rev", "3"), "foo\nbaz\n");
      // Recreated after a delete: a new create revision and version 1.
      await ok(e, "put", "foo", "again");
      const again = await json<JsonRange>(e, "get", "foo");
      strictEqual(again.kvs?.[0].create_revision, 5);
      strictEqual(again.kvs?.[0].version, 1);
      strictEqual(again.header.revision, 5);
      // Reads do not advance the revision.
      strictEqual((await json<JsonRange>(e, "get", "nothing")).header.revision, 5);
      strictEqual((await json<JsonRange>(e, "get", "nothing")).kvs, undefined);
    }),
});

Deno.test({
  name: `etcdctl KV (${impl}): ranges, limits and sorting`,
  ignore: !available,
  fn: () =>
    withMember(async (m) => {
      const e = m.clientUrl;
      for (const [k, v] of [["b", "3"], ["a", "1"], ["c", "2"], ["a/x", "4"], ["a/y", "5"]]) {
        await ok(e, "put", k, v);
      }
      await ok(e, "put", "c", "2b"); // c: version 2, newest mod revision
      strictEqual(await ok(e, "get", "a", "--prefix", "--keys-only"), "a\n\na/x\n\na/y\n\n");
      strictEqual(await ok(e, "get", "a/", "--prefix", "--print-value-only"), "4\n5\n");
      strictEqual(await ok(e, "get", "a/x", "c", "--keys-only"), "a/x\n\na/y\n\nb\n\n");
      strictEqual(await ok(e, "get", "b", "--from-key", "--keys-only"), "b\n\nc\n\n");
      strictEqual(
        await ok(e, "get", "", "--from-key", "--keys-only"),
        "a\n\na/x\n\na/y\n\nb\n\nc\n\n",
      );
      const limited = await json<JsonRange>(e, "get", "", "--from-key", "--limit", "2");
      deepStrictEqual(limited.kvs?.map((kv) => atob(kv.key)), ["a", "a/x"]);
      strictEqual(limited.more, true);
      strictEqual(limited.count, 5);
      const sorted = async (by: string, order: string) =>
        (await ok(e, "get", "", "--from-key", "--keys-only", `--sort-by=${by}`, `--order=${order}`))
          .split("\n").filter((line) => line !== "");
      deepStrictEqual(await sorted("KEY", "DESCEND"), ["c", "b", "a/y", "a/x", "a"]);
      deepStrictEqual(await sorted("VALUE", "ASCEND"), ["a", "c", "b", "a/x", "a/y"]);
      deepStrictEqual(await sorted("CREATE", "ASCEND"), ["b", "a", "c", "a/x", "a/y"]);
      deepStrictEqual(await sorted("MODIFY", "DESCEND"), ["c", "a/y", "a/x", "a", "b"]);
      deepStrictEqual((await sorted("VERSION", "DESCEND"))[0], "c");
      strictEqual(await ok(e, "get", "a", "--consistency=s", "--print-value-only"), "1\n");
      strictEqual(await ok(e, "del", "a", "--prefix"), "3\n");
      strictEqual(await ok(e, "del", "b", "--prev-kv"), "1\nb\n3\n");
      strictEqual(await ok(e, "del", "zzz"), "0\n");
    }),
});

Deno.test({
  name: `etcdctl KV (${impl}): transactions`,
  ignore: !available,
  fn: () =>
    withMember(async (m) => {
      const e = m.clientUrl;
      await ok(e, "put", "k", "v1"); // rev 2
      const txn = (stdin: string) => runEtcdctl({ endpoint: e, args: ["txn"], stdin });
      let r = await txn('value("k") = "v1"\nversion("k") > "0"\n\nput k v2\nget k\n\nget nope\n\n');
      strictEqual(r.code, 0, r.stderr);
      strictEqual(r.stdout, "SUCCESS\n\nOK\n\nk\nv2\n");
      r = await txn('mod("k") < "3"\n\nput k never\n\nget k\n\n');
      strictEqual(r.stdout, "FAILURE\n\nk\nv2\n");
      r = await txn('create("k") != "2"\n\nput k never\n\ndel k\n\n');
      strictEqual(r.stdout, "FAILURE\n\n1\n");
      // A missing key has version 0; a value compare on it is false.
      r = await txn('version("k") = "0"\n\nput k v3\n\n\n');
      strictEqual(r.stdout, "SUCCESS\n\nOK\n");
      r = await txn('value("missing") != "x"\n\n\n\n');
      strictEqual(r.stdout, "FAILURE\n");
      await fails(
        e,
        ["txn"],
        "etcdserver: duplicate key given in txn request",
        "\nput d 1\nput d 2\n\n\n",
      );
      const puts = Array.from({ length: 129 }, (_, i) => `put t${i} x`).join("\n");
      await fails(e, ["txn"], "etcdserver: too many operations in txn request", `\n${puts}\n\n\n`);
      const under = Array.from({ length: 128 }, (_, i) => `put t${i} x`).join("\n");
      strictEqual((await txn(`\n${under}\n\n\n`)).code, 0);
    }),
});

Deno.test({
  name: `etcdctl KV (${impl}): errors have etcd's exact text`,
  ignore: !available,
  fn: () =>
    withMember(async (m) => {
      const e = m.clientUrl;
      for (let i = 0; i < 5; i++) await ok(e, "put", "k", `v${i}`); // revisions 2..6
      await fails(e, ["put", "", "x"], "etcdserver: key is not provided");
      await fails(e, ["get", ""], "etcdserver: key is not provided");
      await fails(e, ["put", "k", "v", "--lease=1234"], "etcdserver: requested lease not found");
      await fails(e, ["put", "nokey", "--ignore-value"], "etcdserver: key not found");
      await fails(e, ["put", "nokey", "v", "--ignore-lease"], "etcdserver: key not found");
      strictEqual(await ok(e, "compaction", "4"), "compacted revision 4\n");
      await fails(
        e,
        ["get", "k", "--rev", "3"],
        "etcdserver: mvcc: required revision has been compacted",
      );
      strictEqual(await ok(e, "get", "k", "--rev", "4", "--print-value-only"), "v2\n");
      await fails(
        e,
        ["get", "k", "--rev", "7"],
        "etcdserver: mvcc: required revision is a future revision",
      );
      await fails(e, ["compaction", "4"], "etcdserver: mvcc: required revision has been compacted");
      await fails(
        e,
        ["compaction", "100"],
        "etcdserver: mvcc: required revision is a future revision",
      );
      strictEqual(await ok(e, "compaction", "6", "--physical"), "compacted revision 6\n");
      // The gRPC status codes clients map these to.
      const r = await etcdctl(e, "get", "k", "--rev", "1");
      strictEqual(r.stderr.includes("code = OutOfRange"), true, r.stderr);
      const lease = await etcdctl(e, "put", "k", "v", "--lease=1234");
      strictEqual(lease.stderr.includes("code = NotFound"), true, lease.stderr);
    }),
});

Deno.test({
  name: `etcdctl KV (${impl}): acknowledged writes survive kill -9`,
  ignore: !available,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "e2e-durability-" });
    let member: Member | undefined;
    try {
      member = await startMember({ impl, dataDir });
      const { clientPort, peerPort, name } = member;
      const writes = 30;
      const revisions = new Map<string, number>();
      for (let i = 0; i < writes; i++) {
        const put = await json<JsonRange>(member.clientUrl, "put", `durable/${i}`, `value-${i}`);
        revisions.set(`durable/${i}`, put.header.revision);
      }
      await member.kill9();
      member = await startMember({ impl, dataDir, clientPort, peerPort, name });
      const all = await json<JsonRange>(member.clientUrl, "get", "durable/", "--prefix");
      strictEqual(all.count, writes);
      for (const kv of all.kvs ?? []) {
        const key = atob(kv.key);
        strictEqual(kv.mod_revision, revisions.get(key), key);
        strictEqual(atob(kv.value ?? ""), `value-${key.slice("durable/".length)}`);
      }
      strictEqual(all.header.revision, writes + 1);
      // The member keeps serving writes after recovery, at the next revision.
      strictEqual(
        (await json<JsonRange>(member.clientUrl, "put", "after", "x")).header.revision,
        writes + 2,
      );
    } finally {
      await member?.stop();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
