/**
 * HPACK header compression for HTTP/2 (RFC 7541): a decoder with a bounded dynamic table and a
 * bounded decoded header list, and an encoder that never indexes (it uses the static table only).
 *
 * Header strings are latin1 JavaScript strings: one byte is one code unit 0x00-0xff, so
 * `string.length` is the octet count that RFC 7541 §4.1 and RFC 9113 §6.5.2 sizes are made of.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { assert } from "../../internal/assert.ts";
import {
  huffmanDecode,
  huffmanDecodedLength,
  huffmanEncode,
  huffmanEncodedLength,
  huffmanMaxDecodedBytes,
} from "./huffman.ts";

/** A header field as decoded: names lower-case as sent, values as latin1 strings. */
export type HeaderField = [name: string, value: string];

/** Malformed header block: the connection must end with COMPRESSION_ERROR (RFC 9113 §4.3). */
export class HpackError extends Error {
  /** Creates the error; the message says what was malformed. */
  constructor(message: string) {
    super(message);
    this.name = "HpackError";
  }
}

/** Limits of an {@link HpackDecoder}; both are what we advertise in our SETTINGS. */
export interface HpackDecoderOptions {
  /** Our SETTINGS_HEADER_TABLE_SIZE: the largest dynamic table the peer may ask for (bytes). */
  maxTableBytes: number;
  /** Our SETTINGS_MAX_HEADER_LIST_SIZE: decoded size (RFC 9113 §6.5.2: name+value+32 per field). */
  maxHeaderListBytes: number;
}

/** RFC 7541 §4.1: the size of a table entry (and RFC 9113 §6.5.2: of a header list field). */
const ENTRY_OVERHEAD_BYTES = 32;

/**
 * The initial SETTINGS_HEADER_TABLE_SIZE (RFC 9113 §6.5.2): the dynamic table size a peer's
 * decoder starts with.
 */
export const DEFAULT_HEADER_TABLE_BYTES = 4096;

/** Integers are bounded (RFC 7541 §5.1 leaves the limit to the implementation). */
const MAX_INTEGER = 0x7fffffff;
/** Continuation bytes of an integer: 5 carry 35 bits, more than {@link MAX_INTEGER} needs. */
const MAX_INTEGER_CONTINUATION_BYTES = 5;

