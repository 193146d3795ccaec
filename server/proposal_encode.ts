/**
 * Raft entry bytes of a put proposal, written directly. `toBinary` of an InternalRaftRequest
 * walks every one of its forty-odd fields through protobuf-es's reflection: about 12 µs per put
 * (measured in isolation), a large part of what a member spends on one. The bytes here are the
 * ones `toBinary(InternalRaftRequestSchema, request)` writes (put, then header: fields in number
 * order, defaults left out), which tests check; a put this does not cover (unknown
 * fields kept from the client, a negative or huge lease) returns undefined and goes through
 * `toBinary`.
 *
 * @module
 */
import {
  boolFieldBytes,
  bytesFieldBytes,
  maxSafeBig,
  messageFieldBytes,
  numberFieldBytes,
  ProtoWriter,
  u64FieldBytes,
} from "../internal/proto_writer.ts";
import type { PutRequest } from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
/** InternalRaftRequest's fields, and RequestHeader.ID. */
const headerField = 100;
const putField = 4;
const requestIdField = 1;

/**
 * The entry bytes of an InternalRaftRequest holding request `id` and `put`, or undefined when
 * the put needs the generic encoder.
 */
export function encodePutProposal(id: bigint, put: PutRequest): Uint8Array | undefined {
  if (put.$unknown !== undefined && put.$unknown.length > 0) return undefined;
  if (put.lease < 0n || put.lease > maxSafeBig || id < 0n || id >= 1n << 64n) return undefined;
  const lease = Number(put.lease);

  const headerBytes = u64FieldBytes(requestIdField, id);
  const putBytes = bytesFieldBytes(1, put.key.length) + bytesFieldBytes(2, put.value.length) +
    numberFieldBytes(3, lease) + boolFieldBytes(4, put.prevKv) +
    boolFieldBytes(5, put.ignoreValue) + boolFieldBytes(6, put.ignoreLease);
  const size = messageFieldBytes(putField, putBytes) + messageFieldBytes(headerField, headerBytes);

  const out = new ProtoWriter(size);
  out.lengthPrefix(putField, putBytes);
  out.bytesField(1, put.key);
  out.bytesField(2, put.value);
  out.numberField(3, lease);
  out.boolField(4, put.prevKv);
  out.boolField(5, put.ignoreValue);
  out.boolField(6, put.ignoreLease);
  out.lengthPrefix(headerField, headerBytes);
  out.u64Field(requestIdField, id);
  return out.finish("put proposal");
}
