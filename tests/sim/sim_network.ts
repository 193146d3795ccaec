/**
 * The simulated network: every message travels with its own delay, may overtake earlier
 * ones, be lost or be duplicated, and is lost at delivery when a partition separates its
 * ends or its target is down.
 *
 * @module
 */
import type { Message } from "../../raft/mod.ts";
import type { SeededRandom } from "../../internal/seeded_random.ts";

/** How unreliable the network is (probabilities per message, delays in time units). */
export interface NetworkFaults {
  dropChance: number;
  duplicateChance: number;
  /** Chance that a message is held up for up to `maxLongDelayUnits`. */
  longDelayChance: number;
  /**
   * Chance that a message may overtake earlier ones between the same two members. Otherwise
   * each pair's messages arrive in order, as over etcd's peer streams.
   */
  reorderChance: number;
  maxDelayUnits: number;
  maxLongDelayUnits: number;
}

/** A network that loses nothing and delivers within a unit or two. */
export const reliableNetwork: Readonly<NetworkFaults> = Object.freeze({
  dropChance: 0,
  duplicateChance: 0,
  longDelayChance: 0,
  reorderChance: 0,
  maxDelayUnits: 2,
  maxLongDelayUnits: 2,
});

/** A message on the wire; `pair` is set when it must not overtake its pair's earlier ones. */
interface InFlight {
  message: Message;
  pair: string | null;
  sequence: number;
}

/** Bound on messages in flight; past it new messages are lost (a full send queue). */
const maxInFlightMessages = 20_000;

/** Messages in flight, bucketed by delivery time. */
export class SimNetwork {
  faults: NetworkFaults;
  /** Partition group of each member; members in different groups cannot talk. */
  readonly #group = new Map<bigint, number>();
  readonly #buckets = new Map<number, InFlight[]>();
  #sequence = 0;
  /** `from>to` -> latest delivery time scheduled, to keep each pair in order. */
  readonly #lastDelivery = new Map<string, number>();
  #inFlight = 0;
  /** Messages lost to drops or the in-flight bound (not counting partitions). */
  lost = 0;
  duplicated = 0;

  /** A network with `faults`, drawing from `random`. */
  constructor(faults: NetworkFaults, readonly random: SeededRandom) {
    this.faults = faults;
  }

  /** Called for a message lost when sent (the transport reports failed snapshot sends). */
  onLost: (m: Message) => void = () => {};

  /** Sends `m` at time `now`. */
  send(m: Message, now: number): void {
    const f = this.faults;
    if (this.random.chance(f.dropChance) || this.#inFlight >= maxInFlightMessages) {
      this.lost++;
      this.onLost(m);
      return;
    }
    this.#enqueue(m, now);
    if (this.random.chance(f.duplicateChance)) {
      this.duplicated++;
      this.#enqueue(m, now);
    }
  }

  #enqueue(m: Message, now: number): void {
    const f = this.faults;
    const delay = this.random.chance(f.longDelayChance)
      ? 1 + this.random.int(f.maxLongDelayUnits)
      : 1 + this.random.int(f.maxDelayUnits);
    let at = now + delay;
    let pair: string | null = null;
    if (!this.random.chance(f.reorderChance)) {
      pair = `${m.from}>${m.to}`;
      at = Math.max(at, this.#lastDelivery.get(pair) ?? 0);
      this.#lastDelivery.set(pair, at);
    }
    let bucket = this.#buckets.get(at);
    if (bucket === undefined) this.#buckets.set(at, bucket = []);
    bucket.push({ message: m, pair, sequence: this.#sequence++ });
    this.#inFlight++;
  }

  /** Messages due at `now`, in random order except that in-order pairs keep theirs. */
  takeDue(now: number): Message[] {
    const bucket = this.#buckets.get(now);
    if (bucket === undefined) return [];
    this.#buckets.delete(now);
    this.#inFlight -= bucket.length;
    for (let i = bucket.length - 1; i > 0; i--) {
      const j = this.random.int(i + 1);
      [bucket[i], bucket[j]] = [bucket[j], bucket[i]];
    }
    // Put each in-order pair's messages back in send order, in the slots they landed in.
    const slots = new Map<string, number[]>();
    for (let i = 0; i < bucket.length; i++) {
      const pair = bucket[i].pair;
      if (pair === null) continue;
      let list = slots.get(pair);
      if (list === undefined) slots.set(pair, list = []);
      list.push(i);
    }
    for (const list of slots.values()) {
      if (list.length < 2) continue;
      const inOrder = list.map((i) => bucket[i]).sort((a, b) => a.sequence - b.sequence);
      for (let k = 0; k < list.length; k++) bucket[list[k]] = inOrder[k];
    }
    return bucket.map((f) => f.message);
  }

  /** Messages in flight. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** True when a partition separates `a` and `b`. */
  separated(a: bigint, b: bigint): boolean {
    return (this.#group.get(a) ?? 0) !== (this.#group.get(b) ?? 0);
  }

  /** Splits the members into groups (`groups[i]` holds member i's group). */
  partition(members: readonly bigint[], groups: readonly number[]): void {
    this.#group.clear();
    if (new Set(groups).size < 2) return;
    for (let i = 0; i < members.length && i < groups.length; i++) {
      this.#group.set(members[i], groups[i]);
    }
  }

  /** Removes every partition. */
  heal(): void {
    this.#group.clear();
  }

  /** True when some partition is in force. */
  get partitioned(): boolean {
    return this.#group.size > 0;
  }
}
