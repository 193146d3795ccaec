/**
 * Watch fan-out benchmark: N watchers (on one key, or on a prefix) spread over a few HTTP/2
 * connections, several bidi Watch streams per connection and many watches per stream (as etcd's
 * clients multiplex them), and one writer that puts at a steady rate, on a thread of its own
 * (watch_writer.ts). It measures the events delivered per second (summed over the watchers), the
 * put-to-event latency (each value is the writer's send time, in the watchers' clock) and the
 * server's resident memory per watcher (VmRSS before and after the watches are created).
 *
 * The client reads only the fields it needs from each WatchResponse (see
 * {@linkcode scanWatchResponse}), so that it, not the server, is rarely the limit.
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import type * as http2 from "node:http2";
import {
  PutRequestSchema,
  Watch,
  WatchRequestSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { assert } from "../internal/assert.ts";
import { concatBytes, prefixEnd, utf8 } from "../internal/bytes.ts";
import { microsPerOperation, startCpuWindow } from "./cpu_window.ts";
import { grpcFrame, grpcPath, grpcPrefixBytes } from "./grpc_raw.ts";
import {
  advertisedMaxStreams,
  openSession,
  ProtoReader,
  RawBidiStream,
  WireType,
} from "./grpc_stream.ts";
import type { CpuProbe } from "./load.ts";
import { Histogram, type LatencySummary } from "./stats.ts";
import { PutArrivals, type PutArrivalSummary } from "./put_arrivals.ts";
import { PutWriter } from "./watch_writer.ts";

/** Names of the watch cases. */
export type WatchCaseName = "watch-key" | "watch-prefix";

/** Every watch case, in run order. */
export const watchCases: readonly WatchCaseName[] = ["watch-key", "watch-prefix"];

/** gRPC path of the Watch stream. */
export const watchPath: string = grpcPath(Watch.typeName, Watch.method.watch.name);

/** Watcher counts run by default. */
export const defaultWatcherCounts: readonly number[] = [100, 1_000];
/** Upper bound on watchers in one run. */
export const maxWatchers = 10_000;
/** HTTP/2 connections of the watchers unless `--conns` says otherwise. */
export const defaultWatchConns = 4;
/** Watch streams per connection by default. */
export const defaultStreamsPerConn = 4;
/** Upper bound on watch streams per connection. */
export const maxStreamsPerConn = 256;
/**
 * Events per second the writer offers by default, summed over the watchers: the put rate is this
 * divided by the watcher count (1000 puts/s for 100 watchers, 100 for 1000).
 */
export const defaultOfferedEventsPerSecond = 100_000;
/** Upper bound on the writer's put rate. */
export const maxPutRate = 100_000;

/** Bytes of each put's value: the send time, a float64 in this machine's byte order. */
export const timestampValueBytes = 8;
/** Puts the writer leaves unanswered at most; a due put beyond them is skipped and counted. */
export const maxOutstandingPuts = 256;
/** Bound on creating every watch. */
const createTimeoutMs = 30_000;
/** Bound on connecting. */
const connectTimeoutMs = 10_000;
/** After the window, in-flight puts get this long. */
const putDrainTimeoutMs = 10_000;
/** After the last put was answered, the watchers get this long to receive every event. */
export const catchUpTimeoutMs = 10_000;
/** Failures beyond this count end a run early. */
const maxErrorsPerRun = 1_000;

const scratchFloat = new Float64Array(1);
const scratchBytes = new Uint8Array(scratchFloat.buffer);

/** `sentAtMs` as a put value ({@linkcode timestampValueBytes} bytes). */
export function encodeTimestampValue(sentAtMs: number): Uint8Array {
  scratchFloat[0] = sentAtMs;
  return scratchBytes.slice();
}

/** The send time in a put value written by {@linkcode encodeTimestampValue}, at `offset`. */
export function decodeTimestampValue(bytes: Uint8Array, offset = 0): number {
  for (let i = 0; i < timestampValueBytes; i++) scratchBytes[i] = bytes[offset + i];
  return scratchFloat[0];
}

