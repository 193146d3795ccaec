/**
 * The durable raft log: an append-only sequence of segment files of CRC-chained records
 * (see record.ts for the framing, codec.ts for the payloads, segment.ts for the files).
 *
 * Durability contract: {@linkcode Wal.save} resolves only after its records are written and
 * `fdatasync`ed, with one write and one sync per call (the caller batches a whole raft Ready
 * into one call: that is the group commit). Operations are queued, so concurrent calls run one
 * at a time in call order; at most one write is ever unsynced, which is what makes a torn tail
 * recognisable: it is damage in the last segment with no valid record after it.
 *
 * Recovery rules: damage in the last segment with no valid record header after it (a short
 * header or payload, a bad checksum followed by zeros or garbage) is a torn tail, truncated at
 * open with a warning. Anything else (a bad record with valid records after it, damage in an
 * earlier segment or in a segment head, a header no writer produces, a gap in the segment
 * sequence or the CRC chain or the entry indexes) throws {@linkcode WalCorruptError}. A power
 * loss that persisted a later page of the unsynced last write but not an earlier one looks
 * like the second kind: the log then refuses to start rather than guess, unlike etcd, which
 * treats a record with an all-zero sector as torn.
 *
 * @module
 */
import { assert } from "../internal/assert.ts";
import { equalBytes } from "../internal/bytes.ts";
import {
  CRC_BYTES,
  ENTRY_FIXED_BYTES,
  getEntry,
  getSnapshot,
  getState,
  putEntry,
  putSnapshot,
  putState,
  SNAPSHOT_BYTES,
  STATE_BYTES,
  type WalEntry,
  type WalHardState,
  type WalSnapshotMark,
} from "./codec.ts";
import {
  WalClosedError,
  WalCorruptError,
  WalExistsError,
  WalLockedError,
  WalNotFoundError,
  WalRecordTooLargeError,
} from "./errors.ts";
import { findRecordHeader, HEADER_BYTES, readRecord, RecordType, sealRecord } from "./record.ts";
import {
  listSegments,
  type SegmentName,
  segmentName,
  segmentPath,
  syncDir,
  TMP_SUFFIX,
  writeAll,
  writeAllSync,
} from "./segment.ts";

export type { WalEntry, WalHardState, WalSnapshotMark } from "./codec.ts";

/** Tuning and hooks for a {@linkcode Wal}. */
export interface WalOptions {
  /**
   * A new segment is started before a write once the current one holds this many bytes
   * (default 64 MiB, at most 1 GiB). A segment may exceed it by one save. The last segment is
   * preallocated to this size, as etcd does: appending inside the file's size lets fdatasync
   * skip the journal commit a growing size needs (measured: 233 -> 168 µs per 300-byte save).
   */
  maxSegmentBytes?: number;
  /**
   * The largest record accepted (default 64 MiB, at most 512 MiB). On read, a larger length
   * is corruption, detected before anything is allocated for it.
   */
  maxRecordBytes?: number;
  /** Receives warnings (torn tail repaired, slow sync); defaults to `console.warn`. */
  warn?: (message: string) => void;
  /** Receives each fdatasync's duration in seconds (for a latency histogram). */
  observeSync?: (seconds: number) => void;
}

/** Everything {@linkcode Wal.open} recovered. */
export interface WalReadState {
  /** The metadata given to {@linkcode Wal.create}. */
  metadata: Uint8Array;
  /** The last hard state saved, or null if none was. */
  hardState: WalHardState | null;
  /** The latest snapshot mark saved, or null if none was. */
  snapshot: WalSnapshotMark | null;
  /** The log after the snapshot mark: contiguous, conflicting suffixes already replaced. */
  entries: WalEntry[];
}

