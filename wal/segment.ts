/**
 * Segment files: naming (`%016x-%016x.wal`, sequence then the first raft index the segment
 * may hold), listing, and the file-system steps that make a new segment appear atomically.
 *
 * @module
 */
import { join } from "node:path";

/** A segment file's name and the two numbers it encodes. */
export interface SegmentName {
  name: string;
  seq: number;
  firstIndex: number;
}

const NAME = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;
/** Suffix of a segment being written; it becomes a segment only by rename once synced. */
export const TMP_SUFFIX = ".tmp";

function hex16(n: number): string {
  return n.toString(16).padStart(16, "0");
}

/** Builds the file name of segment `seq` whose first index is `firstIndex`. */
export function segmentName(seq: number, firstIndex: number): SegmentName {
  return { name: `${hex16(seq)}-${hex16(firstIndex)}.wal`, seq, firstIndex };
}

/** Parses a segment file name, or returns null for any other file. */
export function parseSegmentName(name: string): SegmentName | null {
  const m = NAME.exec(name);
  if (!m) return null;
  const seq = parseInt(m[1], 16);
  const firstIndex = parseInt(m[2], 16);
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(firstIndex)) return null;
  return { name, seq, firstIndex };
}

/** The directory's segments sorted by sequence, and leftover temporary files. */
export async function listSegments(
  dir: string,
): Promise<{ segments: SegmentName[]; temporaries: string[] }> {
  const segments: SegmentName[] = [];
  const temporaries: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile) continue;
      const s = parseSegmentName(e.name);
      if (s) segments.push(s);
      else if (e.name.endsWith(".wal" + TMP_SUFFIX)) temporaries.push(e.name);
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return { segments, temporaries };
    throw err;
  }
  segments.sort((a, b) => a.seq - b.seq);
  return { segments, temporaries };
}

/** Flushes a directory's entries (created, renamed or removed names) to disk. */
export async function syncDir(dir: string): Promise<void> {
  const d = await Deno.open(dir, { read: true });
  try {
    await d.sync();
  } finally {
    d.close();
  }
}

/** Writes all of `buf` (a file write may accept only part of it). */
/**
 * Writes all of `buf` to the page cache synchronously. A buffered write is a memory copy that
 * takes microseconds; doing it inline saves a thread-pool round trip per save, which showed as
 * latency on the put path. The fdatasync that follows stays asynchronous.
 */
export function writeAllSync(file: Deno.FsFile, buf: Uint8Array): void {
  let at = 0;
  while (at < buf.length) at += file.writeSync(buf.subarray(at));
}

/** Writes all of `buf` (asynchronously). */
export async function writeAll(file: Deno.FsFile, buf: Uint8Array): Promise<void> {
  let at = 0;
  while (at < buf.length) at += await file.write(buf.subarray(at));
}

/** Joins the directory and a file name. */
export function segmentPath(dir: string, name: string): string {
  return join(dir, name);
}
