import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { concatBytes, utf8 } from "../internal/bytes.ts";
import { crc32c } from "../internal/crc32c.ts";
import { Wal, WalCorruptError } from "./mod.ts";
import { HEADER_BYTES, readRecord } from "./record.ts";
import { segmentPath } from "./segment.ts";
import {
  editFile,
  entries,
  entry,
  fileSize,
  segmentFiles,
  warnings,
  withTempDir,
} from "./test_helpers.ts";

const META = utf8("node=1 cluster=7");
const MAX_RECORD = 64 * 1024 * 1024;
/** Small segments keep these tests fast; the last one is still preallocated to this size. */
const OPTS = { maxSegmentBytes: 8192 };

/** Start offsets of the valid records of a segment file. */
function recordOffsets(bytes: Uint8Array): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: number[] = [];
  let at = 0;
  let crc = 0;
  while (at < bytes.length) {
    const r = readRecord(bytes, view, at, crc, MAX_RECORD, out.length === 0);
    if (!r.ok) break;
    out.push(at);
    crc = r.crc;
    at = r.payloadEnd;
  }
  return out;
}

/** Offsets of the records of segment `name` in `dir`. */
async function offsetsOf(dir: string, name: string): Promise<number[]> {
  return recordOffsets(await Deno.readFile(segmentPath(dir, name)));
}

/**
 * A one-segment log holding entries 1..2 (one save each, plus a hard state) and then
 * `last` as the final save. Returns the segment and the byte range of that final save.
 */
async function buildLog(dir: string, last = [entry(3, 1, 40)]) {
  const wal = await Wal.create(dir, META, OPTS);
  await wal.save({ term: 1, vote: 1n, commit: 1 }, [entry(1)]);
  await wal.save(null, [entry(2)]);
  const [name] = wal.segmentNames;
  const lastStart = wal.tailOffset;
  await wal.save(null, last);
  const lastEnd = wal.tailOffset;
  await wal.close();
  strictEqual(wal.segmentNames.length, 1);
  strictEqual(await fileSize(dir, name), OPTS.maxSegmentBytes, "the segment is preallocated");
  return { name, lastStart, lastEnd };
}

async function copyLog(from: string, to: string): Promise<void> {
  await Deno.mkdir(to);
  for (const f of await segmentFiles(from)) await Deno.copyFile(`${from}/${f}`, `${to}/${f}`);
}

Deno.test("a torn final record is repaired at every truncation length", () =>
  withTempDir(async (root) => {
    const template = `${root}/template`;
    const { name, lastStart, lastEnd } = await buildLog(template);
    ok(lastEnd - lastStart > HEADER_BYTES + 40);
    for (let cut = lastStart; cut < lastEnd; cut++) {
      const dir = `${root}/cut${cut}`;
      await copyLog(template, dir);
      await Deno.truncate(segmentPath(dir, name), cut);

      const w = warnings();
      const { wal, state } = await Wal.open(dir, { ...OPTS, warn: w.warn });
      deepStrictEqual(state.entries, entries(1, 2), `cut at ${cut}`);
      deepStrictEqual(state.hardState, { term: 1, vote: 1n, commit: 1 });
      if (cut === lastStart) strictEqual(w.messages.length, 0, "a clean end is no tear");
      else {
        strictEqual(w.messages.length, 1, `cut at ${cut}`);
        ok(
          w.messages[0].includes(name) && w.messages[0].includes(`offset ${lastStart}`),
          w.messages[0],
        );
      }
      const repaired = await Deno.readFile(segmentPath(dir, name));
      strictEqual(repaired.length, OPTS.maxSegmentBytes, "the preallocation is restored");
      ok(repaired.subarray(lastStart).every((b) => b === 0), "the torn bytes are gone");

      await wal.save({ term: 2, vote: 1n, commit: 3 }, [entry(3, 2)]);
      await wal.close();
      const w2 = warnings();
      const again = await Wal.open(dir, { ...OPTS, warn: w2.warn });
      deepStrictEqual(again.state.entries, [...entries(1, 2), entry(3, 2)]);
      deepStrictEqual(again.state.hardState, { term: 2, vote: 1n, commit: 3 });
      strictEqual(w2.messages.length, 0);
      await again.wal.close();
      await Deno.remove(dir, { recursive: true });
    }
  }));

