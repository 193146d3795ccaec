/**
 * The benchmark cases (after etcd's `benchmark put` / `benchmark range`) and their prebuilt
 * requests, so the hot loop only picks a request and sends it: as messages for the connect client,
 * as encoded gRPC frames for the raw client.
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import {
  KV,
  type PutRequest,
  PutRequestSchema,
  type RangeRequest,
  RangeRequestSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { assert } from "../internal/assert.ts";
import { mulberry32 } from "../internal/seeded_random.ts";
import { grpcFrame, grpcPath, grpcPrefixBytes } from "./grpc_raw.ts";

/** A generated etcd KV client. */
export type KVClient = Client<typeof KV>;

/** Names of the benchmark cases. */
export type CaseName =
  | "put-single"
  | "put-random"
  | "range-linearizable"
  | "range-serializable";

/** Every case, in run order. */
export const allCases: readonly CaseName[] = [
  "put-single",
  "put-random",
  "range-linearizable",
  "range-serializable",
];

/** `--cases` group names and the cases they stand for. */
export const caseGroups: Readonly<Record<string, readonly CaseName[]>> = {
  put: ["put-single", "put-random"],
  range: ["range-linearizable", "range-serializable"],
  all: allCases,
};

/** Sizes of the data the cases write and read. */
export interface WorkloadShape {
  /** Number of distinct keys for put-random. */
  keyspace: number;
  /** Key length in bytes. */
  keySize: number;
  /** Value length in bytes. */
  valueSize: number;
  /** Seed of the PRNG that draws values and random keys. */
  seed: number;
}

/** Upper bound on put-random's keyspace (the connect client prebuilds one message per key). */
export const maxKeyspace = 1_000_000;

/** The KV methods the cases call. */
export type KvMethod = "put" | "range";

/** gRPC path of each KV method the cases call. */
export const kvPaths: Readonly<Record<KvMethod, string>> = {
  put: grpcPath(KV.typeName, KV.method.put.name),
  range: grpcPath(KV.typeName, KV.method.range.name),
};

/** One KV request as a message. */
export type KvRequest =
  | { method: "put"; message: PutRequest }
  | { method: "range"; message: RangeRequest };

/** `request` as the gRPC frame (prefix + protobuf bytes) the raw client sends. */
export function encodeRequest(request: KvRequest): Uint8Array {
  return grpcFrame(
    request.method === "put"
      ? toBinary(PutRequestSchema, request.message)
      : toBinary(RangeRequestSchema, request.message),
  );
}

/** A case ready to run: its requests are built; the `next*` functions only pick one. */
export interface PreparedCase {
  /** The case name. */
  name: CaseName;
  /** Human-readable description for the tables. */
  title: string;
  /** Requests that make the server ready for the case (e.g. write the key a range reads). */
  setup: readonly KvRequest[];
  /** The method every load request calls. */
  method: KvMethod;
  /** The next load request as a message (connect client). */
  nextMessage(): KvRequest;
  /** The next load request as a gRPC frame for `kvPaths[method]` (raw client). */
  nextFrame(): Uint8Array;
}

/** mulberry32: tiny, fast, seeded; good enough to spread keys uniformly. */
export const prng: (seed: number) => () => number = mulberry32;

/** Key number `index` as exactly `keySize` ASCII digits (zero padded). */
export function makeKey(index: number, keySize: number): Uint8Array {
  const digits = String(index).padStart(keySize, "0");
  assert(digits.length === keySize, `key ${index} does not fit in ${keySize} bytes`);
  return new TextEncoder().encode(digits);
}

/** Checks that a shape is usable; returns a description of the problem or undefined. */
export function validateShape(shape: WorkloadShape): string | undefined {
  if (!Number.isSafeInteger(shape.keySize) || shape.keySize < 1) return "key size must be >= 1";
  if (!Number.isSafeInteger(shape.valueSize) || shape.valueSize < 0) {
    return "value size must be >= 0";
  }
  if (!Number.isSafeInteger(shape.keyspace) || shape.keyspace < 1) return "keyspace must be >= 1";
  if (shape.keyspace > maxKeyspace) return `keyspace must be <= ${maxKeyspace}`;
  if (String(shape.keyspace - 1).length > shape.keySize) {
    return `keyspace ${shape.keyspace} needs keys longer than ${shape.keySize} bytes`;
  }
  return undefined;
}