const MIB = 1024 * 1024;
const DEFAULT_MAX_SEGMENT_BYTES = 64 * MIB;
const LIMIT_MAX_SEGMENT_BYTES = 1024 * MIB;
const DEFAULT_MAX_RECORD_BYTES = 64 * MIB;
const LIMIT_MAX_RECORD_BYTES = 512 * MIB;
/** The largest single save: bounds the one buffer a save builds. */
const MAX_SAVE_BYTES = 1024 * MIB;
/** No segment we write can be larger (a full segment plus one save); checked before reading. */
const MAX_SEGMENT_FILE_BYTES = LIMIT_MAX_SEGMENT_BYTES + MAX_SAVE_BYTES;
/**
 * How long `open` retries the lock of the last segment. A log closed a moment ago in this
 * process can still hold it: a child process forked meanwhile (by any part of the process)
 * shares the open file, and so its lock, until it execs and the close-on-exec descriptor goes.
 * The parallel test suite, which spawns servers and etcdctl, refused a reopen right after a
 * close that way twice. Another live process that holds the lock is refused after this.
 */
const LOCK_WAIT_MS = 500;
const LOCK_RETRY_MS = 10;

async function lockWithin(file: Deno.FsFile, waitMs: number): Promise<boolean> {
  const deadline = performance.now() + waitMs;
  while (!await file.tryLock(true)) {
    if (performance.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, LOCK_RETRY_MS));
  }
  return true;
}

/** etcd warns about an fdatasync slower than this. */
const SLOW_SYNC_MS = 1000;

interface ResolvedOptions {
  maxSegmentBytes: number;
  maxRecordBytes: number;
  warn: (message: string) => void;
  observeSync: ((seconds: number) => void) | null;
}

function resolveOptions(options: WalOptions): ResolvedOptions {
  const maxSegmentBytes = options.maxSegmentBytes ?? DEFAULT_MAX_SEGMENT_BYTES;
  const maxRecordBytes = options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
  assert(
    Number.isSafeInteger(maxSegmentBytes) && maxSegmentBytes > 0 &&
      maxSegmentBytes <= LIMIT_MAX_SEGMENT_BYTES,
    `wal: maxSegmentBytes ${maxSegmentBytes} is outside (0, ${LIMIT_MAX_SEGMENT_BYTES}]`,
  );
  assert(
    Number.isSafeInteger(maxRecordBytes) && maxRecordBytes >= SNAPSHOT_BYTES + STATE_BYTES &&
      maxRecordBytes <= LIMIT_MAX_RECORD_BYTES,
    `wal: maxRecordBytes ${maxRecordBytes} is outside [40, ${LIMIT_MAX_RECORD_BYTES}]`,
  );
  return {
    maxSegmentBytes,
    maxRecordBytes,
    warn: options.warn ?? ((m) => console.warn(m)),
    observeSync: options.observeSync ?? null,
  };
}

/** The records every segment starts with, so that any segment can be read on its own. */
function encodeHead(
  prevCrc: number,
  metadata: Uint8Array,
  hardState: WalHardState | null,
  mark: WalSnapshotMark | null,
): { bytes: Uint8Array; crc: number } {
  const size = HEADER_BYTES + CRC_BYTES + HEADER_BYTES + metadata.length +
    (hardState ? HEADER_BYTES + STATE_BYTES : 0) + (mark ? HEADER_BYTES + SNAPSHOT_BYTES : 0);
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  let at = 0;
  view.setUint32(at + HEADER_BYTES, prevCrc, true);
  // The crc record seeds its own chain with the value it carries.
  let crc = sealRecord(bytes, view, at, RecordType.crc, CRC_BYTES, prevCrc);
  at += HEADER_BYTES + CRC_BYTES;
  bytes.set(metadata, at + HEADER_BYTES);
  crc = sealRecord(bytes, view, at, RecordType.metadata, metadata.length, crc);
  at += HEADER_BYTES + metadata.length;
  if (hardState) {
    putState(view, at + HEADER_BYTES, hardState);
    crc = sealRecord(bytes, view, at, RecordType.state, STATE_BYTES, crc);
    at += HEADER_BYTES + STATE_BYTES;
  }
  if (mark) {
    putSnapshot(view, at + HEADER_BYTES, mark);
    crc = sealRecord(bytes, view, at, RecordType.snapshot, SNAPSHOT_BYTES, crc);
    at += HEADER_BYTES + SNAPSHOT_BYTES;
  }
  assert(at === size, "wal: segment head size mismatch");
  return { bytes, crc };
}

/**
 * Writes a segment under a temporary name, preallocated to `preallocateBytes` (zeros after the
 * head), syncs it, then renames it into place and syncs the directory: a segment is never
 * visible without its complete head. Returns the open, locked file positioned after the head.
 */
