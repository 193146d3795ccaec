/**
 * Raft's own plain types. `raft/` imports nothing but `internal/`; codecs in `wal/` and
 * `transport/` convert these to and from protobuf.
 *
 * @module
 */

/** The kind of payload an entry carries (values match raftpb.EntryType). */
export const EntryType = { normal: 0, confChange: 1, confChangeV2: 2 } as const;
/** A raftpb.EntryType value. */
export type EntryType = typeof EntryType[keyof typeof EntryType];

/** One raft log entry. `index` and `term` start at 1; index 0 / term 0 is "nothing". */
export interface Entry {
  term: number;
  index: number;
  type: number;
  data: Uint8Array;
}

/** The state raft must persist before it answers any message (Raft paper figure 2). */
export interface HardState {
  term: number;
  /** The member voted for in `term`, 0n for none. */
  vote: bigint;
  commit: number;
}

/** A member's role. */
export type Role = "follower" | "candidate" | "leader";

/** Volatile state worth reporting (leader and role), not persisted. */
export interface SoftState {
  lead: bigint;
  role: Role;
}

/** A linearizable read whose read index is known: serve it once applied >= index. */
export interface ReadState {
  index: number;
  requestCtx: Uint8Array;
}

/**
 * A batch of work for the server: persist `entries` and `hardState` (fsync only when
 * `mustSync`), send `messages`, apply `committedEntries`, then call `advance()`.
 */
export interface Ready {
  softState: SoftState | null;
  hardState: HardState | null;
  entries: Entry[];
  committedEntries: Entry[];
  messages: unknown[];
  readStates: ReadState[];
  mustSync: boolean;
}

/** True when two hard states are equal. */
export function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** The hard state of a member that has never run. */
export const emptyHardState: Readonly<HardState> = Object.freeze({ term: 0, vote: 0n, commit: 0 });
