/**
 * Latency statistics for the benchmark: an exact percentile over a sample array (the reference
 * the tests check against) and a fixed-size log-bucketed histogram used in the hot path, so that
 * recording a latency costs O(1) time and memory stays bounded however long a case runs.
 *
 * @module
 */

import { assert } from "../internal/assert.ts";

/**
 * Nearest-rank percentile of `sorted` (ascending): the smallest sample such that at least `p`
 * percent of the samples are less than or equal to it. `p` is in [0, 100]; p = 0 gives the
 * minimum. Returns NaN for an empty array.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  assert(p >= 0 && p <= 100, `percentile ${p} is outside [0, 100]`);
  const n = sorted.length;
  if (n === 0) return NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * n));
  return sorted[rank - 1];
}

/**
 * Median of `values` (any order): the middle value, or the mean of the two middle ones. NaN for
 * none. The bench summarises the rounds of `--repeat` with it.
 */
export function median(values: readonly number[]): number {
  const n = values.length;
  if (n === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = n >> 1;
  return n % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Summary of one set of latencies, all in milliseconds. */
export interface LatencySummary {
  /** Number of recorded samples. */
  count: number;
  /** Arithmetic mean (exact, not bucketed). */
  avgMs: number;
  /** Smallest sample (exact). */
  minMs: number;
  /** Median (within the histogram's relative precision). */
  p50Ms: number;
  /** 90th percentile (within the histogram's relative precision). */
  p90Ms: number;
  /** 99th percentile (within the histogram's relative precision). */
  p99Ms: number;
  /** 99.9th percentile (within the histogram's relative precision). */
  p999Ms: number;
  /** Largest sample (exact). */
  maxMs: number;
}

/** Options of a {@linkcode Histogram}; every field has a default. */
export interface HistogramOptions {
  /** Smallest value told apart; smaller values land in the first bucket. Default 0.001 (1 µs in ms). */
  lowest?: number;
  /** Largest value told apart; larger values land in the last bucket. Default 60 000 (60 s in ms). */
  highest?: number;
  /** Relative width of a bucket, e.g. 0.01 = 1 %. Default 0.01. */
  relativePrecision?: number;
}

/**
 * Histogram with geometrically growing buckets: bucket i holds values in
 * (lowest * g^(i-1), lowest * g^i] with g = 1 + relativePrecision, so any percentile it reports
 * is within relativePrecision of a real sample's value. The count, sum, min and max are exact.
 * Memory is fixed at construction (about 1 800 buckets for the defaults).
 */
export class Histogram {
  /** Smallest value told apart. */
  readonly lowest: number;
  /** Largest value told apart. */
  readonly highest: number;
  /** Relative width of a bucket. */
  readonly relativePrecision: number;
  readonly #logGrowth: number;
  readonly #counts: Float64Array;
  #count = 0;
  #sum = 0;
  #min = Infinity;
  #max = -Infinity;

  /** Creates an empty histogram. */
  constructor(options: HistogramOptions = {}) {
    this.lowest = options.lowest ?? 0.001;
    this.highest = options.highest ?? 60_000;
    this.relativePrecision = options.relativePrecision ?? 0.01;
    assert(this.lowest > 0, "histogram lowest must be > 0");
    assert(this.highest > this.lowest, "histogram highest must be > lowest");
    assert(
      this.relativePrecision > 0 && this.relativePrecision < 1,
      "histogram relativePrecision must be in (0, 1)",
    );
    this.#logGrowth = Math.log1p(this.relativePrecision);
    const bucketCount = this.#indexOf(this.highest) + 1;
    this.#counts = new Float64Array(bucketCount);
  }

  /** Number of buckets (fixed at construction). */
  get bucketCount(): number {
    return this.#counts.length;
  }

  /** Number of recorded values. */
  get count(): number {
    return this.#count;
  }

  /** Sum of recorded values (exact). */
  get sum(): number {
    return this.#sum;
  }

  /** Smallest recorded value, or NaN when empty. */
  get min(): number {
    return this.#count === 0 ? NaN : this.#min;
  }

  /** Largest recorded value, or NaN when empty. */
  get max(): number {
    return this.#count === 0 ? NaN : this.#max;
  }

  /** Mean of recorded values (exact), or NaN when empty. */
  get mean(): number {
    return this.#count === 0 ? NaN : this.#sum / this.#count;
  }

  #indexOf(value: number): number {
    if (!(value > this.lowest)) return 0;
    // The epsilon keeps exact bucket bounds (lowest * g^i) from rounding up into the next bucket.
    return Math.ceil(Math.log(value / this.lowest) / this.#logGrowth - 1e-9);
  }

  /** Upper bound of bucket `index`. */
  bucketUpperBound(index: number): number {
    return this.lowest * Math.exp(index * this.#logGrowth);
  }

  /** Records one value (negative and NaN values are programming errors). */
  record(value: number): void {
    assert(value >= 0, `histogram value ${value} must be >= 0`);
    const index = Math.min(this.#indexOf(value), this.#counts.length - 1);
    this.#counts[index]++;
    this.#count++;
    this.#sum += value;
    if (value < this.#min) this.#min = value;
    if (value > this.#max) this.#max = value;
  }

  /** Adds every value recorded in `other`, which must have the same bucket layout. */
  merge(other: Histogram): void {
    assert(
      other.lowest === this.lowest && other.highest === this.highest &&
        other.relativePrecision === this.relativePrecision,
      "merged histograms must share their bucket layout",
    );
    const theirs = other.#counts;
    for (let i = 0; i < theirs.length; i++) this.#counts[i] += theirs[i];
    this.#count += other.#count;
    this.#sum += other.#sum;
    if (other.#min < this.#min) this.#min = other.#min;
    if (other.#max > this.#max) this.#max = other.#max;
  }

  /** Forgets every recorded value. */
  reset(): void {
    this.#counts.fill(0);
    this.#count = 0;
    this.#sum = 0;
    this.#min = Infinity;
    this.#max = -Infinity;
  }

  /**
   * Nearest-rank percentile as {@linkcode percentile} defines it, reported as the upper bound
   * of the bucket that holds that rank, clamped to the exact [min, max]; a rank in the
   * open-ended last bucket reports the exact max. NaN when empty.
   */
  percentile(p: number): number {
    assert(p >= 0 && p <= 100, `percentile ${p} is outside [0, 100]`);
    if (this.#count === 0) return NaN;
    if (p === 0) return this.#min;
    const rank = Math.max(1, Math.ceil((p / 100) * this.#count));
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i];
      if (seen >= rank) {
        // The last bucket is open-ended (it holds everything above `highest`).
        if (i === this.#counts.length - 1) return this.#max;
        return Math.min(this.#max, Math.max(this.#min, this.bucketUpperBound(i)));
      }
    }
    return this.#max;
  }

  /** Non-empty buckets as [upper bound, count] pairs, ascending; for the JSON dump. */
  buckets(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let i = 0; i < this.#counts.length; i++) {
      if (this.#counts[i] > 0) out.push([this.bucketUpperBound(i), this.#counts[i]]);
    }
    return out;
  }

  /** The usual figures in one object. */
  summary(): LatencySummary {
    return {
      count: this.#count,
      avgMs: this.mean,
      minMs: this.min,
      p50Ms: this.percentile(50),
      p90Ms: this.percentile(90),
      p99Ms: this.percentile(99),
      p999Ms: this.percentile(99.9),
      maxMs: this.max,
    };
  }
}
