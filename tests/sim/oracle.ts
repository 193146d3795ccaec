/**
 * The simulation's record of what every member did, and the safety properties of Raft
 * (paper figure 3) checked against it as the run goes:
 *
 * - Election Safety: at most one leader per term (§5.2).
 * - Log Matching: entries with the same index and term hold the same command and follow the
 *   same prefix (§5.3). Checked inductively: every (index, term) ever seen in a log, a WAL
 *   write or an append message must always carry the same data and the same previous term.
 * - Leader Completeness: a leader's log holds every entry committed before it was elected
 *   (§5.4), checked when a member is first seen leading a term.
 * - State Machine Safety: no two members apply different entries at one index (§5.4.3); a
 *   snapshot installs exactly the state the applied entries up to it produce.
 * - Commit indexes never go back on a member (durable ones across restarts), applied never
 *   passes committed, and every ReadIndex answer covers everything committed before the read
 *   was asked (Raft thesis §6.4).
 *
 * A broken property throws {@linkcode InvariantViolation}.
 *
 * @module
 */
import type { Entry } from "../../raft/mod.ts";

/** A broken safety property; `invariant` names it. */
export class InvariantViolation extends Error {
  /** `invariant` is the property's name, `detail` what was seen. */
  constructor(readonly invariant: string, readonly detail: string) {
    super(`${invariant}: ${detail}`);
    this.name = "InvariantViolation";
  }
}

const decoder = new TextDecoder();

/** A printable identity of an entry's command. */
export function commandOf(e: Entry): string {
  return `${e.type}:${decoder.decode(e.data)}`;
}

/** One step of the state machine's FNV-1a hash chain. */
export function chainHash(previous: number, e: Entry): number {
  let h = (previous ^ 0x811c9dc5) >>> 0;
  const text = `${e.index}:${e.term}:${commandOf(e)}`;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** What is known about one log position. */
interface SeenEntry {
  command: string;
  previousTerm: number;
}

/** The simulation's global knowledge, and the checks against it. */
export class Oracle {
  readonly #leaderOfTerm = new Map<number, bigint>();
  /** `index:term` -> what every copy of that entry must hold. */
  readonly #seen = new Map<string, SeenEntry>();
  /** index -> `term:command` of the committed entry there. */
  readonly #committed = new Map<number, string>();
  /** index -> the state machine hash after applying up to it. */
  readonly #hashAt = new Map<number, number>();
  /** Highest index known committed by any member. */
  maxCommitted = 0;

  /** Records that `id` leads `term`; false if it was already known to. */
  recordLeader(term: number, id: bigint): boolean {
    const known = this.#leaderOfTerm.get(term);
    if (known === undefined) {
      this.#leaderOfTerm.set(term, id);
      return true;
    }
    if (known !== id) {
      throw new InvariantViolation(
        "Election Safety",
        `members ${known} and ${id} both lead term ${term}`,
      );
    }
    return false;
  }

  /**
   * Records entries seen together (contiguous), the first following an entry of term
   * `previousTerm` (-1 when unknown, e.g. right after a compaction marker).
   */
  recordEntries(entries: readonly Entry[], previousTerm: number, where: string): void {
    let prev = previousTerm;
    for (const e of entries) {
      const key = `${e.index}:${e.term}`;
      const command = commandOf(e);
      const known = this.#seen.get(key);
      if (known === undefined) {
        this.#seen.set(key, { command, previousTerm: prev });
      } else {
        if (known.command !== command) {
          throw new InvariantViolation(
            "Log Matching",
            `entry ${key} holds ${JSON.stringify(command)} in ${where}, ` +
              `${JSON.stringify(known.command)} elsewhere`,
          );
        }
        if (prev >= 0 && known.previousTerm >= 0 && known.previousTerm !== prev) {
          throw new InvariantViolation(
            "Log Matching",
            `entry ${key} follows term ${prev} in ${where}, term ${known.previousTerm} elsewhere`,
          );
        }
        if (known.previousTerm < 0 && prev >= 0) known.previousTerm = prev;
      }
      prev = e.term;
    }
  }

  /** Records that `e` is committed (a member's commit index covers it). */
  recordCommitted(e: Entry, where: string): void {
    const value = `${e.term}:${commandOf(e)}`;
    const known = this.#committed.get(e.index);
    if (known === undefined) this.#committed.set(e.index, value);
    else if (known !== value) {
      throw new InvariantViolation(
        "State Machine Safety",
        `committed entry ${e.index} is ${JSON.stringify(value)} on ${where}, ` +
          `${JSON.stringify(known)} elsewhere`,
      );
    }
    if (e.index > this.maxCommitted) this.maxCommitted = e.index;
  }

  /** Checks an applied entry and the state machine hash after it. */
  recordApplied(e: Entry, hashAfter: number, where: string): void {
    this.recordCommitted(e, where);
    this.recordHash(e.index, hashAfter, `${where} applying entry ${e.index}`);
  }

  /** Checks the state machine hash at `index` (after applying, or installing a snapshot). */
  recordHash(index: number, hash: number, where: string): void {
    const known = this.#hashAt.get(index);
    if (known === undefined) this.#hashAt.set(index, hash);
    else if (known !== hash) {
      throw new InvariantViolation(
        "State Machine Safety",
        `state at index ${index} differs on ${where} from another member's`,
      );
    }
  }

  /**
   * Leader Completeness: `termOf(i)` is the new leader's log term at i (null when not held,
   * e.g. compacted into its snapshot, which holds only committed entries).
   */
  checkLeaderCompleteness(
    leader: bigint,
    term: number,
    firstHeld: number,
    termOf: (index: number) => number,
  ): void {
    for (let i = Math.max(firstHeld, 1); i <= this.maxCommitted; i++) {
      const known = this.#committed.get(i);
      if (known === undefined) continue;
      const committedTerm = Number(known.slice(0, known.indexOf(":")));
      const held = termOf(i);
      if (held !== committedTerm) {
        throw new InvariantViolation(
          "Leader Completeness",
          `leader ${leader} of term ${term} holds term ${held} at ${i}, ` +
            `committed there with term ${committedTerm}`,
        );
      }
    }
  }
}
