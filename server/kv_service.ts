/**
 * The KV service: validation as etcd's v3rpc layer does it, serializable reads straight from
 * the store, linearizable reads after ReadIndex, and writes through raft.
 *
 * @module
 */
import type { ServiceImpl } from "@connectrpc/connect";
import {
  type CompactionResponse,
  type DeleteRangeResponse,
  KV,
  type PutResponse,
  type TxnResponse,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { applyRange, applyTxnReadOnly, isTxnReadOnly } from "./apply_kv.ts";
import type { EtcdServer } from "./etcd_server.ts";
import {
  checkDeleteRangeRequest,
  checkPutRequest,
  checkRangeRequest,
  checkTxnRequest,
} from "./kv_validate.ts";

/** The KV service implementation over one member. */
export function kvService(server: EtcdServer): ServiceImpl<typeof KV> {
  return {
    async range(req) {
      checkRangeRequest(req);
      server.noteLocalAnswer();
      if (!req.serializable) await server.linearizableRead();
      const response = applyRange(server.store.read(), req);
      server.fillHeader(response.header);
      return response;
    },
    async put(req) {
      checkPutRequest(req);
      const response = await server.propose<PutResponse>({ put: req });
      server.fillHeader(response.header);
      return response;
    },
    async deleteRange(req) {
      checkDeleteRangeRequest(req);
      const response = await server.propose<DeleteRangeResponse>({ deleteRange: req });
      server.fillHeader(response.header);
      return response;
    },
    async txn(req) {
      checkTxnRequest(req, server.config.maxTxnOps);
      if (isTxnReadOnly(req)) {
        server.noteLocalAnswer();
        await server.linearizableRead();
        const response = applyTxnReadOnly(server.store.read(), req);
        server.fillHeader(response.header);
        return response;
      }
      const response = await server.propose<TxnResponse>({ txn: req });
      server.fillHeader(response.header);
      return response;
    },
    async compact(req) {
      const response = await server.propose<CompactionResponse>({ compaction: req });
      if (req.physical) await server.finishCompaction();
      server.fillHeader(response.header);
      return response;
    },
  };
}
