/**
 * Member and cluster IDs, derived deterministically the way etcd derives them, so that the
 * same flags give the same IDs on every member: a member's ID hashes its sorted peer URLs and
 * the cluster token; the cluster's ID hashes its sorted member IDs. Each is the first 8 bytes
 * of a SHA-1, big-endian.
 *
 * @module
 */
import { createHash } from "node:crypto";

function first8BytesOfSha1(data: Uint8Array): bigint {
  const digest = createHash("sha1").update(data).digest();
  return new DataView(digest.buffer, digest.byteOffset, 8).getBigUint64(0);
}

/** A member's ID from its peer URLs and the cluster token (`--initial-cluster-token`). */
export function memberIdFor(peerUrls: string[], clusterToken: string): bigint {
  const joined = [...peerUrls].sort().join("") + clusterToken;
  return first8BytesOfSha1(new TextEncoder().encode(joined));
}

/** The cluster ID from its members' IDs. */
export function clusterIdFor(memberIds: bigint[]): bigint {
  const sorted = [...memberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const bytes = new Uint8Array(8 * sorted.length);
  const view = new DataView(bytes.buffer);
  sorted.forEach((id, i) => view.setBigUint64(8 * i, id));
  return first8BytesOfSha1(bytes);
}

/** Formats an ID as etcd prints it: lower-case hex without leading zeros. */
export function formatId(id: bigint): string {
  return id.toString(16);
}

/**
 * Unique 64-bit IDs for requests and leases, built as etcd builds them: the member ID's low
 * 16 bits, then 40 bits of the start time in ms and an 8-bit counter that carries into it, so
 * members never collide and a restarted member does not reuse IDs of its previous run.
 */
export class IdGenerator {
  readonly #prefix: bigint;
  #suffix: bigint;

  /** Creates a generator for `memberId`, started at `nowMs`. */
  constructor(memberId: bigint, nowMs: number) {
    this.#prefix = (memberId & 0xffffn) << 48n;
    this.#suffix = (BigInt(Math.floor(nowMs)) & 0xff_ffff_ffffn) << 8n;
  }

  /** The next ID. */
  next(): bigint {
    this.#suffix = (this.#suffix + 1n) & 0xffff_ffff_ffffn;
    return this.#prefix | this.#suffix;
  }
}
