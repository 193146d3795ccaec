/**
 * The MVCC key space: revisions, history, compaction and the consistent index, stored in
 * SQLite.
 *
 * @module
 */
export { CompactedError, FutureRevError } from "./errors.ts";
export { type HistoryOptions, MvccStore, type MvccStoreOptions } from "./store.ts";
export type {
  KeyValue,
  MvccEvent,
  RangeOptions,
  RangeResult,
  ReadView,
  WriteTxn,
} from "./types.ts";
