/**
 * A linearizability checker for recorded key-value client histories (Herlihy & Wing 1990).
 *
 * The search is Wing & Gong's ("Testing and verifying concurrent objects", 1993): walk the
 * history's call/return events in time order, tentatively linearize any operation whose call
 * has been seen, and backtrack when a return is reached whose operation is not linearized yet.
 * Lowe's improvement ("Testing for linearizability", 2017) memoizes every (set of linearized
 * operations, model state) pair already explored, so no configuration is searched twice.
 *
 * Each key is checked on its own (P-compositionality, Horn & Kroening 2015): a put, get,
 * delete or single-key compare-and-set touches one key, so the store is a product of
 * independent registers, and a history is linearizable exactly when every key's sub-history
 * is. Multi-key transactions break that independence and are out of scope here.
 *
 * Operations that never returned (a timeout, a crashed client) have `return: Infinity`: they
 * may have taken effect at any point after their call, or never.
 *
 * Real-time order is strict: `a` precedes `b` only when `a.return < b.call`. Equal timestamps
 * count as concurrent, since a recorder cannot order them.
 *
 * @module
 */
import { assert } from "../../internal/assert.ts";

/** Fields every recorded operation has. */
interface OperationBase {
  key: string;
  /** When the client sent the request (any monotonic clock). */
  call: number;
  /** When the client got the answer; `Infinity` when it never did (outcome unknown). */
  return: number;
  /** Free-form label (client id, request id) echoed in counterexamples. */
  label?: string;
}

/** `put(key, value)`: sets the key. */
export interface PutOperation extends OperationBase {
  kind: "put";
  value: string;
}

/** `get(key)`: the value read, `null` when the key did not exist. */
export interface GetOperation extends OperationBase {
  kind: "get";
  /** The value read; ignored (and may be omitted) when the get never returned. */
  output?: string | null;
}

/** `delete(key)`: removes the key (deleting an absent key is allowed and changes nothing). */
export interface DeleteOperation extends OperationBase {
  kind: "delete";
}

/**
 * Single-key compare-and-set: if the key's value equals `expect` (`null`: the key is absent)
 * set it to `value`. `succeeded` is the answer; omitted when the txn never returned.
 */
export interface TxnOperation extends OperationBase {
  kind: "txn";
  expect: string | null;
  value: string;
  succeeded?: boolean;
}

/** One recorded client operation on one key. */
export type Operation = PutOperation | GetOperation | DeleteOperation | TxnOperation;

/**
 * A failing sub-history of one key. It is itself not linearizable from `initialValue`, and it
 * was derived from the recorded history only by steps that preserve linearizability (so its
 * failure proves the recorded history's failure):
 * - cut at the earliest time by which the history already cannot be linearized (operations
 *   still running at that time become pending with unknown outcome);
 * - replace everything before a quiescent point (no operation in flight) by the single value
 *   the key must have there (`initialValue`);
 * - drop reads (gets, failed compare-and-sets) not needed for the failure.
 */
export interface Counterexample {
  /** The value the key must hold just before `ops` (null: absent). */
  initialValue: string | null;
  /** The operations, in call order (the recorded objects; pending ones may be copies). */
  ops: Operation[];
  /**
   * An operation returning at the cut time whose answer cannot be explained even when the
   * others returning then are taken as unknown (the first of them if none is alone to blame).
   */
  lastReturned: Operation;
}

/** The checker's verdict. `ok` is true only when the history is known to be linearizable. */
export type CheckResult =
  | { ok: true; verdict: "linearizable"; keys: number; nodes: number }
  | {
    ok: false;
    verdict: "illegal";
    key: string;
    minimalCounterexample: Counterexample;
    nodes: number;
  }
  | {
    ok: false;
    verdict: "unknown";
    key: string;
    reason: "node budget exhausted" | "timeout";
    nodes: number;
  };

/** Bounds on the search. */
export interface CheckOptions {
  /** Wall-clock bound for the whole check, counterexample reduction included. */
  timeoutMs?: number;
  /** Bound on search steps over all keys (a step tries or undoes one operation). */
  maxNodes?: number;
  /** Skip shrinking the counterexample of a failing key (default: shrink). */
  minimize?: boolean;
  /** Value of every key before the history starts (default: absent). */
  initialValue?: string | null;
}

