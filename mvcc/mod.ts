/**
 * The MVCC key space: revisions, history, compaction and the consistent index, stored in
 * SQLite.
 *
 * @module
 */
export { CompactedError, FutureRevError } from "./errors.ts";
export { type HistoryOptions, MvccStore, type MvccStoreOptions } from "./store.ts";
export {
  DuplicateWatchIdError,
  eventBytes,
  realTimers,
  type WatchBatch,
  WatchClosedError,
  Watcher,
  WatchHub,
  type WatchHubOptions,
  WatchRangeEmptyError,
  type WatchSource,
  type WatchSpec,
  WatchStream,
  type WatchStreamListener,
  type WatchTimers,
} from "./watch_hub.ts";
export type {
  KeyValue,
  MvccEvent,
  RangeOptions,
  RangeResult,
  ReadView,
  WriteTxn,
} from "./types.ts";
