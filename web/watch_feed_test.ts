import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { fromUtf8 } from "../internal/bytes.ts";
import { startInProcess } from "../tests/support/in_process.ts";
import {
  type FeedStatus,
  maxRetryDelayMs,
  minRetryDelayMs,
  prefixRange,
  retryDelayMs,
  runWatchFeed,
  type WatchRow,
} from "./watch_feed.ts";

/** Longest wait for one expected feed update. */
const waitTimeoutMs = 10_000;

Deno.test("prefixRange selects the keys with the prefix, and every key for an empty one", () => {
  const cases: [string, string, number[]][] = [
    ["", "", [0]],
    ["a", "a", [0x62]],
    ["web/", "web/", [0x77, 0x65, 0x62, 0x30]],
    // "é" is 0xc3 0xa9: the last byte is incremented.
    ["é", "é", [0xc3, 0xaa]],
  ];
  for (const [prefix, key, rangeEnd] of cases) {
    const range = prefixRange(prefix);
    strictEqual(fromUtf8(range.key), key, prefix);
    deepStrictEqual([...range.rangeEnd], rangeEnd, prefix);
  }
});

Deno.test("retry delays double from the minimum and stop at the maximum", () => {
  strictEqual(retryDelayMs(0), minRetryDelayMs);
  strictEqual(retryDelayMs(1), 2 * minRetryDelayMs);
  strictEqual(retryDelayMs(100), maxRetryDelayMs);
  ok(retryDelayMs(5) <= maxRetryDelayMs);
});

/** Collects a feed's rows and states and lets a test await a condition on them. */
class FeedLog {
  readonly rows: WatchRow[] = [];
  readonly states: FeedStatus[] = [];
  #changed: (() => void) | undefined;

  onRows = (rows: WatchRow[]) => {
    this.rows.push(...rows);
    this.#changed?.();
  };
  onStatus = (status: FeedStatus) => {
    this.states.push(status);
    this.#changed?.();
  };

  /** Resolves once `condition` holds; fails after {@linkcode waitTimeoutMs}. */
  async until(what: string, condition: () => boolean): Promise<void> {
    const deadline = Date.now() + waitTimeoutMs;
    while (!condition()) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out waiting for ${what}; states ${JSON.stringify(this.summary())}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#changed = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#changed = undefined;
    }
  }

  watchingCount(): number {
    return this.states.filter((s) => s.state === "watching").length;
  }

  summary(): string[] {
    return this.states.map((s) => s.state);
  }
}

async function put(baseUrl: string, key: string, value: string): Promise<void> {
  const res = await fetch(`${baseUrl}/v3/kv/put`, {
    method: "POST",
    body: JSON.stringify({ key: btoa(key), value: btoa(value) }),
  });
  strictEqual(res.status, 200, await res.text());
}

async function del(baseUrl: string, key: string): Promise<void> {
  const res = await fetch(`${baseUrl}/v3/kv/deleterange`, {
    method: "POST",
    body: JSON.stringify({ key: btoa(key) }),
  });
  strictEqual(res.status, 200, await res.text());
}

const brief = (rows: WatchRow[]) =>
  rows.map((r) => `${r.type} ${r.key}=${r.value}@${r.modRevision}`);

Deno.test("the feed shows the prefix's puts and deletes from the revision it started at", async () => {
  const member = await startInProcess();
  const stop = new AbortController();
  const log = new FeedLog();
  let feed: Promise<void> | undefined;
  try {
    await put(member.clientUrl, "app/before", "old");
    feed = runWatchFeed({ baseUrl: member.clientUrl, prefix: "app/", signal: stop.signal, ...log });
    await log.until("the watch to start", () => log.watchingCount() === 1);
    deepStrictEqual(log.states[1], { state: "watching", revision: 2n });
    await put(member.clientUrl, "app/a", "1");
    await put(member.clientUrl, "other", "x");
    await put(member.clientUrl, "app/b", "2");
    await del(member.clientUrl, "app/a");
    await log.until("three events", () => log.rows.length >= 3);
    deepStrictEqual(brief(log.rows), ["PUT app/a=1@3", "PUT app/b=2@5", "DELETE app/a=@6"]);
  } finally {
    stop.abort();
    await feed;
    await member.stop();
  }
  strictEqual(log.states.at(-1)?.state, "stopped");
});

Deno.test("a broken stream is reopened after the last revision shown: nothing lost or repeated", async () => {
  const member = await startInProcess();
  const stop = new AbortController();
  const log = new FeedLog();
  // Each watch call gets its own abort, so the test can break a stream without stopping the
  // feed; the second call waits until the test lets it through.
  const streams: AbortController[] = [];
  let letSecondThrough: () => void = () => {};
  const secondMayStart = new Promise<void>((resolve) => letSecondThrough = resolve);
  const fetchWithBreaks: typeof fetch = async (input, init) => {
    const own = new AbortController();
    streams.push(own);
    if (streams.length === 2) await secondMayStart;
    const signals = [own.signal, ...(init?.signal ? [init.signal] : [])];
    return await fetch(input, { ...init, signal: AbortSignal.any(signals) });
  };
  let feed: Promise<void> | undefined;
  try {
    feed = runWatchFeed({
      baseUrl: member.clientUrl,
      prefix: "",
      signal: stop.signal,
      fetch: fetchWithBreaks,
      ...log,
    });
    await log.until("the watch to start", () => log.watchingCount() === 1);
    await put(member.clientUrl, "k1", "a");
    await log.until("the first event", () => log.rows.length === 1);

    streams[0].abort();
    await log.until("a retry", () => log.states.at(-1)?.state === "retrying");
    // Written while no stream is open.
    await put(member.clientUrl, "k2", "b");
    await put(member.clientUrl, "k1", "c");
    letSecondThrough();
    await log.until("the events written meanwhile", () => log.rows.length >= 3);
    strictEqual(log.watchingCount(), 2);
    await put(member.clientUrl, "k3", "d");
    await log.until("a live event after the resume", () => log.rows.length >= 4);
    deepStrictEqual(brief(log.rows), ["PUT k1=a@2", "PUT k2=b@3", "PUT k1=c@4", "PUT k3=d@5"]);
  } finally {
    letSecondThrough();
    stop.abort();
    await feed;
    await member.stop();
  }
});