/** RFC 7541 Appendix A: the static table, index 1 to 61. */
const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ["accept-language", ""],
  ["accept-ranges", ""],
  ["accept", ""],
  ["access-control-allow-origin", ""],
  ["age", ""],
  ["allow", ""],
  ["authorization", ""],
  ["cache-control", ""],
  ["content-disposition", ""],
  ["content-encoding", ""],
  ["content-language", ""],
  ["content-length", ""],
  ["content-location", ""],
  ["content-range", ""],
  ["content-type", ""],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["expect", ""],
  ["expires", ""],
  ["from", ""],
  ["host", ""],
  ["if-match", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["if-range", ""],
  ["if-unmodified-since", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["max-forwards", ""],
  ["proxy-authenticate", ""],
  ["proxy-authorization", ""],
  ["range", ""],
  ["referer", ""],
  ["refresh", ""],
  ["retry-after", ""],
  ["server", ""],
  ["set-cookie", ""],
  ["strict-transport-security", ""],
  ["transfer-encoding", ""],
  ["user-agent", ""],
  ["vary", ""],
  ["via", ""],
  ["www-authenticate", ""],
];

/** The number of static table entries; dynamic indices start after it (RFC 7541 §2.3.3). */
export const STATIC_TABLE_LENGTH = 61;
assert(STATIC_TABLE.length === STATIC_TABLE_LENGTH, "RFC 7541 Appendix A has 61 entries");

/** Static names and values by HPACK index (1-based; slot 0 unused). */
const STATIC_NAMES: readonly string[] = ["", ...STATIC_TABLE.map(([name]) => name)];
const STATIC_VALUES: readonly string[] = ["", ...STATIC_TABLE.map(([, value]) => value)];
/** The first static index of each name; entries with one name are adjacent in Appendix A. */
const STATIC_NAME_INDEX: ReadonlyMap<string, number> = new Map(
  STATIC_TABLE.map(([name], i) => [name, i + 1] as const).reverse(),
);

/**
 * The dynamic table (RFC 7541 §2.3.2, §4): a FIFO ring of entries, newest at relative index 0,
 * with byte accounting. Every entry is at least 32 bytes, so `capacityBytes / 32` slots always
 * suffice.
 */
class DynamicTable {
  readonly #names: string[];
  readonly #values: string[];
  readonly #slotMask: number;
  #newestSlot = 0;
  #count = 0;
  #bytes = 0;
  #limitBytes: number;

  constructor(capacityBytes: number) {
    let slots = 1;
    while (slots < capacityBytes / ENTRY_OVERHEAD_BYTES) slots *= 2;
    this.#names = new Array<string>(slots).fill("");
    this.#values = new Array<string>(slots).fill("");
    this.#slotMask = slots - 1;
    this.#limitBytes = capacityBytes;
  }

  get count(): number {
    return this.#count;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get limitBytes(): number {
    return this.#limitBytes;
  }

  /** The name of the entry `age` insertions old (0 = newest); `age < count`. */
  name(age: number): string {
    return this.#names[(this.#newestSlot - age) & this.#slotMask];
  }

  /** The value of the entry `age` insertions old (0 = newest); `age < count`. */
  value(age: number): string {
    return this.#values[(this.#newestSlot - age) & this.#slotMask];
  }

  /**
   * RFC 7541 §4.4: evicts from the old end until the new entry fits; an entry larger than the
   * whole table empties it and is not added.
   */
  insert(name: string, value: string, entryBytes: number): void {
    if (entryBytes > this.#limitBytes) {
      while (this.#count > 0) this.#evictOldest();
      return;
    }
    while (this.#bytes + entryBytes > this.#limitBytes) this.#evictOldest();
    assert(this.#count <= this.#slotMask, "dynamic table ring is full");
    this.#newestSlot = (this.#newestSlot + 1) & this.#slotMask;
    this.#names[this.#newestSlot] = name;
    this.#values[this.#newestSlot] = value;
    this.#count++;
    this.#bytes += entryBytes;
  }

  /** RFC 7541 §4.3: a new maximum size evicts from the old end until the table fits. */
  setLimit(limitBytes: number): void {
    this.#limitBytes = limitBytes;
    while (this.#bytes > limitBytes) this.#evictOldest();
  }

  #evictOldest(): void {
    const slot = (this.#newestSlot - this.#count + 1) & this.#slotMask;
    this.#bytes -= this.#names[slot].length + this.#values[slot].length + ENTRY_OVERHEAD_BYTES;
    this.#names[slot] = "";
    this.#values[slot] = "";
    this.#count--;
  }
}

/** Stands for "no block" between decode() calls (allocating a typed array costs ~1 µs). */
const NO_BYTES = new Uint8Array(0);

/** Huffman-decoded strings up to this size are decoded into one shared buffer. */
const HUFFMAN_SCRATCH_BYTES = 4096;
/** Shared by all decoders: decode() runs to completion synchronously. */
const huffmanScratch = Buffer.alloc(HUFFMAN_SCRATCH_BYTES);
/** Below this length a char-by-char string beats a native latin1 decode (measured). */
const SHORT_STRING_BYTES = 8;

/** A short latin1 string from `bytes[start, end)`, one char at a time. */
function shortLatin1String(bytes: Uint8Array, start: number, end: number): string {
  let text = "";
  for (let i = start; i < end; i++) text += String.fromCharCode(bytes[i]);
  return text;
}

/**
 * Decodes HPACK header blocks of one HTTP/2 connection (RFC 7541 §3, §6). It keeps the dynamic
 * table in step with the peer's encoder, so every block of the connection must pass through it in
 * order; after an {@link HpackError} its state is undefined and the connection must end.
 */
export class HpackDecoder {
  readonly #maxTableBytes: number;
  readonly #maxHeaderListBytes: number;
  readonly #table: DynamicTable;
  // The block being decoded and the read position in it.
  #block: Uint8Array = NO_BYTES;
  #blockBuffer: Buffer | undefined;
  #pos = 0;
  // Where the last string read by #readString() lies: `#stringBytes[#stringStart, #stringEnd)`,
  // either in the block (raw) or in a decode buffer (Huffman).
  #stringInBlock = false;
  #stringBytes: Buffer = huffmanScratch;
  #stringStart = 0;
  #stringEnd = 0;

  /** Creates a decoder whose dynamic table starts at `options.maxTableBytes`. */
  constructor(options: HpackDecoderOptions) {
    const { maxTableBytes, maxHeaderListBytes } = options;
    assert(
      Number.isSafeInteger(maxTableBytes) && maxTableBytes >= 0 && maxTableBytes <= MAX_INTEGER,
      "maxTableBytes must be an integer in [0, 2^31)",
    );
    assert(
      Number.isSafeInteger(maxHeaderListBytes) && maxHeaderListBytes >= 0,
      "maxHeaderListBytes must be a non-negative integer",
    );
    this.#maxTableBytes = maxTableBytes;
    this.#maxHeaderListBytes = maxHeaderListBytes;
    this.#table = new DynamicTable(maxTableBytes);
  }

  /** The dynamic table's current size (RFC 7541 §4.1), in bytes. */
  get dynamicTableBytes(): number {
    return this.#table.bytes;
  }

  /** The dynamic table's current maximum size, as last set by the peer (RFC 7541 §4.2). */
  get dynamicTableLimitBytes(): number {
    return this.#table.limitBytes;
  }

  /** A copy of the dynamic table, newest entry first (HPACK index 62 onwards). */
  dynamicTableEntries(): HeaderField[] {
    const entries: HeaderField[] = [];
    for (let age = 0; age < this.#table.count; age++) {
      entries.push([this.#table.name(age), this.#table.value(age)]);
    }
    return entries;
  }

  /**
   * Decodes one complete header block (HEADERS + CONTINUATION fragments already joined).
   * Returns the fields in order, or `null` when the decoded list exceeds maxHeaderListBytes: the
   * block is still decoded to the end so the dynamic table stays in step with the peer's encoder,
   * but no field strings beyond the limit are kept (bounded memory); the caller answers 431 /
   * resets just that stream. Throws HpackError for malformed input (bad integer/overflow, index
   * out of range, truncated string, invalid Huffman padding/EOS, table size update above
   * maxTableBytes or not at the start of the block, ...).
   */
  decode(block: Uint8Array): HeaderField[] | null {
    this.#block = block;
    this.#blockBuffer = undefined;
    this.#pos = 0;
    const table = this.#table;
    const maxListBytes = this.#maxHeaderListBytes;
    let fields: HeaderField[] | null = [];
    let listBytes = 0;
    let atBlockStart = true;
    while (this.#pos < block.length) {
      const first = block[this.#pos];
      if (first >= 0x80) {
        // §6.1 Indexed Header Field.
        atBlockStart = false;
        const index = this.#readInteger(7);
        let name: string;
        let value: string;
        if (index <= STATIC_TABLE_LENGTH) {
          if (index === 0) throw new HpackError("indexed header field with index 0");
          name = STATIC_NAMES[index];
          value = STATIC_VALUES[index];
        } else {
          const age = index - STATIC_TABLE_LENGTH - 1;
          if (age >= table.count) throw new HpackError(`header index ${index} is past the table`);
          name = table.name(age);
          value = table.value(age);
        }
        listBytes += name.length + value.length + ENTRY_OVERHEAD_BYTES;
        if (fields !== null) {
          if (listBytes <= maxListBytes) fields.push([name, value]);
          else fields = null;
        }
        continue;
      }
      if ((first & 0xe0) === 0x20) {
        // §6.3 Dynamic Table Size Update: only before the first field (§4.2).
        if (!atBlockStart) throw new HpackError("dynamic table size update after a header field");
        const limitBytes = this.#readInteger(5);
        if (limitBytes > this.#maxTableBytes) {
          throw new HpackError(
            `dynamic table size update to ${limitBytes} exceeds SETTINGS_HEADER_TABLE_SIZE ${this.#maxTableBytes}`,
          );
        }
        table.setLimit(limitBytes);
        continue;
      }
      // §6.2.1 with incremental indexing (01), §6.2.2 without indexing (0000), §6.2.3 never
      // indexed (0001): the same layout with a 6- or 4-bit name index.
      atBlockStart = false;
      const indexing = first >= 0x40;
      const nameIndex = this.#readInteger(indexing ? 6 : 4);
      let name = "";
      let nameBytes: number;
      if (nameIndex === 0) {
        nameBytes = this.#readString(fields !== null || indexing);
        // Made into a string only if the field can still be listed or stored.
        const listable = fields !== null &&
          listBytes + nameBytes + ENTRY_OVERHEAD_BYTES <= maxListBytes;
        const storable = indexing && nameBytes + ENTRY_OVERHEAD_BYTES <= table.limitBytes;
        if (listable || storable) name = this.#lastString();
      } else {
        name = this.#nameAt(nameIndex);
        nameBytes = name.length;
      }
      const keepField = fields !== null;
      const valueBytes = this.#readString(keepField || indexing);
      const fieldBytes = nameBytes + valueBytes + ENTRY_OVERHEAD_BYTES;
      listBytes += fieldBytes;
      const listed = keepField && listBytes <= maxListBytes;
      const stored = indexing && fieldBytes <= table.limitBytes;
      const value = listed || stored ? this.#lastString() : "";
      if (indexing) table.insert(name, value, fieldBytes);
      if (fields !== null) {
        if (listed) fields.push([name, value]);
        else fields = null;
      }
    }
    // Let go of the block and of any one-off Huffman buffer.
    this.#block = NO_BYTES;
    this.#blockBuffer = undefined;
    this.#stringBytes = huffmanScratch;
    return fields;
  }

  /** The name of header table entry `index` (1-based, static then dynamic; RFC 7541 §2.3.3). */
  #nameAt(index: number): string {
    if (index <= STATIC_TABLE_LENGTH) return STATIC_NAMES[index];
    const age = index - STATIC_TABLE_LENGTH - 1;
    if (age >= this.#table.count) throw new HpackError(`name index ${index} is past the table`);
    return this.#table.name(age);
  }

  /** RFC 7541 §5.1: an integer with an N-bit prefix, at most {@link MAX_INTEGER}. */
  #readInteger(prefixBits: number): number {
    const block = this.#block;
    const prefixMax = (1 << prefixBits) - 1;
    let value = block[this.#pos++] & prefixMax;
    if (value < prefixMax) return value;
    let weight = 1;
    for (let i = 0; i < MAX_INTEGER_CONTINUATION_BYTES; i++) {
      if (this.#pos >= block.length) throw new HpackError("truncated integer");
      const byte = block[this.#pos++];
      value += (byte & 0x7f) * weight;
      if (value > MAX_INTEGER) throw new HpackError("integer exceeds 2^31 - 1");
      if (byte < 0x80) return value;
      weight *= 128;
    }
    throw new HpackError("integer has too many continuation bytes");
  }

  /**
   * RFC 7541 §5.2: reads a string literal and returns its decoded length. When `keep`, the
   * decoded bytes are left for {@link #lastString}; otherwise a Huffman string is only checked.
   * The length prefix is checked against the bytes left before anything is allocated.
   */
  #readString(keep: boolean): number {
    const block = this.#block;
    if (this.#pos >= block.length) throw new HpackError("truncated string literal");
    const huffman = block[this.#pos] >= 0x80;
    const encodedBytes = this.#readInteger(7);
    const start = this.#pos;
    if (encodedBytes > block.length - start) throw new HpackError("truncated string literal");
    const end = start + encodedBytes;
    this.#pos = end;
    if (!huffman) {
      if (keep) {
        this.#stringInBlock = true;
        this.#stringStart = start;
        this.#stringEnd = end;
      }
      return encodedBytes;
    }
    if (!keep) {
      const decodedBytes = huffmanDecodedLength(block, start, end);
      if (decodedBytes < 0) throw new HpackError("invalid Huffman-coded string");
      return decodedBytes;
    }
    const maxDecodedBytes = huffmanMaxDecodedBytes(encodedBytes);
    const out = maxDecodedBytes <= HUFFMAN_SCRATCH_BYTES
      ? huffmanScratch
      : Buffer.alloc(maxDecodedBytes);
    const decodedBytes = huffmanDecode(block, start, end, out);
    if (decodedBytes < 0) throw new HpackError("invalid Huffman-coded string");
    this.#stringInBlock = false;
    this.#stringBytes = out;
    this.#stringStart = 0;
    this.#stringEnd = decodedBytes;
    return decodedBytes;
  }

  /**
   * The string last read by {@link #readString} with `keep`. Long ones use Buffer's latin1
   * decoder: TextDecoder("latin1") is really windows-1252, wrong for bytes 0x80-0x9f.
   */
  #lastString(): string {
    const start = this.#stringStart;
    const end = this.#stringEnd;
    if (this.#stringInBlock) {
      const block = this.#block;
      if (end - start <= SHORT_STRING_BYTES) return shortLatin1String(block, start, end);
      this.#blockBuffer ??= Buffer.isBuffer(block)
        ? block
        : Buffer.from(block.buffer, block.byteOffset, block.byteLength);
      return this.#blockBuffer.toString("latin1", start, end);
    }
    if (end - start <= SHORT_STRING_BYTES) return shortLatin1String(this.#stringBytes, start, end);
    return this.#stringBytes.toString("latin1", start, end);
  }
}

/**
 * Encoded blocks are carved out of shared chunks of this size, never overwritten, so a block
 * costs a subarray instead of a fresh typed array (~1 µs each, measured). A block that may need
 * more than half a chunk gets a buffer of its own.
 */
const ENCODE_CHUNK_BYTES = 16 * 1024;
let encodeChunk = new Uint8Array(ENCODE_CHUNK_BYTES);
let encodeChunkUsed = 0;
/** Bytes an integer of at most 2^35 takes (RFC 7541 §5.1: prefix byte + 5 continuation bytes). */
const MAX_INTEGER_BYTES = 6;

/** RFC 7541 §5.1: writes `value` with an N-bit prefix after `flags`; returns the next offset. */
function writeInteger(
  out: Uint8Array,
  at: number,
  flags: number,
  prefixBits: number,
  value: number,
): number {
  const prefixMax = (1 << prefixBits) - 1;
  if (value < prefixMax) {
    out[at++] = flags | value;
    return at;
  }
  out[at++] = flags | prefixMax;
  let rest = value - prefixMax;
  while (rest >= 0x80) {
    out[at++] = (rest & 0x7f) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  out[at++] = rest;
  return at;
}

/** RFC 7541 §5.2: writes a string literal, Huffman-coded only when that is shorter. */
function writeString(out: Uint8Array, at: number, text: string): number {
  const huffmanBytes = huffmanEncodedLength(text);
  if (huffmanBytes < text.length) {
    at = writeInteger(out, at, 0x80, 7, huffmanBytes);
    return huffmanEncode(text, out, at);
  }
  at = writeInteger(out, at, 0, 7, text.length);
  for (let i = 0; i < text.length; i++) out[at++] = text.charCodeAt(i);
  return at;
}

/**
 * Encodes header blocks for one HTTP/2 connection without ever inserting into the dynamic table:
 * the peer's decoder keeps no state for us, so blocks can be encoded in any order.
 */
export class HpackEncoder {
  /** The dynamic table size the peer's decoder uses for us, as far as we have signalled it. */
  #peerTableBytes = DEFAULT_HEADER_TABLE_BYTES;
  #sizeUpdatePending = false;

  /** Creates an encoder for a peer with the default SETTINGS_HEADER_TABLE_SIZE. */
  constructor() {}

  /**
   * The peer's SETTINGS_HEADER_TABLE_SIZE changed. This encoder never inserts into its dynamic
   * table, but RFC 7541 §4.2 / nghttp2 require a "dynamic table size update" at the start of the
   * next block when the peer lowered it: emit one (value = min(new, 4096) or simply 0) in the next
   * encode().
   */
  setPeerMaxTableBytes(bytes: number): void {
    assert(Number.isSafeInteger(bytes) && bytes >= 0, "SETTINGS_HEADER_TABLE_SIZE is an integer");
    // Size 0 satisfies every later setting too, so at most one update is ever sent.
    if (bytes < this.#peerTableBytes) this.#sizeUpdatePending = true;
  }

  /**
   * Encodes fields without touching the dynamic table: an exact static-table match is a one-byte
   * indexed field; otherwise "literal without indexing" with the static name index when the name
   * is in the static table, else a literal name; strings Huffman-coded only when shorter.
   * Names must already be lower-case.
   */
  encode(fields: readonly HeaderField[]): Uint8Array {
    let maxBytes = MAX_INTEGER_BYTES;
    for (const [name, value] of fields) {
      maxBytes += name.length + value.length + 3 * MAX_INTEGER_BYTES;
    }
    let out = encodeChunk;
    let start = encodeChunkUsed;
    if (maxBytes > out.length - start) {
      if (maxBytes > ENCODE_CHUNK_BYTES / 2) {
        out = new Uint8Array(maxBytes);
      } else {
        out = encodeChunk = new Uint8Array(ENCODE_CHUNK_BYTES);
        encodeChunkUsed = 0;
      }
      start = 0;
    }
    let at = start;
    if (this.#sizeUpdatePending) {
      at = writeInteger(out, at, 0x20, 5, 0); // §6.3
      this.#peerTableBytes = 0;
      this.#sizeUpdatePending = false;
    }
    for (const [name, value] of fields) {
      const nameIndex = STATIC_NAME_INDEX.get(name) ?? 0;
      if (nameIndex !== 0) {
        let index = nameIndex;
        while (index <= STATIC_TABLE_LENGTH && STATIC_NAMES[index] === name) {
          if (STATIC_VALUES[index] === value) break;
          index++;
        }
        if (index <= STATIC_TABLE_LENGTH && STATIC_NAMES[index] === name) {
          at = writeInteger(out, at, 0x80, 7, index); // §6.1
          continue;
        }
      }
      at = writeInteger(out, at, 0x00, 4, nameIndex); // §6.2.2
      if (nameIndex === 0) at = writeString(out, at, name);
      at = writeString(out, at, value);
    }
    assert(at - start <= maxBytes, "encoded header block overran its size bound");
    if (out === encodeChunk) encodeChunkUsed = at;
    return out.subarray(start, at);
  }
}
