/**
 * An in-memory cluster of {@linkcode RawNode}s for tests and simulations: each member has a
 * "disk" (hard state, entries, snapshot) and a state machine (the list of applied values),
 * and the network is a queue of messages delivered when the test says so, through filters
 * that can drop them (partitions, lost messages). Everything is synchronous and seeded: no
 * sockets, timers or real time.
 *
 * Each member handles its Ready exactly as the `Ready` contract says: a leader sends before
 * persisting, everyone else after; snapshot, then hard state and entries are persisted; the
 * snapshot is installed and committed entries applied (conf changes through
 * `applyConfChange`); then `advance()`.
 *
 * @module
 */
import { assert } from "../../internal/assert.ts";
import { mulberry32 } from "../../internal/seeded_random.ts";
import { describeMessage, messageTypeName } from "../message.ts";
import { type RaftConfig, RawNode } from "../raw_node.ts";
import {
  type ConfChange,
  ConfChangeType,
  type ConfState,
  emptyHardState,
  type Entry,
  EntryType,
  type HardState,
  type Message,
  MessageType,
  type ReadState,
  type Ready,
  type Snapshot,
} from "../types.ts";
import type { LogMarker } from "../log.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** UTF-8 bytes of `s`. */
export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}

/** A deterministic PRNG returning numbers in [0, 1). */
export const seededRandom: (seed: number) => () => number = mulberry32;

/** Encodes a conf change as entry data (test format: JSON; the server uses raftpb). */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  return utf8(JSON.stringify({
    id: cc.id.toString(),
    type: cc.type,
    nodeId: cc.nodeId.toString(),
    context: decoder.decode(cc.context),
  }));
}

/** Decodes {@linkcode encodeConfChange}'s format. */
export function decodeConfChange(data: Uint8Array): ConfChange {
  const o = JSON.parse(decoder.decode(data));
  return {
    id: BigInt(o.id),
    type: o.type as ConfChangeType,
    nodeId: BigInt(o.nodeId),
    context: utf8(o.context),
  };
}

/** The committed conf-change entries (term 1) that add every member of `conf`, in order. */
export function bootstrapEntries(conf: ConfState): Entry[] {
  const changes: ConfChange[] = [
    ...conf.voters.map((nodeId) => ({ type: ConfChangeType.addNode, nodeId })),
    ...conf.learners.map((nodeId) => ({ type: ConfChangeType.addLearnerNode, nodeId })),
  ].map(({ type, nodeId }) => ({ id: 0n, type, nodeId, context: new Uint8Array() }));
  return changes.map((cc, i) => ({
    term: 1,
    index: i + 1,
    type: EntryType.confChange,
    data: encodeConfChange(cc),
  }));
}

/** What one member has written to its "disk". */
export class MemoryStorage {
  hardState: HardState = { ...emptyHardState };
  snapshot: Snapshot | null = null;
  /** The compaction point: `entries` follow it. */
  marker: LogMarker = { index: 0, term: 0 };
  entries: Entry[] = [];

  /** Writes a Ready's snapshot, hard state and entries (entries replace any at >= index). */
  save(rd: Ready): void {
    if (rd.snapshot) {
      this.snapshot = rd.snapshot;
      this.marker = { index: rd.snapshot.metadata.index, term: rd.snapshot.metadata.term };
      this.entries = [];
    }
    if (rd.hardState) this.hardState = rd.hardState;
    if (rd.entries.length > 0) {
      const first = rd.entries[0].index;
      assert(first > this.marker.index, `persisting entry ${first} at or below the marker`);
      const keep = first - this.marker.index - 1;
      assert(keep <= this.entries.length, `gap before persisted entry ${first}`);
      this.entries.length = keep;
      this.entries.push(...rd.entries);
    }
  }

  /** Records a snapshot created by the member and drops the entries it covers. */
  saveSnapshot(snap: Snapshot, compactTo: number): void {
    if (!this.snapshot || this.snapshot.metadata.index < snap.metadata.index) this.snapshot = snap;
    if (compactTo <= this.marker.index) return;
    const dropped = compactTo - this.marker.index;
    const term = this.entries[dropped - 1].term;
    this.entries = this.entries.slice(dropped);
    this.marker = { index: compactTo, term };
  }

