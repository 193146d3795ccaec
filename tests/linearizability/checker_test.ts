import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  checkHistory,
  type CheckResult,
  describeResult,
  InvalidHistoryError,
  type Operation,
} from "./checker.ts";
import { mutateOneRead, randomLinearizableHistory } from "./random_history.ts";
import { SeededRandom } from "../../internal/seeded_random.ts";

// Compact constructors: [call, return]; a return of Infinity is an operation that never answered.
const put = (key: string, value: string, call: number, ret: number): Operation => ({
  kind: "put",
  key,
  value,
  call,
  return: ret,
});
const get = (key: string, output: string | null, call: number, ret: number): Operation => ({
  kind: "get",
  key,
  output,
  call,
  return: ret,
});
const del = (key: string, call: number, ret: number): Operation => ({
  kind: "delete",
  key,
  call,
  return: ret,
});
const cas = (
  key: string,
  expect: string | null,
  value: string,
  succeeded: boolean | undefined,
  call: number,
  ret: number,
): Operation => ({ kind: "txn", key, expect, value, succeeded, call, return: ret });

function assertLinearizable(ops: Operation[]): void {
  const result = checkHistory(ops);
  strictEqual(result.ok, true, describeResult(result));
}

function assertIllegal(ops: Operation[]): CheckResult & { verdict: "illegal" } {
  const result = checkHistory(ops);
  strictEqual(result.verdict, "illegal", describeResult(result));
  return result as CheckResult & { verdict: "illegal" };
}

Deno.test("histories that are linearizable", async (t) => {
  const cases: [string, Operation[]][] = [
    ["empty", []],
    ["sequential put, get, delete, get", [
      put("a", "1", 0, 1),
      get("a", "1", 2, 3),
      del("a", 4, 5),
      get("a", null, 6, 7),
    ]],
    ["read of the initial absent value", [get("a", null, 0, 1)]],
    ["a read concurrent with a put sees the old value", [
      put("a", "1", 0, 10),
      get("a", null, 1, 2),
      get("a", "1", 3, 4),
    ]],
    ["concurrent reads see the old and the new value in either call order", [
      put("a", "1", 0, 10),
      get("a", "1", 1, 3),
      get("a", null, 2, 4),
    ]],
    ["two concurrent puts may take effect in the order opposite to their calls", [
      put("a", "1", 0, 10),
      put("a", "2", 1, 10),
      get("a", "2", 2, 3),
      get("a", "1", 11, 12),
    ]],
    ["equal timestamps count as concurrent", [put("a", "1", 0, 5), get("a", null, 5, 6)]],
    ["a pending put that took effect", [put("a", "1", 0, Infinity), get("a", "1", 5, 6)]],
    ["a pending put that never took effect", [put("a", "1", 0, Infinity), get("a", null, 5, 6)]],
    ["a pending put that took effect late", [
      put("a", "1", 0, Infinity),
      get("a", null, 5, 6),
      get("a", "1", 7, 8),
    ]],
    ["a pending delete that took effect", [
      put("a", "1", 0, 1),
      del("a", 2, Infinity),
      get("a", null, 5, 6),
    ]],
    ["a pending get constrains nothing", [
      put("a", "1", 0, 1),
      { kind: "get", key: "a", call: 2, return: Infinity },
    ]],
    ["compare-and-set from absent, then a failed one", [
      cas("a", null, "1", true, 0, 1),
      cas("a", null, "2", false, 2, 3),
      get("a", "1", 4, 5),
    ]],
    ["two racing compare-and-sets: one wins", [
      put("a", "0", 0, 1),
      cas("a", "0", "x", true, 2, 10),
      cas("a", "0", "y", false, 3, 9),
      get("a", "x", 11, 12),
    ]],
    ["a pending compare-and-set that took effect", [
      put("a", "0", 0, 1),
      cas("a", "0", "x", undefined, 2, Infinity),
      get("a", "x", 5, 6),
    ]],
    ["a pending compare-and-set whose comparison would fail has no effect", [
      put("a", "0", 0, 1),
      cas("a", "9", "x", undefined, 2, Infinity),
      get("a", "0", 5, 6),
    ]],
    ["keys are independent objects", [
      put("a", "1", 0, 10),
      put("b", "1", 0, 10),
      get("a", "1", 1, 2),
      get("b", null, 3, 4),
    ]],
  ];
  for (const [name, ops] of cases) {
    await t.step(name, () => assertLinearizable(ops));
  }
});