/** Thrown for a malformed history (the recorder's bug, not a linearizability failure). */
export class InvalidHistoryError extends Error {
  /** Names the bad operation. */
  constructor(message: string) {
    super(message);
    this.name = "InvalidHistoryError";
  }
}

const defaultMaxNodes = 5_000_000;
/** How many search steps pass between two reads of the wall clock. */
const clockCheckIntervalSteps = 4096;

/** Checks a recorded history for linearizability against a key-value register per key. */
export function checkHistory(ops: readonly Operation[], opts: CheckOptions = {}): CheckResult {
  for (const op of ops) validate(op);
  const budget = new Budget(opts.maxNodes ?? defaultMaxNodes, opts.timeoutMs);
  const initial = opts.initialValue ?? null;
  const byKey = new Map<string, Operation[]>();
  for (const op of ops) {
    let list = byKey.get(op.key);
    if (list === undefined) byKey.set(op.key, list = []);
    list.push(op);
  }
  let unknown: { key: string; reason: "node budget exhausted" | "timeout" } | null = null;
  for (const [key, keyOps] of byKey) {
    if (unknown !== null) break;
    const verdict = searchLinearization(keyOps, initial, budget);
    if (verdict === "exhausted") {
      unknown = { key, reason: budget.reason() };
    } else if (verdict === "illegal") {
      const counterexample = opts.minimize === false
        ? unreduced(keyOps, initial)
        : shrink(keyOps, initial, budget);
      return {
        ok: false,
        verdict: "illegal",
        key,
        minimalCounterexample: counterexample,
        nodes: budget.nodes,
      };
    }
  }
  if (unknown !== null) return { ok: false, verdict: "unknown", ...unknown, nodes: budget.nodes };
  return { ok: true, verdict: "linearizable", keys: byKey.size, nodes: budget.nodes };
}

/** A readable multi-line description of a failed check, for assertion messages. */
export function describeResult(result: CheckResult): string {
  if (result.ok) return `linearizable (${result.keys} keys, ${result.nodes} search steps)`;
  if (result.verdict === "unknown") {
    return `linearizability of key ${JSON.stringify(result.key)} unknown: ${result.reason} ` +
      `after ${result.nodes} search steps`;
  }
  const ce = result.minimalCounterexample;
  const lines = [
    `key ${JSON.stringify(result.key)} is not linearizable; a failing sub-history from value ` +
    `${JSON.stringify(ce.initialValue)}:`,
  ];
  for (const op of ce.ops) lines.push(`  ${describeOperation(op)}`);
  lines.push(`cannot explain: ${describeOperation(ce.lastReturned)}`);
  return lines.join("\n");
}

/** One operation as `[call, return] label kind(args) -> output`. */
export function describeOperation(op: Operation): string {
  const span = `[${op.call}, ${op.return === Infinity ? "pending" : op.return}]`;
  const who = op.label === undefined ? "" : ` ${op.label}`;
  const pending = op.return === Infinity;
  switch (op.kind) {
    case "put":
      return `${span}${who} put(${JSON.stringify(op.value)})`;
    case "delete":
      return `${span}${who} delete()`;
    case "get":
      return `${span}${who} get() -> ${pending ? "?" : JSON.stringify(op.output)}`;
    case "txn":
      return `${span}${who} cas(${JSON.stringify(op.expect)} => ${JSON.stringify(op.value)}) -> ${
        pending ? "?" : op.succeeded
      }`;
  }
}

function validate(op: Operation): void {
  const what = () => `operation ${describeOperation(op)} on key ${JSON.stringify(op.key)}`;
  if (!Number.isFinite(op.call)) throw new InvalidHistoryError(`${what()}: call must be finite`);
  if (Number.isNaN(op.return) || op.return < op.call) {
    throw new InvalidHistoryError(`${what()}: return must be >= call (or Infinity)`);
  }
  if (op.return === Infinity) return;
  if (op.kind === "get" && op.output === undefined) {
    throw new InvalidHistoryError(`${what()}: a completed get needs an output`);
  }
  if (op.kind === "txn" && op.succeeded === undefined) {
    throw new InvalidHistoryError(`${what()}: a completed txn needs succeeded`);
  }
}

class Budget {
  nodes = 0;
  #timedOut = false;
  readonly #deadline: number;

  constructor(readonly maxNodes: number, timeoutMs: number | undefined) {
    this.#deadline = timeoutMs === undefined ? Infinity : performance.now() + timeoutMs;
  }

