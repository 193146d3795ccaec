import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { utf8 } from "../internal/bytes.ts";
import {
  type CompactorClock,
  type CompactorDeps,
  createCompactor,
  PeriodicCompactor,
  RevisionCompactor,
} from "./compactor.ts";
import { parseConfig } from "./config.ts";
import { Errors } from "./errors.ts";
import { EtcdServer } from "./etcd_server.ts";

const minute = 60_000;
const hour = 60 * minute;

/** Turns of the microtask queue a compactor may take to re-arm its timer. */
const maxSettleTurns = 1000;

/** A clock that moves only when told; firing a timer lets the compactor run to its next wait. */
class ManualClock implements CompactorClock {
  #now = 0;
  #timers: { at: number; fn: () => void }[] = [];

  now(): number {
    return this.#now;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const timer = { at: this.#now + ms, fn };
    this.#timers.push(timer);
    return () => {
      this.#timers = this.#timers.filter((t) => t !== timer);
    };
  }

  get pendingTimers(): number {
    return this.#timers.length;
  }

  /** Moves time forward by `ms`, firing due timers in order and letting each round finish. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      this.#timers.sort((a, b) => a.at - b.at);
      const next = this.#timers[0];
      if (next === undefined || next.at > target) break;
      this.#timers.shift();
      this.#now = next.at;
      next.fn();
      for (let turn = 0; turn < maxSettleTurns && this.#timers.length === 0; turn++) {
        await Promise.resolve();
      }
    }
    this.#now = target;
  }
}

/** A compactor's world: revisions that grow 10 per minute, and a log of compactions. */
function world(failWith?: () => unknown) {
  const clock = new ManualClock();
  const compacted: { atMinute: number; rev: number }[] = [];
  const deps: CompactorDeps = {
    clock,
    currentRev: () => 1 + 10 * Math.floor(clock.now() / minute),
    compact: (rev) => {
      const err = failWith?.();
      if (err !== undefined) return Promise.reject(err);
      compacted.push({ atMinute: clock.now() / minute, rev });
      return Promise.resolve();
    },
    alreadyCompacted: (err) => err === Errors.compacted,
  };
  return { clock, compacted, deps };
}

Deno.test("periodic: nothing for a period, then the revision of a period ago, every period", async () => {
  const w = world();
  const compactor = new PeriodicCompactor(10 * minute, w.deps);
  compactor.start();
  try {
    await w.clock.advance(10 * minute - 1);
    deepStrictEqual(w.compacted, []);
    await w.clock.advance(1);
    // Sampled each minute; the oldest of the retained samples is from minute 0.
    deepStrictEqual(w.compacted, [{ atMinute: 10, rev: 1 }]);
    await w.clock.advance(10 * minute);
    deepStrictEqual(w.compacted[1], { atMinute: 20, rev: 91 }, "11 samples kept: minute 9's");
    strictEqual(w.compacted.length, 2);
  } finally {
    compactor.stop();
  }
  strictEqual(w.clock.pendingTimers, 0, "a stopped compactor leaves no timer");
});

Deno.test("periodic: long periods sample every 6 minutes and compact hourly", async () => {
  const w = world();
  const compactor = new PeriodicCompactor(24 * hour, w.deps);
  strictEqual(compactor.compactIntervalMs, hour);
  strictEqual(compactor.retryIntervalMs, 6 * minute);
  strictEqual(compactor.retainedSamples, 241);
  compactor.start();
  try {
    await w.clock.advance(24 * hour);
    deepStrictEqual(w.compacted, [{ atMinute: 24 * 60, rev: 1 }]);
    await w.clock.advance(hour);
    deepStrictEqual(w.compacted[1], { atMinute: 25 * 60, rev: 1 + 10 * 54 });
  } finally {
    compactor.stop();
  }
});

Deno.test("periodic: a failed compaction is retried at the next sample", async () => {
  let failures = 1;
  const w = world(() => (failures-- > 0 ? new Error("disk on fire") : undefined));
  const compactor = new PeriodicCompactor(10 * minute, w.deps);
  compactor.start();
  try {
    await w.clock.advance(10 * minute);
    deepStrictEqual(w.compacted, []);
    await w.clock.advance(minute);
    deepStrictEqual(w.compacted, [{ atMinute: 11, rev: 1 }]);
  } finally {
    compactor.stop();
  }
});

Deno.test("periodic: a revision compacted already counts as done", async () => {
  let attempts = 0;
  const w = world(() => (++attempts === 1 ? Errors.compacted : undefined));
  const compactor = new PeriodicCompactor(10 * minute, w.deps);
  compactor.start();
  try {
    await w.clock.advance(20 * minute);
    strictEqual(attempts, 2, "after 'compacted' the next attempt waits a whole interval");
    deepStrictEqual(w.compacted, [{ atMinute: 20, rev: 91 }]);
  } finally {
    compactor.stop();
  }
});

Deno.test("periodic: a paused compactor (not the leader) skips its rounds", async () => {
  const w = world();
  const compactor = new PeriodicCompactor(10 * minute, w.deps);
  compactor.start();
  compactor.pause();
  try {
    await w.clock.advance(15 * minute);
    strictEqual(w.compacted.length, 0);
    compactor.resume();
    await w.clock.advance(minute);
    strictEqual(w.compacted[0].atMinute, 16);
  } finally {
    compactor.stop();
  }
});

Deno.test("revision: every 5 minutes, keep the last N revisions", async () => {
  let failNext = false;
  const w = world(() => {
    if (!failNext) return undefined;
    failNext = false;
    return new Error("no leader");
  });
  const compactor = new RevisionCompactor(15, w.deps);
  compactor.start();
  try {
    await w.clock.advance(5 * minute - 1);
    deepStrictEqual(w.compacted, []);
    await w.clock.advance(1);
    deepStrictEqual(w.compacted, [{ atMinute: 5, rev: 51 - 15 }]);
    failNext = true;
    await w.clock.advance(5 * minute);
    strictEqual(w.compacted.length, 1, "the failed round compacted nothing");
    await w.clock.advance(5 * minute);
    deepStrictEqual(w.compacted[1], { atMinute: 15, rev: 151 - 15 });
  } finally {
    compactor.stop();
  }
});

Deno.test("revision: nothing while the retention exceeds history or nothing changed", async () => {
  const clock = new ManualClock();
  let rev = 10;
  const compacted: number[] = [];
  const compactor = new RevisionCompactor(20, {
    clock,
    currentRev: () => rev,
    compact: (r) => {
      compacted.push(r);
      return Promise.resolve();
    },
    alreadyCompacted: () => false,
  });
  compactor.start();
  try {
    await clock.advance(5 * minute);
    rev = 30;
    await clock.advance(10 * minute);
    deepStrictEqual(compacted, [10], "once at 30 - 20; the same revision is not compacted again");
  } finally {
    compactor.stop();
  }
});

Deno.test("createCompactor follows the configuration", () => {
  const deps = world().deps;
  const none = { autoCompactionPeriodMs: 0, autoCompactionRetentionRevisions: 0 };
  strictEqual(createCompactor({ autoCompactionMode: "periodic", ...none }, deps), undefined);
  strictEqual(createCompactor({ autoCompactionMode: "", ...none }, deps), undefined);
  strictEqual(
    createCompactor(
      { ...none, autoCompactionMode: "periodic", autoCompactionPeriodMs: hour },
      deps,
    ) instanceof
      PeriodicCompactor,
    true,
  );
  strictEqual(
    createCompactor(
      { ...none, autoCompactionMode: "revision", autoCompactionRetentionRevisions: 5 },
      deps,
    ) instanceof RevisionCompactor,
    true,
  );
});

Deno.test("a member compacts through raft on the injected clock", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "compactor-member-" });
  const peer = "http://127.0.0.1:0";
  const config = parseConfig([
    ...["--name", "c", "--data-dir", dataDir],
    ...["--listen-client-urls", "http://127.0.0.1:0"],
    ...["--advertise-client-urls", "http://127.0.0.1:0"],
    ...["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer],
    ...["--initial-cluster", `c=${peer}`],
    ...["--auto-compaction-mode", "revision", "--auto-compaction-retention", "3"],
  ], {});
  const clock = new ManualClock();
  const server = await EtcdServer.start(config, { compactorClock: clock });
  try {
    for (let i = 0; i < 10; i++) {
      await server.propose({ put: { key: utf8(`k${i % 3}`), value: utf8(String(i)) } });
    }
    const compactRev = () => server.store.compactRev;
    strictEqual(server.store.currentRev, 11);
    strictEqual(compactRev(), -1);
    await clock.advance(5 * 60_000);
    // The compaction is a raft proposal: wait (bounded) for it to apply.
    const deadline = performance.now() + 5000;
    while (compactRev() !== 8 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    strictEqual(compactRev(), 8, "compacted at current revision - retention");
  } finally {
    await server.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});