  /** Index of the last persisted entry. */
  lastIndex(): number {
    return this.marker.index + this.entries.length;
  }
}

/** The replicated state machine of the tests: the ordered list of applied values. */
export interface StateMachine {
  appliedIndex: number;
  /** Data of every applied non-empty normal entry, in log order. */
  values: string[];
  /** The configuration in force at `appliedIndex`. */
  confState: ConfState;
}

/** One member of the test cluster. */
export class Member {
  readonly id: bigint;
  node: RawNode;
  readonly storage = new MemoryStorage();
  sm: StateMachine;
  /** Every read state this member's Readys returned, in order. */
  readStates: ReadState[] = [];
  /** `index -> "term:data"` of every entry applied one by one (not through a snapshot). */
  readonly appliedEntries = new Map<number, string>();
  /** A crashed member neither ticks nor receives; `Network.restart` brings it back. */
  down = false;
  readonly #makeConfig: () => RaftConfig;

  /**
   * A fresh member. With `bootstrap` entries, its disk starts with them (committed, in term
   * 1) and its configuration is empty until it applies them; otherwise it starts with `conf`.
   */
  constructor(
    id: bigint,
    conf: ConfState,
    makeConfig: () => RaftConfig,
    bootstrap: Entry[] | null,
  ) {
    this.id = id;
    this.#makeConfig = makeConfig;
    const initialConf = bootstrap ? { voters: [], learners: [] } : conf;
    this.sm = { appliedIndex: 0, values: [], confState: initialConf };
    if (bootstrap && bootstrap.length > 0) {
      this.storage.entries = bootstrap.slice();
      this.storage.hardState = { term: 1, vote: 0n, commit: bootstrap.length };
    }
    this.node = new RawNode(makeConfig(), {
      hardState: this.storage.hardState,
      marker: { index: 0, term: 0 },
      entries: this.storage.entries.slice(),
      confState: initialConf,
    });
  }

  /** Replaces the disk's contents (then `restart()` to load them): for crafted scenarios. */
  load(hardState: HardState, entries: Entry[]): void {
    this.storage.hardState = hardState;
    this.storage.marker = { index: 0, term: 0 };
    this.storage.entries = entries.slice();
    this.storage.snapshot = null;
    this.sm = { ...this.sm, appliedIndex: 0, values: [] };
    this.appliedEntries.clear();
  }

  /** Rebuilds the RawNode from what is on disk (what was not persisted is lost). */
  restart(): void {
    const s = this.storage;
    this.node = new RawNode(this.#makeConfig(), {
      hardState: s.hardState,
      marker: s.marker,
      entries: s.entries.slice(),
      applied: this.sm.appliedIndex,
      confState: this.sm.confState,
      snapshot: s.snapshot ?? undefined,
    });
    this.down = false;
  }
}

/** Settings of a test cluster (raft settings apply to every member). */
export interface NetworkOptions {
  /** Seeds every member's PRNG (each member mixes in its id). Default 1. */
  seed?: number;
  electionTicks?: number;
  heartbeatTicks?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  maxInflightMsgs?: number;
  maxSizePerMsgBytes?: number;
  maxUncommittedEntries?: number;
  maxUncommittedBytes?: number;
  maxPendingReads?: number;
  /** Learners of the initial configuration. */
  learners?: bigint[];
  /**
   * How the initial configuration is known. "log" (the default, as etcd bootstraps): every
   * initial member's log starts with committed conf-change entries adding each member, so a
   * member joining later learns the whole configuration by replaying the log. "config": the
   * members start with `RaftConfig.voters`/`learners` and an empty log; a member joining
   * later then learns the configuration only from a snapshot.
   */
  bootstrap?: "log" | "config";
  /**
   * A leader whose `needsSnapshot` is true snapshots its state machine after its Ready, as a
   * server should (default true).
   */
  autoSnapshot?: boolean;
}

/** Decides whether a message is dropped (true) instead of delivered. */
export type MessageFilter = (m: Message) => boolean;

/** Bound on the rounds of `stabilize()`: a cluster that never quiets down is a bug. */
const defaultMaxStabilizeRounds = 10_000;
/** Bound on the Readys one member handles in a row within one round. */
const maxReadysPerTurn = 100;