async function writeSegment(
  dir: string,
  seg: SegmentName,
  head: Uint8Array,
  preallocateBytes: number,
): Promise<Deno.FsFile> {
  const tmp = segmentPath(dir, seg.name + TMP_SUFFIX);
  const file = await Deno.open(tmp, { read: true, write: true, create: true, truncate: true });
  try {
    if (!await file.tryLock(true)) throw new WalLockedError(seg.name + TMP_SUFFIX);
    await writeAll(file, head);
    if (preallocateBytes > head.length) await file.truncate(preallocateBytes);
    await file.syncData();
    await Deno.rename(tmp, segmentPath(dir, seg.name));
    await syncDir(dir);
    return file;
  } catch (err) {
    file.close();
    throw err;
  }
}

/** What replaying the segments produced, and where appending resumes. */
interface Replayed {
  state: WalReadState;
  chainCrc: number;
  tailEnd: number;
  torn: { offset: number; reason: string; bytes: number } | null;
  lastIndex: number;
}

/** Rebuilds the log from the segments, applying raft's replacement rules. */
class Replayer {
  metadata: Uint8Array | null = null;
  hardState: WalHardState | null = null;
  mark: WalSnapshotMark | null = null;
  entries: WalEntry[] = [];
  chainCrc = 0;

  constructor(private readonly maxRecordBytes: number) {}

  get markIndex(): number {
    return this.mark ? this.mark.index : 0;
  }

  /**
   * Replays one segment. Returns where the valid records end and, for the last segment, the
   * torn tail found there; throws WalCorruptError for damage that is not a torn tail.
   */
  segment(
    seg: SegmentName,
    buf: Uint8Array,
    first: boolean,
    last: boolean,
  ): { end: number; torn: { offset: number; reason: string } | null } {
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const corrupt = (at: number, reason: string) => new WalCorruptError(seg.name, at, reason);
    let at = 0;
    let crc = 0;
    let n = 0;
    while (at < buf.length) {
      const r = readRecord(buf, view, at, crc, this.maxRecordBytes, n === 0);
      if (!r.ok) {
        // Nothing was ever written here: the rest is the last segment's preallocated space.
        if (last && n >= 2 && isZeroFrom(buf, at)) break;
        // Segment heads are synced before the segment is renamed into place, so damage in a
        // head, in an earlier segment, or a header no writer produces is never a torn write.
        if (!last || n < 2 || r.impossible) throw corrupt(at, r.reason);
        const next = findRecordHeader(buf, view, r.resumeAt, this.maxRecordBytes);
        if (next >= 0) {
          throw corrupt(at, `${r.reason}, yet a valid record follows at offset ${next}`);
        }
        this.chainCrc = crc;
        return { end: at, torn: { offset: at, reason: r.reason } };
      }
      const { payloadStart: ps, payloadEnd: pe } = r;
      if ((n === 0) !== (r.type === RecordType.crc)) {
        throw corrupt(
          at,
          n === 0 ? "segment does not start with a crc record" : "crc record inside a segment",
        );
      }
      if ((n === 1) !== (r.type === RecordType.metadata)) {
        throw corrupt(
          at,
          n === 1 ? "second record is not the metadata" : "metadata record after the segment head",
        );
      }
      switch (r.type) {
        case RecordType.crc: {
          const carried = view.getUint32(ps, true);
          if (!first && carried !== this.chainCrc) {
            throw corrupt(
              at,
              `segment starts from chain crc ${hex(carried)} but the previous segment ended at ` +
                `${hex(this.chainCrc)}: a segment is missing or was replaced`,
            );
          }
          break;
        }
        case RecordType.metadata: {
          const metadata = buf.subarray(ps, pe);
          if (this.metadata === null) this.metadata = metadata.slice();
          else if (!equalBytes(this.metadata, metadata)) {
            throw corrupt(
              at,
              "metadata differs from the earlier segments' (another member's log?)",
            );
          }
          break;
        }
        case RecordType.entry: {
          const e = getEntry(buf, view, ps, pe);
          if (typeof e === "string") throw corrupt(at, e);
          this.#entry(e, seg.name, at);
          break;
        }
        case RecordType.state: {
          const s = getState(view, ps, pe);
          if (typeof s === "string") throw corrupt(at, s);
          this.hardState = s;
          break;
        }
        case RecordType.snapshot: {
          const m = getSnapshot(view, ps, pe);
          if (typeof m === "string") throw corrupt(at, m);
          this.#snapshot(m);
          break;
        }
      }
      crc = r.crc;
      at = pe;
      n++;
    }
    if (n < 2) throw corrupt(at, "segment ends before its head (crc and metadata records)");
    this.chainCrc = crc;
    return { end: at, torn: null };
  }

