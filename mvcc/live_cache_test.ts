import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { LiveCache } from "./live_cache.ts";
import type { KeyValue } from "./types.ts";

const kv = (key: string, value: string, rev = 2): KeyValue => ({
  key: new TextEncoder().encode(key),
  value: new TextEncoder().encode(value),
  createRevision: rev,
  modRevision: rev,
  version: 1,
  lease: 0n,
});

Deno.test("LiveCache returns what was set, forgets deletes, keeps its own copies", () => {
  const cache = new LiveCache(1 << 20);
  const a = kv("a", "1");
  cache.set(a);
  a.value[0] = 0x39; // the caller's buffer changes later: the cache must not see it
  strictEqual(new TextDecoder().decode(cache.get(kv("a", "").key)!.value), "1");
  cache.delete(kv("a", "").key);
  strictEqual(cache.get(kv("a", "").key), undefined);
  strictEqual(cache.bytes, 0);
});

Deno.test("LiveCache keeps binary keys apart and stays within its byte bound, LRU first", () => {
  const cache = new LiveCache(3 * (96 + 2));
  cache.set({ ...kv("", "x"), key: new Uint8Array([0xff]) });
  cache.set({ ...kv("", "y"), key: new Uint8Array([0xfe]) });
  cache.get(new Uint8Array([0xff])); // 0xff is now more recent than 0xfe
  cache.set({ ...kv("", "z"), key: new Uint8Array([0x00]) });
  cache.set({ ...kv("", "w"), key: new Uint8Array([0x01]) });
  strictEqual(cache.bytes <= 3 * 98, true);
  strictEqual(cache.get(new Uint8Array([0xfe])), undefined, "least recently used evicted");
  deepStrictEqual(cache.get(new Uint8Array([0xff]))?.value, new TextEncoder().encode("x"));
  strictEqual(cache.size, 3);
});

Deno.test("LiveCache refuses entries larger than itself and a zero bound disables it", () => {
  const small = new LiveCache(100);
  small.set(kv("k", "v".repeat(200)));
  strictEqual(small.size, 0);
  const off = new LiveCache(0);
  off.set(kv("k", "v"));
  strictEqual(off.get(kv("k", "").key), undefined);
});
