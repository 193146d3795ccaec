/**
 * Invariant checks. A failed assertion means the program is wrong, not the input: it throws
 * an {@linkcode AssertionError} that callers must not catch and recover from.
 *
 * @module
 */

/** Thrown when an invariant of the program itself is broken. */
export class AssertionError extends Error {
  /** Creates the error with the broken invariant's description. */
  constructor(message: string) {
    super(message);
    this.name = "AssertionError";
  }
}

/** Asserts that `condition` holds; the message names the invariant. */
export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** Converts a bigint to a number, asserting that it is a safe integer. */
export function toSafeNumber(value: bigint, what = "value"): number {
  const n = Number(value);
  assert(Number.isSafeInteger(n), `${what} ${value} is outside the safe integer range`);
  return n;
}

/** Marks code that must be unreachable for a well-typed value (exhaustive switches). */
export function unreachable(value: never): never {
  throw new AssertionError(`unreachable: ${String(value)}`);
}
