/**
 * Protobuf decoding settings shared by every place that decodes client requests: the gRPC
 * server and apply (which decodes the same requests again from raft entries). They must agree:
 * a request the server accepted must decode in apply, or apply would fail on a valid entry.
 *
 * @module
 */
import type { BinaryReadOptions, JsonReadOptions } from "@bufbuild/protobuf";

/**
 * Message nesting accepted when decoding. etcd decodes deeply nested txns and refuses them
 * with `too many operations` (each txn level is two message levels); protobuf-es's default
 * of 100 would refuse them at 50 levels with a decode error instead. Deeper than this is
 * refused as malformed, and a stack overflow on the way is caught like any decode error.
 */
export const decodeOptions: Partial<BinaryReadOptions & JsonReadOptions> = {
  recursionLimit: 10_000,
};
