/**
 * Helpers shared by the WAL tests (not part of the public surface).
 *
 * @module
 */
import type { WalEntry } from "./codec.ts";
import { segmentPath } from "./segment.ts";

/** Runs `fn` with a fresh temporary directory that is removed afterwards. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "wal_test_" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** An entry whose data names its index and term, so replacements are visible. */
export function entry(index: number, term = 1, size = 0): WalEntry {
  const text = new TextEncoder().encode(`e${index}t${term}`);
  const data = new Uint8Array(Math.max(size, text.length));
  data.set(text);
  return { index, term, type: 0, data };
}

/** Entries `from..to` inclusive. */
export function entries(from: number, to: number, term = 1, size = 0): WalEntry[] {
  const out: WalEntry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term, size));
  return out;
}

/** The segment file names in `dir`, sorted. */
export async function segmentFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".wal")) names.push(e.name);
  return names.sort();
}

/** Reads, edits in place and writes back a file of `dir`. */
export async function editFile(
  dir: string,
  name: string,
  edit: (bytes: Uint8Array) => Uint8Array | void,
): Promise<void> {
  const path = segmentPath(dir, name);
  const bytes = await Deno.readFile(path);
  await Deno.writeFile(path, edit(bytes) ?? bytes);
}

/** The size in bytes of a file of `dir`. */
export async function fileSize(dir: string, name: string): Promise<number> {
  return (await Deno.stat(segmentPath(dir, name))).size;
}

/** Collects warnings instead of printing them. */
export function warnings(): { warn: (m: string) => void; messages: string[] } {
  const messages: string[] = [];
  return { warn: (m) => messages.push(m), messages };
}

/** The entry the crash writer saves at `index`: size and bytes follow from the index alone. */
export function crashEntry(index: number): WalEntry {
  const data = new Uint8Array(1 + (index * 37) % 1500);
  for (let i = 0; i < data.length; i++) data[i] = (index + i * 7) & 0xff;
  return { index, term: 1, type: 0, data };
}
