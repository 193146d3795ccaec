/**
 * The Maintenance RPCs: Status, Alarm, Hash, HashKV, Defragment, Snapshot and MoveLeader.
 * These make `etcdctl endpoint status`, `endpoint health`, `endpoint hashkv`, `alarm list`,
 * `alarm disarm`, `defrag` and `snapshot save` work. (The Cluster service is
 * `cluster_service.ts`.)
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { CompactedError, FutureRevError } from "../mvcc/mod.ts";
import {
  AlarmRequest_AlarmAction,
  type AlarmResponse,
  AlarmResponseSchema,
  Maintenance,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { formatAlarm } from "./alarms.ts";
import type { EtcdServer } from "./etcd_server.ts";
import { Errors } from "./errors.ts";
import { serverVersion } from "./version.ts";

/** Bytes per Snapshot message, as etcd sends them. */
const snapshotChunkBytes = 32 * 1024;

/** Maintenance service over one member. */
export function maintenanceService(server: EtcdServer): Partial<ServiceImpl<typeof Maintenance>> {
  return {
    status() {
      const { committed, applied } = server.raftIndexes;
      return {
        header: server.header(),
        version: serverVersion,
        dbSize: BigInt(server.store.dbSizeBytes()),
        dbSizeInUse: BigInt(server.store.dbSizeInUseBytes()),
        leader: server.leader,
        raftIndex: BigInt(committed),
        raftTerm: BigInt(server.term),
        raftAppliedIndex: BigInt(applied),
        // etcd lists "no leader" and then each alarm in its text form.
        errors: [
          ...(server.leader === 0n ? [Errors.noLeader.message] : []),
          ...server.alarms.list().map(formatAlarm),
        ],
        isLearner: server.membership.get(server.memberId)?.isLearner === true,
      };
    },
    async alarm(req) {
      // Every action goes through the log, as in etcd: alarms are cluster state, and a GET
      // then sees every alarm applied before it.
      if (
        req.action !== AlarmRequest_AlarmAction.GET &&
        req.action !== AlarmRequest_AlarmAction.DEACTIVATE &&
        req.action !== AlarmRequest_AlarmAction.ACTIVATE
      ) {
        // etcd's apply answers nothing for an unknown action (and its server then panics).
        return create(AlarmResponseSchema);
      }
      return await server.propose<AlarmResponse>({ alarm: req });
    },
    hash() {
      const hash = server.metrics.time(server.metrics.hashSeconds, () => {
        // etcd commits the backend first and reports the revision the hash covers.
        server.store.commit();
        return server.store.hashBackend();
      });
      return { header: server.header(), hash };
    },
    hashKV(req) {
      let result;
      try {
        result = server.metrics.time(
          server.metrics.hashRevSeconds,
          () => server.store.hashKv(Number(req.revision)),
        );
      } catch (err) {
        if (err instanceof CompactedError) throw Errors.compacted;
        if (err instanceof FutureRevError) throw Errors.futureRev;
        throw err;
      }
      return {
        header: server.header(BigInt(result.currentRev)),
        hash: result.hash,
        compactRevision: BigInt(result.compactRev),
      };
    },
    defragment() {
      const metrics = server.metrics;
      metrics.defragInflight.set(1);
      try {
        metrics.time(metrics.defragSeconds, () => server.store.defragment());
      } finally {
        metrics.defragInflight.set(0);
      }
      // The file shrank: the quota's estimate starts over from the new size.
      server.quota.refresh();
      return { header: server.header() };
    },
    async moveLeader(req) {
      if (server.leader !== server.memberId) throw Errors.notLeader;
      if (!server.members.some((m) => m.id === req.targetID && !m.isLearner)) {
        throw Errors.badLeaderTransferee;
      }
      // Moving to itself (always so on one member) has nothing to transfer.
      if (req.targetID !== server.memberId) await server.moveLeader(req.targetID);
      return { header: server.header() };
    },
    async *snapshot() {
      const dir = await Deno.makeTempDir({ prefix: "etcd-snapshot-" });
      try {
        const path = join(dir, "db");
        server.metrics.time(server.metrics.snapshotSeconds, () => server.store.copyTo(path));
        const file = await Deno.open(path, { read: true });
        try {
          const size = (await file.stat()).size;
          const hash = createHash("sha256");
          let remaining = size;
          const buffer = new Uint8Array(snapshotChunkBytes);
          while (remaining > 0) {
            const n = await file.read(buffer);
            if (n === null) break;
            const blob = buffer.slice(0, n);
            hash.update(blob);
            remaining -= n;
            yield { header: server.header(), remainingBytes: BigInt(remaining), blob };
          }
          // etcdctl checks the file against this trailing digest.
          yield {
            header: server.header(),
            remainingBytes: 0n,
            blob: new Uint8Array(hash.digest()),
          };
        } finally {
          file.close();
        }
      } finally {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    },
  };
}
