/**
 * Per-put view of a watch run: when the first and the last of a put's events arrived. The
 * event histogram alone cannot tell a put whose events all came late (the put's path: the
 * request, the commit, a stalled thread) from one whose events were spread out (the fan-out
 * and the watchers' own reading); its p99 at 1 000 watchers is set by a handful of puts.
 *
 * @module
 */

import { assert } from "../internal/assert.ts";
import { Histogram, type LatencySummary } from "./stats.ts";

/** Puts tracked per run; the events of later puts still count in the event histogram. */
export const maxTrackedPuts = 200_000;

/** The per-put figures of a run. */
export interface PutArrivalSummary {
  /** Puts with at least one event received while recording. */
  puts: number;
  /** Puts beyond {@linkcode maxTrackedPuts}, not tracked. */
  untracked: number;
  /** Send to the first of the put's events. */
  firstEvent: LatencySummary;
  /** First to last of the put's events. */
  spread: LatencySummary;
  /** Send to the put's answer, as the writer saw it (puts answered while tracked). */
  answer: LatencySummary;
  /** The puts whose first event came last, slowest first (at most {@linkcode slowPutsListed}). */
  slowest: SlowPut[];
}

/** One put of {@linkcode PutArrivalSummary.slowest}, times from its send. */
export interface SlowPut {
  /** Its send time on the wall clock (ms since the epoch), to find it in other logs. */
  sentAtEpochMs: number;
  /** Its first event. */
  firstEventMs: number;
  /** Its last event. */
  lastEventMs: number;
  /** Its answer at the writer (undefined: not known). */
  answerMs?: number;
}

/** Length of {@linkcode PutArrivalSummary.slowest}. */
export const slowPutsListed = 10;

/**
 * Collects, per put (identified by its send time, which the writer makes unique), the
 * arrival of its first and last events.
 */
export class PutArrivals {
  /** Per put's send time: [first event, last event] arrival. */
  readonly #arrivals = new Map<number, [number, number]>();
  readonly #answered = new Map<number, number>();
  #untracked = 0;

  /**
   * Notes one event of the put sent at `sentAtMs`, received at `nowMs` (same clock); events
   * are noted as they arrive, so `nowMs` never decreases.
   */
  note(sentAtMs: number, nowMs: number): void {
    const arrival = this.#arrivals.get(sentAtMs);
    if (arrival !== undefined) arrival[1] = nowMs;
    else if (this.#arrivals.size < maxTrackedPuts) this.#arrivals.set(sentAtMs, [nowMs, nowMs]);
    else this.#untracked++;
  }

  /** Notes the writer's `[send, answer]` times of puts (NaN: not answered). */
  answered(answers: ReadonlyArray<readonly [number, number]>): void {
    for (const [sentAtMs, answeredAtMs] of answers) {
      if (!Number.isNaN(answeredAtMs)) this.#answered.set(sentAtMs, answeredAtMs);
    }
  }

  /** The figures so far. */
  summary(): PutArrivalSummary {
    const firstEvent = new Histogram();
    const spread = new Histogram();
    const answer = new Histogram();
    const puts: SlowPut[] = [];
    for (const [sentAtMs, [firstMs, lastMs]] of this.#arrivals) {
      assert(lastMs >= firstMs, "a put's last event is not before its first");
      firstEvent.record(Math.max(0, firstMs - sentAtMs));
      spread.record(lastMs - firstMs);
      const answeredAtMs = this.#answered.get(sentAtMs);
      puts.push({
        sentAtEpochMs: performance.timeOrigin + sentAtMs,
        firstEventMs: firstMs - sentAtMs,
        lastEventMs: lastMs - sentAtMs,
        answerMs: answeredAtMs === undefined ? undefined : answeredAtMs - sentAtMs,
      });
    }
    for (const [sentAtMs, answeredAtMs] of this.#answered) {
      answer.record(Math.max(0, answeredAtMs - sentAtMs));
    }
    puts.sort((a, b) => b.firstEventMs - a.firstEventMs);
    return {
      puts: this.#arrivals.size,
      untracked: this.#untracked,
      firstEvent: firstEvent.summary(),
      spread: spread.summary(),
      answer: answer.summary(),
      slowest: puts.slice(0, slowPutsListed),
    };
  }
}