  /** Raft's rule: an entry at index i replaces the entry at i and everything after it. */
  #entry(e: WalEntry, file: string, offset: number): void {
    if (e.index <= this.markIndex) return;
    const ents = this.entries;
    if (ents.length === 0) {
      ents.push(e);
      return;
    }
    const first = ents[0].index;
    const next = first + ents.length;
    if (e.index > next) {
      throw new WalCorruptError(
        file,
        offset,
        `entry index ${e.index} leaves a gap after index ${next - 1}`,
      );
    }
    if (e.index < first) {
      // Replaces everything we hold; earlier indexes live in released segments or the snapshot.
      ents.length = 0;
    } else ents.length = e.index - first;
    ents.push(e);
  }

  #snapshot(m: WalSnapshotMark): void {
    if (this.mark && m.index < this.mark.index) return;
    this.mark = m;
    const ents = this.entries;
    if (ents.length === 0 || ents[0].index > m.index) return;
    const drop = Math.min(ents.length, m.index - ents[0].index + 1);
    ents.splice(0, drop);
  }
}

/** True when every byte of `buf` from `from` on is zero. */
function isZeroFrom(buf: Uint8Array, from: number): boolean {
  let at = from;
  // Word steps: the last segment's preallocated space is most of a 64 MiB file.
  while (at < buf.length && ((buf.byteOffset + at) & 3) !== 0) if (buf[at++] !== 0) return false;
  const words = new Uint32Array(buf.buffer, buf.byteOffset + at, (buf.length - at) >> 2);
  for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
  for (at += words.length * 4; at < buf.length; at++) if (buf[at] !== 0) return false;
  return true;
}

function hex(n: number): string {
  return "0x" + n.toString(16).padStart(8, "0");
}

async function replay(
  dir: string,
  segments: SegmentName[],
  maxRecordBytes: number,
): Promise<Replayed> {
  const r = new Replayer(maxRecordBytes);
  let tailEnd = 0;
  let torn: Replayed["torn"] = null;
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i];
    const path = segmentPath(dir, seg.name);
    const size = (await Deno.stat(path)).size;
    if (size > MAX_SEGMENT_FILE_BYTES) {
      throw new WalCorruptError(
        seg.name,
        0,
        `segment of ${size} bytes exceeds ${MAX_SEGMENT_FILE_BYTES}`,
      );
    }
    const buf = await Deno.readFile(path);
    const last = i === segments.length - 1;
    const out = r.segment(seg, buf, i === 0, last);
    if (last) {
      tailEnd = out.end;
      if (out.torn) torn = { ...out.torn, bytes: buf.length - out.end };
    }
  }
  assert(r.metadata !== null, "wal: replay ended without metadata");
  const ents = r.entries;
  if (ents.length > 0 && ents[0].index !== r.markIndex + 1) {
    throw new WalCorruptError(
      segments[0].name,
      0,
      `the log resumes at index ${ents[0].index} but the snapshot mark is at index ` +
        `${r.markIndex}: a segment is missing`,
    );
  }
  return {
    state: { metadata: r.metadata, hardState: r.hardState, snapshot: r.mark, entries: ents },
    chainCrc: r.chainCrc,
    tailEnd,
    torn,
    lastIndex: ents.length > 0 ? ents[ents.length - 1].index : r.markIndex,
  };
}

/**
 * An open write-ahead log. Create one with {@linkcode Wal.create} or {@linkcode Wal.open};
 * only one open `Wal` per directory (a lock on the last segment enforces it).
 */