/** The fields of one WatchResponse the benchmark looks at. */
export interface WatchResponseScan {
  /** The watch the response is for (exact below 2^53). */
  watchId: number;
  /** A create confirmation. */
  created: boolean;
  /** The watch was canceled by the server. */
  canceled: boolean;
  /** Why it was canceled, if the server said. */
  cancelReason: string;
  /** PUT events whose value is a send time (each was passed to `onSentAt`). */
  events: number;
  /** Other events (deletes, or values that are not a send time). */
  foreignEvents: number;
}

const textDecoder = new TextDecoder();

/** Reads a KeyValue in `r.bytes[r.pos, end)`; returns the offset of an 8-byte value or -1. */
function timestampValueOffset(r: ProtoReader, end: number): number {
  let offset = -1;
  while (r.pos < end) {
    const tag = r.varint();
    if (tag === ((5 << 3) | WireType.bytes)) {
      const valueEnd = r.lengthDelimited();
      offset = valueEnd - r.pos === timestampValueBytes ? r.pos : -1;
      r.pos = valueEnd;
    } else r.skip(tag & 7);
  }
  return offset;
}

/**
 * Scans a WatchResponse (protobuf bytes) without decoding it into objects: its watch id,
 * created/canceled flags, and for each PUT event whose value is a send time, calls
 * `onSentAt(sentAtMs)`. Throws RangeError on malformed bytes.
 */
export function scanWatchResponse(
  message: Uint8Array,
  onSentAt: (sentAtMs: number) => void,
): WatchResponseScan {
  const scan: WatchResponseScan = {
    watchId: 0,
    created: false,
    canceled: false,
    cancelReason: "",
    events: 0,
    foreignEvents: 0,
  };
  const r = new ProtoReader(message);
  while (!r.done) {
    const tag = r.varint();
    switch (tag) {
      case (2 << 3) | WireType.varint:
        scan.watchId = r.varint();
        break;
      case (3 << 3) | WireType.varint:
        scan.created = r.varint() !== 0;
        break;
      case (4 << 3) | WireType.varint:
        scan.canceled = r.varint() !== 0;
        break;
      case (6 << 3) | WireType.bytes: {
        const end = r.lengthDelimited();
        scan.cancelReason = textDecoder.decode(message.subarray(r.pos, end));
        r.pos = end;
        break;
      }
      case (11 << 3) | WireType.bytes: {
        // mvccpb.Event: type = 1 (PUT = 0, the default), kv = 2.
        const eventEnd = r.lengthDelimited();
        let isPut = true;
        let valueOffset = -1;
        while (r.pos < eventEnd) {
          const eventTag = r.varint();
          if (eventTag === ((1 << 3) | WireType.varint)) isPut = r.varint() === 0;
          else if (eventTag === ((2 << 3) | WireType.bytes)) {
            const kvEnd = r.lengthDelimited();
            valueOffset = timestampValueOffset(r, kvEnd);
          } else r.skip(eventTag & 7);
        }
        if (isPut && valueOffset >= 0) {
          scan.events++;
          onSentAt(decodeTimestampValue(message, valueOffset));
        } else scan.foreignEvents++;
        break;
      }
      default:
        r.skip(tag & 7);
    }
  }
  return scan;
}

/** The key each watch of a run covers: one key, or a prefix. */
export interface WatchTarget {
  /** The watched key, or the prefix. */
  key: Uint8Array;
  /** Empty for one key; the prefix's end for a prefix. */
  rangeEnd: Uint8Array;
}

/** Where `caseName` watches and writes in the run tagged `runTag` (fresh keys per run). */
export function watchTarget(caseName: WatchCaseName, runTag: string): WatchTarget {
  if (caseName === "watch-key") {
    return { key: utf8(`bench-watch/${runTag}/key`), rangeEnd: new Uint8Array(0) };
  }
  const prefix = utf8(`bench-watch/${runTag}/p/`);
  return { key: prefix, rangeEnd: prefixEnd(prefix) };
}

/** The create request of one watch on `target`, as a gRPC frame. */
export function watchCreateFrame(target: WatchTarget): Uint8Array {
  return grpcFrame(toBinary(
    WatchRequestSchema,
    create(WatchRequestSchema, {
      requestUnion: {
        case: "createRequest",
        value: { key: target.key, rangeEnd: target.rangeEnd },
      },
    }),
  ));
}

