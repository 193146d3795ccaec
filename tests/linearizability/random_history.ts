/**
 * Random histories that are linearizable by construction: operations run one at a time
 * against a sequential key-value model, each at its own linearization point, and the recorded
 * call and return times are then stretched randomly around that point so operations overlap.
 * Used to test the checker (and the mutations below must make it fail).
 *
 * @module
 */
import type { Operation } from "./checker.ts";

/** The random source the generator needs (e.g. `SeededRandom`). */
export interface RandomSource {
  /** A uniform float in [0, 1). */
  next(): number;
}

/** Shape of a generated history. */
export interface RandomHistoryOptions {
  keys: number;
  operations: number;
  /** Time between consecutive linearization points. */
  pointSpacing?: number;
  /** Largest stretch of a call before, and of a return after, its linearization point. */
  maxStretch?: number;
  /** Probability that an operation never returns (a timeout or crash). */
  pendingChance?: number;
}

/** Generates a linearizable history; every written value is unique. */
export function randomLinearizableHistory(
  random: RandomSource,
  options: RandomHistoryOptions,
): Operation[] {
  const spacing = options.pointSpacing ?? 10;
  const stretch = options.maxStretch ?? 25;
  const pendingChance = options.pendingChance ?? 0;
  const int = (n: number) => Math.floor(random.next() * n);
  const model = new Map<string, string>();
  const history: Operation[] = [];
  let nextValue = 0;
  for (let i = 0; i < options.operations; i++) {
    const key = `k${int(options.keys)}`;
    const point = (i + 1) * spacing;
    const call = point - int(stretch + 1);
    const pending = random.next() < pendingChance;
    const ret = pending ? Infinity : point + int(stretch + 1);
    // A pending write took effect (at its point) or never did: both must be accepted.
    const takesEffect = !pending || random.next() < 0.5;
    const current = model.get(key) ?? null;
    const label = `op${i}`;
    const roll = int(10);
    if (roll < 3) {
      const value = `v${nextValue++}`;
      if (takesEffect) model.set(key, value);
      history.push({ kind: "put", key, value, call, return: ret, label });
    } else if (roll < 4) {
      if (takesEffect) model.delete(key);
      history.push({ kind: "delete", key, call, return: ret, label });
    } else if (roll < 6) {
      // Half the compare-and-sets expect the current value, so both outcomes are common.
      const expect = random.next() < 0.5 ? current : random.next() < 0.5 ? null : `v${int(9)}`;
      const value = `v${nextValue++}`;
      const succeeded = expect === current;
      if (succeeded && takesEffect) model.set(key, value);
      history.push(
        pending
          ? { kind: "txn", key, expect, value, call, return: ret, label }
          : { kind: "txn", key, expect, value, succeeded, call, return: ret, label },
      );
    } else {
      history.push(
        pending
          ? { kind: "get", key, call, return: ret, label }
          : { kind: "get", key, output: current, call, return: ret, label },
      );
    }
  }
  return history;
}

/**
 * Changes one completed read of `history` so that no linearization can explain it: to a value
 * never written, or (when one exists) to a value that was overwritten, by a write that surely
 * took effect, strictly before the read began. Returns the mutated read's index.
 */
export function mutateOneRead(
  random: RandomSource,
  history: Operation[],
  mode: "never written" | "stale",
): number {
  const int = (n: number) => Math.floor(random.next() * n);
  const reads: number[] = [];
  for (let i = 0; i < history.length; i++) {
    const op = history[i];
    if (op.kind === "get" && op.return !== Infinity) reads.push(i);
  }
  if (reads.length === 0) throw new Error("the history has no completed read to mutate");
  const order = reads.map((i) => ({ i, r: random.next() })).sort((a, b) => a.r - b.r);
  for (const { i } of order) {
    const read = history[i] as Operation & { kind: "get" };
    if (mode === "never written") {
      history[i] = { ...read, output: `never-written-${int(1000)}` };
      return i;
    }
    const stale = staleValueFor(history, read);
    if (stale !== null && stale !== read.output) {
      history[i] = { ...read, output: stale };
      return i;
    }
  }
  throw new Error("no read has a provably stale value to mutate to");
}

/**
 * A value written by W1 where W1 returned before a certain write W2 began and W2 returned
 * before `read` began: the read must follow W2, which follows W1, and values are unique.
 */
function staleValueFor(history: Operation[], read: Operation): string | null {
  const certainWrites = history.filter((op) =>
    op.key === read.key && op.return < read.call &&
    (op.kind === "put" || op.kind === "delete" || (op.kind === "txn" && op.succeeded === true))
  );
  for (const w1 of certainWrites) {
    if (w1.kind !== "put" && w1.kind !== "txn") continue;
    const value = w1.value;
    if (certainWrites.some((w2) => w2 !== w1 && w1.return < w2.call)) return value;
  }
  return null;
}
