/**
 * The durable raft log: segmented, CRC-chained, fdatasync'ed files with torn-tail repair.
 *
 * @module
 */
export { Wal } from "./wal.ts";
export type { WalEntry, WalHardState, WalOptions, WalReadState, WalSnapshotMark } from "./wal.ts";
export {
  WalClosedError,
  WalCorruptError,
  WalExistsError,
  WalLockedError,
  WalNotFoundError,
  WalRecordTooLargeError,
} from "./errors.ts";
