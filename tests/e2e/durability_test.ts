/**
 * Durability of our server's storage: writes acknowledged under concurrent load survive
 * kill -9; a torn WAL tail is repaired at start-up; corruption elsewhere refuses to start,
 * says why, and leaves the data untouched for the operator.
 *
 * @module
 */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { Wal } from "../../wal/mod.ts";
import { freePort, type Member, memberCommand, startMember } from "./harness.ts";

const b64 = (s: string) => btoa(s);

async function put(clientUrl: string, key: string, value: string): Promise<number> {
  const res = await fetch(`${clientUrl}/v3/kv/put`, {
    method: "POST",
    body: JSON.stringify({ key: b64(key), value: b64(value) }),
  });
  if (res.status !== 200) throw new Error(`put ${key}: HTTP ${res.status} ${await res.text()}`);
  return Number((await res.json()).header.revision);
}

async function rangeAll(clientUrl: string): Promise<Map<string, { value: string; rev: number }>> {
  const res = await fetch(`${clientUrl}/v3/kv/range`, {
    method: "POST",
    body: JSON.stringify({ key: b64("\0"), range_end: b64("\0") }),
  });
  const body = await res.json();
  const out = new Map<string, { value: string; rev: number }>();
  for (const kv of body.kvs ?? []) {
    out.set(atob(kv.key), { value: atob(kv.value ?? ""), rev: Number(kv.mod_revision) });
  }
  return out;
}

async function walSegments(dataDir: string): Promise<string[]> {
  const dir = join(dataDir, "member", "wal");
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".wal")) names.push(e.name);
  return names.sort().map((n) => join(dir, n));
}

/** Where the last WAL segment's records end (it is preallocated: zeros follow them). */
async function recordsEnd(dataDir: string): Promise<number> {
  const { wal } = await Wal.open(join(dataDir, "member", "wal"), { warn: () => {} });
  try {
    return wal.tailOffset;
  } finally {
    await wal.close();
  }
}

async function withDataDir(fn: (dataDir: string) => Promise<void>): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "e2e-durable-" });
  try {
    await fn(dataDir);
  } finally {
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

Deno.test("ours: writes acknowledged by concurrent clients survive kill -9 mid-load", async () => {
  await withDataDir(async (dataDir) => {
    let member: Member | undefined = await startMember({ impl: "ours", dataDir });
    try {
      const { clientPort, peerPort, name, clientUrl } = member;
      const acknowledged = new Map<string, number>();
      const writers = 8;
      const maxPutsPerWriter = 2000;
      let stop = false;
      const load = Array.from({ length: writers }, async (_, w) => {
        for (let i = 0; i < maxPutsPerWriter && !stop; i++) {
          const key = `w${w}/${i}`;
          try {
            acknowledged.set(key, await put(clientUrl, key, `v${i}`));
          } catch {
            return; // the member died under this request: not acknowledged
          }
        }
      });
      // Kill once enough writes are acknowledged, while others are still in flight.
      const deadline = Date.now() + 20_000;
      while (acknowledged.size < 200 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      await member.kill9();
      stop = true;
      await Promise.all(load);
      strictEqual(acknowledged.size >= 200, true, `only ${acknowledged.size} puts acknowledged`);

      member = await startMember({ impl: "ours", dataDir, clientPort, peerPort, name });
      const stored = await rangeAll(member.clientUrl);
      for (const [key, rev] of acknowledged) {
        const kv = stored.get(key);
        strictEqual(kv?.rev, rev, `acknowledged ${key} at revision ${rev} lost or changed`);
      }
      // Revisions are dense: every revision from 2 up to the last holds exactly one put.
      const revs = [...stored.values()].map((kv) => kv.rev).sort((a, b) => a - b);
      deepStrictEqual(revs, revs.map((_, i) => i + 2));
    } finally {
      await member?.stop();
    }
  });
});

Deno.test("ours: a torn WAL tail is repaired at start-up; other corruption refuses to start", async (t) => {
  await withDataDir(async (dataDir) => {
    const first = await startMember({ impl: "ours", dataDir });
    const { clientPort, peerPort, name } = first;
    for (let i = 0; i < 20; i++) await put(first.clientUrl, `k${i}`, `v${i}`);
    await first.stop();
    const [segment] = (await walSegments(dataDir)).slice(-1);

    await t.step("torn tail: half a record of garbage after the last record", async () => {
      const end = await recordsEnd(dataDir);
      const bytes = await Deno.readFile(segment);
      bytes.set([0x2a, 0, 0, 0, 1, 7, 7], end);
      await Deno.writeFile(segment, bytes);
      const member = await startMember({ impl: "ours", dataDir, clientPort, peerPort, name });
      try {
        const stored = await rangeAll(member.clientUrl);
        strictEqual(stored.size, 20);
        strictEqual(await put(member.clientUrl, "after", "x"), 22);
      } finally {
        await member.stop();
      }
    });

    await t.step(
      "a flipped byte in the middle: exit 1, a clear message, WAL untouched",
      async () => {
        const end = await recordsEnd(dataDir);
        const bytes = await Deno.readFile(segment);
        bytes[Math.floor(end / 2)] ^= 0xff;
        await Deno.writeFile(segment, bytes);
        const { cmd, args } = memberCommand("ours", [
          "--name",
          name,
          "--data-dir",
          dataDir,
          "--listen-client-urls",
          `http://127.0.0.1:${freePort()}`,
          "--advertise-client-urls",
          `http://127.0.0.1:${clientPort}`,
          "--listen-peer-urls",
          `http://127.0.0.1:${peerPort}`,
          "--initial-advertise-peer-urls",
          `http://127.0.0.1:${peerPort}`,
          "--initial-cluster",
          `${name}=http://127.0.0.1:${peerPort}`,
        ]);
        // Bounded: a member that wrongly starts would otherwise keep the test waiting.
        const out = await new Deno.Command(cmd, {
          args,
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(30_000),
        }).output();
        const stderr = new TextDecoder().decode(out.stderr);
        strictEqual(out.code, 1, stderr);
        strictEqual(/corrupt/i.test(stderr), true, stderr);
        deepStrictEqual(await Deno.readFile(segment), bytes);
      },
    );
  });
});
