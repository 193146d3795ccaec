/**
 * The Watch service over one member, answering as etcd 3.4's v3rpc watch server does: many
 * watches per stream, server-chosen ids counting from 0 or client-chosen ones, `created` and
 * `canceled` control responses, compaction cancels (`created` first, then `canceled` with
 * `compact_revision`), per-watch progress notifications, `progress_request`, `fragment`, and
 * the `hasleader` metadata. Also its browser sibling (etcdweb.v1.WebWatch, one watch per
 * server stream) and the JSON gateway's `POST /v3/watch` (NDJSON `{"result":...}` lines).
 *
 * Each stream sends from bounded places only: at most `maxControlResponses` control responses
 * (the request reader waits when they pile up) and the hub's bounded per-watcher buffers,
 * served round-robin so one busy watcher cannot starve the others. A slow client therefore
 * holds no unbounded memory and never slows apply or other streams: its watchers fall behind
 * and catch up from history.
 *
 * Where this differs from 3.4, on purpose: a `progress_request` is answered once every watcher
 * of the stream has caught up and its events were sent (3.5's fix: 3.4 could report a revision
 * before sending the events under it); a catch-up response reports the revision it is
 * complete up to, not a later current revision; and revisions queued for one watcher while
 * its client was busy go out together (whole revisions, up to `maxMergedResponseBytes`), as
 * etcd's own catch-up responses do, rather than one response per revision.
 *
 * @module
 */
