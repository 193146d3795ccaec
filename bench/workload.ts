/**
 * The benchmark cases (after etcd's `benchmark put` / `benchmark range`) and their prebuilt
 * request messages, so the hot loop only picks a message and sends it.
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import {
  type KV,
  PutRequestSchema,
  RangeRequestSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { assert } from "../internal/assert.ts";

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

/** Upper bound on prebuilt put-random messages (one per key of the keyspace). */
export const maxKeyspace = 1_000_000;

/** One call of a case: `seq` counts calls across all clients of the run. */
export type CallFn = (client: KVClient, seq: number) => Promise<unknown>;

/** A case ready to run: its calls are built, and `setup` prepares the server. */
export interface PreparedCase {
  /** The case name. */
  name: CaseName;
  /** Human-readable description for the tables. */
  title: string;
  /** Makes the server ready for the case (e.g. writes the key a range reads). */
  setup(client: KVClient): Promise<void>;
  /** One request. */
  call: CallFn;
}

/** mulberry32: tiny, fast, seeded; good enough to spread keys uniformly. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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

/** Builds the messages of `name` once; the returned call only indexes into them. */
export function prepareCase(name: CaseName, shape: WorkloadShape): PreparedCase {
  const problem = validateShape(shape);
  assert(problem === undefined, problem ?? "");
  const rand = prng(shape.seed);
  const value = new Uint8Array(shape.valueSize);
  for (let i = 0; i < value.length; i++) value[i] = 33 + Math.floor(rand() * 94);
  const singleKey = makeKey(0, shape.keySize);
  const noSetup = () => Promise.resolve();
  const putSingleKey = async (client: KVClient) => {
    await client.put(create(PutRequestSchema, { key: singleKey, value }));
  };
  switch (name) {
    case "put-single": {
      const request = create(PutRequestSchema, { key: singleKey, value });
      return {
        name,
        title: `put, one key (${shape.keySize} B key, ${shape.valueSize} B value)`,
        setup: noSetup,
        call: (client) => client.put(request),
      };
    }
    case "put-random": {
      const requests = new Array(shape.keyspace);
      for (let i = 0; i < shape.keyspace; i++) {
        requests[i] = create(PutRequestSchema, { key: makeKey(i, shape.keySize), value });
      }
      // xorshift32 inline: drawing a key must cost next to nothing in the hot loop.
      let x = (Math.floor(rand() * 0xffffffff) | 1) >>> 0;
      const keyspace = shape.keyspace;
      return {
        name,
        title: `put, random keys (keyspace ${keyspace}, ${shape.keySize} B key, ` +
          `${shape.valueSize} B value)`,
        setup: noSetup,
        call: (client) => {
          x ^= x << 13;
          x ^= x >>> 17;
          x ^= x << 5;
          return client.put(requests[(x >>> 0) % keyspace]);
        },
      };
    }
    case "range-linearizable":
    case "range-serializable": {
      const serializable = name === "range-serializable";
      const request = create(RangeRequestSchema, { key: singleKey, serializable });
      return {
        name,
        title: `range, one key, ${serializable ? "serializable" : "linearizable"} ` +
          `(${shape.valueSize} B value)`,
        setup: putSingleKey,
        call: (client) => client.range(request),
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
