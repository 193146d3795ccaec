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

/**
 * A member's role. A `preCandidate` is checking, without changing its term, that it could win
 * an election before starting one (pre-vote, Raft thesis §9.6).
 */
export type Role = "follower" | "preCandidate" | "candidate" | "leader";

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
 * A batch of work for the server, from `RawNode.ready()`. Handle it in this order:
 *
 * 1. If the member is leader (`node.role === "leader"` right after `ready()`), `messages` may
 *    be sent now, while its own disk write is in progress (Raft thesis §10.2.1). Otherwise
 *    they must wait until step 2 is durable: vote and append responses promise durable state.
 * 2. Persist `snapshot` (if any), then `hardState` and `entries` (entries replace any WAL
 *    entries at the same or later indexes). Fsync when `mustSync`.
 * 3. Install `snapshot` (if any) into the state machine, then apply `committedEntries` in
 *    order (calling `applyConfChange` for conf-change entries). A Ready with a snapshot never
 *    carries committed entries: they come in later Readys, after the snapshot.
 * 4. Serve `readStates` once the applied index reaches their `index`.
 * 5. Call `advance(rd)`.
 *
 * `committedEntries` are always durable on this member already, so step 3 may also run before
 * step 2 finishes. The leader counts its own log toward a commit quorum only after `advance`.
 */
export interface Ready {
  /** The leader or role changed (null when not). */
  softState: SoftState | null;
  /** Term, vote or commit changed (null when not). */
  hardState: HardState | null;
  /** Entries to append to the WAL. */
  entries: Entry[];
  /** Entries committed and durable, to apply in order. */
  committedEntries: Entry[];
  /** Messages to other members; see the ordering rule above. */
  messages: Message[];
  /** A snapshot received from the leader, to persist and install before anything else. */
  snapshot: Snapshot | null;
  /** Answers to `readIndex()` (this member's or forwarded to the leader). */
  readStates: ReadState[];
  /** True when the WAL write must be fsynced: entries, term, vote or a snapshot changed. */
  mustSync: boolean;
}

/** True when two hard states are equal. */
export function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** The hard state of a member that has never run. */
export const emptyHardState: Readonly<HardState> = Object.freeze({ term: 0, vote: 0n, commit: 0 });

/** Message kinds; values match raftpb.MessageType so the transport maps them one to one. */
export const MessageType = {
  hup: 0,
  beat: 1,
  prop: 2,
  app: 3,
  appResp: 4,
  vote: 5,
  voteResp: 6,
  snap: 7,
  heartbeat: 8,
  heartbeatResp: 9,
  unreachable: 10,
  snapStatus: 11,
  checkQuorum: 12,
  transferLeader: 13,
  timeoutNow: 14,
  readIndex: 15,
  readIndexResp: 16,
  preVote: 17,
  preVoteResp: 18,
} as const;
/** A raftpb.MessageType value. */
export type MessageType = typeof MessageType[keyof typeof MessageType];

/** Voting and learning members at a point of the log (raftpb.ConfState, no joint consensus). */
export interface ConfState {
  voters: bigint[];
  learners: bigint[];
}

/** Where a snapshot stands in the log and which configuration it carries. */
export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

/**
 * A raft snapshot. `data` is opaque to raft; the server fills it (for etcd, the backend is
 * sent separately by the snapshot endpoint and `data` holds only the membership).
 */
export interface Snapshot {
  metadata: SnapshotMetadata;
  data: Uint8Array;
}

/** One raft message between members (raftpb.Message, same fields and meanings). */
export interface Message {
  type: MessageType;
  to: bigint;
  from: bigint;
  term: number;
  /** Term of the entry at `index` (MsgApp: of the entry before `entries`). */
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  snapshot: Snapshot | null;
  reject: boolean;
  rejectHint: number;
  context: Uint8Array;
}

/** Kinds of single-step membership change (values match raftpb.ConfChangeType). */
export const ConfChangeType = {
  addNode: 0,
  removeNode: 1,
  updateNode: 2,
  addLearnerNode: 3,
} as const;
/** A raftpb.ConfChangeType value. */
export type ConfChangeType = typeof ConfChangeType[keyof typeof ConfChangeType];

/** A membership change, proposed as an entry of type `EntryType.confChange`. */
export interface ConfChange {
  /** Identifies the request so the proposer can match the applied result. */
  id: bigint;
  type: ConfChangeType;
  nodeId: bigint;
  /** Opaque to raft: etcd puts the member's JSON (name, peer URLs) here. */
  context: Uint8Array;
}
