import { create, type MessageInitShape, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, createHandlerContext } from "@connectrpc/connect";
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { fromUtf8, prefixEnd, utf8 } from "../internal/bytes.ts";
import { MvccStore } from "../mvcc/store.ts";
import type { MvccEvent } from "../mvcc/types.ts";
import { WatchHub, type WatchHubOptions, type WatchTimers } from "../mvcc/watch_hub.ts";
import {
  ResponseHeaderSchema,
  Watch,
  WatchCreateRequest_FilterType,
  WatchCreateRequestSchema,
  type WatchRequest,
  WatchRequestSchema,
  type WatchResponse,
  WatchResponseSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { WebWatch } from "../proto/gen/etcdweb/web_watch_pb.ts";
import { EventSchema } from "../proto/gen/etcd/mvccpb/kv_pb.ts";
import { readyTaker } from "./service_methods.ts";
import {
  eventsResponse,
  fragmentResponse,
  maxControlResponses,
  maxMergedResponseBytes,
  maxResponsesPerTurn,
  watchGatewayHandler,
  watchService,
  type WatchServiceDeps,
  webWatchService,
} from "./watch_service.ts";

/** Timers on a fake clock: `advance` moves time, `runDue` fires what is due. */
class FakeTimers implements WatchTimers {
  now = 0;
  #next = 1;
  readonly #pending = new Map<number, { at: number; fn: () => void }>();

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#pending.set(id, { at: this.now + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#pending.delete(handle as number);
  }

  get size(): number {
    return this.#pending.size;
  }

  runDue(): void {
    for (let round = 0; round < 10_000; round++) {
      const due = [...this.#pending].find(([, t]) => t.at <= this.now);
      if (!due) return;
      this.#pending.delete(due[0]);
      due[1].fn();
    }
    throw new Error("timers never settled");
  }

  advance(ms: number): void {
    this.now += ms;
    this.runDue();
  }
}

/** An async iterable the test pushes requests into; counts what the service pulled. */
class Requests implements AsyncIterable<WatchRequest> {
  readonly #items: WatchRequest[] = [];
  #wake: (() => void) | undefined;
  #ended = false;
  pulled = 0;

  push(init: MessageInitShape<typeof WatchRequestSchema>["requestUnion"]): void {
    this.#items.push(create(WatchRequestSchema, { requestUnion: init }));
    this.#wake?.();
  }

  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<WatchRequest> {
    for (;;) {
      const item = this.#items.shift();
      if (item) {
        this.pulled++;
        yield item;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => this.#wake = resolve);
      this.#wake = undefined;
    }
  }
}

// Sizes like etcd's live answers (10-byte cluster and member ids), so fragment sizes match.
const clusterId = 15118495548433857066n;
const memberId = 13668033151171901709n;

function setup(
  options: { hub?: WatchHubOptions; deps?: Partial<WatchServiceDeps> } = {},
) {
  const store = MvccStore.open(":memory:");
  const timers = new FakeTimers();
  const hub = new WatchHub(store, { timers, ...options.hub });
  const member = { leader: true };
  const deps: WatchServiceDeps = {
    hub,
    header: (revision) =>
      create(ResponseHeaderSchema, {
        clusterId,
        memberId,
        raftTerm: 2n,
        revision: revision ?? BigInt(store.currentRev),
      }),
    hasLeader: () => member.leader,
    progressNotifyIntervalMs: 1000,
    maxRequestBytes: 1024 * 1024,
    electionTimeoutMs: 1000,
    timers,
    random: () => 0,
    ...options.deps,
  };
  const write = (fn: (txn: ReturnType<MvccStore["write"]>) => void): MvccEvent[] => {
    const txn = store.write();
    fn(txn);
    const events = txn.end();
    hub.notify(events);
    return events;
  };
  const put = (key: string, value = "v") =>
    write((txn) => txn.put(utf8(key), utf8(value), 0n))[0].kv.modRevision;

  /** Runs due timers and lets the event loop turn until `cond` holds (bounded). */
  async function until(cond: () => boolean, what: string): Promise<void> {
    for (let turn = 0; turn < 2000; turn++) {
      timers.runDue();
      if (cond()) return;
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  /** Awaits `promise` while running due timers (the hub's catch-up runs on them). */
  async function settle<T>(promise: Promise<T>): Promise<T> {
    let settled = false;
    const done = promise.finally(() => settled = true);
    await until(() => settled, "a pending result");
    return await done;
  }

  /**
   * Opens a Watch stream; responses are collected as they come. `readAs: "grpc"` reads as our
   * gRPC server does: after each awaited response, those `takeReady` hands over.
   */
  function open(headers: Record<string, string> = {}, readAs: "iterator" | "grpc" = "iterator") {
    const requests = new Requests();
    const abort = new AbortController();
    const context = createHandlerContext({
      service: Watch,
      method: Watch.method.watch,
      protocolName: "grpc",
      requestMethod: "POST",
      url: "/etcdserverpb.Watch/Watch",
      requestSignal: abort.signal,
      requestHeader: headers,
    });
    const got: WatchResponse[] = [];
    const state: { error?: unknown; ended: boolean } = { ended: false };
    const output = watchService(deps).watch(requests, context);
    const take = readAs === "grpc" ? readyTaker(output) : undefined;
    /** Responses taken without awaiting, and the most of them in a row. */
    const ready = { taken: 0, longestRun: 0 };
    const done = (async () => {
      try {
        for await (const r of output) {
          got.push(create(WatchResponseSchema, r));
          let run = 0;
          for (let more = take?.(); more !== undefined; more = take!()) {
            got.push(create(WatchResponseSchema, more as WatchResponse));
            run++;
          }
          ready.taken += run;
          ready.longestRun = Math.max(ready.longestRun, run);
        }
      } catch (err) {
        state.error = err;
      }
      state.ended = true;
    })();
    let read = 0;
    return {
      requests,
      got,
      state,
      takeReady: take,
      ready,
      abort: () => abort.abort(),
      /** The next `n` responses not read yet. */
      async take(n = 1): Promise<WatchResponse[]> {
        await until(() => got.length >= read + n || state.ended, `${n} responses`);
        ok(got.length >= read + n, `stream ended early: ${String(state.error)}`);
        const out = got.slice(read, read + n);
        read += n;
        return out;
      },
      /** Asserts nothing more arrives: a progress request must be the next answer. */
      async expectNothingThenProgress(): Promise<void> {
        requests.push({ case: "progressRequest", value: {} });
        const [r] = await this.take();
        strictEqual(r.watchId, -1n, `expected the progress answer, got ${show(r)}`);
      },
      async close(): Promise<void> {
        abort.abort();
        requests.end();
        await done;
      },
      done,
    };
  }

  const close = () => {
    hub.close();
    store.close();
  };
  return { store, timers, hub, deps, member, write, put, until, settle, open, close };
}

/** Runs `fn` with a fresh setup and one open stream on it, closing both afterwards. */
async function withStream(
  fn: (
    t: ReturnType<typeof setup>,
    s: ReturnType<ReturnType<typeof setup>["open"]>,
  ) => Promise<void>,
  options?: Parameters<typeof setup>[0],
): Promise<void> {
  const t = setup(options);
  const s = t.open();
  try {
    await fn(t, s);
  } finally {
    await s.close();
    t.close();
  }
}

function create_(
  key: string,
  more: Omit<MessageInitShape<typeof WatchCreateRequestSchema>, "key" | "$typeName"> = {},
) {
  return {
    case: "createRequest" as const,
    value: create(WatchCreateRequestSchema, { ...more, key: utf8(key) }),
  };
}

/** A response as the gateway's JSON would show it, without the fixed header fields. */
function show(r: WatchResponse): string {
  const json = toJson(WatchResponseSchema, r, { useProtoFieldName: true }) as Record<
    string,
    unknown
  >;
  const header = json.header as Record<string, unknown> | undefined;
  if (header) {
    delete header.cluster_id;
    delete header.member_id;
    delete header.raft_term;
  }
  return JSON.stringify(json);
}

function keysOf(r: WatchResponse): string[] {
  return r.events.map((e) => `${fromUtf8(e.kv!.key)}@${e.kv!.modRevision}`);
}

Deno.test("create answers `created` at the current revision; events carry their revision", async () => {
  await withStream(async (t, s) => {
    t.put("foo", "bar"); // 2
    s.requests.push(create_("foo"));
    deepStrictEqual((await s.take()).map(show), [
      '{"header":{"revision":"2"},"created":true}',
    ]);
    t.put("foo", "v1"); // 3
    t.put("other");
    deepStrictEqual((await s.take()).map(show), [
      '{"header":{"revision":"3"},"events":[{"kv":{"key":"Zm9v","create_revision":"2","mod_revision":"3","version":"2","value":"djE="}}]}',
    ]);
    const r = s.got[1];
    strictEqual(r.header?.clusterId, clusterId);
    strictEqual(r.events[0].prevKv, undefined, "no prev_kv unless asked for");
  });
});

Deno.test("ids: server-chosen from 0 skip client-chosen ones; duplicates and empty ranges", async () => {
  const t = setup();
  const s = t.open();
  try {
    s.requests.push(create_("a", { watchId: 1n }));
    s.requests.push(create_("a"));
    s.requests.push(create_("a"));
    s.requests.push(create_("a", { watchId: 1n }));
    s.requests.push(create_("z", { rangeEnd: utf8("a") }));
    s.requests.push(create_("a", { rangeEnd: utf8("a") }));
    const rs = await s.take(6);
    deepStrictEqual(rs.map((r) => [r.watchId, r.created, r.canceled, r.cancelReason]), [
      [1n, true, false, ""],
      [0n, true, false, ""],
      [2n, true, false, ""],
      [-1n, true, true, "mvcc: duplicate watch ID provided on the WatchStream"],
      [-1n, true, true, "mvcc: watcher range is empty"],
      [-1n, true, true, "mvcc: watcher range is empty"],
    ]);
    strictEqual(t.hub.counts.synced, 3);
  } finally {
    await s.close();
    t.close();
  }
  strictEqual(t.hub.counts.synced, 0, "the stream's end removed its watchers");
});

Deno.test("cancel answers `canceled`; an unknown id gets no answer; events stop", async () => {
  await withStream(async (t, s) => {
    s.requests.push(create_("a", { watchId: 7n }));
    await s.take();
    s.requests.push({ case: "cancelRequest", value: { watchId: 99n } });
    s.requests.push({ case: "cancelRequest", value: { watchId: 7n } });
    deepStrictEqual((await s.take()).map(show), [
      '{"header":{"revision":"1"},"watch_id":"7","canceled":true}',
    ]);
    s.requests.push({ case: "cancelRequest", value: { watchId: 7n } });
    t.put("a");
    await s.expectNothingThenProgress();
    strictEqual(t.hub.counts.synced, 0);
    // The id is free again.
    s.requests.push(create_("a", { watchId: 7n }));
    strictEqual((await s.take())[0].canceled, false);
  });
});

Deno.test("a past start revision replays in one response; an empty key means \\0", async () => {
  await withStream(async (t, s) => {
    t.put("foo", "bar"); // 2
    t.put("foo", "v1"); // 3
    s.requests.push(create_("foo", { startRevision: 1n }));
    const [created, replay] = await s.take(2);
    strictEqual(created.created, true);
    deepStrictEqual(keysOf(replay), ["foo@2", "foo@3"]);
    strictEqual(replay.header?.revision, 3n);
    s.requests.push({ case: "createRequest", value: {} });
    await s.take();
    t.write((txn) => txn.put(new Uint8Array([0]), utf8("zero"), 0n));
    deepStrictEqual((await s.take())[0].events.map((e) => e.kv!.key), [new Uint8Array([0])]);
  });
});

Deno.test("a compacted start revision: `created`, then `canceled` with compact_revision", async () => {
  await withStream(async (t, s) => {
    t.put("c", "1"); // 2
    t.put("c", "2"); // 3
    t.store.compact(2);
    s.requests.push(create_("c", { startRevision: 1n, watchId: 3n }));
    deepStrictEqual((await s.take(2)).map(show), [
      '{"header":{"revision":"3"},"watch_id":"3","created":true}',
      '{"header":{},"watch_id":"3","canceled":true,"compact_revision":"2"}',
    ]);
    // Like etcd, the id stays taken until the client cancels it, which is answered.
    s.requests.push(create_("c", { watchId: 3n }));
    strictEqual(
      (await s.take())[0].cancelReason,
      "mvcc: duplicate watch ID provided on the WatchStream",
    );
    s.requests.push({ case: "cancelRequest", value: { watchId: 3n } });
    strictEqual((await s.take())[0].canceled, true);
  });
});

Deno.test("progress_request: watch_id -1 at the current revision, after pending events", async () => {
  await withStream(async (t, s) => {
    s.requests.push({ case: "progressRequest", value: {} });
    deepStrictEqual((await s.take()).map(show), ['{"header":{"revision":"1"},"watch_id":"-1"}']);
    for (let i = 0; i < 5; i++) t.put("k"); // 2..6
    s.requests.push(create_("k", { startRevision: 2n }));
    s.requests.push({ case: "progressRequest", value: {} });
    const rs = await s.take(3);
    deepStrictEqual(rs.map((r) => [r.watchId, r.created, r.events.length, r.header?.revision]), [
      [0n, true, 0, 6n],
      [0n, false, 5, 6n],
      [-1n, false, 0, 6n],
    ]);
  });
});

Deno.test("progress_notify: idle watches report each interval; busy ones skip a round", async () => {
  await withStream(async (t, s) => {
    s.requests.push(create_("p", { progressNotify: true }));
    s.requests.push(create_("q"));
    await s.take(2);
    t.timers.advance(1000);
    deepStrictEqual((await s.take()).map(show), ['{"header":{"revision":"1"}}']);
    t.put("p"); // 2: events within the interval
    await s.take();
    t.timers.advance(1000);
    await s.expectNothingThenProgress();
    t.put("x"); // 3
    t.timers.advance(1000);
    deepStrictEqual((await s.take()).map(show), ['{"header":{"revision":"3"}}']);
  });
});

Deno.test("prev_kv and filters", async () => {
  await withStream(async (t, s) => {
    t.put("a", "1");
    s.requests.push(create_("a", { prevKv: true }));
    s.requests.push(create_("a", { filters: [WatchCreateRequest_FilterType.NOPUT] }));
    s.requests.push(create_("a", { filters: [WatchCreateRequest_FilterType.NODELETE] }));
    await s.take(3);
    t.put("a", "2");
    t.write((txn) => txn.deleteRange(utf8("a"), undefined));
    const events = (id: bigint) =>
      s.got.filter((r) => r.watchId === id && !r.created).flatMap((r) => r.events);
    await t.until(
      () => events(0n).length === 2 && events(1n).length + events(2n).length === 2,
      "events",
    );
    deepStrictEqual(events(0n).map((e) => fromUtf8(e.prevKv!.value)), ["1", "2"]);
    deepStrictEqual(events(1n).map((e) => e.type), [1]);
    deepStrictEqual(events(2n).map((e) => e.type), [0]);
  });
});

Deno.test("fragment splits like etcd 3.4 (measured: 320 deletes with prev_kv -> 285 + 35)", async () => {
  // etcd 3.4.23, --max-request-bytes 2000: 9 writes, then fr/0000..fr/0319 (1800-byte values)
  // at revisions 11..330, then one DeleteRange at 331, watched with prev_kv.
  await withStream(async (t, s) => {
    for (let i = 0; i < 9; i++) t.put("pre");
    const big = "x".repeat(1800);
    for (let i = 0; i < 320; i++) t.put(`fr/${String(i).padStart(4, "0")}`, big);
    const range = { rangeEnd: utf8("fr0"), prevKv: true };
    s.requests.push(create_("fr/", { ...range, fragment: true }));
    s.requests.push(create_("fr/", range));
    await s.take(2);
    t.write((txn) => txn.deleteRange(utf8("fr/"), utf8("fr0")));
    const rs = await s.take(3);
    const fragmented = rs.filter((r) => r.watchId === 0n);
    deepStrictEqual(fragmented.map((r) => [r.events.length, r.fragment]), [[285, true], [
      35,
      false,
    ]]);
    deepStrictEqual(rs.filter((r) => r.watchId === 1n).map((r) => r.events.length), [320]);
    ok(fragmented.every((r) => r.header?.revision === 331n));
  }, {
    deps: { maxRequestBytes: 2000 + 512 * 1024 },
    hub: { maxBufferedEvents: 1000 },
  });
});

Deno.test("fragmentResponse keeps small or single-event responses whole", () => {
  const ev = (n: number) => ({ kv: { key: utf8(`k${n}`), value: new Uint8Array(100) } });
  const one = create(WatchResponseSchema, { events: [ev(1)] });
  deepStrictEqual(fragmentResponse(one, 10), [one]);
  const two = create(WatchResponseSchema, { events: [ev(1), ev(2)] });
  deepStrictEqual(fragmentResponse(two, 10_000), [two]);
  deepStrictEqual(fragmentResponse(two, 10).map((r) => [r.events.length, r.fragment]), [
    [1, true],
    [1, false],
  ]);
});

Deno.test("hasleader: refused without a leader; canceled after three election timeouts", async () => {
  const t = setup();
  try {
    t.member.leader = false;
    const refused = t.open({ hasleader: "true" });
    await refused.done;
    ok(refused.state.error instanceof ConnectError);
    strictEqual(refused.state.error.rawMessage, "etcdserver: no leader");
    strictEqual(refused.state.error.code, Code.Unavailable);
    await refused.close();

    t.member.leader = true;
    const s = t.open({ hasleader: "true" });
    s.requests.push(create_("a"));
    await s.take();
    t.member.leader = false;
    t.timers.advance(1000);
    t.timers.advance(1000);
    strictEqual(s.state.ended, false, "two timeouts are not enough");
    t.timers.advance(1000);
    await s.done;
    strictEqual((s.state.error as ConnectError).rawMessage, "etcdserver: no leader");
    strictEqual(t.hub.counts.synced, 0);
    await s.close();

    const plain = t.open();
    plain.requests.push(create_("a"));
    await plain.take();
    strictEqual(plain.state.ended, false, "streams without hasleader do not care");
    await plain.close();
  } finally {
    t.close();
  }
});

Deno.test("a slow stream falls behind without holding up others, then catches up in order", async () => {
  const t = setup({ hub: { maxBufferedEvents: 8, catchUpBatchRevs: 16 } });
  const fast = t.open();
  // The slow client is an iterator nobody pulls from until the writes are done.
  const requests = new Requests();
  const context = createHandlerContext({
    service: Watch,
    method: Watch.method.watch,
    protocolName: "grpc",
    requestMethod: "POST",
    url: "/etcdserverpb.Watch/Watch",
  });
  const slow = watchService(t.deps).watch(requests, context)[Symbol.asyncIterator]();
  try {
    const range = { rangeEnd: prefixEnd(utf8("k")) };
    requests.push(create_("k", range));
    strictEqual((await slow.next()).value?.created, true);
    fast.requests.push(create_("k", range));
    await fast.take();
    const want: string[] = [];
    for (let i = 0; i < 200; i++) {
      want.push(`k${i % 3}@${t.put(`k${i % 3}`, String(i))}`);
      if (i % 4 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
    }
    // Revisions queued while the client was busy may share a response.
    const fastEvents = () => fast.got.slice(1).flatMap(keysOf);
    await t.until(() => fastEvents().length >= 200, "the fast stream's events");
    deepStrictEqual(fastEvents(), want);
    strictEqual(t.hub.counts.unsynced, 1, "only the slow watcher left the synced set");
    const slowEvents: string[] = [];
    for (let i = 0; i < 400 && slowEvents.length < 200; i++) {
      const next = await t.settle(slow.next());
      slowEvents.push(...keysOf(create(WatchResponseSchema, next.value!)));
    }
    deepStrictEqual(slowEvents, want);
    strictEqual(t.hub.counts.unsynced, 0);
  } finally {
    await slow.return?.(undefined);
    requests.end();
    await fast.close();
    t.close();
  }
});

Deno.test("revisions queued for a watcher merge into one response, bounded in size", async () => {
  const t = setup({ hub: { maxBufferedBytes: 64 * 1024 * 1024 } });
  const requests = new Requests();
  const context = createHandlerContext({
    service: Watch,
    method: Watch.method.watch,
    protocolName: "grpc",
    requestMethod: "POST",
    url: "/etcdserverpb.Watch/Watch",
  });
  const output = watchService(t.deps).watch(requests, context)[Symbol.asyncIterator]();
  try {
    requests.push(create_("m"));
    strictEqual((await output.next()).value?.created, true);
    // Nobody reads while three small revisions, then three large ones, are written.
    for (let i = 0; i < 3; i++) t.put("m", String(i)); // 2..4
    const big = "x".repeat(maxMergedResponseBytes / 2);
    for (let i = 0; i < 3; i++) t.put("m", big); // 5..7
    const sizes: [number, bigint][] = [];
    for (let i = 0; i < 10 && sizes.reduce((n, [e]) => n + e, 0) < 6; i++) {
      const r = create(WatchResponseSchema, (await output.next()).value!);
      sizes.push([r.events.length, r.header!.revision]);
    }
    // Whole revisions, in order; the header says how far each response goes.
    deepStrictEqual(sizes, [[4, 5n], [1, 6n], [1, 7n]]);
  } finally {
    await output.return?.(undefined);
    requests.end();
    t.close();
  }
});

Deno.test("control responses are bounded: the reader waits while they are not taken", async () => {
  const t = setup();
  const requests = new Requests();
  const context = createHandlerContext({
    service: Watch,
    method: Watch.method.watch,
    protocolName: "grpc",
    requestMethod: "POST",
    url: "/etcdserverpb.Watch/Watch",
  });
  const output = watchService(t.deps).watch(requests, context)[Symbol.asyncIterator]();
  try {
    for (let i = 0; i < 100; i++) requests.push(create_("a"));
    const first = await output.next(); // starts the session; the reader runs meanwhile
    strictEqual(first.done, false);
    for (let turn = 0; turn < 20; turn++) await new Promise((r) => setTimeout(r, 0));
    ok(requests.pulled <= maxControlResponses + 2, `pulled ${requests.pulled}`);
    for (let i = 1; i < 100; i++) strictEqual((await output.next()).value?.created, true);
    strictEqual(requests.pulled, 100);
  } finally {
    await output.return?.(undefined);
    requests.end();
    t.close();
  }
  strictEqual(t.hub.counts.synced, 0);
});

Deno.test("WebWatch: one watch per server stream, ended by its cancel", async () => {
  const t = setup();
  try {
    t.put("w", "1"); // 2
    t.put("w", "2"); // 3
    const context = () =>
      createHandlerContext({
        service: WebWatch,
        method: WebWatch.method.watch,
        protocolName: "connect",
        requestMethod: "POST",
        url: "/etcdweb.v1.WebWatch/Watch",
      });
    const web = webWatchService(t.deps);
    const live = web.watch(
      create(WatchCreateRequestSchema, { key: utf8("w"), startRevision: 2n }),
      context(),
    )[
      Symbol.asyncIterator
    ]();
    strictEqual((await live.next()).value?.created, true);
    const replay = live.next();
    await t.until(() => t.hub.counts.synced === 1, "the catch-up");
    deepStrictEqual(keysOf(create(WatchResponseSchema, (await replay).value!)), ["w@2", "w@3"]);
    await live.return?.(undefined);
    strictEqual(t.hub.counts.synced + t.hub.counts.unsynced, 0);

    t.store.compact(3);
    const compacted = web.watch(
      create(WatchCreateRequestSchema, { key: utf8("w"), startRevision: 1n }),
      context(),
    );
    const got: WatchResponse[] = [];
    const run = (async () => {
      for await (const r of compacted) got.push(create(WatchResponseSchema, r));
    })();
    await t.until(() => got.length >= 2, "created and canceled");
    await run; // the stream ended by itself
    deepStrictEqual(got.map(show), [
      '{"header":{"revision":"3"},"created":true}',
      '{"header":{},"canceled":true,"compact_revision":"3"}',
    ]);
  } finally {
    t.close();
  }
});

Deno.test("gateway: NDJSON results for a body of JSON requests; bad first request", async (t) => {
  await t.step("streams lines; the stream's cancel ends the watch", async () => {
    const s = setup();
    try {
      const handler = watchGatewayHandler(s.deps, 1024 * 1024);
      const body =
        '{"create_request":{"key":"Zm9v","prev_kv":true}} {"create_request":{"key":"YQ=="}}';
      const response = await handler(new Request("http://x/v3/watch", { method: "POST", body }));
      strictEqual(response.status, 200);
      strictEqual(response.headers.get("content-type"), "application/json");
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      const lines = async (n: number) => {
        for (let i = 0; i < 100 && text.split("\n").length <= n; i++) {
          const chunk = await reader.read();
          if (chunk.done) break;
          text += chunk.value;
          s.timers.runDue();
        }
        return text.split("\n").slice(0, n);
      };
      deepStrictEqual(await lines(2), [
        `{"result":{"header":{"cluster_id":"${clusterId}","member_id":"${memberId}","revision":"1","raft_term":"2"},"created":true}}`,
        `{"result":{"header":{"cluster_id":"${clusterId}","member_id":"${memberId}","revision":"1","raft_term":"2"},"watch_id":"1","created":true}}`,
      ]);
      s.put("foo", "bar");
      const [, , first] = await lines(3);
      s.put("foo", "baz");
      const [, , , second] = await lines(4);
      strictEqual(
        first,
        `{"result":{"header":{"cluster_id":"${clusterId}","member_id":"${memberId}","revision":"2","raft_term":"2"},"events":[{"kv":{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}}]}}`,
      );
      ok(second.includes('"prev_kv":{"key":"Zm9v"'), second);
      strictEqual(s.hub.counts.synced, 2);
      await reader.cancel();
      strictEqual(s.hub.counts.synced, 0, "the client's disconnect ended the watches");
    } finally {
      s.close();
    }
  });
  await t.step("a first request that does not decode is a 500 with code 2", async () => {
    const s = setup();
    try {
      const handler = watchGatewayHandler(s.deps, 1024 * 1024);
      const truncated = await handler(
        new Request("http://x/v3/watch", {
          method: "POST",
          body: '{"create_request":{"key":"Zm9v"',
        }),
      );
      strictEqual(truncated.status, 500);
      deepStrictEqual(await truncated.json(), {
        error: "unexpected EOF",
        message: "unexpected EOF",
        code: 2,
      });
      const small = watchGatewayHandler(s.deps, 100);
      const tooBig = await small(
        new Request("http://x/v3/watch", {
          method: "POST",
          body: `{"create_request":{"key":"${"A".repeat(2000)}"}}`,
        }),
      );
      strictEqual(tooBig.status, 400);
      strictEqual((await tooBig.json()).message, "etcdserver: request is too large");
      strictEqual(s.hub.counts.synced, 0);
    } finally {
      s.close();
    }
  });
  await t.step("no leader with Grpc-Metadata-Hasleader: the status and error chunk", async () => {
    const s = setup();
    try {
      s.member.leader = false;
      const handler = watchGatewayHandler(s.deps, 1024 * 1024);
      const response = await handler(
        new Request("http://x/v3/watch", {
          method: "POST",
          headers: { "grpc-metadata-hasleader": "true" },
          body: '{"create_request":{"key":"Zm9v"}}',
        }),
      );
      strictEqual(response.status, 503);
      strictEqual(
        await response.text(),
        '{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}',
      );
    } finally {
      s.close();
    }
  });
});

Deno.test("ready responses taken without awaiting come in serve's order, a turn's share at most", async () => {
  const t = setup();
  const watches = 70;
  const puts = 3;
  // The same watches on two streams: one read plainly, one as our gRPC server reads it.
  const plain = t.open();
  const fast = t.open({}, "grpc");
  try {
    ok(fast.takeReady, "the Watch service's output offers takeReady");
    for (let i = 0; i < watches; i++) {
      plain.requests.push(create_("k"));
      fast.requests.push(create_("k"));
    }
    await t.until(() => plain.got.length === watches && fast.got.length === watches, "creates");
    for (let i = 1; i <= puts; i++) {
      t.put("k", `v${i}`);
      // serve waits for a wake-up, not at a yield: nothing may be taken past it.
      strictEqual(fast.takeReady!(), undefined);
      // One response per watch and put (waiting, so that revisions do not merge).
      const sent = watches * (1 + i);
      await t.until(() => plain.got.length === sent && fast.got.length === sent, `put ${i}`);
    }
    deepStrictEqual(fast.got.map(show), plain.got.map(show), "the same responses, same order");
    ok(fast.ready.taken >= (watches * puts) / 2, `${fast.ready.taken} taken without awaiting`);
    ok(fast.ready.longestRun < maxResponsesPerTurn, `${fast.ready.longestRun} in a row`);
  } finally {
    await plain.close();
    await fast.close();
    t.close();
  }
});

Deno.test("a stream's abort cleans up its watchers and timers", async () => {
  await withStream(async (t, s) => {
    s.requests.push(create_("a", { progressNotify: true }));
    s.requests.push(create_("a", { startRevision: 1n }));
    await s.take(2);
    ok(t.timers.size > 0);
    s.abort();
    await s.done;
    strictEqual(s.state.error, undefined, "an aborted stream just ends");
    strictEqual(t.hub.counts.synced + t.hub.counts.unsynced, 0);
    t.timers.runDue();
    strictEqual(t.timers.size, 0, "no timer left behind");
  });
});

Deno.test("a closing hub ends streams with `server stopped`", async () => {
  const t = setup();
  const s = t.open();
  s.requests.push(create_("a"));
  await s.take();
  t.hub.close();
  await s.done;
  strictEqual((s.state.error as ConnectError).rawMessage, "etcdserver: server stopped");
  await s.close();
  t.store.close();
});

Deno.test("a response built as a literal equals the one create() builds", () => {
  const header = create(ResponseHeaderSchema, { clusterId: 1n, memberId: 2n, revision: 9n });
  const events = [create(EventSchema, { kv: { key: utf8("k"), modRevision: 9n } })];
  deepStrictEqual(
    eventsResponse(header, 7n, events),
    create(WatchResponseSchema, { header, watchId: 7n, events }),
  );
});
