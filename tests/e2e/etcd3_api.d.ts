/**
 * The part of the npm `etcd3` client (1.1.x) that the e2e tests use, typed by hand.
 *
 * Why not the package's own types: they pull in `@types/node` (through grpc-js and
 * protobufjs), whose newer `node:http2` declarations then replace Deno's built-in ones for
 * the whole type-checked program, and this repository's HTTP/2 code stops compiling. Test
 * files load the package with `// @ts-types="./etcd3_api.d.ts"` instead.
 *
 * @module
 */

/** Bytes as the client returns them: a Node Buffer, whose `toString()` decodes UTF-8. */
export interface Bytes extends Uint8Array {
  toString(encoding?: "utf8" | "hex" | "base64"): string;
}

/** A key-value pair as the client returns it (int64 fields as decimal strings). */
export interface IKeyValue {
  key: Bytes;
  value: Bytes;
  create_revision: string;
  mod_revision: string;
  version: string;
  lease: string;
}

/** A response header (int64 as strings). */
export interface IResponseHeader {
  revision: string;
}

/** A range response. */
export interface IRangeResponse {
  header: IResponseHeader;
  kvs: IKeyValue[];
  count: string;
}

/** A txn response; each entry of `responses` holds one of the `response_*` fields. */
export interface ITxnResponse {
  header: IResponseHeader;
  succeeded: boolean;
  responses: { response_range: IRangeResponse }[];
}

/** One operation for a txn branch (a put, get or delete builder). */
export type TxnOperation = PutBuilder | SingleRangeBuilder | DeleteBuilder;

/** `client.put(key)`. */
export interface PutBuilder extends Promise<{ header: IResponseHeader }> {
  value(value: string): this;
  lease(id: string): this;
}

/** `client.get(key)`. */
export interface SingleRangeBuilder {
  string(): Promise<string | null>;
  exec(): Promise<IRangeResponse>;
}

/** `client.getAll()`. */
export interface MultiRangeBuilder {
  prefix(prefix: string): this;
  strings(): Promise<Record<string, string>>;
  keys(): Promise<string[]>;
  count(): Promise<number>;
}

/** `client.delete()`. */
export interface DeleteBuilder extends Promise<{ header: IResponseHeader; deleted: string }> {
  key(key: string): this;
  prefix(prefix: string): this;
  getPrevious(): Promise<IKeyValue[]>;
}

/** `client.if(...)`. */
export interface ComparatorBuilder {
  and(key: string, column: string, cmp: string, value: string | number): this;
  then(...operations: TxnOperation[]): this;
  else(...operations: TxnOperation[]): this;
  commit(): Promise<ITxnResponse>;
}

/** A watch stream's handle. */
export interface Watcher {
  on(event: "put" | "delete", handler: (kv: IKeyValue, previous?: IKeyValue) => void): this;
  cancel(): Promise<void>;
}

/** `client.watch()`. */
export interface WatchBuilder {
  key(key: string): this;
  prefix(prefix: string): this;
  withPreviousKV(): this;
  create(): Promise<Watcher>;
}

/** A keep-alive response. */
export interface ILeaseKeepAliveResponse {
  ID: string;
  TTL: string;
}

/** `client.lease(ttl)`: granted on first use, kept alive unless told not to. */
export interface Lease {
  grant(): Promise<string>;
  put(key: string): PutBuilder;
  revoke(): Promise<void>;
  revoked(): boolean;
  keepaliveOnce(): Promise<ILeaseKeepAliveResponse>;
  on(event: "lost", handler: (err: Error) => void): this;
  on(event: "keepaliveSucceeded", handler: (res: ILeaseKeepAliveResponse) => void): this;
}

/** `client.lock(key)`: acquire fails at once (no waiting) when someone holds it. */
export interface Lock {
  ttl(seconds: number): this;
  acquire(): Promise<this>;
  release(): Promise<void>;
  leaseId(): Promise<string | null>;
}

/** One candidate of an election. */
export interface Campaign {
  on(event: "elected", handler: () => void): this;
  on(event: "error", handler: (err: Error) => void): this;
  wait(): Promise<this>;
  resign(): Promise<void>;
}

/** Follows an election's leader. */
export interface ElectionObserver {
  on(event: "change", handler: (leader: string | undefined) => void): this;
  leader(): string | undefined;
  cancel(): Promise<void>;
}

/** `client.election(name, ttl)`. */
export interface Election {
  campaign(value: string): Campaign;
  leader(): Promise<string | undefined>;
  observe(): Promise<ElectionObserver>;
}

/** The client. */
export declare class Etcd3 {
  constructor(options: { hosts: string | string[] });
  put(key: string): PutBuilder;
  get(key: string): SingleRangeBuilder;
  getAll(): MultiRangeBuilder;
  delete(): DeleteBuilder;
  if(key: string, column: string, cmp: string, value: string | number): ComparatorBuilder;
  watch(): WatchBuilder;
  lease(ttlSeconds: number, options?: { autoKeepAlive?: boolean }): Lease;
  lock(key: string): Lock;
  election(name: string, ttlSeconds?: number): Election;
  close(): void;
}

/** Thrown by {@linkcode Lock.acquire} when the lock is held. */
export declare class EtcdLockFailedError extends Error {}
