/**
 * Round-trip time to each peer, measured the way etcd's prober does: GET the peer's
 * `/raft/probing` every few seconds and time the answer. The summary feeds `/metrics`
 * (etcd_network_peer_round_trip_time_seconds) and the peer status.
 *
 * @module
 */
import { readBounded } from "../internal/bounded_reader.ts";
import { fromUtf8 } from "../internal/bytes.ts";
import type { Logger } from "../internal/logger.ts";
import { RaftPath } from "./handler.ts";
import { abortableDelay } from "../internal/delay.ts";

/** Histogram upper bounds in seconds: etcd's ExponentialBuckets(0.0001, 2, 16). */
export const rttBucketUpperBoundsSeconds: readonly number[] = Object.freeze(
  Array.from({ length: 16 }, (_, i) => 0.0001 * 2 ** i),
);

/** Largest probe answer read. */
const maxProbeAnswerBytes = 4096;

/** What the prober knows of one peer's round-trip time. */
export interface RttSummary {
  /** Probes answered. */
  count: number;
  /** Probes that failed or timed out. */
  failures: number;
  /** True when the last probe was answered. */
  healthy: boolean;
  /** The last answered probe's round trip, in ms. */
  lastMs: number | null;
  /** The fastest answered probe, in ms. */
  minMs: number | null;
  /** The slowest answered probe, in ms. */
  maxMs: number | null;
  /** The mean of answered probes, in ms. */
  meanMs: number | null;
  /** Answered probes at or under each of {@linkcode rttBucketUpperBoundsSeconds} (cumulative). */
  cumulativeBucketCounts: number[];
  /** Sum of all answered probes' round-trip times, in seconds. */
  sumSeconds: number;
}

/** Accumulates round-trip times into a {@linkcode RttSummary}. */
export class RttRecorder {
  #summary: RttSummary = {
    count: 0,
    failures: 0,
    healthy: false,
    lastMs: null,
    minMs: null,
    maxMs: null,
    meanMs: null,
    cumulativeBucketCounts: rttBucketUpperBoundsSeconds.map(() => 0),
    sumSeconds: 0,
  };

  /** Records an answered probe that took `ms`. */
  success(ms: number): void {
    const s = this.#summary;
    s.count++;
    s.healthy = true;
    s.lastMs = ms;
    s.minMs = s.minMs === null ? ms : Math.min(s.minMs, ms);
    s.maxMs = s.maxMs === null ? ms : Math.max(s.maxMs, ms);
    s.sumSeconds += ms / 1000;
    s.meanMs = (s.sumSeconds * 1000) / s.count;
    rttBucketUpperBoundsSeconds.forEach((bound, i) => {
      if (ms / 1000 <= bound) s.cumulativeBucketCounts[i]++;
    });
  }

  /** Records a probe that failed. */
  failure(): void {
    this.#summary.failures++;
    this.#summary.healthy = false;
  }

  /** A copy of the summary. */
  summary(): RttSummary {
    return { ...this.#summary, cumulativeBucketCounts: [...this.#summary.cumulativeBucketCounts] };
  }
}

interface Target {
  readonly recorder: RttRecorder;
  readonly stop: AbortController;
  readonly loop: Promise<void>;
}

/** Probes peers in the background until stopped. */
export class Prober {
  readonly #targets = new Map<bigint, Target>();

  /** A prober that probes every `intervalMs`, waiting at most `timeoutMs` for an answer. */
  constructor(
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {}

  /** Starts probing `id` at the URL `url()` gives at each probe (so URL updates apply). */
  add(id: bigint, url: () => URL): void {
    if (this.#targets.has(id)) return;
    const recorder = new RttRecorder();
    const stop = new AbortController();
    const loop = this.#run(url, recorder, stop.signal);
    this.#targets.set(id, { recorder, stop, loop });
  }

  /** Stops probing `id`; resolves when its loop ended. */
  async remove(id: bigint): Promise<void> {
    const target = this.#targets.get(id);
    if (target === undefined) return;
    this.#targets.delete(id);
    target.stop.abort();
    await target.loop;
  }

  /** The round-trip summary of `id`, if it is probed. */
  summary(id: bigint): RttSummary | undefined {
    return this.#targets.get(id)?.recorder.summary();
  }

  /** Stops every probe; resolves when all loops ended. */
  async stop(): Promise<void> {
    await Promise.all([...this.#targets.keys()].map((id) => this.remove(id)));
  }

  async #run(url: () => URL, recorder: RttRecorder, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.#probe(url(), recorder, signal);
      await abortableDelay(this.intervalMs, signal);
    }
  }

  async #probe(base: URL, recorder: RttRecorder, signal: AbortSignal): Promise<void> {
    const attempt = new AbortController();
    const timeout = setTimeout(() => attempt.abort(), this.timeoutMs);
    const stop = () => attempt.abort();
    signal.addEventListener("abort", stop, { once: true });
    const start = performance.now();
    try {
      const response = await fetch(new URL(RaftPath.probing, base), { signal: attempt.signal });
      const text = fromUtf8(await readBounded(response.body, maxProbeAnswerBytes));
      const health = JSON.parse(text) as { OK?: unknown };
      if (response.status !== 200 || health.OK !== true) {
        throw new Error(`probe answered ${response.status}`);
      }
      recorder.success(performance.now() - start);
    } catch (err) {
      if (signal.aborted) return;
      recorder.failure();
      this.log.debug("probe failed", { url: base.href, error: String(err) });
    } finally {
      clearTimeout(timeout);
      signal.removeEventListener("abort", stop);
    }
  }
}