Deno.test("torn tails of other shapes are repaired", async (t) => {
  const garbage = Uint8Array.from({ length: 300 }, (_, i) => (i * 167 + 13) & 0xff);
  const cases: Array<{
    name: string;
    last?: ReturnType<typeof entries>;
    damage: (bytes: Uint8Array, lastStart: number, offsets: number[]) => Uint8Array;
    want: ReturnType<typeof entries>;
  }> = [
    {
      name: "bad crc on the final record, zeros after it",
      damage: (b, s) => {
        b[s + HEADER_BYTES + 20] ^= 0xff;
        return concatBytes(b, new Uint8Array(4096));
      },
      want: entries(1, 2),
    },
    {
      name: "bad crc on the final record, garbage after it",
      damage: (b, s) => {
        b[s + HEADER_BYTES + 1] ^= 0x01;
        return concatBytes(b, garbage);
      },
      want: entries(1, 2),
    },
    {
      name: "damaged length of the final record",
      damage: (b, s) => {
        b[s + 1] ^= 0x40;
        return b;
      },
      want: entries(1, 2),
    },
    {
      name: "garbage after a complete log",
      damage: (b) => concatBytes(b, garbage),
      want: [...entries(1, 2), entry(3, 1, 40)],
    },
    {
      name: "a batch cut inside its third record keeps the records before",
      last: entries(3, 6, 1, 50),
      damage: (b, s, offsets) => {
        const third = offsets.filter((o) => o >= s)[2];
        return b.subarray(0, third + 30);
      },
      want: entries(1, 2, 1, 0).concat(entries(3, 4, 1, 50)),
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () =>
      withTempDir(async (dir) => {
        const { name, lastStart } = await buildLog(dir, c.last);
        const offsets = await offsetsOf(dir, name);
        await editFile(dir, name, (b) => c.damage(b, lastStart, offsets));
        const w = warnings();
        const { wal, state } = await Wal.open(dir, { ...OPTS, warn: w.warn });
        deepStrictEqual(state.entries, c.want);
        strictEqual(w.messages.length, 1);
        await wal.save(null, [entry(c.want.length + 1, 3)]);
        await wal.close();
        const again = await Wal.open(dir, OPTS);
        deepStrictEqual(again.state.entries, [...c.want, entry(c.want.length + 1, 3)]);
        await again.wal.close();
      }));
  }
});

Deno.test("the preallocated zeros after the log are no tear, and appends go before them", () =>
  withTempDir(async (dir) => {
    const { name, lastEnd } = await buildLog(dir);
    const w = warnings();
    const { wal, state } = await Wal.open(dir, { ...OPTS, warn: w.warn });
    deepStrictEqual(state.entries, [...entries(1, 2), entry(3, 1, 40)]);
    deepStrictEqual(w.messages, []);
    strictEqual(wal.tailOffset, lastEnd);
    await wal.save(null, [entry(4)]);
    await wal.close();
    strictEqual(await fileSize(dir, name), OPTS.maxSegmentBytes);
    const offsets = await offsetsOf(dir, name);
    strictEqual(offsets[offsets.length - 1], lastEnd, "the new record follows the old tail");
    const again = await Wal.open(dir, OPTS);
    deepStrictEqual(again.state.entries, [...entries(1, 2), entry(3, 1, 40), entry(4)]);
    await again.wal.close();
  }));

Deno.test("a segment written without preallocation gets it when opened", () =>
  withTempDir(async (dir) => {
    const { name, lastEnd } = await buildLog(dir);
    await Deno.truncate(segmentPath(dir, name), lastEnd);
    const w = warnings();
    const { wal, state } = await Wal.open(dir, { ...OPTS, warn: w.warn });
    deepStrictEqual(state.entries, [...entries(1, 2), entry(3, 1, 40)]);
    deepStrictEqual(w.messages, []);
    strictEqual(await fileSize(dir, name), OPTS.maxSegmentBytes);
    await wal.close();
  }));

/** A log of 40 entries over several segments; returns its segment names. */
async function buildSegmentedLog(dir: string): Promise<string[]> {
  const wal = await Wal.create(dir, META, { maxSegmentBytes: 400 });
  for (let i = 1; i <= 40; i++) await wal.save({ term: 1, vote: 1n, commit: i }, [entry(i, 1, 60)]);
  const names = wal.segmentNames;
  await wal.close();
  ok(names.length >= 4);
  return names;
}

