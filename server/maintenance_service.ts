/**
 * Cluster.MemberList and the Maintenance RPCs that a single member can answer fully: Status,
 * Defragment, Snapshot, MoveLeader, and Alarm listing. These make `etcdctl member list`,
 * `endpoint status`, `endpoint health`, `defrag` and `snapshot save` work.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  AlarmRequest_AlarmAction,
  Cluster,
  Maintenance,
  MemberSchema,
  type ResponseHeader,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import type { EtcdServer } from "./etcd_server.ts";
import { Errors } from "./errors.ts";
import { serverVersion } from "./version.ts";

/** Bytes per Snapshot message, as etcd sends them. */
const snapshotChunkBytes = 32 * 1024;

/** The member list of `server`, as the Cluster service reports it. */
function members(server: EtcdServer) {
  return server.members.map((m) =>
    create(MemberSchema, {
      ID: m.id,
      name: m.name,
      peerURLs: m.peerUrls,
      clientURLs: m.clientUrls,
      isLearner: m.isLearner,
    })
  );
}

/** etcd's membership answers carry no revision in their header. */
function membershipHeader(server: EtcdServer): ResponseHeader {
  const header = server.header();
  header.revision = 0n;
  return header;
}

/** Cluster service: MemberList (membership changes arrive with multi-member raft). */
export function clusterService(server: EtcdServer): Partial<ServiceImpl<typeof Cluster>> {
  return {
    memberList() {
      return { header: membershipHeader(server), members: members(server) };
    },
  };
}

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
        errors: [],
        isLearner: false,
      };
    },
    alarm(req) {
      // No alarm can be raised yet (the quota arrives with issue 3's Maintenance work), so
      // every action answers the empty list, as etcd does when no alarm is active.
      if (
        req.action !== AlarmRequest_AlarmAction.GET &&
        req.action !== AlarmRequest_AlarmAction.DEACTIVATE &&
        req.action !== AlarmRequest_AlarmAction.ACTIVATE
      ) {
        throw Errors.notCapable;
      }
      return { header: server.header(), alarms: [] };
    },
    defragment() {
      server.store.defragment();
      return { header: server.header() };
    },
    moveLeader(req) {
      if (server.leader !== server.memberId) throw Errors.notLeader;
      if (!server.members.some((m) => m.id === req.targetID && !m.isLearner)) {
        throw Errors.badLeaderTransferee;
      }
      // The only voter is the leader already: nothing to transfer.
      return { header: server.header() };
    },
    async *snapshot() {
      const dir = await Deno.makeTempDir({ prefix: "etcd-snapshot-" });
      try {
        const path = join(dir, "db");
        server.store.copyTo(path);
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