  /** Counts one step; false once the budget is spent. */
  spend(): boolean {
    this.nodes++;
    if (this.nodes > this.maxNodes) return false;
    if (this.nodes % clockCheckIntervalSteps === 0 && performance.now() > this.#deadline) {
      this.#timedOut = true;
    }
    return !this.#timedOut;
  }

  exhausted(): boolean {
    return this.#timedOut || this.nodes > this.maxNodes;
  }

  reason(): "node budget exhausted" | "timeout" {
    return this.#timedOut ? "timeout" : "node budget exhausted";
  }
}

// ---------------------------------------------------------------------------------------------
// The search over one key.

/** One call or return event in the doubly linked event list. */
interface HistoryEvent {
  op: number;
  isCall: boolean;
  prev: HistoryEvent | null;
  next: HistoryEvent | null;
  /** For a call: its return event (null when pending). */
  match: HistoryEvent | null;
}

const absent = 0;
/** Any value no operation of the key ever compares against (see `CompiledKey`). */
const unobserved = -2;
const notApplicable = -1;

/**
 * The per-key model compiled to integers: states are interned values, 0 is "absent".
 *
 * Reductions keep pending operations (which can linearize anywhere after their call) from
 * multiplying the search space:
 * - Values that no get returns and no compare-and-set expects are indistinguishable to every
 *   operation, so they are merged into one state `unobserved` (an exact bisimulation).
 * - Pending operations with the same effect are interchangeable once called, so only the
 *   earliest-called unused one of each such class is ever tried (symmetry reduction).
 * - The memo key summarises what the future can still tell apart (`futureEquivalent` in
 *   `explore`): values no remaining operation looks at, pending compare-and-sets that can no
 *   longer apply, and interchangeable unused pending operations are merged.
 */
class CompiledKey {
  readonly kinds: Operation["kind"][];
  /** put/txn: interned new value. */
  readonly writes: Int32Array;
  /** get: interned output; txn: interned expected value. */
  readonly reads: Int32Array;
  readonly succeeded: Uint8Array;
  readonly pending: Uint8Array;
  /** For pending operations: the members of its class of interchangeable operations. */
  readonly classMembers: (number[] | null)[];
  /** Bit i is set when operation i completed (the part of a configuration kept verbatim). */
  readonly completedMask: Uint16Array;
  /** The pending operations (value-abstraction mode only). */
  readonly pendingOps: number[] = [];
  /** value -> operations that compare the state with it (completed gets, compare-and-sets). */
  readonly observers = new Map<number, number[]>();
  /** For pending compare-and-sets: the other operations that write the expected value. */
  readonly writersOfExpected: (number[] | undefined)[] = [];
  readonly #interned = new Map<string, number>();
  readonly #observed: Set<string | null> | null;