Deno.test("histories that are not linearizable", async (t) => {
  const cases: [string, Operation[]][] = [
    ["stale read after a completed put", [
      put("a", "1", 0, 1),
      put("a", "2", 2, 3),
      get("a", "1", 4, 5),
    ]],
    ["lost write: an acknowledged put is not visible to a later read", [
      put("a", "1", 0, 1),
      get("a", null, 2, 3),
    ]],
    ["read of a value never written", [put("a", "1", 0, 1), get("a", "7", 2, 3)]],
    ["a read cannot see a put that has not been called yet", [
      get("a", "1", 0, 1),
      put("a", "1", 2, 3),
    ]],
    ["once a read saw the new value, a later read cannot see the old one", [
      put("a", "1", 0, 10),
      get("a", "1", 1, 2),
      get("a", null, 3, 4),
    ]],
    ["concurrent puts: after both complete, the value cannot flip", [
      put("a", "1", 0, 10),
      put("a", "2", 0, 10),
      get("a", "1", 11, 12),
      get("a", "2", 13, 14),
    ]],
    ["a pending put takes effect at most once", [
      put("a", "1", 0, 1),
      put("a", "2", 2, Infinity),
      get("a", "2", 5, 6),
      put("a", "3", 7, 8),
      get("a", "3", 9, 10),
      get("a", "2", 11, 12),
    ]],
    ["a pending put cannot take effect before its call", [
      get("a", "1", 0, 1),
      put("a", "1", 2, Infinity),
    ]],
    ["a value, then absent, then the same value again with one pending put", [
      put("a", "1", 0, Infinity),
      get("a", "1", 5, 6),
      get("a", null, 7, 8),
    ]],
    ["two compare-and-sets from absent both succeed", [
      cas("a", null, "1", true, 0, 5),
      cas("a", null, "2", true, 1, 6),
    ]],
    ["compare-and-set succeeds although the value differed", [
      put("a", "1", 0, 1),
      cas("a", "2", "3", true, 2, 3),
    ]],
    ["compare-and-set fails although the value matched and nothing raced it", [
      put("a", "1", 0, 1),
      cas("a", "1", "3", false, 2, 3),
    ]],
    ["compare-and-set succeeded but a later read misses its value", [
      cas("a", null, "1", true, 0, 1),
      get("a", null, 2, 3),
    ]],
    ["delete acknowledged but the key is still there", [
      put("a", "1", 0, 1),
      del("a", 2, 3),
      get("a", "1", 4, 5),
    ]],
  ];
  for (const [name, ops] of cases) {
    await t.step(name, () => {
      const result = assertIllegal(ops);
      strictEqual(result.key, "a");
      // The counterexample must itself fail to linearize from its initial value.
      const ce = result.minimalCounterexample;
      const again = checkHistory(ce.ops, { initialValue: ce.initialValue });
      strictEqual(again.verdict, "illegal", describeResult(result));
      ok(ce.ops.includes(ce.lastReturned));
    });
  }
});

Deno.test("the failing key is named and its counterexample keeps only what is needed", () => {
  const ops = [
    put("good", "1", 0, 1),
    get("good", "1", 2, 3),
    put("bad", "1", 0, 1),
    put("bad", "2", 2, 3),
    get("bad", "2", 4, 5),
    get("bad", "2", 6, 7),
    put("bad", "3", 8, 9),
    get("bad", "3", 10, 11),
    get("bad", "2", 12, 13), // stale
    get("bad", "3", 14, 15),
  ];
  const result = assertIllegal(ops);
  strictEqual(result.key, "bad");
  const ce = result.minimalCounterexample;
  // Cut at the stale read; everything before the quiescent point before it is replaced by
  // the value the key must hold there.
  strictEqual(ce.initialValue, "3");
  deepStrictEqual(ce.ops, [ops[8]]);
  strictEqual(ce.lastReturned, ops[8]);
  ok(describeResult(result).includes(`get() -> "2"`), describeResult(result));
});

Deno.test("a malformed history is rejected, not judged", () => {
  throws(() => checkHistory([put("a", "1", 5, 4)]), InvalidHistoryError);
  throws(() => checkHistory([put("a", "1", NaN, 4)]), InvalidHistoryError);
  throws(
    () => checkHistory([{ kind: "get", key: "a", call: 0, return: 1 }]),
    InvalidHistoryError,
  );
  throws(() => checkHistory([cas("a", null, "1", undefined, 0, 1)]), InvalidHistoryError);
});

/** Many pending puts of distinct values, all concurrent: a wide search space. */
function wideHistory(width: number): Operation[] {
  const ops: Operation[] = [];
  for (let i = 0; i < width; i++) ops.push(put("a", `v${i}`, i, Infinity));
  // Reads that can never all be explained: each value, then absent, then each again.
  for (let i = 0; i < width; i++) ops.push(get("a", `v${i}`, 100 + 2 * i, 101 + 2 * i));
  ops.push(get("a", null, 1000, 1001));
  return ops;
}

Deno.test("the search effort is bounded: unknown rather than running forever", () => {
  const byNodes = checkHistory(wideHistory(16), { maxNodes: 10_000 });
  strictEqual(byNodes.verdict, "unknown");
  strictEqual(byNodes.ok, false);
  if (byNodes.verdict === "unknown") {
    strictEqual(byNodes.reason, "node budget exhausted");
    strictEqual(byNodes.key, "a");
    ok(byNodes.nodes <= 10_001);
  }
  const started = performance.now();
  const byTime = checkHistory(wideHistory(40), { timeoutMs: 50, maxNodes: Infinity });
  strictEqual(byTime.verdict, "unknown");
  if (byTime.verdict === "unknown") strictEqual(byTime.reason, "timeout");
  ok(performance.now() - started < 2_000, "the timeout was honoured");
});