/** An in-memory cluster. */
export class Network {
  readonly members = new Map<bigint, Member>();
  readonly options: Readonly<NetworkOptions>;
  /** Messages sent and not yet delivered, in send order. */
  inFlight: Message[] = [];
  readonly #filters = new Set<MessageFilter>();
  /** Delivered messages by kind name ("app", "appResp", ...). */
  readonly delivered = new Map<string, number>();
  /** Rewrites every message about to be delivered (after the filters), when set. */
  rewrite: ((m: Message) => Message) | null = null;
  /** Called for every message delivered (after the filters let it through). */
  onDeliver: ((m: Message) => void) | null = null;
  /** Prints every delivery when set (debugging aid). */
  verbose = false;

  /** A cluster whose initial voters are `voters` (and `options.learners`). */
  constructor(voters: bigint[], options: NetworkOptions = {}) {
    this.options = options;
    const conf: ConfState = { voters: voters.slice(), learners: (options.learners ?? []).slice() };
    this.#bootstrap = options.bootstrap === "config" ? null : bootstrapEntries(conf);
    for (const id of [...conf.voters, ...conf.learners]) {
      this.#addMember(id, conf, this.#bootstrap);
    }
    // Apply the bootstrap entries: until then no member knows the configuration.
    this.stabilize();
  }

  readonly #bootstrap: Entry[] | null;

