/**
 * Payload layouts (all little-endian). A fixed binary layout rather than the raftpb protobuf
 * messages: it is encoded straight into the one buffer a save writes (no per-entry message
 * objects, no varint or bigint conversions on the hot path), and its sizes are known before
 * encoding, so the buffer is allocated once.
 *
 * ```
 * entry     u64 index, u64 term, u8 type, data (the rest of the payload)
 * state     u64 term, u64 vote, u64 commit
 * snapshot  u64 index, u64 term
 * crc       u32 chain CRC carried over from the previous segment
 * metadata  opaque bytes
 * ```
 *
 * @module
 */
import { assert } from "../internal/assert.ts";

/** A raft log entry as the log stores it (structurally the same as raft's `Entry`). */
export interface WalEntry {
  term: number;
  index: number;
  type: number;
  data: Uint8Array;
}

/** Raft's persistent state (structurally the same as raft's `HardState`). */
export interface WalHardState {
  term: number;
  vote: bigint;
  commit: number;
}

/** The index and term of the latest raft snapshot: entries at or before it are obsolete. */
export interface WalSnapshotMark {
  index: number;
  term: number;
}

/** Fixed bytes of an entry payload before its data. */
export const ENTRY_FIXED_BYTES = 17;
/** Bytes of a hard state payload. */
export const STATE_BYTES = 24;
/** Bytes of a snapshot mark payload. */
export const SNAPSHOT_BYTES = 16;
/** Bytes of a crc record payload. */
export const CRC_BYTES = 4;

const TWO_32 = 0x1_0000_0000;
/** The high word of the largest safe integer: anything above cannot be a number we wrote. */
const MAX_SAFE_HIGH = 0x1f_ffff;

/** Writes a non-negative safe integer as u64. */
export function putU64(view: DataView, at: number, value: number, what: string): void {
  assert(
    Number.isSafeInteger(value) && value >= 0,
    `wal: ${what} ${value} is not a non-negative safe integer`,
  );
  view.setUint32(at, value % TWO_32, true);
  view.setUint32(at + 4, Math.floor(value / TWO_32), true);
}

/** Reads a u64 written by {@link putU64}; returns -1 when it is outside the safe range. */
export function getU64(view: DataView, at: number): number {
  const high = view.getUint32(at + 4, true);
  if (high > MAX_SAFE_HIGH) return -1;
  return high * TWO_32 + view.getUint32(at, true);
}

/** Encodes an entry's payload at `at`; the caller sized the space. */
export function putEntry(buf: Uint8Array, view: DataView, at: number, entry: WalEntry): void {
  assert(
    Number.isInteger(entry.type) && entry.type >= 0 && entry.type <= 0xff,
    `wal: entry type ${entry.type} is not a byte`,
  );
  putU64(view, at, entry.index, "entry index");
  putU64(view, at + 8, entry.term, "entry term");
  buf[at + 16] = entry.type;
  buf.set(entry.data, at + ENTRY_FIXED_BYTES);
}

/** Encodes a hard state's payload at `at`. */
export function putState(view: DataView, at: number, state: WalHardState): void {
  assert(state.vote >= 0n && state.vote < 1n << 64n, `wal: vote ${state.vote} is not a u64`);
  putU64(view, at, state.term, "hard state term");
  view.setBigUint64(at + 8, state.vote, true);
  putU64(view, at + 16, state.commit, "hard state commit");
}

/** Encodes a snapshot mark's payload at `at`. */
export function putSnapshot(view: DataView, at: number, mark: WalSnapshotMark): void {
  putU64(view, at, mark.index, "snapshot index");
  putU64(view, at + 8, mark.term, "snapshot term");
}

/**
 * Decodes an entry payload in `buf[start, end)`, copying its data out so the segment buffer
 * can be freed. Returns a reason string when the payload is malformed.
 */
export function getEntry(
  buf: Uint8Array,
  view: DataView,
  start: number,
  end: number,
): WalEntry | string {
  if (end - start < ENTRY_FIXED_BYTES) return `entry payload of ${end - start} bytes is too short`;
  const index = getU64(view, start);
  const term = getU64(view, start + 8);
  if (index < 0 || term < 0) return "entry index or term is out of range";
  return { index, term, type: buf[start + 16], data: buf.slice(start + ENTRY_FIXED_BYTES, end) };
}

/** Decodes a hard state payload, or returns a reason string. */
export function getState(view: DataView, start: number, end: number): WalHardState | string {
  if (end - start !== STATE_BYTES) return `hard state payload of ${end - start} bytes`;
  const term = getU64(view, start);
  const commit = getU64(view, start + 16);
  if (term < 0 || commit < 0) return "hard state term or commit is out of range";
  return { term, vote: view.getBigUint64(start + 8, true), commit };
}

/** Decodes a snapshot mark payload, or returns a reason string. */
export function getSnapshot(view: DataView, start: number, end: number): WalSnapshotMark | string {
  if (end - start !== SNAPSHOT_BYTES) return `snapshot payload of ${end - start} bytes`;
  const index = getU64(view, start);
  const term = getU64(view, start + 8);
  if (index < 0 || term < 0) return "snapshot index or term is out of range";
  return { index, term };
}
