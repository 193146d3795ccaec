/**
 * `--repeat N` as rounds: each round starts every server afresh and runs every cell once, the
 * servers taking turns (the first of a round goes last in the next), and the attempts of a cell
 * are then gathered and the least disturbed one reported. Measuring each cell N times back to
 * back on one server instead let a disturbed spell of this shared host (they last minutes) fall
 * on one server's cells only.
 *
 * @module
 */

/**
 * The order in which the servers run in round `round` (from 0): as given in even rounds,
 * reversed in odd ones. Going first in a round was an advantage: in A/B runs of two builds of
 * our own server, the one that went first had the lower p99 in 9 of 12, 5 of 6 and 4 of 6
 * same-round pairs (and 5 of 12 once), whichever build it was.
 */
export function roundOrder<T>(targets: readonly T[], round: number): T[] {
  return round % 2 === 0 ? [...targets] : [...targets].reverse();
}

/**
 * The attempt that other work on the machine disturbed least. The choice looks only at the
 * other-CPU figure, never at the result, so it does not favour either server.
 */
export function leastDisturbed<T extends { otherCpuPct?: number }>(attempts: T[]): T {
  return attempts.reduce((best, a) =>
    (a.otherCpuPct ?? Infinity) < (best.otherCpuPct ?? Infinity) ? a : best
  );
}

/** A cell's figures: the reported result and, when measured more than once, every attempt. */
export interface Cell<R> {
  /** The reported attempt. */
  result: R;
  /** Every attempt, in run order (only when there was more than one). */
  attempts?: R[];
}

/**
 * Gathers the cells that several rounds measured (the same `key`) into one each, in the order
 * they first appeared: every attempt in run order, and the least disturbed as the result.
 */
export function mergeRounds<R extends { otherCpuPct?: number }, T extends Cell<R>>(
  cells: T[],
  key: (cell: T) => string,
): T[] {
  const byKey = new Map<string, { first: T; attempts: R[] }>();
  for (const cell of cells) {
    const k = key(cell);
    const seen = byKey.get(k);
    const attempts = cell.attempts ?? [cell.result];
    if (seen === undefined) byKey.set(k, { first: cell, attempts: [...attempts] });
    else seen.attempts.push(...attempts);
  }
  return [...byKey.values()].map(({ first, attempts }) => {
    const { attempts: _, ...rest } = first;
    return {
      ...rest,
      result: leastDisturbed(attempts),
      ...(attempts.length > 1 ? { attempts } : {}),
    } as T;
  });
}