/** Writes `index` as `length` zero-padded ASCII digits into `bytes` at `offset`. */
function writeDigits(bytes: Uint8Array, offset: number, length: number, index: number): void {
  for (let i = offset + length - 1; i >= offset; i--) {
    bytes[i] = 0x30 + (index % 10);
    index = Math.floor(index / 10);
  }
}

/** Builds the requests of `name` once; the returned case only picks among them. */
export function prepareCase(name: CaseName, shape: WorkloadShape): PreparedCase {
  const problem = validateShape(shape);
  assert(problem === undefined, problem ?? "");
  const rand = prng(shape.seed);
  const value = new Uint8Array(shape.valueSize);
  for (let i = 0; i < value.length; i++) value[i] = 33 + Math.floor(rand() * 94);
  const singleKey = makeKey(0, shape.keySize);
  const putSingle: KvRequest = {
    method: "put",
    message: create(PutRequestSchema, { key: singleKey, value }),
  };
  switch (name) {
    case "put-single": {
      const frame = encodeRequest(putSingle);
      return {
        name,
        title: `put, one key (${shape.keySize} B key, ${shape.valueSize} B value)`,
        setup: [],
        method: "put",
        nextMessage: () => putSingle,
        nextFrame: () => frame,
      };
    }
    case "put-random": {
      const { keyspace, keySize } = shape;
      // xorshift32 inline: drawing a key must cost next to nothing in the hot loop.
      let x = (Math.floor(rand() * 0xffffffff) | 1) >>> 0;
      const nextIndex = () => {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        return (x >>> 0) % keyspace;
      };
      // The connect client sends messages: one per key, built on first use only.
      let messages: KvRequest[] | undefined;
      const buildMessages = () => {
        const out = new Array<KvRequest>(keyspace);
        for (let i = 0; i < keyspace; i++) {
          out[i] = {
            method: "put",
            message: create(PutRequestSchema, { key: makeKey(i, keySize), value }),
          };
        }
        return out;
      };
      // The raw client sends a copy of one encoded frame with the key digits rewritten. The key is
      // field 1, so protobuf puts it first: tag byte, length varint, key bytes.
      const template = encodeRequest(putSingle);
      const keyOffset = grpcPrefixBytes + 1 + (keySize < 0x80 ? 1 : keySize < 0x4000 ? 2 : 3);
      assert(
        template[grpcPrefixBytes] === 0x0a &&
          template.subarray(keyOffset, keyOffset + keySize).every((b, i) => b === singleKey[i]),
        "the put frame does not start with its key",
      );
      return {
        name,
        title: `put, random keys (keyspace ${keyspace}, ${keySize} B key, ` +
          `${shape.valueSize} B value)`,
        setup: [],
        method: "put",
        nextMessage: () => (messages ??= buildMessages())[nextIndex()],
        nextFrame: () => {
          // A fresh copy each time: a frame may still be queued for writing when the next
          // request is built.
          const frame = template.slice();
          writeDigits(frame, keyOffset, keySize, nextIndex());
          return frame;
        },
      };
    }
    case "range-linearizable":
    case "range-serializable": {
      const serializable = name === "range-serializable";
      const request: KvRequest = {
        method: "range",
        message: create(RangeRequestSchema, { key: singleKey, serializable }),
      };
      const frame = encodeRequest(request);
      return {
        name,
        title: `range, one key, ${serializable ? "serializable" : "linearizable"} ` +
          `(${shape.valueSize} B value)`,
        setup: [putSingle],
        method: "range",
        nextMessage: () => request,
        nextFrame: () => frame,
      };
    }
  }
}

/** Expands `--cases` items (group or case names) into cases in run order, or an error text. */
export function resolveCases(items: readonly string[]): CaseName[] | string {
  const wanted = new Set<CaseName>();
  for (const item of items) {
    const group = caseGroups[item];
    if (group) group.forEach((c) => wanted.add(c));
    else if ((allCases as readonly string[]).includes(item)) wanted.add(item as CaseName);
    else {
      return `unknown case "${item}" (known: ${
        [...Object.keys(caseGroups), ...allCases].join(", ")
      })`;
    }
  }
  return allCases.filter((c) => wanted.has(c));
}