export class Wal {
  readonly #dir: string;
  readonly #opts: ResolvedOptions;
  readonly #metadata: Uint8Array;
  #segments: SegmentName[];
  #file: Deno.FsFile;
  /** Bytes in the last segment. */
  #size: number;
  /** Chain CRC of the last record written. */
  #chainCrc: number;
  #lastIndex: number;
  #hardState: WalHardState | null;
  #mark: WalSnapshotMark | null;
  /** Tail of the operation queue: every operation runs after the one before it settles. */
  #queue: Promise<void> = Promise.resolve();
  #closing = false;
  /** The write or sync failure that stopped the log; the file's tail is unknown after it. */
  #failure: unknown = null;

  private constructor(init: {
    dir: string;
    opts: ResolvedOptions;
    metadata: Uint8Array;
    segments: SegmentName[];
    file: Deno.FsFile;
    size: number;
    chainCrc: number;
    lastIndex: number;
    hardState: WalHardState | null;
    mark: WalSnapshotMark | null;
  }) {
    this.#dir = init.dir;
    this.#opts = init.opts;
    this.#metadata = init.metadata;
    this.#segments = init.segments;
    this.#file = init.file;
    this.#size = init.size;
    this.#chainCrc = init.chainCrc;
    this.#lastIndex = init.lastIndex;
    this.#hardState = init.hardState;
    this.#mark = init.mark;
  }

  /** True when `dir` holds at least one segment file. */
  static async exists(dir: string): Promise<boolean> {
    return (await listSegments(dir)).segments.length > 0;
  }

  /**
   * Creates a new, empty log in `dir` (created if missing). `metadata` (e.g. node and cluster
   * ids) is opaque to the log and written at the head of every segment.
   */
  static async create(dir: string, metadata: Uint8Array, options: WalOptions = {}): Promise<Wal> {
    const opts = resolveOptions(options);
    if (metadata.length > opts.maxRecordBytes) {
      throw new WalRecordTooLargeError(metadata.length, opts.maxRecordBytes, "metadata");
    }
    await Deno.mkdir(dir, { recursive: true });
    if (await Wal.exists(dir)) throw new WalExistsError(dir);
    const seg = segmentName(0, 0);
    const head = encodeHead(0, metadata, null, null);
    const file = await writeSegment(dir, seg, head.bytes, opts.maxSegmentBytes);
    try {
      await syncDir(segmentPath(dir, ".."));
    } catch (err) {
      file.close();
      throw err;
    }
    return new Wal({
      dir,
      opts,
      metadata: metadata.slice(),
      segments: [seg],
      file,
      size: head.bytes.length,
      chainCrc: head.crc,
      lastIndex: 0,
      hardState: null,
      mark: null,
    });
  }

  /**
   * Opens the log in `dir` and replays it. A torn last record (a write cut short by a crash
   * before its sync completed) is truncated away with a warning; any other damage throws
   * {@linkcode WalCorruptError} naming the file and offset.
   */
  static async open(
    dir: string,
    options: WalOptions = {},
  ): Promise<{ wal: Wal; state: WalReadState }> {
    const opts = resolveOptions(options);
    const { segments, temporaries } = await listSegments(dir);
    if (segments.length === 0) throw new WalNotFoundError(dir);
    for (let i = 1; i < segments.length; i++) {
      if (segments[i].seq !== segments[i - 1].seq + 1) {
        throw new WalCorruptError(
          segments[i].name,
          0,
          `expected segment sequence ${segments[i - 1].seq + 1} after ${
            segments[i - 1].name
          }: a segment is missing`,
        );
      }
    }
    const last = segments[segments.length - 1];
    const file = await Deno.open(segmentPath(dir, last.name), { read: true, write: true });
    try {
      if (!await lockWithin(file, LOCK_WAIT_MS)) throw new WalLockedError(last.name);
      // A temporary is a segment whose creation never finished: it holds no acknowledged data.
      for (const t of temporaries) await Deno.remove(segmentPath(dir, t));
      const r = await replay(dir, segments, opts.maxRecordBytes);
      if (r.torn) {
        opts.warn(
          `wal: repaired a torn tail in ${last.name}: ${r.torn.reason} at offset ${r.torn.offset}; ` +
            `truncated ${r.torn.bytes} bytes`,
        );
        await file.truncate(r.tailEnd);
      }
      // Zeros after the tail: the preallocated space, restored after a repair and added to a
      // segment written before preallocation.
      const size = (await file.stat()).size;
      if (r.torn || size < opts.maxSegmentBytes) {
        await file.truncate(Math.max(r.tailEnd, opts.maxSegmentBytes));
        await file.syncData();
      }
      await file.seek(r.tailEnd, Deno.SeekMode.Start);
      const wal = new Wal({
        dir,
        opts,
        metadata: r.state.metadata,
        segments,
        file,
        size: r.tailEnd,
        chainCrc: r.chainCrc,
        lastIndex: r.lastIndex,
        hardState: r.state.hardState,
        mark: r.state.snapshot,
      });
      return { wal, state: r.state };
    } catch (err) {
      file.close();
      throw err;
    }
  }

