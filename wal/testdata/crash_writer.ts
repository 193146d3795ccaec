/**
 * Child process of the crash test: appends batches to the log in `Deno.args[0]` forever and
 * prints `acked N` once each save covering up to index N has resolved. The parent kills it
 * with SIGKILL at an arbitrary moment and checks that every acknowledged index survived.
 *
 * @module
 */
import { utf8 } from "../../internal/bytes.ts";
import { Wal } from "../wal.ts";
import { crashEntry } from "../test_helpers.ts";

const [dir, segmentArg] = Deno.args;
const options = { maxSegmentBytes: Number(segmentArg) };
const wal = await Wal.exists(dir)
  ? (await Wal.open(dir, options)).wal
  : await Wal.create(dir, utf8("crash test"), options);

const MAX_SAVES = 1_000_000;
let next = wal.lastIndex + 1;
for (let i = 0; i < MAX_SAVES; i++) {
  const count = 1 + (i % 20);
  const batch = [];
  for (let k = 0; k < count; k++) batch.push(crashEntry(next + k));
  await wal.save({ term: 1, vote: 1n, commit: next - 1 }, batch);
  next += count;
  await Deno.stdout.write(utf8(`acked ${next - 1}\n`));
}
