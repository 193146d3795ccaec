/**
 * A follower records a received snapshot in its WAL before it replaces its backend; if it
 * crashes in between, start-up must install the saved backend, or the member would restart
 * with a WAL that skips entries its backend never applied.
 */
import { strictEqual } from "node:assert/strict";
import { copyFile } from "node:fs/promises";
import { join } from "node:path";
import { Logger } from "../internal/logger.ts";
import { Wal } from "../wal/mod.ts";
import { parseConfig } from "./config.ts";
import { dataDirPaths } from "./etcd_server.ts";
import { startServer } from "./server.ts";

const b64 = (s: string) => btoa(s);

function configFor(dataDir: string) {
  const peer = "http://127.0.0.1:0";
  return parseConfig([
    "--name=r",
    `--data-dir=${dataDir}`,
    "--listen-client-urls=http://127.0.0.1:0",
    "--advertise-client-urls=http://127.0.0.1:0",
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=r=${peer}`,
  ], {});
}

async function put(url: string, key: string): Promise<void> {
  const res = await fetch(`${url}/v3/kv/put`, {
    method: "POST",
    body: JSON.stringify({ key: b64(key), value: b64("v") }),
  });
  strictEqual(res.status, 200);
  await res.body?.cancel();
}

Deno.test("a snapshot recorded in the WAL but not installed is installed at start-up", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "etcd-snap-recovery-" });
  const paths = dataDirPaths(dataDir);
  const older = join(dataDir, "older.db");
  try {
    let server = await startServer(configFor(dataDir), new Logger("error"));
    await put(server.clientUrls[0], "before");
    const applied = server.etcd.raftIndexes.applied;
    server.etcd.store.copyTo(older); // the backend as a lagging follower had it
    await put(server.clientUrls[0], "from-snapshot");
    const snapshotIndex = server.etcd.raftIndexes.applied;
    const term = server.etcd.term;
    await server.stop();

    // The crash window: the leader's backend saved as received.db, the WAL's snapshot mark
    // written, and the old backend still in place.
    await copyFile(paths.dbPath, join(paths.snapDir, "received.db"));
    await Deno.remove(paths.dbPath);
    await Deno.remove(`${paths.dbPath}-wal`).catch(() => {});
    await Deno.remove(`${paths.dbPath}-shm`).catch(() => {});
    await copyFile(older, paths.dbPath);
    const { wal } = await Wal.open(paths.walDir);
    await wal.saveSnapshot({ index: snapshotIndex, term });
    await wal.close();

    server = await startServer(configFor(dataDir), new Logger("error"));
    try {
      strictEqual(server.etcd.store.consistentIndex() >= snapshotIndex, true);
      strictEqual(snapshotIndex > applied, true);
      const res = await fetch(`${server.clientUrls[0]}/v3/kv/range`, {
        method: "POST",
        body: JSON.stringify({ key: b64("from-snapshot") }),
      });
      strictEqual((await res.json()).count, "1", "the snapshot's key is there");
      const left = await Deno.stat(join(paths.snapDir, "received.db")).then(
        () => true,
        () => false,
      );
      strictEqual(left, false, "the installed backend file is removed");
      await put(server.clientUrls[0], "after");
    } finally {
      await server.stop();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