/** A progress request: every stream answers it, even one without watches. */
export const watchProgressFrame: Uint8Array = grpcFrame(toBinary(
  WatchRequestSchema,
  create(WatchRequestSchema, { requestUnion: { case: "progressRequest", value: {} } }),
));

/** Writes `index` as `length` zero-padded ASCII digits into `bytes` at `offset`. */
function writeDigits(bytes: Uint8Array, offset: number, length: number, index: number): void {
  for (let i = offset + length - 1; i >= offset; i--) {
    bytes[i] = 0x30 + (index % 10);
    index = Math.floor(index / 10);
  }
}

/**
 * The writer's put frames: one key, or random keys under a prefix (`keyDigits` digits, drawn
 * from `keyspace`), each carrying its send time as the value. Frames are copies of one encoded
 * template with the key digits and the time rewritten.
 */
export class PutFrames {
  readonly #template: Uint8Array;
  readonly #valueOffset: number;
  readonly #digitsOffset: number;
  readonly #keyDigits: number;
  readonly #keyspace: number;
  #x: number;

  /** `target` from {@linkcode watchTarget}; `keyDigits`/`keyspace` matter for a prefix only. */
  constructor(target: WatchTarget, keyDigits: number, keyspace: number, seed: number) {
    const isPrefix = target.rangeEnd.length > 0;
    assert(!isPrefix || String(keyspace - 1).length <= keyDigits, "keyspace fits the digits");
    const key = isPrefix
      ? concatBytes(target.key, new Uint8Array(keyDigits).fill(0x30))
      : target.key;
    this.#template = grpcFrame(toBinary(
      PutRequestSchema,
      create(PutRequestSchema, { key, value: new Uint8Array(timestampValueBytes) }),
    ));
    // protobuf-es writes fields in number order: key (1), then value (2) last.
    this.#valueOffset = this.#template.length - timestampValueBytes;
    const keyOffset = grpcPrefixBytes + 1 + (key.length < 0x80 ? 1 : key.length < 0x4000 ? 2 : 3);
    assert(
      this.#template[grpcPrefixBytes] === 0x0a &&
        this.#template[this.#valueOffset - 2] === 0x12 &&
        this.#template[this.#valueOffset - 1] === timestampValueBytes &&
        this.#template.subarray(keyOffset, keyOffset + key.length).every((b, i) => b === key[i]),
      "the put frame is key, then value last",
    );
    this.#digitsOffset = isPrefix ? keyOffset + target.key.length : -1;
    this.#keyDigits = keyDigits;
    this.#keyspace = keyspace;
    this.#x = (seed | 1) >>> 0;
  }

  /** The next put, stamped with `sentAtMs`. */
  next(sentAtMs: number): Uint8Array {
    const frame = this.#template.slice();
    scratchFloat[0] = sentAtMs;
    frame.set(scratchBytes, this.#valueOffset);
    if (this.#digitsOffset >= 0) {
      this.#x ^= this.#x << 13;
      this.#x ^= this.#x >>> 17;
      this.#x ^= this.#x << 5;
      writeDigits(frame, this.#digitsOffset, this.#keyDigits, (this.#x >>> 0) % this.#keyspace);
    }
    return frame;
  }
}

/**
 * Puts due at `elapsedMs` into a steady `ratePerSecond` when `issued` were already issued (sent
 * or skipped): the writer catches up after a late tick instead of drifting.
 */
export function putsDue(elapsedMs: number, ratePerSecond: number, issued: number): number {
  return Math.max(0, Math.floor((elapsedMs * ratePerSecond) / 1000) - issued);
}

/**
 * Milliseconds from `elapsedMs` until the next put is due at `ratePerSecond`, `issued` puts
 * having gone out (0 when one is due already).
 */
export function nextPutInMs(elapsedMs: number, ratePerSecond: number, issued: number): number {
  return Math.max(0, ((issued + 1) * 1000) / ratePerSecond - elapsedMs);
}

/** Watchers per stream when `watchers` are spread round robin over `streams` streams. */
export function watchersPerStream(watchers: number, streams: number): number[] {
  assert(watchers >= 1 && streams >= 1, "at least one watcher and one stream");
  const used = Math.min(watchers, streams);
  return Array.from(
    { length: used },
    (_, i) => Math.floor(watchers / used) + (i < watchers % used ? 1 : 0),
  );
}

/** VmRSS in bytes from the text of /proc/<pid>/status, or undefined if absent. */
export function parseVmRssBytes(status: string): number | undefined {
  const match = /^VmRSS:\s*(\d+)\s*kB/m.exec(status);
  return match ? Number(match[1]) * 1024 : undefined;
}

/** The resident memory of process `pid` in bytes (Linux), or undefined where unknown. */
export async function processRssBytes(pid: number): Promise<number | undefined> {
  try {
    return parseVmRssBytes(await Deno.readTextFile(`/proc/${pid}/status`));
  } catch {
    return undefined;
  }
}

/** How to run one watch case. */
export interface WatchOptions {
  /** Which case. */
  caseName: WatchCaseName;
  /** Watches to open. */
  watchers: number;
  /** HTTP/2 connections the watch streams are spread over. */
  conns: number;
  /** Watch streams per connection (fewer when there are fewer watchers). */
  streamsPerConn: number;
  /** The writer's put rate. */
  putRate: number;
  /** Unrecorded lead-in with the writer running. */
  warmupMs: number;
  /** Measurement window. */
  durationMs: number;
  /** Makes the run's keys unique on a server shared by several runs. */
  runTag: string;
  /** Digits of the random keys under the prefix (watch-prefix). */
  keyDigits: number;
  /** Distinct random keys under the prefix (watch-prefix). */
  keyspace: number;
  /** Seed of the random keys. */
  seed: number;
}

/** What the server under test offers the watch run besides its URL. */
export interface ServerProbes {
  /** CPU seconds of the server so far. */
  cpu?: CpuProbe;
  /** Resident memory of the server in bytes (undefined where unknown). */
  rssBytes?: () => Promise<number | undefined>;
}

/** What one watch run measured. */
export interface WatchResult {
  /** Watches opened. */
  watchers: number;
  /** HTTP/2 connections of the watchers. */
  conns: number;
  /** Watch streams in all. */
  streams: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS the server advertised (undefined: no limit given). */
  serverMaxStreamsPerConn?: number;
  /** Time to create every watch (all create requests sent at once). */
  createMs: number;
  /** The writer's target rate. */
  putRateTarget: number;
  /** Puts sent in the window per second. */
  putsPerSecond: number;
  /** Puts that failed (whole run). */
  putErrors: number;
  /** Puts skipped because {@linkcode maxOutstandingPuts} were unanswered (whole run). */
  putsSkipped: number;
  /** Events received in the window, summed over the watchers. */
  events: number;
  /** events / window seconds. */
  eventsPerSecond: number;
  /** Puts sent in the window × watchers / window seconds: what full delivery would give. */
  offeredEventsPerSecond: number;
  /** Put-to-event latency of the events received in the window. */
  latency: LatencySummary;
  /** Non-empty latency histogram buckets [upper bound ms, count]. */
  buckets: Array<[number, number]>;
  /** Per put received in the window: send to its first event, and first to last event. */
  perPut: PutArrivalSummary;
  /**
   * After the last put was answered, how long until every watcher had every event; undefined
   * when they had not within the bound (see `missingEvents`).
   */
  catchUpMs?: number;
  /** Events never received (answered puts × watchers − events), at the catch-up bound. */
  missingEvents: number;
  /** Stream failures, cancellations and events that were not the writer's. */
  errors: number;
  /** The first of those errors (or of the puts). */
  firstError?: string;
  /** Length of the window. */
  elapsedMs: number;
  /** Server VmRSS before the watch connections were opened. */
  rssBeforeBytes?: number;
  /** Server VmRSS once the watch streams were open (each answered a progress request). */
  rssStreamsOpenBytes?: number;
  /** Server VmRSS once every watch was created. */
  rssAfterCreateBytes?: number;
  /** Server VmRSS after the window. */
  rssAfterWindowBytes?: number;
  /** (rssAfterCreate − rssStreamsOpen) / watchers: the watches alone, not their streams. */
  memoryPerWatcherBytes?: number;
  /** CPU of the generator (watchers and writer) in % of one core. */
  clientCpuPct: number;
  /** CPU of the server in % of one core. */
  serverCpuPct?: number;
  /** CPU of everything else on the machine in % of one core. */
  otherCpuPct?: number;
  /** Generator CPU per delivered event, µs. */
  clientCpuMicrosPerEvent: number;
  /** Server CPU per delivered event, µs (puts included). */
  serverCpuMicrosPerEvent?: number;
}

/** The description of a watch case for the report. */
export function watchCaseTitle(caseName: WatchCaseName, putRate: number | undefined): string {
  const rate = putRate !== undefined
    ? `${putRate} puts/s`
    : `${defaultOfferedEventsPerSecond} events/s offered (puts/s = that / watchers)`;
  return caseName === "watch-key"
    ? `every watcher on one key; 1 writer, ${rate}, ${timestampValueBytes} B value`
    : `every watcher on one prefix; 1 writer on random keys under it, ${rate}, ` +
      `${timestampValueBytes} B value`;
}

/** The writer's default rate for `watchers`. */
export function defaultPutRate(watchers: number): number {
  return Math.max(1, Math.round(defaultOfferedEventsPerSecond / watchers));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves when `check()` holds, polled every `intervalMs`, or false after `timeoutMs`. */
export async function until(
  check: () => boolean,
  timeoutMs: number,
  intervalMs = 5,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() >= deadline) return false;
    await sleep(intervalMs);
  }
  return true;
}

