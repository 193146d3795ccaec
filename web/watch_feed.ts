/**
 * The watch page's feed, free of the DOM so Deno can test it: one `etcdweb.v1.WebWatch/Watch`
 * server stream over the Connect protocol (HTTP/1.1, same origin), turned into display rows,
 * resumed after the last revision it delivered when the stream breaks.
 *
 * @module
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { Event_EventType, type KeyValue } from "../proto/gen/etcd/mvccpb/kv_pb.ts";
import type { WatchResponse } from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { WebWatch } from "../proto/gen/etcdweb/web_watch_pb.ts";
import { fromUtf8, prefixEnd, utf8 } from "../internal/bytes.ts";
import { abortableDelay } from "../internal/delay.ts";

/** One event as the page shows it. */
export interface WatchRow {
  /** `PUT` or `DELETE`. */
  type: "PUT" | "DELETE";
  /** The key, decoded as UTF-8 (invalid bytes become U+FFFD). */
  key: string;
  /** The value (empty for a delete), decoded as UTF-8. */
  value: string;
  /** The revision of the change. */
  modRevision: bigint;
}

/** What the feed is doing, for the page's status line. */
export type FeedStatus =
  | { state: "connecting"; attempt: number }
  | { state: "watching"; revision: bigint }
  | { state: "compacted"; compactRevision: bigint }
  | { state: "retrying"; error: string; delayMs: number }
  | { state: "stopped" };

/** Options of {@linkcode runWatchFeed}. */
export interface WatchFeedOptions {
  /** Where the Connect services are, e.g. `location.origin`. */
  baseUrl: string;
  /** Keys starting with this are watched; `""` watches every key. */
  prefix: string;
  /** Ends the feed (the returned promise then resolves). */
  signal: AbortSignal;
  /** Receives the rows of each response, in revision order. */
  onRows(rows: WatchRow[]): void;
  /** Receives every change of state. */
  onStatus(status: FeedStatus): void;
  /** `fetch` to use (the global one by default). */
  fetch?: typeof globalThis.fetch;
}

/** First delay before reconnecting after a broken stream. */
export const minRetryDelayMs = 250;
/** Longest delay between reconnect attempts. */
export const maxRetryDelayMs = 5_000;

/**
 * The `key` and `range_end` that watch every key starting with `prefix` (every key for `""`:
 * the server reads an empty key with range end `"\0"` as "from the smallest key on").
 */
export function prefixRange(prefix: string): { key: Uint8Array; rangeEnd: Uint8Array } {
  const key = utf8(prefix);
  return { key, rangeEnd: prefixEnd(key) };
}

function rowOf(type: Event_EventType, kv: KeyValue | undefined): WatchRow {
  return {
    type: type === Event_EventType.DELETE ? "DELETE" : "PUT",
    key: fromUtf8(kv?.key ?? new Uint8Array()),
    value: fromUtf8(kv?.value ?? new Uint8Array()),
    modRevision: kv?.modRevision ?? 0n,
  };
}

/** The rows of one watch response (none for control responses). */
function rowsOf(response: WatchResponse): WatchRow[] {
  return response.events.map((ev) => rowOf(ev.type, ev.kv));
}

/** The delay before reconnect attempt `attempt` (0-based): doubling, capped. */
export function retryDelayMs(attempt: number): number {
  return Math.min(maxRetryDelayMs, minRetryDelayMs * 2 ** Math.min(attempt, 16));
}

/**
 * Watches `prefix` until `signal` aborts. The first stream starts at the current revision;
 * a stream that breaks or ends is reopened (after {@linkcode retryDelayMs}) just after the last
 * revision it delivered, so no event is lost or shown twice unless history was compacted
 * meanwhile (reported as `compacted`, then resumed from the oldest revision left).
 */
export async function runWatchFeed(options: WatchFeedOptions): Promise<void> {
  const { signal } = options;
  const client = createClient(
    WebWatch,
    createConnectTransport({ baseUrl: options.baseUrl, fetch: options.fetch }),
  );
  const { key, rangeEnd } = prefixRange(options.prefix);
  // 0 means "from now"; after the first `created` it is the next revision to deliver.
  let startRevision = 0n;
  let attempt = 0;
  while (!signal.aborted) {
    options.onStatus({ state: "connecting", attempt });
    let failure = "the server ended the stream";
    try {
      for await (const res of client.watch({ key, rangeEnd, startRevision }, { signal })) {
        if (res.created && !res.canceled) {
          const current = res.header?.revision ?? 0n;
          if (startRevision === 0n) startRevision = current + 1n;
          attempt = 0;
          options.onStatus({ state: "watching", revision: current });
          continue;
        }
        if (res.canceled) {
          if (res.compactRevision > 0n) {
            startRevision = res.compactRevision;
            options.onStatus({ state: "compacted", compactRevision: res.compactRevision });
            failure = `history before revision ${res.compactRevision} was compacted`;
          } else {
            failure = res.cancelReason || "the server canceled the watch";
          }
          break;
        }
        const rows = rowsOf(res);
        if (rows.length > 0) {
          startRevision = rows[rows.length - 1].modRevision + 1n;
          options.onRows(rows);
        }
      }
    } catch (err) {
      if (signal.aborted) break;
      failure = err instanceof Error ? err.message : String(err);
    }
    if (signal.aborted) break;
    const delayMs = retryDelayMs(attempt++);
    options.onStatus({ state: "retrying", error: failure, delayMs });
    await abortableDelay(delayMs, signal);
  }
  options.onStatus({ state: "stopped" });
}