// ---------------------------------------------------------------------------------------------
// Cross-check against brute force on small random histories.

/** Tries every order of every subset of pending operations that respects real time. */
function bruteForce(ops: Operation[]): boolean {
  const byKey = new Map<string, Operation[]>();
  for (const op of ops) {
    if (op.kind === "get" && op.return === Infinity) continue;
    byKey.set(op.key, [...(byKey.get(op.key) ?? []), op]);
  }
  for (const keyOps of byKey.values()) if (!bruteForceKey(keyOps)) return false;
  return true;
}

function bruteForceKey(ops: Operation[]): boolean {
  const used = new Array<boolean>(ops.length).fill(false);
  const completed = ops.filter((op) => op.return !== Infinity).length;
  const walk = (state: string | null, done: number): boolean => {
    if (done === completed) return true;
    for (let i = 0; i < ops.length; i++) {
      if (used[i]) continue;
      const op = ops[i];
      // Real time: every unused completed op must not have returned before op was called.
      if (ops.some((o, j) => !used[j] && j !== i && o.return < op.call)) continue;
      let next: string | null = state;
      if (op.kind === "put") next = op.value;
      else if (op.kind === "delete") next = null;
      else if (op.kind === "get") {
        if (op.output !== state) continue;
      } else {
        const matches = op.expect === state;
        if (op.return !== Infinity && matches !== op.succeeded) continue;
        if (matches) next = op.value;
      }
      used[i] = true;
      const found = walk(next, done + (op.return === Infinity ? 0 : 1));
      used[i] = false;
      if (found) return true;
    }
    return false;
  };
  return walk(null, 0);
}

function randomSmallHistory(random: SeededRandom): Operation[] {
  const n = 1 + random.int(7);
  const values = ["x", "y", "z"];
  const ops: Operation[] = [];
  for (let i = 0; i < n; i++) {
    const call = random.int(12);
    const ret = random.chance(0.15) ? Infinity : call + random.int(6);
    const key = random.chance(0.8) ? "a" : "b";
    const roll = random.int(8);
    if (roll < 3) ops.push(put(key, random.pick(values), call, ret));
    else if (roll < 4) ops.push(del(key, call, ret));
    else if (roll < 6) {
      const expect = random.chance(0.3) ? null : random.pick(values);
      const outcome = ret === Infinity ? undefined : random.chance(0.5);
      ops.push(cas(key, expect, random.pick(values), outcome, call, ret));
    } else {
      ops.push(get(key, random.chance(0.3) ? null : random.pick(values), call, ret));
    }
  }
  return ops;
}

Deno.test("agrees with brute force on 3,000 small random histories", () => {
  const random = new SeededRandom(20240611);
  let illegal = 0;
  for (let i = 0; i < 3_000; i++) {
    const ops = randomSmallHistory(random);
    const expected = bruteForce(ops);
    const result = checkHistory(ops);
    strictEqual(
      result.ok,
      expected,
      `history ${i}: checker says ${describeResult(result)}; brute force says ${expected}\n` +
        JSON.stringify(ops),
    );
    if (!result.ok && result.verdict === "illegal") {
      illegal++;
      const ce = result.minimalCounterexample;
      const again = checkHistory(ce.ops, { initialValue: ce.initialValue });
      strictEqual(again.verdict, "illegal", `history ${i}: counterexample linearizes`);
    }
  }
  // Both verdicts must be well represented, or the comparison proves little.
  ok(illegal > 300 && illegal < 2_700, `${illegal} of 3000 illegal`);
});

// ---------------------------------------------------------------------------------------------
// Large histories generated from a sequential model.

const largeHistory = { keys: 4, operations: 2_000, pendingChance: 0.03 } as const;

Deno.test("large random linearizable histories pass", () => {
  for (let seed = 1; seed <= 10; seed++) {
    const ops = randomLinearizableHistory(new SeededRandom(seed), largeHistory);
    const result = checkHistory(ops, { timeoutMs: 5_000 });
    strictEqual(result.ok, true, `seed ${seed}: ${describeResult(result)}`);
  }
});

Deno.test("the same histories with one mutated read fail, with a small counterexample", () => {
  for (let seed = 1; seed <= 10; seed++) {
    for (const mode of ["never written", "stale"] as const) {
      const random = new SeededRandom(seed);
      const ops = randomLinearizableHistory(random, largeHistory);
      const mutated = mutateOneRead(random, ops, mode);
      const result = checkHistory(ops, { timeoutMs: 5_000 });
      strictEqual(result.verdict, "illegal", `seed ${seed} (${mode}): ${describeResult(result)}`);
      if (result.verdict !== "illegal") continue;
      strictEqual(result.key, ops[mutated].key);
      const ce = result.minimalCounterexample;
      ok(ce.ops.includes(ops[mutated]), `seed ${seed}: the mutated read is in the counterexample`);
      ok(ce.ops.length <= 20, `seed ${seed} (${mode}): ${describeResult(result)}`);
      const again = checkHistory(ce.ops, { initialValue: ce.initialValue });
      strictEqual(again.verdict, "illegal");
    }
  }
});