  #addMember(id: bigint, conf: ConfState, bootstrap: Entry[] | null): Member {
    assert(!this.members.has(id), `member ${id} exists`);
    const o = this.options;
    const random = seededRandom((o.seed ?? 1) * 7919 + Number(id));
    const makeConfig = (): RaftConfig => ({
      id,
      voters: conf.voters,
      learners: conf.learners,
      electionTicks: o.electionTicks ?? 10,
      heartbeatTicks: o.heartbeatTicks ?? 1,
      random,
      preVote: o.preVote,
      checkQuorum: o.checkQuorum,
      maxInflightMsgs: o.maxInflightMsgs,
      maxSizePerMsgBytes: o.maxSizePerMsgBytes,
      maxUncommittedEntries: o.maxUncommittedEntries,
      maxUncommittedBytes: o.maxUncommittedBytes,
      maxPendingReads: o.maxPendingReads,
    });
    const m = new Member(id, conf, makeConfig, bootstrap);
    this.members.set(id, m);
    return m;
  }

  /**
   * Adds a member that is joining an existing cluster: empty disk and empty configuration,
   * so it learns everything (configuration included) from the leader.
   */
  addJoiningMember(id: bigint): Member {
    return this.#addMember(id, { voters: [], learners: [] }, this.#bootstrap ? [] : null);
  }

  /** The member `id` (asserting it exists). */
  member(id: bigint): Member {
    const m = this.members.get(id);
    assert(m, `no member ${id}`);
    return m;
  }

  /** The RawNode of member `id`. */
  node(id: bigint): RawNode {
    return this.member(id).node;
  }

  /** The members that are up, in id order. */
  upMembers(): Member[] {
    return [...this.members.values()].filter((m) => !m.down).sort((a, b) =>
      a.id < b.id ? -1 : a.id > b.id ? 1 : 0
    );
  }

  /** The up leader of the highest term, or null. */
  leader(): Member | null {
    let best: Member | null = null;
    for (const m of this.upMembers()) {
      if (m.node.role !== "leader") continue;
      if (!best || m.node.term > best.node.term) best = m;
    }
    return best;
  }

  // ---- faults ----

  /** Adds a drop filter; returns a function that removes it. */
  addFilter(filter: MessageFilter): () => void {
    this.#filters.add(filter);
    return () => this.#filters.delete(filter);
  }

  /** Drops every message to or from `id` until `heal()`. */
  isolate(id: bigint): () => void {
    return this.addFilter((m) => m.from === id || m.to === id);
  }

  /** Drops messages between the groups (both ways) until `heal()`. */
  partition(a: bigint[], b: bigint[]): () => void {
    const sa = new Set(a);
    const sb = new Set(b);
    return this.addFilter((m) =>
      (sa.has(m.from) && sb.has(m.to)) || (sb.has(m.from) && sa.has(m.to))
    );
  }

  /** Removes every filter. */
  heal(): void {
    this.#filters.clear();
  }

  /** Crashes `id`: it stops; messages to it are lost; unpersisted state is gone. */
  crash(id: bigint): void {
    this.member(id).down = true;
  }

  /** Restarts `id` from its disk. */
  restart(id: bigint): void {
    this.member(id).restart();
  }

  // ---- driving ----

  /** Handles one Ready of `id` as the Ready contract says; false when it had none. */
  handleReady(id: bigint): boolean {
    const member = this.member(id);
    const node = member.node;
    if (member.down || !node.hasReady()) return false;
    const rd = node.ready();
    const isLeader = node.role === "leader";
    if (isLeader) this.#send(rd.messages);
    member.storage.save(rd);
    if (rd.snapshot) {
      assert(rd.committedEntries.length === 0, "a Ready with a snapshot carries no entries");
      const parsed = JSON.parse(decoder.decode(rd.snapshot.data)) as { values: string[] };
      member.sm = {
        appliedIndex: rd.snapshot.metadata.index,
        values: parsed.values,
        confState: rd.snapshot.metadata.confState,
      };
    }
    for (const e of rd.committedEntries) this.#apply(member, e);
    member.readStates.push(...rd.readStates);
    if (!isLeader) this.#send(rd.messages);
    node.advance(rd);
    if (this.options.autoSnapshot !== false && node.needsSnapshot) this.snapshot(id);
    return true;
  }

  /** Has `id` snapshot its state machine at its applied index, holding and persisting it. */
  snapshot(id: bigint): Snapshot {
    const member = this.member(id);
    const data = utf8(JSON.stringify({ values: member.sm.values }));
    const snap = member.node.createSnapshot(member.sm.appliedIndex, data);
    member.storage.saveSnapshot(snap, member.storage.marker.index);
    return snap;
  }

  #apply(member: Member, e: Entry): void {
    assert(
      e.index === member.sm.appliedIndex + 1,
      `applying ${e.index} after ${member.sm.appliedIndex}`,
    );
    assert(e.index <= member.storage.lastIndex(), `applying undurable entry ${e.index}`);
    member.appliedEntries.set(e.index, `${e.term}:${decoder.decode(e.data)}`);
    if (e.type === EntryType.confChange) {
      member.sm.confState = member.node.applyConfChange(decodeConfChange(e.data));
    } else if (e.data.length > 0) {
      member.sm.values.push(decoder.decode(e.data));
    }
    member.sm.appliedIndex = e.index;
  }

  #send(messages: Message[]): void {
    for (const m of messages) {
      assert(m.to !== m.from, `message to self: ${describeMessage(m)}`);
      this.inFlight.push(m);
    }
  }

  /** True when `m` would be dropped by a filter or because its target is down or absent. */
  #dropped(m: Message): boolean {
    const target = this.members.get(m.to);
    if (!target || target.down) return true;
    for (const f of this.#filters) if (f(m)) return true;
    return false;
  }

  /**
   * Delivers every message now in flight (messages they cause leave with later Readys).
   * A MsgSnap's fate is reported to its sender, as the transport would.
   */
  deliverAll(): number {
    const batch = this.inFlight;
    this.inFlight = [];
    let n = 0;
    for (const m of batch) {
      const dropped = this.#dropped(m);
      if (m.type === MessageType.snap) {
        const sender = this.members.get(m.from);
        if (sender && !sender.down) sender.node.reportSnapshot(m.to, !dropped);
      }
      if (dropped) continue;
      const msg = this.rewrite ? this.rewrite(m) : m;
      if (this.verbose) console.log(`deliver ${describeMessage(msg)}`);
      const name = messageTypeName(msg.type);
      this.delivered.set(name, (this.delivered.get(name) ?? 0) + 1);
      this.onDeliver?.(msg);
      this.member(msg.to).node.step(msg);
      n++;
    }
    return n;
  }

  /**
   * Handles Readys and delivers messages until nothing is left to do. Throws if that takes
   * more than `maxRounds` rounds.
   */
  stabilize(maxRounds = defaultMaxStabilizeRounds): void {
    for (let round = 0; round < maxRounds; round++) {
      let busy = false;
      for (const m of this.upMembers()) {
        for (let i = 0; i < maxReadysPerTurn && this.handleReady(m.id); i++) busy = true;
      }
      if (this.inFlight.length > 0) {
        this.deliverAll();
        busy = true;
      }
      if (!busy) return;
    }
    const busy = this.upMembers().filter((m) => m.node.hasReady()).map((m) => {
      const rd = m.node.ready();
      return `${m.id}: entries=${rd.entries.length} committed=${rd.committedEntries.length} ` +
        `msgs=${rd.messages.map(describeMessage)} hs=${
          JSON.stringify(rd.hardState, (_k, v) => typeof v === "bigint" ? String(v) : v)
        } snap=${rd.snapshot?.metadata.index}`;
    });
    const pending = [...busy, ...this.inFlight.slice(0, 20).map(describeMessage)].join("\n");
    throw new Error(`cluster not stable after ${maxRounds} rounds; in flight:\n${pending}`);
  }

  /** Ticks every up member (or those in `ids`) once, then stabilizes. */
  tick(ids?: bigint[]): void {
    const targets = ids ? ids.map((id) => this.member(id)) : this.upMembers();
    for (const m of targets) if (!m.down) m.node.tick();
    this.stabilize();
  }

  /** Ticks until `done()` holds; returns the ticks taken. Throws after `maxTicks`. */
  tickUntil(done: () => boolean, maxTicks: number): number {
    for (let t = 0; t <= maxTicks; t++) {
      if (done()) return t;
      this.tick();
    }
    throw new Error(`condition not reached within ${maxTicks} ticks`);
  }

  /** Makes `id` campaign and stabilizes; asserts that it won. */
  elect(id: bigint): void {
    this.node(id).campaign();
    this.stabilize();
    const role = this.node(id).role;
    assert(role === "leader", `member ${id} did not win its election (role ${role})`);
  }

  /** Proposes a string value through member `id`; returns the index (0 when forwarded). */
  propose(id: bigint, value: string): number {
    return this.node(id).propose(utf8(value));
  }

  /** Proposes a conf change through member `id`. */
  proposeConfChange(id: bigint, type: ConfChangeType, nodeId: bigint): number {
    const cc: ConfChange = { id: 0n, type, nodeId, context: new Uint8Array() };
    return this.node(id).propose(encodeConfChange(cc), EntryType.confChange);
  }

  /**
   * Has `id` snapshot its state machine at its applied index, hold and persist the snapshot,
   * and compact its log keeping `keepEntries`.
   */
  snapshotAndCompact(id: bigint, keepEntries = 0): Snapshot {
    const member = this.member(id);
    const snap = this.snapshot(id);
    member.node.compactLog(keepEntries);
    member.storage.saveSnapshot(snap, member.node.log.marker.index);
    return snap;
  }

  /**
   * Asserts the safety properties that hold at any moment: no two members applied different
   * entries at one index, every state machine is a prefix of the longest, and no two leaders
   * share a term (Raft paper figure 3).
   */
  checkSafety(): void {
    const byIndex = new Map<number, { id: bigint; entry: string }>();
    for (const m of this.members.values()) {
      for (const [index, entry] of m.appliedEntries) {
        const seen = byIndex.get(index);
        if (!seen) byIndex.set(index, { id: m.id, entry });
        else {
          assert(
            seen.entry === entry,
            `members ${seen.id} and ${m.id} applied different entries at ${index}`,
          );
        }
      }
    }
    let longest: string[] = [];
    for (const m of this.members.values()) {
      if (m.sm.values.length > longest.length) longest = m.sm.values;
    }
    for (const m of this.members.values()) {
      m.sm.values.forEach((v, i) =>
        assert(v === longest[i], `member ${m.id} applied ${v} at position ${i}, not ${longest[i]}`)
      );
    }
    const leaders = new Map<number, bigint>();
    for (const m of this.members.values()) {
      if (m.down || m.node.role !== "leader") continue;
      const other = leaders.get(m.node.term);
      assert(other === undefined, `members ${other} and ${m.id} both lead term ${m.node.term}`);
      leaders.set(m.node.term, m.id);
    }
  }
}