  /** The index of the last entry in the log (or of the snapshot mark, when that is later). */
  get lastIndex(): number {
    return this.#lastIndex;
  }

  /**
   * Where the next record goes in the last segment, in bytes: the end of what was written
   * (the file is longer, by its preallocated zeros).
   */
  get tailOffset(): number {
    return this.#size;
  }

  /** The segment file names, oldest first. */
  get segmentNames(): string[] {
    return this.#segments.map((s) => s.name);
  }

  /**
   * Appends `entries` (contiguous; the first may go back to replace a conflicting suffix) and
   * then `hardState` (if not null), with one write and one fdatasync; resolves once durable.
   * `inlineSync` runs the fdatasync on the calling thread (blocking it) instead of the pool.
   */
  save(
    hardState: WalHardState | null,
    entries: WalEntry[],
    inlineSync = false,
  ): Promise<void> {
    if (hardState === null && entries.length === 0) return this.#enqueue(() => Promise.resolve());
    return this.#enqueue(() => this.#save(hardState, entries, inlineSync));
  }

  /** Records that a raft snapshot covers the log up to `mark.index`, durably. */
  saveSnapshot(mark: WalSnapshotMark): Promise<void> {
    return this.#enqueue(() => this.#saveSnapshot(mark));
  }

  /**
   * Deletes the oldest segments whose entries all precede `index` (never the one holding
   * `index`, never the last segment). Entries after the snapshot mark are never released, so
   * `index` is capped at the mark's index + 1.
   */
  releaseTo(index: number): Promise<void> {
    return this.#enqueue(() => this.#releaseTo(index));
  }