  constructor(readonly ops: readonly Operation[], abstractValues: boolean) {
    const n = ops.length;
    this.#observed = abstractValues ? observedValues(ops) : null;
    this.kinds = ops.map((op) => op.kind);
    this.writes = new Int32Array(n);
    this.reads = new Int32Array(n);
    this.succeeded = new Uint8Array(n);
    this.pending = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const op = ops[i];
      this.pending[i] = op.return === Infinity ? 1 : 0;
      if (op.kind === "put") this.writes[i] = this.intern(op.value);
      if (op.kind === "get") this.reads[i] = this.intern(op.output ?? null);
      if (op.kind === "txn") {
        this.writes[i] = this.intern(op.value);
        this.reads[i] = this.intern(op.expect);
        this.succeeded[i] = op.succeeded ? 1 : 0;
      }
    }
    this.classMembers = new Array(n).fill(null);
    this.completedMask = new Uint16Array(Math.ceil(n / 16));
    for (let i = 0; i < n; i++) if (!this.pending[i]) this.completedMask[i >> 4] |= 1 << (i & 15);
    if (!abstractValues) return;
    for (let i = 0; i < n; i++) {
      const op = ops[i];
      if (op.kind === "get" && !this.pending[i]) this.#addObserver(this.reads[i], i);
      if (op.kind === "txn") this.#addObserver(this.reads[i], i);
      if (!this.pending[i]) continue;
      this.pendingOps.push(i);
      if (this.kinds[i] !== "txn") continue;
      const expect = this.reads[i];
      const writers: number[] = [];
      for (let j = 0; j < n; j++) {
        const writesExpect = expect === absent
          ? this.kinds[j] === "delete"
          : (this.kinds[j] === "put" || this.kinds[j] === "txn") && this.writes[j] === expect;
        if (writesExpect && j !== i) writers.push(j);
      }
      this.writersOfExpected[i] = writers;
    }
    const classes = new Map<string, number[]>();
    const byCallOrder = [...ops.keys()].sort((a, b) => ops[a].call - ops[b].call || a - b);
    for (const i of byCallOrder) {
      if (!this.pending[i]) continue;
      const effect = `${this.kinds[i]}:${this.reads[i]}:${this.writes[i]}`;
      let members = classes.get(effect);
      if (members === undefined) classes.set(effect, members = []);
      members.push(i);
      this.classMembers[i] = members;
    }
  }

  #addObserver(value: number, op: number): void {
    let list = this.observers.get(value);
    if (list === undefined) this.observers.set(value, list = []);
    list.push(op);
  }

  intern(value: string | null): number {
    if (value === null) return absent;
    if (this.#observed !== null && !this.#observed.has(value)) return unobserved;
    let id = this.#interned.get(value);
    if (id === undefined) this.#interned.set(value, id = this.#interned.size + 1);
    return id;
  }

  valueOf(state: number): string | null {
    if (state === absent) return null;
    assert(state !== unobserved, "end states are asked for without value abstraction");
    for (const [value, id] of this.#interned) if (id === state) return value;
    throw new Error(`state ${state} was never interned`);
  }

  /** The state after op `i` runs in `state`, or `notApplicable` if its answer contradicts. */
  step(i: number, state: number): number {
    switch (this.kinds[i]) {
      case "put":
        return this.writes[i];
      case "delete":
        return absent;
      case "get":
        return this.reads[i] === state ? state : notApplicable;
      case "txn": {
        const matches = this.reads[i] === state;
        // A pending compare-and-set that fails has no effect: the same as never running it.
        if (this.pending[i]) return matches ? this.writes[i] : notApplicable;
        if (matches !== (this.succeeded[i] === 1)) return notApplicable;
        return matches ? this.writes[i] : state;
      }
    }
  }
}

/** Values some operation compares the state against. */
function observedValues(ops: readonly Operation[]): Set<string | null> {
  const observed = new Set<string | null>();
  for (const op of ops) {
    if (op.kind === "get" && op.return !== Infinity) observed.add(op.output ?? null);
    if (op.kind === "txn") observed.add(op.expect);
  }
  return observed;
}

/** Builds the event list: calls before returns at equal times (equal times are concurrent). */
function buildEvents(ops: readonly Operation[]): HistoryEvent {
  const events: { time: number; event: HistoryEvent }[] = [];
  for (let i = 0; i < ops.length; i++) {
    const call: HistoryEvent = { op: i, isCall: true, prev: null, next: null, match: null };
    events.push({ time: ops[i].call, event: call });
    if (ops[i].return !== Infinity) {
      const ret: HistoryEvent = { op: i, isCall: false, prev: null, next: null, match: null };
      call.match = ret;
      events.push({ time: ops[i].return, event: ret });
    }
  }
  events.sort((a, b) =>
    a.time - b.time || Number(b.event.isCall) - Number(a.event.isCall) || a.event.op - b.event.op
  );
  const head: HistoryEvent = { op: -1, isCall: false, prev: null, next: null, match: null };
  let last = head;
  for (const { event } of events) {
    last.next = event;
    event.prev = last;
    last = event;
  }
  return head;
}

function unlink(e: HistoryEvent): void {
  e.prev!.next = e.next;
  if (e.next !== null) e.next.prev = e.prev;
}

function relink(e: HistoryEvent): void {
  e.prev!.next = e;
  if (e.next !== null) e.next.prev = e;
}

/** Drops pending gets: a read that never answered constrains nothing. */
function withoutPendingReads(ops: readonly Operation[]): Operation[] {
  return ops.filter((op) => !(op.kind === "get" && op.return === Infinity));
}

type SearchVerdict = "linearizable" | "illegal" | "exhausted";

/** Wing & Gong's search with Lowe's memo of (linearized set, state) configurations. */
function searchLinearization(
  recorded: readonly Operation[],
  initial: string | null,
  budget: Budget,
): SearchVerdict {
  const outcome = explore(recorded, initial, budget, "first linearization");
  if (outcome === "exhausted") return "exhausted";
  return outcome.size > 0 ? "linearizable" : "illegal";
}

/**
 * Explores linearizations.
 * - "first linearization": stops at the first one; the set returned is empty when none exists.
 * - "reachable end values": returns every value the key can hold right after the last
 *   completed operation is linearized, treating pending operations as reusable (an
 *   over-approximation: a pending operation may take effect more than once). No value
 *   abstraction or symmetry reduction is used in this mode.
 */
function explore(
  recorded: readonly Operation[],
  initial: string | null,
  budget: Budget,
  mode: "first linearization" | "reachable end values",
): Set<string | null> | "exhausted" {
  const ops = withoutPendingReads(recorded);
  const endValues = mode === "reachable end values";
  const model = new CompiledKey(ops, !endValues);
  const head = buildEvents(ops);
  const n = ops.length;
  const bits = new Uint16Array(Math.ceil(n / 16));
  const seen = new Set<string>();
  const ends = new Set<string | null>();
  const stack: { call: HistoryEvent; state: number; reused: boolean }[] = [];
  let remaining = 0;
  for (let i = 0; i < n; i++) if (!model.pending[i]) remaining++;
  let state = model.intern(initial);
  let entry = head.next;

  const isBitSet = (op: number) => (bits[op >> 4] & (1 << (op & 15))) !== 0;
  const keyBits = new Uint16Array(bits.length);
  const configuration = (s: number) => {
    for (let w = 0; w < bits.length; w++) keyBits[w] = bits[w] & model.completedMask[w];
    const completed = String.fromCharCode.apply(null, keyBits as unknown as number[]);
    if (endValues || model.pendingOps.length === 0) return completed + "|" + s;
    return completed + "|" + futureEquivalent(s);
  };
  // A pending compare-and-set is dead once its expected value can no longer come back.
  const isDead = (op: number, s: number): boolean =>
    model.pending[op] === 1 && model.kinds[op] === "txn" && model.reads[op] !== s &&
    model.writersOfExpected[op]!.every(isBitSet);
  // Whether an operation not yet linearized will still compare the state with `value`.
  const isLive = (value: number, s: number): boolean => {
    const list = model.observers.get(value);
    if (list === undefined) return false;
    for (const o of list) if (!isBitSet(o) && !isDead(o, s)) return true;
    return false;
  };
  // What the future can tell about the state and the unused pending operations: values no
  // remaining operation compares against are all alike, dead pending operations are as good
  // as used, and pending operations with alike effects are interchangeable. Configurations
  // with equal completed sets and equal summaries have the same futures (Lowe's memo key,
  // made coarser).
  const futureEquivalent = (s: number): string => {
    const effects: string[] = [];
    for (const op of model.pendingOps) {
      if (isBitSet(op) || isDead(op, s)) continue;
      const kind = model.kinds[op];
      const written = kind === "delete" ? absent : model.writes[op];
      const shown = isLive(written, s) ? written : unobserved;
      effects.push(kind === "txn" ? `c${model.reads[op]}>${shown}` : `w${shown}`);
    }
    effects.sort();
    return (isLive(s, s) ? s : unobserved) + "|" + effects.join(",");
  };
  // Of interchangeable pending operations, only the earliest-called unused one is tried.
  const isCanonical = (op: number): boolean => {
    const members = model.classMembers[op];
    if (members === null) return true;
    for (const m of members) {
      if (m === op) return true;
      if (!isBitSet(m)) return false;
    }
    return true;
  };
  // Undo the latest tentative linearization; false when there is none left.
  const backtrack = (): boolean => {
    const top = stack.pop();
    if (top === undefined) return false;
    const op = top.call.op;
    state = top.state;
    entry = top.call.next;
    if (top.reused) return true;
    bits[op >> 4] &= ~(1 << (op & 15));
    if (top.call.match !== null) relink(top.call.match);
    relink(top.call);
    if (!model.pending[op]) remaining++;
    return true;
  };

  while (true) {
    if (!budget.spend()) return "exhausted";
    if (remaining === 0) {
      // Value abstraction (first-linearization mode) loses values; only existence matters.
      ends.add(endValues ? model.valueOf(state) : null);
      if (!endValues || !backtrack()) return ends;
      continue;
    }
    // Every completed operation has a return event still in the list, so it is reached
    // before the end whenever `remaining > 0`.
    const e = entry!;
    if (!e.isCall) {
      if (!backtrack()) return ends;
      continue;
    }
    const op = e.op;
    const next = isCanonical(op) ? model.step(op, state) : notApplicable;
    if (next === notApplicable) {
      entry = e.next;
      continue;
    }
    const reused = endValues && model.pending[op] === 1;
    if (!reused) bits[op >> 4] |= 1 << (op & 15);
    const config = configuration(next);
    if (seen.has(config)) {
      if (!reused) bits[op >> 4] &= ~(1 << (op & 15));
      entry = e.next;
      continue;
    }
    seen.add(config);
    stack.push({ call: e, state, reused });
    state = next;
    if (!reused) {
      unlink(e);
      if (e.match !== null) unlink(e.match);
      if (!model.pending[op]) remaining--;
    }
    entry = head.next;
  }
}

// ---------------------------------------------------------------------------------------------
// Shrinking a failing key's history. Every step maps a history H to H' such that H linearizable
// implies H' linearizable, and keeps H' only if it still fails: so H' failing proves H fails.

function unreduced(ops: readonly Operation[], initial: string | null): Counterexample {
  const sorted = [...ops].sort(byCall);
  const completed = sorted.filter((op) => op.return !== Infinity);
  const lastReturned = completed.reduce((a, b) => (b.return > a.return ? b : a), completed[0]);
  return { initialValue: initial, ops: sorted, lastReturned };
}

function byCall(a: Operation, b: Operation): number {
  return a.call - b.call || a.return - b.return;
}

/** The history as seen at time `cut`: later calls dropped, unfinished operations pending. */
function truncate(ops: readonly Operation[], cut: number): Operation[] {
  const out: Operation[] = [];
  for (const op of ops) {
    if (op.call > cut) continue;
    if (op.return <= cut) out.push(op);
    else if (op.kind !== "get") {
      const pendingOp: Operation = { ...op, return: Infinity };
      if (pendingOp.kind === "txn") delete pendingOp.succeeded;
      out.push(pendingOp);
    }
  }
  return out;
}

function fails(ops: readonly Operation[], initial: string | null, budget: Budget): boolean | null {
  const verdict = searchLinearization(ops, initial, budget);
  return verdict === "exhausted" ? null : verdict === "illegal";
}

/** Bound on passes of the drop-one-operation loop. */
const maxShrinkPasses = 4;

function shrink(ops: readonly Operation[], initial: string | null, budget: Budget): Counterexample {
  // Linearizability is prefix-closed, so failing at a cut time is monotone in the cut: binary
  // search for the earliest return time at which the history already fails.
  const returns = [...new Set(ops.filter((op) => op.return !== Infinity).map((op) => op.return))]
    .sort((a, b) => a - b);
  let lo = 0;
  let hi = returns.length - 1;
  while (lo < hi && !budget.exhausted()) {
    const mid = (lo + hi) >> 1;
    const verdict = fails(truncate(ops, returns[mid]), initial, budget);
    if (verdict === null) break;
    if (verdict) hi = mid;
    else lo = mid + 1;
  }
  const cut = returns[hi];
  let current = truncate(ops, cut).sort(byCall);
  const lastReturned = unexplained(current, cut, initial, budget);

  const trimmed = trimBeforeQuiescence(current, initial, lastReturned, budget);
  current = trimmed.ops;
  const start = trimmed.initialValue;

  for (let pass = 0; pass < maxShrinkPasses; pass++) {
    let changed = false;
    for (const candidate of [...current]) {
      if (budget.exhausted()) break;
      if (candidate === lastReturned) continue;
      if (!isRead(candidate) && !isUnobservedWrite(candidate, current)) continue;
      const without = current.filter((op) => op !== candidate);
      if (fails(without, start, budget) === true) {
        current = without;
        changed = true;
      }
    }
    if (!changed) break;
  }
  return { initialValue: start, ops: current, lastReturned };
}

/**
 * Of the operations returning at `cut`, one whose answer alone cannot be explained: the
 * history still fails with the others made pending (their outcomes unknown, reads dropped).
 */
function unexplained(
  ops: Operation[],
  cut: number,
  initial: string | null,
  budget: Budget,
): Operation {
  const returning = ops.filter((op) => op.return === cut);
  if (returning.length === 1) return returning[0];
  for (const candidate of returning) {
    const relaxed = ops.flatMap((op): Operation[] => {
      if (op.return !== cut || op === candidate) return [op];
      if (op.kind === "get") return [];
      const pendingOp: Operation = { ...op, return: Infinity };
      if (pendingOp.kind === "txn") delete pendingOp.succeeded;
      return [pendingOp];
    });
    if (fails(relaxed, initial, budget) === true) return candidate;
  }
  return returning[0];
}

/**
 * A get, or a completed compare-and-set that failed: operations with no effect, so any
 * linearization of a history stays one without them.
 */
function isRead(op: Operation): boolean {
  if (op.kind === "get") return true;
  return op.kind === "txn" && op.return !== Infinity && op.succeeded === false;
}

/**
 * A write whose value nothing in `ops` can tell apart from the value it overwrote: no get
 * returns it, no compare-and-set expects it, and no completed compare-and-set failed (whose
 * answer depends on the value being different). In any linearization nothing between it and
 * the next write looks at the key, so the linearization without it is one too.
 */
function isUnobservedWrite(op: Operation, ops: readonly Operation[]): boolean {
  if (isRead(op)) return false;
  const written = op.kind === "put" || op.kind === "txn" ? op.value : null;
  for (const other of ops) {
    if (other.kind === "get" && other.return !== Infinity && other.output === written) return false;
    if (other.kind === "txn") {
      if (other.expect === written) return false;
      if (other.return !== Infinity && other.succeeded === false) return false;
    }
  }
  return true;
}

/**
 * Replaces the longest prefix that ends at a quiescent point (no completed operation in
 * flight) with the key's value there, when that value is forced and the rest still fails.
 * Pending operations called in the prefix are kept: they may still take effect later.
 *
 * Why this is sound: take any linearization of the whole history, and move pending operations
 * linearized after the prefix's last completed operation to just after the quiescent point
 * (they never returned, so they may). Its prefix part then ends in a value the over-approximated
 * reachable set contains; if that set is one value, the rest of the linearization is one of the
 * remaining history from that value.
 */
function trimBeforeQuiescence(
  ops: Operation[],
  initial: string | null,
  mustKeep: Operation,
  budget: Budget,
): { ops: Operation[]; initialValue: string | null } {
  // ops are sorted by call; a quiescent point lies before ops[i] when every earlier completed
  // op returned strictly before ops[i].call.
  const segmentStarts: number[] = [0];
  let latestReturn = -Infinity;
  for (let i = 0; i < ops.length; i++) {
    if (i > 0 && latestReturn < ops[i].call) segmentStarts.push(i);
    if (ops[i].return !== Infinity) latestReturn = Math.max(latestReturn, ops[i].return);
  }
  const keepFrom = ops.indexOf(mustKeep);
  // Walk the segments forward carrying the set of possible values (and the pending operations
  // called so far); note every point where the set is a single value.
  let values = new Set<string | null>([initial]);
  const forced: { index: number; value: string | null }[] = [];
  const carried: Operation[] = [];
  for (let s = 0; s + 1 < segmentStarts.length; s++) {
    const boundary = segmentStarts[s + 1];
    if (boundary > keepFrom) break;
    const segment = ops.slice(segmentStarts[s], boundary);
    const next = new Set<string | null>();
    for (const from of values) {
      const ends = explore([...carried, ...segment], from, budget, "reachable end values");
      if (ends === "exhausted") return fromLatestFailing();
      for (const v of ends) next.add(v);
    }
    for (const op of segment) if (op.return === Infinity) carried.push(op);
    values = next;
    if (values.size === 1) forced.push({ index: boundary, value: [...values][0] });
    if (values.size === 0) break;
  }
  return fromLatestFailing();

  // The reduced history is implied to fail only when it does fail: a pending operation that
  // took effect in the prefix is offered again after the cut, which may explain the rest.
  function fromLatestFailing(): { ops: Operation[]; initialValue: string | null } {
    for (let i = forced.length - 1; i >= 0 && !budget.exhausted(); i--) {
      const pendingBefore = ops.slice(0, forced[i].index).filter((op) => op.return === Infinity);
      const reduced = [...pendingBefore, ...ops.slice(forced[i].index)];
      if (fails(reduced, forced[i].value, budget) === true) {
        return { ops: reduced, initialValue: forced[i].value };
      }
    }
    return { ops, initialValue: initial };
  }
}
