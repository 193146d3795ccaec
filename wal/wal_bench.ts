/**
 * Microbenchmarks of the write path: one save (one write + one fdatasync) of 1 and of 100
 * entries of 300 bytes, on a temporary directory of the machine's disk.
 * Run with `deno bench -A wal/wal_bench.ts`.
 *
 * @module
 */
import { crc32c } from "../internal/crc32c.ts";
import { utf8 } from "../internal/bytes.ts";
import { Wal, type WalEntry } from "./mod.ts";

const root = await Deno.makeTempDir({ prefix: "wal_bench_" });
globalThis.addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));

const data = new Uint8Array(300).fill(0x61);

async function openLog(name: string): Promise<{ wal: Wal; next: () => number }> {
  const wal = await Wal.create(`${root}/${name}`, utf8("bench"));
  let index = 0;
  return { wal, next: () => ++index };
}

function batch(next: () => number, count: number): WalEntry[] {
  const out: WalEntry[] = [];
  for (let i = 0; i < count; i++) out.push({ index: next(), term: 1, type: 0, data });
  return out;
}

const one = await openLog("one");
const hundred = await openLog("hundred");

Deno.bench("save 1 entry of 300 B (write + fdatasync)", { group: "save" }, async () => {
  await one.wal.save({ term: 1, vote: 1n, commit: 0 }, batch(one.next, 1));
});

Deno.bench("save 100 entries of 300 B (write + fdatasync)", { group: "save" }, async () => {
  await hundred.wal.save({ term: 1, vote: 1n, commit: 0 }, batch(hundred.next, 100));
});

const block = new Uint8Array(32 * 1024).fill(0x5a);
Deno.bench("crc32c of 32 KiB", { group: "crc" }, () => {
  crc32c(block);
});