  /** Waits for queued operations, then closes the log. Later calls throw WalClosedError. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    await this.#queue;
    this.#file.close();
  }

  #enqueue(op: () => Promise<void>): Promise<void> {
    if (this.#closing) return Promise.reject(new WalClosedError());
    const run = this.#queue.then(() => {
      if (this.#failure !== null) {
        throw new WalClosedError("wal: stopped after an earlier write failed", {
          cause: this.#failure,
        });
      }
      return op();
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Runs file I/O whose failure leaves the tail unknown: the log stops accepting work. */
  async #io<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      this.#failure = err;
      throw err;
    }
  }

  async #sync(inline = false): Promise<void> {
    const start = performance.now();
    if (inline) this.#file.syncDataSync();
    else await this.#file.syncData();
    const ms = performance.now() - start;
    this.#opts.observeSync?.(ms / 1000);
    if (ms > SLOW_SYNC_MS) {
      this.#opts.warn(
        `wal: slow fdatasync took ${ms.toFixed(0)}ms, expected less than ${SLOW_SYNC_MS}ms`,
      );
    }
  }

  async #save(
    hardState: WalHardState | null,
    entries: WalEntry[],
    inlineSync: boolean,
  ): Promise<void> {
    const maxRecord = this.#opts.maxRecordBytes;
    let total = hardState ? HEADER_BYTES + STATE_BYTES : 0;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      if (i > 0) {
        assert(
          e.index === entries[i - 1].index + 1,
          `wal: entry ${e.index} follows ${entries[i - 1].index}`,
        );
      }
      const payload = ENTRY_FIXED_BYTES + e.data.length;
      if (payload > maxRecord) throw new WalRecordTooLargeError(payload, maxRecord, "entry record");
      total += HEADER_BYTES + payload;
    }
    if (total > MAX_SAVE_BYTES) throw new WalRecordTooLargeError(total, MAX_SAVE_BYTES, "save");
    if (entries.length > 0) {
      const first = entries[0].index;
      const markIndex = this.#mark ? this.#mark.index : 0;
      assert(
        first > markIndex,
        `wal: entry ${first} is at or before the snapshot mark ${markIndex}`,
      );
      assert(
        first <= this.#lastIndex + 1,
        `wal: entry ${first} leaves a gap after ${this.#lastIndex}`,
      );
    }

    if (this.#size >= this.#opts.maxSegmentBytes) await this.#io(() => this.#cut());

    const buf = new Uint8Array(total);
    const view = new DataView(buf.buffer);
    let crc = this.#chainCrc;
    let at = 0;
    for (const e of entries) {
      const payload = ENTRY_FIXED_BYTES + e.data.length;
      putEntry(buf, view, at + HEADER_BYTES, e);
      crc = sealRecord(buf, view, at, RecordType.entry, payload, crc);
      at += HEADER_BYTES + payload;
    }
    if (hardState) {
      putState(view, at + HEADER_BYTES, hardState);
      crc = sealRecord(buf, view, at, RecordType.state, STATE_BYTES, crc);
      at += HEADER_BYTES + STATE_BYTES;
    }
    assert(at === total, "wal: save buffer size mismatch");

    await this.#io(async () => {
      writeAllSync(this.#file, buf);
      await this.#sync(inlineSync);
    });
    this.#size += total;
    this.#chainCrc = crc;
    if (entries.length > 0) this.#lastIndex = entries[entries.length - 1].index;
    if (hardState) this.#hardState = { ...hardState };
  }

  async #saveSnapshot(mark: WalSnapshotMark): Promise<void> {
    const markIndex = this.#mark ? this.#mark.index : 0;
    assert(
      mark.index >= markIndex,
      `wal: snapshot mark ${mark.index} is before the mark ${markIndex}`,
    );
    if (this.#size >= this.#opts.maxSegmentBytes) await this.#io(() => this.#cut());
    const total = HEADER_BYTES + SNAPSHOT_BYTES;
    const buf = new Uint8Array(total);
    const view = new DataView(buf.buffer);
    putSnapshot(view, HEADER_BYTES, mark);
    const crc = sealRecord(buf, view, 0, RecordType.snapshot, SNAPSHOT_BYTES, this.#chainCrc);
    await this.#io(async () => {
      await writeAll(this.#file, buf);
      await this.#sync();
    });
    this.#size += total;
    this.#chainCrc = crc;
    this.#mark = { index: mark.index, term: mark.term };
    if (mark.index > this.#lastIndex) this.#lastIndex = mark.index;
  }

  /**
   * Starts the next segment. Its name carries the next index to be written, so every live
   * entry of the current segment precedes it (entries past it were replaced by a conflict).
   */
  async #cut(): Promise<void> {
    const prev = this.#segments[this.#segments.length - 1];
    const seg = segmentName(prev.seq + 1, this.#lastIndex + 1);
    const head = encodeHead(this.#chainCrc, this.#metadata, this.#hardState, this.#mark);
    // The finished segment gives back its unused preallocation before the next one exists, so
    // only the last segment ever ends in zeros.
    await this.#file.truncate(this.#size);
    await this.#file.syncData();
    const file = await writeSegment(this.#dir, seg, head.bytes, this.#opts.maxSegmentBytes);
    this.#file.close();
    this.#file = file;
    this.#segments.push(seg);
    this.#size = head.bytes.length;
    this.#chainCrc = head.crc;
  }

  async #releaseTo(index: number): Promise<void> {
    const limit = Math.min(index, (this.#mark ? this.#mark.index : 0) + 1);
    const segs = this.#segments;
    // Segment k's live entries all precede the next segment's first index.
    let removed = 0;
    try {
      while (removed < segs.length - 1 && segs[removed + 1].firstIndex <= limit) {
        await Deno.remove(segmentPath(this.#dir, segs[removed].name));
        removed++;
      }
    } finally {
      if (removed > 0) {
        segs.splice(0, removed);
        await syncDir(this.#dir);
      }
    }
  }
}