Deno.test("damage that is not a torn tail is refused with WalCorruptError", async (t) => {
  const cases: Array<{
    name: string;
    damage: (dir: string) => Promise<{ file: string; offset?: number }>;
    message: RegExp;
  }> = [
    {
      name: "bad crc in the middle of the last segment",
      damage: async (dir) => {
        const { name } = await buildLog(dir);
        const offsets = await offsetsOf(dir, name);
        const second = offsets[offsets.length - 2];
        await editFile(dir, name, (b) => void (b[second + HEADER_BYTES + 3] ^= 0x10));
        return { file: name, offset: second };
      },
      message: /record checksum mismatch, yet a valid record follows/,
    },
    {
      name: "damaged length in the middle of the last segment",
      damage: async (dir) => {
        const { name } = await buildLog(dir);
        const offsets = await offsetsOf(dir, name);
        const second = offsets[offsets.length - 2];
        await editFile(dir, name, (b) => void (b[second] ^= 0x08));
        return { file: name, offset: second };
      },
      message: /header checksum mismatch, yet a valid record follows/,
    },
    {
      name: "bad crc on the final record of a segment that is not the last",
      damage: async (dir) => {
        const names = await buildSegmentedLog(dir);
        const offsets = await offsetsOf(dir, names[1]);
        const final = offsets[offsets.length - 1];
        await editFile(dir, names[1], (b) => void (b[final + HEADER_BYTES + 5] ^= 0x01));
        return { file: names[1], offset: final };
      },
      message: /record checksum mismatch/,
    },
    {
      name: "torn end of a segment that is not the last",
      damage: async (dir) => {
        const names = await buildSegmentedLog(dir);
        const offsets = await offsetsOf(dir, names[2]);
        const size = await fileSize(dir, names[2]);
        await Deno.truncate(segmentPath(dir, names[2]), size - 3);
        return { file: names[2], offset: offsets[offsets.length - 1] };
      },
      message: /short payload/,
    },
    {
      name: "a missing segment in the sequence",
      damage: async (dir) => {
        const names = await buildSegmentedLog(dir);
        await Deno.remove(segmentPath(dir, names[2]));
        return { file: names[3], offset: 0 };
      },
      message: /expected segment sequence 2 after .*: a segment is missing/,
    },
    {
      name: "segments renumbered over a missing one break the crc chain",
      damage: async (dir) => {
        const names = await buildSegmentedLog(dir);
        await Deno.remove(segmentPath(dir, names[1]));
        await Deno.rename(
          segmentPath(dir, names[2]),
          segmentPath(dir, "0000000000000001" + names[2].slice(16)),
        );
        for (let i = 3; i < names.length; i++) {
          const seq = (i - 1).toString(16).padStart(16, "0");
          await Deno.rename(segmentPath(dir, names[i]), segmentPath(dir, seq + names[i].slice(16)));
        }
        return { file: "0000000000000001" + names[2].slice(16), offset: 0 };
      },
      message: /a segment is missing or was replaced/,
    },
    {
      name: "a missing first segment without a snapshot mark",
      damage: async (dir) => {
        const names = await buildSegmentedLog(dir);
        await Deno.remove(segmentPath(dir, names[0]));
        return { file: names[1], offset: 0 };
      },
      message: /the log resumes at index \d+ but the snapshot mark is at index 0/,
    },
    {
      name: "a record length over the limit with a valid header crc, even at the tail",
      damage: async (dir) => {
        const { name, lastStart } = await buildLog(dir);
        await editFile(dir, name, (b) => {
          const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
          view.setUint32(lastStart, 0xfffffff0, true);
          view.setUint32(lastStart + 9, crc32c(b.subarray(lastStart, lastStart + 9)), true);
        });
        return { file: name, offset: lastStart };
      },
      message: /record length 4294967280 exceeds the limit/,
    },
    {
      name: "a damaged segment head",
      damage: async (dir) => {
        const { name } = await buildLog(dir);
        await editFile(dir, name, (b) => void (b[HEADER_BYTES + 4 + HEADER_BYTES + 2] ^= 0x01));
        return { file: name, offset: HEADER_BYTES + 4 };
      },
      message: /record checksum mismatch/,
    },
    {
      name: "a last segment cut inside its head",
      damage: async (dir) => {
        const names = await buildSegmentedLog(dir);
        const last = names[names.length - 1];
        await Deno.truncate(segmentPath(dir, last), 10);
        return { file: last, offset: 0 };
      },
      message: /short header/,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () =>
      withTempDir(async (dir) => {
        const where = await c.damage(dir);
        try {
          const { wal } = await Wal.open(dir);
          await wal.close();
          throw new Error("open succeeded on a corrupt log");
        } catch (e) {
          ok(e instanceof WalCorruptError, String(e));
          ok(c.message.test(e.message), e.message);
          strictEqual(e.file, where.file);
          if (where.offset !== undefined) strictEqual(e.offset, where.offset, e.message);
          ok(e.message.includes(where.file) && e.message.includes(`offset ${e.offset}`));
        }
        // Refusing must leave the files as they were, so an operator can inspect them.
        await rejects(Wal.open(dir), WalCorruptError);
      }));
  }
});

Deno.test("a segment whose creation never finished is discarded", () =>
  withTempDir(async (dir) => {
    await buildLog(dir);
    const tmp = "0000000000000001-0000000000000004.wal.tmp";
    await Deno.writeFile(segmentPath(dir, tmp), new Uint8Array(100).fill(9));
    const { wal, state } = await Wal.open(dir);
    deepStrictEqual(state.entries, [...entries(1, 2), entry(3, 1, 40)]);
    await wal.close();
    strictEqual((await Array.fromAsync(Deno.readDir(dir))).some((e) => e.name === tmp), false);
  }));
