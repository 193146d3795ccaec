import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { Wal } from "./mod.ts";
import { crashEntry, withTempDir } from "./test_helpers.ts";

const WRITER = new URL("./testdata/crash_writer.ts", import.meta.url).pathname;
const SEGMENT_BYTES = 64 * 1024;
const DEADLINE_MS = 60_000;

/**
 * Runs the writer until it has acknowledged at least `acks` saves, SIGKILLs it, and returns
 * the highest index it acknowledged.
 */
async function runAndKill(dir: string, acks: number): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", WRITER, dir, String(SEGMENT_BYTES)],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), DEADLINE_MS);
  let seen = 0;
  let highest = 0;
  let killed = false;
  let pending = "";
  const decoder = new TextDecoder();
  try {
    for await (const chunk of child.stdout) {
      pending += decoder.decode(chunk, { stream: true });
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        const m = /^acked (\d+)$/.exec(line);
        ok(m, `unexpected writer output: ${line}`);
        highest = Math.max(highest, Number(m[1]));
        seen++;
      }
      if (!killed && seen >= acks) {
        child.kill("SIGKILL");
        killed = true;
      }
    }
  } finally {
    clearTimeout(timer);
    const status = await child.status;
    strictEqual(status.signal, "SIGKILL");
  }
  ok(seen >= acks, `the writer acknowledged only ${seen} saves before the deadline`);
  return highest;
}

Deno.test("after SIGKILL every acknowledged save is present", () =>
  withTempDir(async (dir) => {
    let acknowledged = 0;
    for (const acks of [150, 40, 300, 7]) {
      const highest = await runAndKill(dir, acks);
      ok(highest > acknowledged);
      acknowledged = highest;
      const { wal, state } = await Wal.open(dir, {
        warn: () => {},
        maxSegmentBytes: SEGMENT_BYTES,
      });
      ok(
        state.entries.length >= acknowledged,
        `only ${state.entries.length} entries survive, ${acknowledged} were acknowledged`,
      );
      state.entries.forEach((e, i) => deepStrictEqual(e, crashEntry(i + 1)));
      ok(state.hardState !== null && state.hardState.commit < state.entries.length);
      ok(wal.segmentNames.length > 1);
      await wal.close();
    }
  }));