/**
 * Runs one watch case against `baseUrl` and returns its figures. Every connection it opened is
 * closed before it returns. Failing to connect or to create the watches rejects.
 */
export async function runWatch(
  baseUrl: string,
  options: WatchOptions,
  probes: ServerProbes = {},
): Promise<WatchResult> {
  assert(options.watchers >= 1 && options.watchers <= maxWatchers, "watchers in range");
  assert(options.conns >= 1 && options.streamsPerConn >= 1, "conns and streams >= 1");
  assert(options.putRate > 0 && options.putRate <= maxPutRate, "put rate in range");
  const target = watchTarget(options.caseName, options.runTag);
  const writer = new PutWriter();
  const sessions: http2.ClientHttp2Session[] = [];
  const streams: RawBidiStream[] = [];
  const histogram = new Histogram();
  const arrivals = new PutArrivals();
  let stopping = false;
  let recording = false;
  let errors = 0;
  let firstError: string | undefined;
  let created = 0;
  let eventsTotal = 0;
  let eventsInWindow = 0;
  const fail = (what: unknown) => {
    firstError ??= String(what);
    errors++;
  };
  const onSentAt = (sentAtMs: number) => {
    if (!recording) return;
    const nowMs = performance.now();
    histogram.record(Math.max(0, nowMs - sentAtMs));
    arrivals.note(sentAtMs, nowMs);
  };

  try {
    // One answered put first: the writer's connection and the server's write path are warm.
    await writer.open({
      baseUrl,
      caseName: options.caseName,
      runTag: options.runTag,
      keyDigits: options.keyDigits,
      keyspace: options.keyspace,
      seed: options.seed,
      putRate: options.putRate,
    });
    const rssBeforeBytes = await probes.rssBytes?.();

    const perStream = watchersPerStream(options.watchers, options.conns * options.streamsPerConn);
    const connsUsed = Math.min(options.conns, perStream.length);
    for (let i = 0; i < connsUsed; i++) sessions.push(await openSession(baseUrl, connectTimeoutMs));
    // The streams first, each answering a progress request, so that the memory they take on
    // the server is not counted per watcher.
    let idleAnswers = 0;
    for (let i = 0; i < perStream.length; i++) {
      const stream = new RawBidiStream(sessions[i % connsUsed], watchPath, {
        onMessage(message) {
          let scan: WatchResponseScan;
          try {
            scan = scanWatchResponse(message, onSentAt);
          } catch (error) {
            fail(error);
            return;
          }
          if (scan.created) created++;
          else if (!scan.canceled && scan.events === 0) idleAnswers++;
          if (scan.canceled) fail(`watch ${scan.watchId} canceled: ${scan.cancelReason}`);
          if (scan.foreignEvents > 0) fail(`${scan.foreignEvents} events not from the writer`);
          eventsTotal += scan.events;
          if (recording) eventsInWindow += scan.events;
        },
        onClose(error) {
          if (!stopping) fail(error ?? "a watch stream ended early");
        },
      });
      streams.push(stream);
      stream.send(watchProgressFrame);
    }
    if (!await until(() => idleAnswers >= streams.length || errors > 0, createTimeoutMs)) {
      throw new Error(`only ${idleAnswers} of ${streams.length} watch streams answered`);
    }
    const rssStreamsOpenBytes = await probes.rssBytes?.();

    const createStart = performance.now();
    const createFrame = watchCreateFrame(target);
    for (const [i, count] of perStream.entries()) {
      streams[i].send(concatBytes(...new Array<Uint8Array>(count).fill(createFrame)));
    }
    if (!await until(() => created >= options.watchers || errors > 0, createTimeoutMs)) {
      throw new Error(`only ${created} of ${options.watchers} watches were created`);
    }
    if (created < options.watchers) throw new Error(`creating the watches failed: ${firstError}`);
    const createMs = performance.now() - createStart;
    const rssAfterCreateBytes = await probes.rssBytes?.();
    const serverMaxStreamsPerConn = advertisedMaxStreams(sessions[0]);

    // The writer (on its own thread): a steady rate, at most maxOutstandingPuts unanswered.
    await writer.start();
    await sleep(options.warmupMs);
    const cpu = await startCpuWindow(probes.cpu);
    recording = true;
    writer.record(true);
    await until(
      () => errors >= maxErrorsPerRun || writer.putErrors >= maxErrorsPerRun,
      options.durationMs,
      Math.min(50, options.durationMs),
    );
    recording = false;
    writer.record(false);
    const windowCpu = await cpu.stop();
    const counts = await writer.stop(putDrainTimeoutMs);
    const { putsOk, putsInWindow } = counts;
    arrivals.answered(counts.answers);
    const lastPutAt = performance.now();
    const caughtUp = await until(() => eventsTotal >= putsOk * options.watchers, catchUpTimeoutMs);
    const catchUpMs = caughtUp ? performance.now() - lastPutAt : undefined;
    const rssAfterWindowBytes = await probes.rssBytes?.();

    const seconds = windowCpu.elapsedMs / 1000;
    return {
      watchers: options.watchers,
      conns: connsUsed,
      streams: perStream.length,
      serverMaxStreamsPerConn,
      createMs,
      putRateTarget: options.putRate,
      putsPerSecond: putsInWindow / seconds,
      putErrors: counts.putErrors,
      putsSkipped: counts.putsSkipped,
      events: eventsInWindow,
      eventsPerSecond: eventsInWindow / seconds,
      offeredEventsPerSecond: (putsInWindow * options.watchers) / seconds,
      latency: histogram.summary(),
      buckets: histogram.buckets(),
      perPut: arrivals.summary(),
      catchUpMs,
      missingEvents: Math.max(0, putsOk * options.watchers - eventsTotal),
      errors,
      firstError: firstError ?? counts.firstError,
      elapsedMs: windowCpu.elapsedMs,
      rssBeforeBytes,
      rssStreamsOpenBytes,
      rssAfterCreateBytes,
      rssAfterWindowBytes,
      memoryPerWatcherBytes: rssStreamsOpenBytes !== undefined && rssAfterCreateBytes !== undefined
        ? (rssAfterCreateBytes - rssStreamsOpenBytes) / options.watchers
        : undefined,
      clientCpuPct: windowCpu.clientCpuPct,
      serverCpuPct: windowCpu.serverCpuPct,
      otherCpuPct: windowCpu.otherCpuPct,
      clientCpuMicrosPerEvent: microsPerOperation(windowCpu.clientCpuSeconds, eventsInWindow),
      serverCpuMicrosPerEvent: windowCpu.serverCpuSeconds !== undefined
        ? microsPerOperation(windowCpu.serverCpuSeconds, eventsInWindow)
        : undefined,
    };
  } finally {
    stopping = true;
    for (const stream of streams) stream.cancel();
    for (const session of sessions) session.destroy();
    writer.close();
  }
}
