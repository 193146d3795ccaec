import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { type Entry, type HardState, type Message, MessageType, RawNode } from "../raft/mod.ts";
import { RaftLoop, ReadIndexTimeoutError } from "./raft_loop.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);
const text = (e: Entry) => new TextDecoder().decode(e.data);

/** Storage whose saves complete only when the test says so. */
class GatedStorage {
  saves: { entries: Entry[]; done: () => void }[] = [];
  #waiting: (() => void)[] = [];
  save(_hs: HardState | null, entries: Entry[]): Promise<void> {
    return new Promise((resolve) => {
      this.saves.push({ entries, done: resolve });
      for (const w of this.#waiting.splice(0)) w();
    });
  }
  /** Resolves once `n` saves have been started. */
  async started(n: number): Promise<void> {
    for (let i = 0; i < 100 && this.saves.length < n; i++) {
      await new Promise<void>((r) => this.#waiting.push(r));
    }
    strictEqual(this.saves.length >= n, true, `only ${this.saves.length} saves started`);
  }
}

function loopWith(storage: GatedStorage, applied: string[]): RaftLoop {
  const node = new RawNode(
    { id: 1n, voters: [1n], electionTicks: 10, heartbeatTicks: 1, random: () => 0.5 },
    { hardState: null, marker: { index: 0, term: 0 }, entries: [] },
  );
  node.campaign();
  return new RaftLoop(node, storage, {
    apply: (entries) => applied.push(...entries.filter((e) => e.data.length > 0).map(text)),
    onFatal: (err) => {
      throw err;
    },
  }, { tickIntervalMs: 60_000, retainedEntries: 0 });
}

Deno.test("a durable entry is applied before the next batch's save completes", async () => {
  const storage = new GatedStorage();
  const applied: string[] = [];
  const loop = loopWith(storage, applied);
  loop.start();
  try {
    await storage.started(1); // the leader's empty entry
    storage.saves[0].done();
    loop.propose(utf8("a"));
    await storage.started(2);
    deepStrictEqual(storage.saves[1].entries.map(text), ["a"]);
    loop.propose(utf8("b")); // arrives while "a" is on its way to disk
    storage.saves[1].done();
    await storage.started(3);
    deepStrictEqual(storage.saves[2].entries.map(text), ["b"]);
    // "b" is still being written, yet "a" (durable) has been applied and answered.
    deepStrictEqual(applied, ["a"]);
    storage.saves[2].done();
    await loop.waitApplied(3);
    deepStrictEqual(applied, ["a", "b"]);
  } finally {
    for (const s of storage.saves) s.done();
    await loop.stop(new Error("test over"));
  }
});

Deno.test("waiters and reads fail when the loop stops", async () => {
  const storage = new GatedStorage();
  const loop = loopWith(storage, []);
  loop.start();
  await storage.started(1);
  const waiting = loop.waitApplied(100).then(() => "applied", (e) => (e as Error).message);
  storage.saves[0].done();
  await loop.stop(new Error("stopped"));
  strictEqual(await waiting, "stopped");
});

function followerLoop(storage: GatedStorage, sent: Message[], readTimeoutMs = 5000): RaftLoop {
  const node = new RawNode(
    { id: 2n, voters: [1n, 2n, 3n], electionTicks: 1000, heartbeatTicks: 1, random: () => 0.5 },
    { hardState: null, marker: { index: 0, term: 0 }, entries: [] },
  );
  return new RaftLoop(node, storage, {
    apply: () => {},
    send: (messages) => sent.push(...messages),
    onFatal: (err) => {
      throw err;
    },
  }, { tickIntervalMs: 5, retainedEntries: 0, readTimeoutMs });
}

function appendFromLeader(entries: Entry[]): Message {
  return {
    type: MessageType.app,
    to: 2n,
    from: 1n,
    term: 1,
    logTerm: 0,
    index: 0,
    entries,
    commit: 0,
    snapshot: null,
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(),
  };
}

Deno.test("a follower acknowledges appended entries only once they are durable", async () => {
  const storage = new GatedStorage();
  const sent: Message[] = [];
  const loop = followerLoop(storage, sent);
  loop.start();
  try {
    loop.step(appendFromLeader([{ term: 1, index: 1, type: 0, data: utf8("x") }]));
    await storage.started(1);
    deepStrictEqual(storage.saves[0].entries.map(text), ["x"]);
    // The save has not completed: an acknowledgement now would promise what a crash loses.
    deepStrictEqual(sent.filter((m) => m.type === MessageType.appResp), []);
    storage.saves[0].done();
    const deadline = Date.now() + 5000;
    while (!sent.some((m) => m.type === MessageType.appResp) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const ack = sent.find((m) => m.type === MessageType.appResp);
    strictEqual(ack?.index, 1);
    strictEqual(ack?.reject, false);
  } finally {
    for (const s of storage.saves) s.done();
    await loop.stop(new Error("test over"));
  }
});

Deno.test("a read index the leader never confirms fails at its deadline", async () => {
  const storage = new GatedStorage();
  const sent: Message[] = [];
  const loop = followerLoop(storage, sent, 50);
  loop.start();
  try {
    loop.step(appendFromLeader([]));
    await storage.started(1);
    storage.saves[0].done();
    const read = loop.readIndex().then(() => "confirmed", (e) => e);
    const outcome = await read;
    strictEqual(outcome instanceof ReadIndexTimeoutError, true, String(outcome));
    strictEqual(sent.some((m) => m.type === MessageType.readIndex), true, "forwarded to leader");
  } finally {
    for (const s of storage.saves) s.done();
    await loop.stop(new Error("test over"));
  }
});

Deno.test("reads arriving while a read index is confirmed share the next request", async () => {
  const storage = new GatedStorage();
  const sent: Message[] = [];
  const loop = followerLoop(storage, sent);
  loop.start();
  try {
    loop.step(appendFromLeader([]));
    await storage.started(1);
    storage.saves[0].done();
    const requests = () => sent.filter((m) => m.type === MessageType.readIndex);
    const waitFor = async (what: string, cond: () => boolean) => {
      const deadline = Date.now() + 5000;
      while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      strictEqual(cond(), true, what);
    };
    const outcome = (p: Promise<number>) => p.then((i) => i, (e: Error) => e.message);
    const first = outcome(loop.readIndex());
    const second = outcome(loop.readIndex());
    const third = outcome(loop.readIndex());
    await waitFor("the first request is sent", () => requests().length === 1);
    // The request context travels in the message's one entry, as in etcd's raft.
    const answer = (request: Message, index: number): Message => ({
      ...appendFromLeader([]),
      type: MessageType.readIndexResp,
      index,
      entries: request.entries,
    });
    loop.step(answer(requests()[0], 0));
    strictEqual(await first, 0);
    // The two later reads did not ride on the first request: they get one of their own.
    await waitFor("one more request for both", () => requests().length === 2);
    loop.step(answer(requests()[1], 0));
    deepStrictEqual(await Promise.all([second, third]), [0, 0]);
    strictEqual(requests().length, 2);
  } finally {
    for (const s of storage.saves) s.done();
    await loop.stop(new Error("test over"));
  }
});

Deno.test("a lone member keeps no applied entry in memory, and still snapshots on schedule", async () => {
  const node = new RawNode(
    { id: 1n, voters: [1n], electionTicks: 10, heartbeatTicks: 1, random: () => 0.5 },
    { hardState: null, marker: { index: 0, term: 0 }, entries: [] },
  );
  node.campaign();
  const snapshots: number[] = [];
  const loop = new RaftLoop(node, {
    save: () => Promise.resolve(),
    saveSnapshot: (s) => {
      snapshots.push(s.metadata.index);
      return Promise.resolve();
    },
  }, {
    apply: () => {},
    onFatal: (err) => {
      throw err;
    },
    snapshotData: () => new Uint8Array(),
  }, { tickIntervalMs: 60_000, retainedEntries: 10, snapshotEntries: 100 });
  loop.start();
  try {
    for (let i = 1; i <= 250; i++) {
      loop.propose(utf8(`v${i}`));
      if (i % 25 === 0) await loop.waitApplied(i + 1); // + the leader's empty entry
    }
    await loop.waitApplied(251);
    // Without peers nothing needs applied entries: not the 10 of the window, nor 100.
    strictEqual(node.log.firstIndex(), node.log.applied + 1);
    // Snapshots (which release WAL segments) still come every 100 entries.
    deepStrictEqual(snapshots.length, 2);
    strictEqual(snapshots[1] - snapshots[0] >= 100, true);
  } finally {
    await loop.stop(new Error("test over"));
  }
});
