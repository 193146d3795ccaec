/**
 * Record framing. Every record is a 13-byte header followed by its payload:
 *
 * ```
 * offset 0  u32 LE  payload length
 * offset 4  u8      record type (never 0, so zero-filled space is never a record)
 * offset 5  u32 LE  chain CRC: CRC-32C of bytes [0, 5) and the payload, seeded with the
 *                   previous record's chain CRC (a segment's first record seeds with the
 *                   value it carries, so a segment can be checked on its own)
 * offset 9  u32 LE  header CRC: CRC-32C of bytes [0, 9), unseeded
 * ```
 *
 * The chain CRC detects damaged, reordered or spliced records. The self-contained header CRC
 * lets recovery tell a torn tail (nothing valid after the damage) from damage in the middle
 * of the log (valid records after it), and rejects a damaged length before anything is
 * allocated from it.
 *
 * @module
 */
import { crc32c } from "../internal/crc32c.ts";

/** Record types; 0 is reserved so that zeroed bytes never parse as a record. */
export const RecordType = {
  /** First record of every segment: carries the chain CRC that ended the previous segment. */
  crc: 1,
  /** Second record of every segment: the opaque metadata given to `Wal.create`. */
  metadata: 2,
  entry: 3,
  state: 4,
  snapshot: 5,
} as const;

/** One of the {@linkcode RecordType} values. */
export type RecordType = typeof RecordType[keyof typeof RecordType];

/** Bytes in a record header. */
export const HEADER_BYTES = 13;

function isRecordType(type: number): type is RecordType {
  return type >= RecordType.crc && type <= RecordType.snapshot;
}

/**
 * Fills in the header of the record at `at`, whose payload of `payloadBytes` has already been
 * written at `at + HEADER_BYTES`, and returns its chain CRC (the seed for the next record).
 */
export function sealRecord(
  buf: Uint8Array,
  view: DataView,
  at: number,
  type: RecordType,
  payloadBytes: number,
  prevCrc: number,
): number {
  view.setUint32(at, payloadBytes, true);
  buf[at + 4] = type;
  const start = at + HEADER_BYTES;
  const crc = crc32c(
    buf.subarray(start, start + payloadBytes),
    crc32c(buf.subarray(at, at + 5), prevCrc),
  );
  view.setUint32(at + 5, crc, true);
  view.setUint32(at + 9, crc32c(buf.subarray(at, at + 9)), true);
  return crc;
}

/** A record that passed every check. */
export interface GoodRecord {
  ok: true;
  type: RecordType;
  payloadStart: number;
  payloadEnd: number;
  /** The stored chain CRC: the seed for the next record. */
  crc: number;
}

/** A record that failed a check, and what the failure allows recovery to conclude. */
export interface BadRecord {
  ok: false;
  reason: string;
  /**
   * True when the header CRC held but the header itself is impossible (unknown type, length
   * over the limit): no torn write produces that, so it is corruption wherever it appears.
   */
  impossible: boolean;
  /**
   * Where a search for later valid records starts: just past the record when its header
   * is trustworthy (so its payload is not mistaken for records), else the next byte.
   */
  resumeAt: number;
}

/** The outcome of {@link readRecord}. */
export type ReadRecord = GoodRecord | BadRecord;

/** True when a header that passes its own CRC starts at `at`. */
function headerValid(buf: Uint8Array, view: DataView, at: number): boolean {
  return at + HEADER_BYTES <= buf.length &&
    view.getUint32(at + 9, true) === crc32c(buf.subarray(at, at + 9));
}

/**
 * Reads and checks the record at `at`, whose chain CRC must continue `prevCrc`; a length above
 * `maxRecordBytes` is rejected before the payload is touched. `seedFromPayload` is for a
 * segment's first (crc) record, which seeds its own chain with the value it carries.
 */
export function readRecord(
  buf: Uint8Array,
  view: DataView,
  at: number,
  prevCrc: number,
  maxRecordBytes: number,
  seedFromPayload = false,
): ReadRecord {
  const left = buf.length - at;
  if (left < HEADER_BYTES) {
    return {
      ok: false,
      reason: `short header (${left} of ${HEADER_BYTES} bytes)`,
      impossible: false,
      resumeAt: at + 1,
    };
  }
  if (!headerValid(buf, view, at)) {
    return { ok: false, reason: "header checksum mismatch", impossible: false, resumeAt: at + 1 };
  }
  const length = view.getUint32(at, true);
  const type = buf[at + 4];
  if (!isRecordType(type)) {
    return { ok: false, reason: `unknown record type ${type}`, impossible: true, resumeAt: at + 1 };
  }
  if (length > maxRecordBytes) {
    return {
      ok: false,
      reason: `record length ${length} exceeds the limit of ${maxRecordBytes} bytes`,
      impossible: true,
      resumeAt: at + 1,
    };
  }
  const payloadStart = at + HEADER_BYTES;
  const payloadEnd = payloadStart + length;
  if (payloadEnd > buf.length) {
    return {
      ok: false,
      reason: `short payload (${buf.length - payloadStart} of ${length} bytes)`,
      impossible: false,
      resumeAt: buf.length,
    };
  }
  let seed = prevCrc;
  if (seedFromPayload) {
    if (type !== RecordType.crc || length !== 4) {
      return {
        ok: false,
        reason: "segment does not start with a crc record",
        impossible: true,
        resumeAt: payloadEnd,
      };
    }
    seed = view.getUint32(payloadStart, true);
  }
  const stored = view.getUint32(at + 5, true);
  const crc = crc32c(
    buf.subarray(payloadStart, payloadEnd),
    crc32c(buf.subarray(at, at + 5), seed),
  );
  if (crc !== stored) {
    return {
      ok: false,
      reason: "record checksum mismatch",
      impossible: false,
      resumeAt: payloadEnd,
    };
  }
  return { ok: true, type, payloadStart, payloadEnd, crc };
}

/**
 * Returns the offset of the first valid-looking record header at or after `from` (header CRC
 * holds, known type, length within the limit), or -1. Zeroed space never matches, since the
 * CRC of zero bytes is not zero.
 */
export function findRecordHeader(
  buf: Uint8Array,
  view: DataView,
  from: number,
  maxRecordBytes: number,
): number {
  for (let at = from; at + HEADER_BYTES <= buf.length; at++) {
    if (
      isRecordType(buf[at + 4]) && view.getUint32(at, true) <= maxRecordBytes &&
      headerValid(buf, view, at)
    ) return at;
  }
  return -1;
}