import { create, fromJson, type JsonValue, toBinary, toJson } from "@bufbuild/protobuf";
import { createHandlerContext, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { setImmediate } from "node:timers";
import { varintBytes } from "../internal/bytes.ts";
import { Fifo } from "../internal/fifo.ts";
import type { MvccEvent } from "../mvcc/mod.ts";
import {
  DuplicateWatchIdError,
  realTimers,
  type WatchBatch,
  type Watcher,
  type WatchHub,
  WatchRangeEmptyError,
  type WatchStream,
  type WatchTimers,
} from "../mvcc/watch_hub.ts";
import { type Event as PbEvent, EventSchema } from "../proto/gen/etcd/mvccpb/kv_pb.ts";
import {
  type ResponseHeader,
  Watch,
  type WatchCreateRequest,
  WatchCreateRequest_FilterType,
  type WatchRequest,
  WatchRequestSchema,
  type WatchResponse,
  WatchResponseSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { WebWatch } from "../proto/gen/etcdweb/web_watch_pb.ts";
import { toPbEvent } from "./apply_kv.ts";
import { Errors, toConnectError } from "./errors.ts";
import { gatewayStreamHandler } from "./gateway_stream.ts";
import { goJsonObject } from "./go_json.ts";
import { type ReadyResponses, takeReady } from "./service_methods.ts";

/** What the Watch services need from their member (the lead provides it from EtcdServer). */
export interface WatchServiceDeps {
  /** The member's watch hub (fed by apply). */
  hub: WatchHub;
  /** A response header at `revision`, the store's current revision when absent. */
  header(revision?: bigint): ResponseHeader;
  /** Whether the member knows a leader (for streams that carry `hasleader: true`). */
  hasLeader(): boolean;
  /**
   * Interval of progress notifications for watches that ask for them (etcd's
   * `--experimental-watch-progress-notify-interval`, default 10 min); 0 turns them off.
   */
  progressNotifyIntervalMs: number;
  /**
   * Size at which responses of watches that asked for `fragment` are split: etcd uses
   * `--max-request-bytes` plus its 512 KiB gRPC overhead.
   */
  maxRequestBytes: number;
  /**
   * The election timeout: a `hasleader` stream is canceled after three of them without a
   * leader, as etcd does.
   */
  electionTimeoutMs: number;
  /** Timers (the global ones by default; tests inject their own). */
  timers?: WatchTimers;
  /** Jitter source for progress notifications, in [0, 1) (Math.random by default). */
  random?: () => number;
}

/** Control responses a stream holds before it stops reading requests (etcd: 16). */
export const maxControlResponses = 16;
/**
 * A watcher's queued revisions are merged into one response up to this size (approximate,
 * see `eventBytes`), well under grpc-js's default 4 MiB receive limit: a client that fell
 * behind gets fewer, larger responses, as etcd's catch-up sends.
 */
export const maxMergedResponseBytes = 1024 * 1024;
/** Responses a stream sends back to back before it yields to the event loop. */
export const maxResponsesPerTurn = 32;
/** Election timeouts without a leader before `hasleader` streams are canceled (etcd: 3). */
const noLeaderChecks = 3;
/** etcd's (clientv3.InvalidWatchID) id of responses tied to no watch. */
const invalidWatchId = -1n;
const FROM_KEY = new Uint8Array([0]);

/** Per-watch settings the stream keeps beside the hub's watcher. */
interface Entry {
  watcher: Watcher;
  progressNotify: boolean;
  fragment: boolean;
  /** No events were sent since the last progress tick (etcd's `progress[id]`). */
  progressDue: boolean;
}

/**
 * Splits a response as etcd's sendFragments does: whole when under the limit or holding one
 * event, else as many events per piece as keep it under `maxBytes` (at least one), with
 * `fragment` set on every piece but the last.
 */
export function fragmentResponse(wr: WatchResponse, maxBytes: number): WatchResponse[] {
  if (wr.events.length < 2) return [wr];
  // One event field costs its tag (field 11: one byte), its length varint and its bytes.
  const eventSizes = wr.events.map((ev) => {
    const n = toBinary(EventSchema, ev).length;
    return 1 + varintBytes(n) + n;
  });
  const base = toBinary(WatchResponseSchema, { ...wr, events: [] }).length;
  const whole = eventSizes.reduce((a, b) => a + b, base);
  if (whole < maxBytes) return [wr];
  const fragmentFlagBytes = 2;
  const out: WatchResponse[] = [];
  let idx = 0;
  while (idx < wr.events.length) {
    const start = idx;
    let size = base + fragmentFlagBytes;
    while (idx < wr.events.length) {
      size += eventSizes[idx];
      if (idx > start && size >= maxBytes) break;
      idx++;
    }
    out.push(create(WatchResponseSchema, {
      ...wr,
      events: wr.events.slice(start, idx),
      fragment: idx < wr.events.length,
    }));
  }
  return out;
}

/**
 * A response carrying events, with every field set as `create` sets it, built as a literal:
 * one is made per watcher and revision, and protobuf-es's generic `create` cost about 0.5 µs
 * each, a tenth of the server's CPU per delivered event at 1 000 watchers.
 */
export function eventsResponse(
  header: ResponseHeader,
  watchId: bigint,
  events: PbEvent[],
): WatchResponse {
  return {
    $typeName: "etcdserverpb.WatchResponse",
    header,
    watchId,
    created: false,
    canceled: false,
    compactRevision: 0n,
    cancelReason: "",
    fragment: false,
    events,
  };
}

/**
 * Protobuf events by store event, built once however many watchers send them (responses
 * only read them). Weak: an entry lives as long as some watcher still holds the event.
 */
const pbEvents = new WeakMap<MvccEvent, { plain?: PbEvent; withPrev?: PbEvent }>();

function pbEvent(ev: MvccEvent, withPrevKv: boolean): PbEvent {
  let cached = pbEvents.get(ev);
  if (!cached) pbEvents.set(ev, cached = {});
  if (withPrevKv) return cached.withPrev ??= toPbEvent(ev, true);
  return cached.plain ??= toPbEvent(ev, false);
}

/**
 * Takes a watcher's oldest batch and merges the batches after it while the total stays under
 * {@linkcode maxMergedResponseBytes}; a compaction cancel is never merged.
 */
function takeMerged(w: Watcher): WatchBatch | undefined {
  const first = w.take();
  if (!first || first.compactRevision !== undefined) return first;
  // Batches are shared between watchers: merging copies.
  let events: MvccEvent[] | undefined;
  let revision = first.revision;
  let bytes = first.bytes;
  for (let next = w.peek(); next !== undefined; next = w.peek()) {
    if (next.compactRevision !== undefined || bytes + next.bytes > maxMergedResponseBytes) break;
    w.take();
    events ??= [...first.events];
    for (const ev of next.events) events.push(ev);
    revision = next.revision;
    bytes += next.bytes;
  }
  return events === undefined ? first : { events, revision, bytes };
}

/** One client stream: its watchers, queues and timers. */
class WatchSession {
  readonly #deps: WatchServiceDeps;
  readonly #context: HandlerContext;
  readonly #timers: WatchTimers;
  readonly #stream: WatchStream;
  /** Ends the session after a canceled watch (WebWatch and the gateway serve one watch). */
  readonly #single: boolean;
  readonly #entries = new Map<Watcher, Entry>();
  /**
   * Watchers with batches to send, in turn order, each at most once (`Watcher.queued`); a
   * canceled watcher's place is skipped. A queue, not a `Set`: every event re-adds its watcher
   * after taking it, and a `Set` churned that way made finding the next one the session's
   * largest CPU cost at 1 000 watchers.
   */
  readonly #ready = new Fifo<Watcher>();
  readonly #control: WatchResponse[] = [];
  /** The rest of a fragmented response: sent before anything else. */
  #fragments: WatchResponse[] = [];
  #progressRequested = false;
  #wake: (() => void) | undefined;
  #controlRoom: (() => void) | undefined;
  #failure: unknown = undefined;
  #done = false;
  #progressTimer: unknown = undefined;
  #leaderTimer: unknown = undefined;
  #noLeaderCount = 0;
  /** Responses sent since the session last yielded to the event loop. */
  #inARow = 0;
  /** `serve` waits at a yield: its consumer has the response and may take more. */
  #suspended = false;
  readonly #onAbort = () => this.close();

  constructor(deps: WatchServiceDeps, context: HandlerContext, single: boolean) {
    this.#deps = deps;
    this.#context = context;
    this.#single = single;
    this.#timers = deps.timers ?? realTimers;
    this.#stream = deps.hub.newStream({
      onChange: (w) => this.#changed(w),
      onClose: () => this.fail(Errors.stopped),
    });
  }

  /** Checks `hasleader`, then starts the timers; throws `no leader` as etcd's interceptor. */
  #start(): void {
    if (this.#context.signal.aborted) return this.close();
    this.#context.signal.addEventListener("abort", this.#onAbort, { once: true });
    if (this.#context.requestHeader.get("hasleader") === "true") {
      if (!this.#deps.hasLeader()) throw Errors.noLeader;
      this.#armLeaderCheck();
    }
    if (this.#deps.progressNotifyIntervalMs > 0) this.#armProgress();
  }

  /** Serves requests until they end or the session does; the session outlives their end. */
  async feed(requests: AsyncIterable<WatchRequest>): Promise<void> {
    try {
      for await (const req of requests) {
        if (this.#done) break;
        this.handle(req);
        while (!this.#done && this.#control.length >= maxControlResponses) {
          await new Promise<void>((resolve) => this.#controlRoom = resolve);
        }
        if (this.#done) break;
      }
    } catch (err) {
      // A broken request stream ends the call, as a failed Recv ends etcd's.
      if (!this.#done) this.fail(err);
    }
  }

  /** Acts on one request (etcd's recvLoop). */
  handle(req: WatchRequest): void {
    if (this.#done) return;
    const u = req.requestUnion;
    switch (u.case) {
      case "createRequest":
        return this.#create(u.value);
      case "cancelRequest":
        return this.#cancel(u.value.watchId);
      case "progressRequest":
        this.#progressRequested = true;
        return this.#signal();
      default:
        // etcd ignores a request it does not understand rather than ending the stream.
        return;
    }
  }

  /**
   * Starts the session, runs `begin` (which feeds it requests) and yields the responses in the
   * order the client must see them; failures become wire errors, and the session is closed
   * however the iteration ends. One generator per call: every layer of async iteration costs
   * each of the thousands of responses a put can fan out to.
   */
  async *serve(begin: () => void): AsyncGenerator<WatchResponse> {
    try {
      this.#start();
      begin();
      this.#inARow = 0;
      for (;;) {
        if (this.#failure !== undefined) throw this.#failure;
        if (this.#done) return;
        const next = this.#next();
        if (next) {
          this.#suspended = true;
          yield next;
          this.#suspended = false;
          if (this.#single && next.canceled) return;
          if (++this.#inARow >= maxResponsesPerTurn) {
            // Let requests, raft and other streams in; what queues meanwhile merges.
            this.#inARow = 0;
            await new Promise<void>((resolve) => setImmediate(resolve));
          }
          continue;
        }
        this.#inARow = 0;
        await new Promise<void>((resolve) => this.#wake = resolve);
      }
    } catch (err) {
      // Interceptors do not see errors raised while a stream is consumed.
      throw toConnectError(err);
    } finally {
      this.#suspended = false;
      this.close();
    }
  }

  /**
   * The response `serve` would yield next, if one is ready and the turn's share is not used up
   * (see `takeReady` in service_methods.ts); only while `serve` waits at a yield, so that the
   * two take from the queues in turn order. The browser's single-watch sessions end on a
   * cancel, which only `serve` knows to do: they always go through it.
   */
  takeReady(): WatchResponse | undefined {
    if (!this.#suspended || this.#single || this.#done || this.#failure !== undefined) {
      return undefined;
    }
    if (this.#inARow + 1 >= maxResponsesPerTurn) return undefined;
    const next = this.#next();
    if (next) this.#inARow++;
    return next;
  }

  /** Ends the session with an error for the client. */
  fail(err: unknown): void {
    if (this.#done) return;
    this.#failure = err;
    this.close();
  }

  /** Cancels every watch and stops the timers; idempotent. */
  close(): void {
    if (this.#done) return;
    this.#done = true;
    this.#context.signal.removeEventListener("abort", this.#onAbort);
    if (this.#progressTimer !== undefined) this.#timers.clearTimeout(this.#progressTimer);
    if (this.#leaderTimer !== undefined) this.#timers.clearTimeout(this.#leaderTimer);
    this.#stream.close();
    this.#entries.clear();
    this.#ready.drain();
    this.#control.length = 0;
    this.#fragments = [];
    this.#signal();
    this.#controlRoom?.();
  }

  #create(req: WatchCreateRequest): void {
    // As etcd: an empty key is "\0", the smallest key; range_end "\0" means "from key".
    const key = req.key.length === 0 ? FROM_KEY : req.key;
    const end = req.rangeEnd.length === 0 ? undefined : req.rangeEnd;
    // The header comes first: the watch starts after the revision it reports.
    const header = this.#deps.header();
    let watcher: Watcher;
    try {
      watcher = this.#stream.watch(req.watchId, {
        key,
        end,
        startRev: Number(req.startRevision),
        prevKv: req.prevKv,
        noPut: req.filters.includes(WatchCreateRequest_FilterType.NOPUT),
        noDelete: req.filters.includes(WatchCreateRequest_FilterType.NODELETE),
      });
    } catch (err) {
      if (!(err instanceof WatchRangeEmptyError || err instanceof DuplicateWatchIdError)) throw err;
      this.#pushControl(create(WatchResponseSchema, {
        header,
        watchId: invalidWatchId,
        created: true,
        canceled: true,
        cancelReason: err.message,
      }));
      return;
    }
    const entry: Entry = {
      watcher,
      progressNotify: req.progressNotify,
      fragment: req.fragment,
      progressDue: true,
    };
    this.#entries.set(watcher, entry);
    this.#pushControl(create(WatchResponseSchema, { header, watchId: watcher.id, created: true }));
    if (watcher.pending) this.#enqueue(watcher);
  }

  #cancel(id: bigint): void {
    const watcher = this.#stream.get(id);
    // etcd does not answer a cancel of an unknown id.
    if (!watcher || !this.#stream.cancel(id)) return;
    this.#entries.delete(watcher);
    this.#pushControl(create(WatchResponseSchema, {
      header: this.#deps.header(),
      watchId: id,
      canceled: true,
    }));
  }

  #pushControl(wr: WatchResponse): void {
    this.#control.push(wr);
    this.#signal();
  }

  #changed(w: Watcher): void {
    if (this.#done) return;
    // No entry lookup here: the hub calls this for each of 1 000 watchers per put, and
    // `#nextReady` skips a watcher canceled meanwhile.
    if (w.pending) this.#enqueue(w);
    this.#signal();
  }

  #enqueue(w: Watcher): void {
    if (w.queued) return;
    w.queued = true;
    this.#ready.push(w);
  }

  /** The next watcher in turn with an entry, taken off the queue. */
  #nextReady(): Entry | undefined {
    for (let w = this.#ready.shift(); w !== undefined; w = this.#ready.shift()) {
      const entry = this.#entries.get(w);
      if (entry === undefined) continue; // canceled since
      w.queued = false;
      return entry;
    }
    return undefined;
  }

  #signal(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** The next response to send, if any (etcd's sendLoop, one step). */
  #next(): WatchResponse | undefined {
    if (this.#fragments.length > 0) return this.#fragments.shift();
    const control = this.#control.shift();
    if (control) {
      const room = this.#controlRoom;
      this.#controlRoom = undefined;
      room?.();
      return control;
    }
    for (let entry = this.#nextReady(); entry; entry = this.#nextReady()) {
      const w = entry.watcher;
      const batch = takeMerged(w);
      if (!batch) continue;
      if (w.pending) this.#enqueue(w);
      return this.#fromBatch(entry, batch);
    }
    if (this.#progressRequested && this.#caughtUp()) {
      this.#progressRequested = false;
      return create(WatchResponseSchema, {
        header: this.#deps.header(),
        watchId: invalidWatchId,
      });
    }
    return undefined;
  }

  /** Every watcher has seen the current revision and everything it got was sent. */
  #caughtUp(): boolean {
    for (const w of this.#stream.watchers()) {
      if (!w.canceled && (!w.synced || w.pending)) return false;
    }
    return true;
  }

  /** The response for `batch`; the rest of a fragmented one waits in `#fragments`. */
  #fromBatch(entry: Entry, batch: WatchBatch): WatchResponse {
    const w = entry.watcher;
    if (batch.compactRevision !== undefined) {
      // The watch is over, but its id stays taken until the client cancels it (as etcd).
      entry.progressNotify = false;
      return create(WatchResponseSchema, {
        header: this.#deps.header(0n),
        watchId: w.id,
        canceled: true,
        compactRevision: BigInt(batch.compactRevision),
      });
    }
    const wr = eventsResponse(
      this.#deps.header(BigInt(batch.revision)),
      w.id,
      batch.events.map((ev) => pbEvent(ev, w.prevKv)),
    );
    if (wr.events.length > 0) entry.progressDue = false;
    if (!entry.fragment) return wr;
    const [first, ...rest] = fragmentResponse(wr, this.#deps.maxRequestBytes);
    this.#fragments = rest;
    return first;
  }

  #armProgress(): void {
    const interval = this.#deps.progressNotifyIntervalMs;
    // etcd adds up to a tenth of jitter so watchers created together do not report together.
    const jitter = Math.floor((this.#deps.random ?? Math.random)() * (interval / 10));
    const tick = () => {
      if (this.#done) return;
      for (const entry of this.#entries.values()) {
        if (!entry.progressNotify) continue;
        if (entry.progressDue) this.#deps.hub.progress(entry.watcher);
        entry.progressDue = true;
      }
      this.#progressTimer = this.#timers.setTimeout(tick, interval + jitter);
    };
    this.#progressTimer = this.#timers.setTimeout(tick, interval + jitter);
  }

  #armLeaderCheck(): void {
    const tick = () => {
      if (this.#done) return;
      this.#noLeaderCount = this.#deps.hasLeader() ? 0 : this.#noLeaderCount + 1;
      if (this.#noLeaderCount >= noLeaderChecks) return this.fail(Errors.noLeader);
      this.#leaderTimer = this.#timers.setTimeout(tick, this.#deps.electionTimeoutMs);
    };
    this.#leaderTimer = this.#timers.setTimeout(tick, this.#deps.electionTimeoutMs);
  }
}

/** The Watch service implementation (bidirectional `Watch`). */
export function watchService(deps: WatchServiceDeps): ServiceImpl<typeof Watch> {
  return {
    watch(requests, context) {
      const session = new WatchSession(deps, context, false);
      const responses: AsyncIterable<WatchResponse> & ReadyResponses = session.serve(() =>
        void session.feed(requests)
      );
      responses[takeReady] = () => session.takeReady();
      return responses;
    },
  };
}

/** The browser sibling: one create request, the same responses, over a server stream. */
export function webWatchService(deps: WatchServiceDeps): ServiceImpl<typeof WebWatch> {
  return {
    watch(request, context) {
      const session = new WatchSession(deps, context, true);
      return session.serve(() =>
        session.handle(create(WatchRequestSchema, {
          requestUnion: { case: "createRequest", value: request },
        }))
      );
    },
  };
}

// --- JSON gateway ---

function decodeWatchRequest(json: string): WatchRequest {
  const object = goJsonObject(json);
  if (object === undefined) return create(WatchRequestSchema);
  // grpc-gateway ignores fields it does not know but refuses bad values.
  return fromJson(WatchRequestSchema, object as JsonValue, { ignoreUnknownFields: true });
}

/**
 * The gateway's `POST /v3/watch` (and `/v3beta/watch`): the body is a sequence of
 * WatchRequest JSON objects (usually one `{"create_request":{...}}`); the answer streams one
 * `{"result":{...}}` line per response, with proto field names and int64 as strings. The
 * session outlives the end of the requests. `Grpc-Metadata-Hasleader: true` is the
 * `hasleader` metadata.
 */
export function watchGatewayHandler(
  deps: WatchServiceDeps,
  maxBodyBytes: number,
): (request: Request) => Promise<Response> {
  return gatewayStreamHandler<WatchRequest, WatchResponse>({
    decode: decodeWatchRequest,
    encode: (wr) => toJson(WatchResponseSchema, wr, { useProtoFieldName: true }),
    open(requests, signal, request) {
      const hasLeader = request.headers.get("grpc-metadata-hasleader");
      const context = createHandlerContext({
        service: Watch,
        method: Watch.method.watch,
        protocolName: "gateway",
        requestMethod: "POST",
        url: request.url,
        requestSignal: signal,
        requestHeader: hasLeader === null ? {} : { hasleader: hasLeader },
      });
      const session = new WatchSession(deps, context, false);
      return session.serve(() => void session.feed(requests));
    },
  }, maxBodyBytes);
}
