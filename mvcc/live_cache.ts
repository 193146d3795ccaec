/**
 * A bounded, least-recently-used cache of live key-values: the current version of hot keys,
 * kept coherent by the store's own writes. It serves single-key reads at the current revision
 * and the previous-value lookup of every put without a SQLite query, which the read-path
 * profile showed as the largest cost left in our own code. Values still live in SQLite; the
 * cache holds at most `maxBytes` of keys and values.
 *
 * @module
 */
import type { KeyValue } from "./types.ts";

/** Bookkeeping bytes charged per entry on top of its key and value. */
const entryOverheadBytes = 96;

function cacheKey(key: Uint8Array): string {
  // latin1 maps each byte to one UTF-16 unit: a collision-free string key for any bytes.
  let s = "";
  for (let i = 0; i < key.length; i++) s += String.fromCharCode(key[i]);
  return s;
}

/** The cache. */
export class LiveCache {
  readonly #maxBytes: number;
  #bytes = 0;
  /** Map iteration order is insertion order: the first entry is the least recently used. */
  readonly #entries = new Map<string, KeyValue>();

  /** Creates a cache holding at most `maxBytes` (0 disables it). */
  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** The cached live version of `key`, if cached. */
  get(key: Uint8Array): KeyValue | undefined {
    if (this.#maxBytes === 0) return undefined;
    const k = cacheKey(key);
    const kv = this.#entries.get(k);
    if (kv !== undefined) {
      this.#entries.delete(k);
      this.#entries.set(k, kv);
    }
    return kv;
  }

  /** Records `kv` as the live version of its key (copies the bytes it keeps). */
  set(kv: KeyValue): void {
    const size = kv.key.length + kv.value.length + entryOverheadBytes;
    if (size > this.#maxBytes) {
      this.delete(kv.key);
      return;
    }
    const k = cacheKey(kv.key);
    this.#drop(k);
    this.#entries.set(k, { ...kv, key: kv.key.slice(), value: kv.value.slice() });
    this.#bytes += size;
    for (const [oldest, old] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#drop(oldest, old);
    }
  }

  /** Forgets `key` (it was deleted). */
  delete(key: Uint8Array): void {
    if (this.#maxBytes === 0) return;
    this.#drop(cacheKey(key));
  }

  /** Bytes accounted to cached entries. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Entries cached. */
  get size(): number {
    return this.#entries.size;
  }

  #drop(k: string, kv = this.#entries.get(k)): void {
    if (kv === undefined) return;
    this.#entries.delete(k);
    this.#bytes -= kv.key.length + kv.value.length + entryOverheadBytes;
  }
}
