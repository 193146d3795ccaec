/**
 * A deterministic simulation of a raft cluster: N members built on {@linkcode RawNode}, each
 * with a simulated disk (durable and unsynced parts) and a state machine, on a simulated
 * network that drops, duplicates, delays and reorders messages, with partitions that come and
 * go, crashes that lose every unsynced write, restarts from the durable part, client
 * proposals and ReadIndex reads, leadership transfers, snapshots with log compaction (so
 * lagging members catch up by MsgSnap), and, when enabled, membership changes.
 *
 * Every choice comes from one seeded PRNG, so a seed replays exactly. The safety properties
 * of {@linkcode Oracle} are checked as the run goes; at the end the network heals and the
 * cluster must elect a leader and commit a proposal on every live member (liveness).
 *
 * Each member handles its Readys as the server's raft loop does (see `Ready` in raft/types.ts):
 * a leader sends at once, the disk write and its fsync take simulated time while the member
 * keeps ticking and receiving, followers send only once the write is durable, then the
 * snapshot is installed, committed entries applied (conf changes through `applyConfChange`),
 * and `advance()` called.
 *
 * @module
 */
import { assert } from "../../internal/assert.ts";
import {
  type ConfChange,
  ConfChangeType,
  type ConfState,
  type Entry,
  EntryType,
  type Message,
  MessageType,
  ProposalDroppedError,
  type RaftConfig,
  RawNode,
  type Ready,
  type Snapshot,
} from "../../raft/mod.ts";
import { SeededRandom } from "../../internal/seeded_random.ts";
import { chainHash, commandOf, InvariantViolation, Oracle } from "./oracle.ts";
import { type MachineState, SimDisk } from "./sim_disk.ts";
import { type NetworkFaults, reliableNetwork, SimNetwork } from "./sim_network.ts";

/** What to simulate. */
export interface SimOptions {
  seed: number;
  /** Initial voters. */
  members: number;
  /** Time units of faults and load before the liveness phase. */
  chaosUnits: number;
  /** Add learners, promote them, remove voters. */
  membershipChanges?: boolean;
  /**
   * How a joining member starts: with an empty configuration, as `RaftConfig.voters`
   * documents (it asks the leader for a snapshot), or with the configuration in force when it
   * was added (as etcd starts a member with `--initial-cluster-state existing`). Default
   * "empty".
   */
  joinerConfiguration?: "empty" | "current";
  /**
   * Break the disk contract on purpose, to show the checks catch it: "fsync lies" makes
   * syncs do nothing, so a crash loses writes raft was told are durable.
   */
  sabotage?: "fsync lies";
  /** Replaces some of the choices drawn from the seed (to aim a search at a scenario). */
  profile?: Partial<SimProfile>;
  /** Print every event (debugging a seed). */
  verbose?: boolean;
}

/** What a run did (to see that a seed exercised something). */
export interface SimReport {
  seed: number;
  members: number;
  units: number;
  leadersElected: number;
  highestTerm: number;
  committed: number;
  crashes: number;
  partitions: number;
  snapshotsInstalled: number;
  confChangesApplied: number;
  transfersRequested: number;
  readsChecked: number;
  messagesDelivered: number;
  messagesLost: number;
}

/** A failed run; the message names the seed and how to replay it. */
export class SimFailure extends Error {
  /** `invariant` names the broken property; `trace` holds the latest events. */
  constructor(
    readonly options: SimOptions,
    readonly invariant: string,
    detail: string,
    trace: string[],
  ) {
    const env = [`SIM_SEED=${options.seed}`, `SIM_UNITS=${options.chaosUnits}`];
    super(
      `sim failed for seed ${options.seed}: ${invariant}: ${detail}\n` +
        `rerun: ${env.join(" ")} deno test -A tests/sim/ (SIM_VERBOSE=1 prints every event)\n` +
        `latest events:\n  ${trace.join("\n  ")}`,
    );
    this.name = "SimFailure";
  }

  /** The seed that failed. */
  get seed(): number {
    return this.options.seed;
  }
}

/** Raft ticks are this many time units apart (messages and disk syncs take 1-4 units). */
const unitsPerTick = 4;
const electionTicks = 10;
/** The liveness phase must elect a leader and commit within this many ticks. */
const livenessTicks = 300;
/** Latest events kept for the failure message. */
const maxTraceEvents = 60;
/** Readys a member may take and finish in one time unit. */
const maxReadysPerUnit = 2;
/** Every this many time units, all logs (in memory and durable) are compared pairwise. */
const fullLogCheckUnits = 256;
/** Bound on ReadIndex requests tracked per run. */
const maxTrackedReads = 10_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Per-seed fault, load and configuration choices (drawn from the seed). */
export interface SimProfile {
  faults: NetworkFaults;
  crashChance: number;
  maxDownUnits: number;
  partitionChance: number;
  maxPartitionUnits: number;
  proposeChance: number;
  readChance: number;
  transferChance: number;
  campaignChance: number;
  confChangeChance: number;
  checkpointChance: number;
  flushChance: number;
  maxSyncUnits: number;
  snapshotEvery: number;
  keepEntries: number;
  heartbeatTicks: number;
  preVote: boolean;
  checkQuorum: boolean;
  maxInflightMsgs: number;
  maxSizePerMsgBytes: number;
}

function chooseProfile(r: SeededRandom, membership: boolean): SimProfile {
  // Membership changes need pre-vote and check-quorum: without them a removed member that
  // never learns of its removal disrupts the cluster forever (Raft thesis §4.2.3).
  const guards = membership ? 0 : r.int(4);
  return {
    faults: {
      dropChance: r.pick([0, 0.01, 0.03, 0.1]),
      duplicateChance: r.pick([0, 0.01, 0.05]),
      longDelayChance: r.pick([0, 0.02, 0.1]),
      reorderChance: r.pick([0, 0.05, 0.3, 1]),
      maxDelayUnits: r.pick([2, 4, 6]),
      maxLongDelayUnits: r.pick([20, 60]),
    },
    crashChance: r.pick([0.001, 0.003, 0.006]),
    maxDownUnits: r.pick([40, 200]),
    partitionChance: r.pick([0.001, 0.004]),
    maxPartitionUnits: r.pick([60, 200]),
    proposeChance: r.pick([0.05, 0.2]),
    readChance: r.pick([0.01, 0.05]),
    transferChance: r.pick([0, 0.002]),
    campaignChance: r.pick([0, 0.001]),
    confChangeChance: membership ? r.pick([0.005, 0.01]) : 0,
    checkpointChance: r.pick([0.01, 0.05]),
    flushChance: r.pick([0, 0.02]),
    maxSyncUnits: r.pick([1, 3, 6]),
    snapshotEvery: r.pick([4, 10, 30]),
    keepEntries: r.pick([0, 2, 5]),
    heartbeatTicks: r.pick([1, 2]),
    preVote: guards !== 1 && guards !== 3,
    checkQuorum: guards !== 2 && guards !== 3,
    maxInflightMsgs: r.pick([1, 4, 256]),
    maxSizePerMsgBytes: r.pick([1, 40, 1 << 20]),
  };
}

/** A Ready taken and not yet advanced. */
interface InProgressReady {
  rd: Ready;
  /** Sent when taken (the member was leader). */
  sentEarly: boolean;
  /** Time unit at which the disk write is durable. */
  syncAt: number;
}

class SimMember {
  node: RawNode | null = null;
  sm: MachineState;
  readonly disk: SimDisk;
  pipeline: InProgressReady | null = null;
  incarnation = 0;
  restartAt = 0;
  /** Removed from the cluster (applied its own removal): stopped for good. */
  removed = false;
  tickPhase = 0;
  /** Commit index last seen in memory; must never go back within an incarnation. */
  lastCommit = 0;
  /** Entries up to here were reported to the oracle as committed. */
  recordedCommit = 0;
  lastSnapshotIndex = 0;
  /** Term this member was last checked as leader of. */
  ledTerm = 0;

  constructor(readonly id: bigint, readonly bootConf: ConfState) {
    this.disk = new SimDisk(bootConf);
    this.sm = { ...this.disk.backend };
  }

  get up(): boolean {
    return this.node !== null;
  }
}

function encodeMachine(sm: MachineState): Uint8Array {
  return encoder.encode(JSON.stringify({
    applied: sm.applied,
    hash: sm.hash,
    values: sm.values,
    voters: sm.conf.voters.map(String),
    learners: sm.conf.learners.map(String),
  }));
}

function decodeMachine(data: Uint8Array): MachineState {
  const o = JSON.parse(decoder.decode(data));
  return {
    applied: o.applied,
    hash: o.hash,
    values: o.values,
    conf: { voters: o.voters.map(BigInt), learners: o.learners.map(BigInt) },
  };
}

function encodeConfChange(cc: ConfChange): Uint8Array {
  return encoder.encode(
    JSON.stringify({ id: String(cc.id), type: cc.type, nodeId: String(cc.nodeId) }),
  );
}

function decodeConfChange(data: Uint8Array): ConfChange {
  const o = JSON.parse(decoder.decode(data));
  return { id: BigInt(o.id), type: o.type, nodeId: BigInt(o.nodeId), context: new Uint8Array() };
}

function sameConf(a: ConfState, b: ConfState): boolean {
  const key = (c: ConfState) =>
    [...c.voters].sort().join(",") + "|" + [...c.learners].sort().join(",");
  return key(a) === key(b);
}

function copyMachine(sm: MachineState): MachineState {
  return { ...sm, conf: { voters: [...sm.conf.voters], learners: [...sm.conf.learners] } };
}

/** Runs one seeded simulation; throws {@linkcode SimFailure} when a property breaks. */
export function runSimulation(options: SimOptions): SimReport {
  const sim = new Simulation(options);
  try {
    sim.run();
  } catch (err) {
    if (err instanceof SimFailure) throw err;
    if (err instanceof InvariantViolation) {
      throw new SimFailure(options, err.invariant, err.detail, sim.trace());
    }
    const detail = err instanceof Error ? `${err.name}: ${err.message}\n${err.stack}` : String(err);
    throw new SimFailure(options, "raft or simulator threw", detail, sim.trace());
  }
  return sim.report();
}

class Simulation {
  readonly #options: SimOptions;
  readonly #random: SeededRandom;
  readonly #profile: SimProfile;
  readonly #network: SimNetwork;
  readonly #oracle = new Oracle();
  readonly #members = new Map<bigint, SimMember>();
  /** `#members` in id order. */
  #byId: SimMember[] = [];
  /** Ids that may join later (membership seeds). */
  readonly #spareIds: bigint[] = [];
  #now = 0;
  #faultsOn = true;
  #partitionEndsAt = 0;
  #nextValue = 0;
  #nextRead = 0;
  #nextConfChangeId = 1;
  /** Read context -> highest index known committed when the read was asked. */
  readonly #reads = new Map<string, number>();
  readonly #trace: string[] = [];
  readonly #counts = {
    leadersElected: 0,
    crashes: 0,
    partitions: 0,
    snapshotsInstalled: 0,
    confChangesApplied: 0,
    transfersRequested: 0,
    readsChecked: 0,
    messagesDelivered: 0,
  };

  constructor(options: SimOptions) {
    this.#options = options;
    this.#random = new SeededRandom(options.seed);
    this.#profile = {
      ...chooseProfile(this.#random, options.membershipChanges ?? false),
      ...options.profile,
    };
    this.#network = new SimNetwork({ ...this.#profile.faults }, this.#random);
    this.#network.onLost = (msg) => {
      // A snapshot send always ends in a report, success or failure, as etcd's transport does.
      const sender = this.#members.get(msg.from);
      if (msg.type === MessageType.snap && sender?.up) sender.node!.reportSnapshot(msg.to, false);
    };
    const voters: bigint[] = [];
    for (let i = 1; i <= options.members; i++) voters.push(BigInt(i));
    const conf: ConfState = { voters, learners: [] };
    for (const id of voters) this.#startMember(new SimMember(id, conf));
    if (options.membershipChanges) {
      for (let i = 1; i <= 3; i++) this.#spareIds.push(BigInt(options.members + i));
    }
    this.#log(`start: ${options.members} members, profile ${JSON.stringify(this.#profile)}`);
  }

  run(): void {
    for (let u = 0; u < this.#options.chaosUnits; u++) {
      this.#unit();
      this.#faults();
    }
    this.#checkLiveness();
  }

  trace(): string[] {
    return this.#trace.slice();
  }

  report(): SimReport {
    let highestTerm = 0;
    for (const m of this.#members.values()) {
      if (m.node) highestTerm = Math.max(highestTerm, m.node.term);
    }
    return {
      seed: this.#options.seed,
      members: this.#options.members,
      units: this.#now,
      highestTerm,
      committed: this.#oracle.maxCommitted,
      messagesLost: this.#network.lost,
      ...this.#counts,
    };
  }

  #log(event: string): void {
    const line = `[${this.#now}] ${event}`;
    if (this.#options.verbose) console.log(line);
    this.#trace.push(line);
    if (this.#trace.length > maxTraceEvents) this.#trace.shift();
  }

  #fail(invariant: string, detail: string): never {
    throw new SimFailure(this.#options, invariant, detail, this.trace());
  }

  // ---- members ----

  /** Members in id order, so every iteration is deterministic. */
  #sortedMembers(): SimMember[] {
    return this.#byId;
  }

  #upMembers(): SimMember[] {
    return this.#sortedMembers().filter((m) => m.up);
  }

  #startMember(m: SimMember): void {
    this.#members.set(m.id, m);
    this.#byId = [...this.#members.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
    this.#boot(m);
  }

  /** Builds the member's RawNode from its durable state. */
  #boot(m: SimMember): void {
    const p = this.#profile;
    m.incarnation++;
    const random = new SeededRandom(
      (this.#options.seed * 2654435761 + Number(m.id) * 40503 + m.incarnation * 977) >>> 0,
    );
    const config: RaftConfig = {
      id: m.id,
      voters: m.bootConf.voters,
      learners: m.bootConf.learners,
      electionTicks,
      heartbeatTicks: p.heartbeatTicks,
      random: () => random.next(),
      preVote: p.preVote,
      checkQuorum: p.checkQuorum,
      maxInflightMsgs: p.maxInflightMsgs,
      maxSizePerMsgBytes: p.maxSizePerMsgBytes,
    };
    const wal = m.disk.wal;
    // The backend's checkpoint, unless the durable raft snapshot is newer (a snapshot from
    // the leader was persisted, then the crash came before the backend caught up).
    let sm = copyMachine(m.disk.backend);
    if (wal.snapshot && wal.snapshot.metadata.index > sm.applied) {
      sm = decodeMachine(wal.snapshot.data);
    }
    m.sm = sm;
    m.node = new RawNode(config, {
      hardState: wal.hardState,
      marker: wal.marker,
      entries: wal.entries.slice(),
      applied: sm.applied,
      confState: sm.conf,
      snapshot: wal.snapshot ?? undefined,
    });
    m.pipeline = null;
    m.tickPhase = this.#random.int(unitsPerTick);
    m.lastSnapshotIndex = Math.max(sm.applied, wal.snapshot?.metadata.index ?? 0);
    const durableCommit = wal.hardState?.commit ?? 0;
    if (m.node.log.committed < durableCommit) {
      this.#fail(
        "commit index went back",
        `member ${m.id} restarted with commit ${m.node.log.committed} below its durable ${durableCommit}`,
      );
    }
    m.lastCommit = m.node.log.committed;
    m.recordedCommit = Math.min(m.recordedCommit, m.node.log.committed);
    m.ledTerm = 0;
  }

  #crash(m: SimMember): void {
    m.disk.crash();
    m.node = null;
    m.pipeline = null;
    m.restartAt = this.#now + 1 + this.#random.int(this.#profile.maxDownUnits);
    this.#counts.crashes++;
    this.#log(`crash ${m.id} (restart at ${m.restartAt})`);
  }

  // ---- one time unit ----

  #unit(): void {
    this.#now++;
    for (const msg of this.#network.takeDue(this.#now)) this.#deliver(msg);
    for (const m of this.#sortedMembers()) {
      if (m.removed) continue;
      if (!m.up) {
        if (this.#now >= m.restartAt) {
          this.#boot(m);
          this.#log(`restart ${m.id}: commit ${m.node!.log.committed}, applied ${m.sm.applied}`);
        }
        continue;
      }
      if ((this.#now + m.tickPhase) % unitsPerTick === 0) {
        m.node!.tick();
        this.#checkMember(m);
      }
      this.#pump(m);
    }
    this.#checkInvariants();
    if (this.#now % fullLogCheckUnits === 0) this.#checkLogsPairwise();
  }

  #deliver(msg: Message): void {
    const target = this.#members.get(msg.to);
    const sender = this.#members.get(msg.from);
    const reachable = target !== undefined && target.up && !target.removed &&
      !this.#network.separated(msg.from, msg.to);
    if (this.#options.verbose) {
      this.#log(`${reachable ? "deliver" : "lose"} ${describe(msg)}`);
    }
    if (reachable) {
      this.#counts.messagesDelivered++;
      target.node!.step(msg);
      this.#checkMember(target);
    } else if (sender?.up && this.#random.chance(0.3)) {
      // The transport notices some failed deliveries.
      sender.node!.reportUnreachable(msg.to);
    }
    if (msg.type === MessageType.snap && sender?.up) {
      sender.node!.reportSnapshot(msg.to, reachable);
    }
  }

  /** Takes and finishes Readys as the server's raft loop does. */
  #pump(m: SimMember): void {
    for (let i = 0; i < maxReadysPerUnit && m.up; i++) {
      if (m.pipeline === null) {
        if (!m.node!.hasReady()) return;
        this.#takeReady(m);
      }
      if (m.pipeline === null || this.#now < m.pipeline.syncAt) return;
      this.#finishReady(m);
      this.#checkMember(m);
    }
  }

  #takeReady(m: SimMember): void {
    const node = m.node!;
    const rd = node.ready();
    const where = `member ${m.id} Ready`;
    if (rd.entries.length > 0) {
      this.#oracle.recordEntries(rd.entries, termBefore(node, rd.entries[0].index), where);
    }
    for (const msg of rd.messages) {
      if (msg.type === MessageType.app && msg.entries.length > 0) {
        this.#oracle.recordEntries(msg.entries, msg.logTerm, `append ${m.id}->${msg.to}`);
      }
    }
    if (rd.snapshot) {
      assert(rd.committedEntries.length === 0, "a Ready with a snapshot carries no entries");
    }
    this.#checkMember(m);
    const sentEarly = node.role === "leader";
    if (sentEarly) this.#send(rd.messages);
    if (rd.snapshot) m.disk.write({ kind: "receivedSnapshot", snapshot: rd.snapshot });
    if (rd.hardState) m.disk.write({ kind: "hardState", hardState: rd.hardState });
    if (rd.entries.length > 0) m.disk.write({ kind: "entries", entries: rd.entries });
    const syncUnits = rd.mustSync ? this.#random.int(this.#profile.maxSyncUnits + 1) : 0;
    m.pipeline = { rd, sentEarly, syncAt: this.#now + syncUnits };
  }

  #finishReady(m: SimMember): void {
    const node = m.node!;
    const { rd, sentEarly } = m.pipeline!;
    if (rd.mustSync) this.#sync(m);
    if (!sentEarly) this.#send(rd.messages);
    if (rd.snapshot) this.#installSnapshot(m, rd.snapshot);
    let removedSelf = false;
    for (const e of rd.committedEntries) removedSelf = this.#apply(m, e) || removedSelf;
    for (const rs of rd.readStates) this.#checkRead(m, rs.index, rs.requestCtx);
    node.advance(rd);
    m.pipeline = null;
    if (node.log.applied !== m.sm.applied) {
      this.#fail(
        "applied index",
        `member ${m.id}: raft says applied ${node.log.applied}, state machine ${m.sm.applied}`,
      );
    }
    if (removedSelf) {
      // etcd stops a member once it applies its own removal.
      this.#log(`member ${m.id} applied its removal and stops`);
      m.removed = true;
      m.node = null;
      return;
    }
    this.#maybeSnapshot(m);
  }

  #sync(m: SimMember): void {
    if (this.#options.sabotage === "fsync lies") return;
    const broken = m.disk.sync();
    if (broken !== null) this.#fail("commit index went back", `member ${m.id}: ${broken}`);
  }

  #send(messages: Message[]): void {
    for (const msg of messages) {
      assert(msg.to !== msg.from, "a member sends to itself");
      this.#network.send(msg, this.#now);
    }
  }

  #installSnapshot(m: SimMember, snap: Snapshot): void {
    const sm = decodeMachine(snap.data);
    const { index, confState } = snap.metadata;
    if (sm.applied !== index) {
      this.#fail("snapshot", `snapshot at ${index} holds state applied to ${sm.applied}`);
    }
    if (!sameConf(sm.conf, confState)) {
      this.#fail(
        "snapshot configuration",
        `snapshot at ${index}: metadata ${fmtConf(confState)}, state machine ${fmtConf(sm.conf)}`,
      );
    }
    this.#oracle.recordHash(index, sm.hash, `member ${m.id} installing snapshot ${index}`);
    m.sm = sm;
    // Installing replaces the backend file as a whole (etcd renames the received db).
    if (this.#options.sabotage === undefined) m.disk.backend = copyMachine(sm);
    m.lastSnapshotIndex = index;
    this.#counts.snapshotsInstalled++;
    this.#log(`member ${m.id} installed snapshot ${index} ${fmtConf(confState)}`);
  }

  /** Applies one committed entry; true when it removed this member. */
  #apply(m: SimMember, e: Entry): boolean {
    const sm = m.sm;
    if (e.index !== sm.applied + 1) {
      this.#fail("apply order", `member ${m.id} applies ${e.index} after ${sm.applied}`);
    }
    // (With a lying disk the server cannot know; the raft-level checks must catch it.)
    if (e.index > m.disk.lastIndex() && this.#options.sabotage === undefined) {
      this.#fail("apply durability", `member ${m.id} applies ${e.index}, not durable yet`);
    }
    let removedSelf = false;
    if (e.type === EntryType.confChange) {
      const cc = decodeConfChange(e.data);
      sm.conf = m.node!.applyConfChange(cc);
      this.#counts.confChangesApplied++;
      this.#log(`member ${m.id} applied conf change ${e.index}: ${fmtConf(sm.conf)}`);
      if (cc.type === ConfChangeType.removeNode && cc.nodeId === m.id) removedSelf = true;
      if (
        (cc.type === ConfChangeType.addLearnerNode || cc.type === ConfChangeType.addNode) &&
        !this.#members.has(cc.nodeId)
      ) {
        // The operator starts the new member once the change is in, with an empty disk.
        const conf: ConfState = this.#options.joinerConfiguration === "current"
          ? { voters: [...sm.conf.voters], learners: [...sm.conf.learners] }
          : { voters: [], learners: [] };
        this.#log(`member ${cc.nodeId} joins with ${fmtConf(conf)}`);
        this.#startMember(new SimMember(cc.nodeId, conf));
      }
    } else if (e.data.length > 0) {
      sm.values++;
    }
    sm.hash = chainHash(sm.hash, e);
    sm.applied = e.index;
    this.#oracle.recordApplied(e, sm.hash, `member ${m.id}`);
    return removedSelf;
  }

  #checkRead(m: SimMember, index: number, ctx: Uint8Array): void {
    const key = decoder.decode(ctx);
    const committedWhenAsked = this.#reads.get(key);
    if (committedWhenAsked === undefined) return;
    this.#reads.delete(key);
    this.#counts.readsChecked++;
    if (index < committedWhenAsked) {
      this.#fail(
        "ReadIndex linearizability",
        `read ${key} on member ${m.id} got index ${index}, but ${committedWhenAsked} was ` +
          `committed before it was asked`,
      );
    }
  }

  #maybeSnapshot(m: SimMember): void {
    const node = m.node!;
    const p = this.#profile;
    if (m.sm.applied - m.lastSnapshotIndex < p.snapshotEvery && !node.needsSnapshot) return;
    if (m.sm.applied <= m.lastSnapshotIndex) return;
    const snap = node.createSnapshot(m.sm.applied, encodeMachine(m.sm));
    // A snapshot from the leader arrived while this Ready was being persisted: raft hands
    // that one back; it is persisted and installed with the next Ready, not here.
    if (snap.metadata.index !== m.sm.applied) return;
    // The snapshot file is fsynced before the WAL is released (as etcd's snapshotter does).
    m.disk.write({ kind: "createdSnapshot", snapshot: snap });
    this.#sync(m);
    node.compactLog(p.keepEntries);
    m.lastSnapshotIndex = m.sm.applied;
  }

  // ---- faults and load ----

  #faults(): void {
    if (!this.#faultsOn) return;
    const r = this.#random;
    const p = this.#profile;
    if (r.chance(p.crashChance)) {
      const candidates = this.#upMembers();
      if (candidates.length > 0) this.#crash(r.pick(candidates));
    }
    const up = this.#upMembers();
    if (this.#network.partitioned && this.#now >= this.#partitionEndsAt) {
      this.#network.heal();
      this.#log("partition healed");
    } else if (!this.#network.partitioned && r.chance(p.partitionChance)) {
      this.#partition();
    }
    for (const m of up) {
      if (r.chance(p.checkpointChance) && this.#options.sabotage === undefined) {
        m.disk.backend = copyMachine(m.sm);
      }
      if (r.chance(p.flushChance)) this.#sync(m);
    }
    if (up.length > 0 && r.chance(p.proposeChance)) this.#propose(r.pick(up));
    if (up.length > 0 && r.chance(p.readChance)) this.#read(r.pick(up));
    if (r.chance(p.transferChance)) this.#transfer();
    if (up.length > 0 && r.chance(p.campaignChance)) {
      const m = r.pick(up);
      this.#log(`member ${m.id} campaigns`);
      m.node!.campaign();
      this.#checkMember(m);
    }
    if (r.chance(p.confChangeChance)) this.#changeMembership();
  }

  #partition(): void {
    const r = this.#random;
    const ids = this.#sortedMembers().map((m) => m.id);
    let groups: number[];
    if (r.chance(0.4)) {
      const isolated = r.int(ids.length);
      groups = ids.map((_, i) => (i === isolated ? 1 : 0));
    } else {
      groups = ids.map(() => r.int(2));
    }
    this.#network.partition(ids, groups);
    this.#partitionEndsAt = this.#now + 1 + r.int(this.#profile.maxPartitionUnits);
    this.#counts.partitions++;
    const sides = [0, 1].map((g) => ids.filter((_, i) => groups[i] === g).join(","));
    this.#log(`partition {${sides[0]}} | {${sides[1]}} until ${this.#partitionEndsAt}`);
  }

  #propose(m: SimMember): void {
    const value = `v${this.#nextValue++}`;
    try {
      m.node!.propose(encoder.encode(value));
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err;
    }
  }

  #read(m: SimMember): void {
    if (this.#reads.size >= maxTrackedReads) return;
    const key = `r${this.#nextRead++}`;
    try {
      m.node!.readIndex(encoder.encode(key));
      this.#reads.set(key, this.#oracle.maxCommitted);
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err;
    }
  }

  /** The up leader of the highest term, or null. */
  #leader(): SimMember | null {
    let best: SimMember | null = null;
    for (const m of this.#upMembers()) {
      if (m.node!.role !== "leader") continue;
      if (best === null || m.node!.term > best.node!.term) best = m;
    }
    return best;
  }

  #transfer(): void {
    const leader = this.#leader();
    if (leader === null) return;
    const voters = leader.node!.status().confState.voters.filter((id) => id !== leader.id);
    if (voters.length === 0) return;
    const to = this.#random.pick(voters);
    this.#counts.transfersRequested++;
    this.#log(`transfer leadership ${leader.id} -> ${to}`);
    try {
      leader.node!.transferLeader(to);
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err;
    }
  }

  #changeMembership(): void {
    const leader = this.#leader();
    if (leader === null) return;
    const r = this.#random;
    const conf = leader.node!.status().confState;
    const choices: ConfChange[] = [];
    const cc = (type: ConfChangeType, nodeId: bigint): ConfChange => ({
      id: BigInt(this.#nextConfChangeId),
      type,
      nodeId,
      context: new Uint8Array(),
    });
    const spare = this.#spareIds.find((id) => !this.#members.has(id));
    if (spare !== undefined) choices.push(cc(ConfChangeType.addLearnerNode, spare));
    for (const id of conf.learners) choices.push(cc(ConfChangeType.addNode, id));
    if (conf.voters.length > 3) {
      for (const id of conf.voters) choices.push(cc(ConfChangeType.removeNode, id));
    }
    if (choices.length === 0) return;
    const change = r.pick(choices);
    try {
      const index = leader.node!.propose(encodeConfChange(change), EntryType.confChange);
      this.#nextConfChangeId++;
      this.#log(
        `propose conf change ${change.type} of ${change.nodeId} at ${index} on ${leader.id}`,
      );
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err;
    }
  }

  // ---- invariants ----

  #checkInvariants(): void {
    for (const m of this.#sortedMembers()) this.#checkMember(m);
  }

  /** The per-member checks, run after everything that can change a member's state. */
  #checkMember(m: SimMember): void {
    const node = m.node;
    if (node === null) return;
    const log = node.log;
    if (log.committed < m.lastCommit) {
      this.#fail(
        "commit index went back",
        `member ${m.id} commit ${log.committed} after ${m.lastCommit}`,
      );
    }
    m.lastCommit = log.committed;
    if (log.applied > log.committed) {
      this.#fail("applied <= committed", `member ${m.id}: ${log.applied} > ${log.committed}`);
    }
    if (log.committed > m.recordedCommit) {
      const from = Math.max(m.recordedCommit + 1, log.firstIndex());
      if (from <= log.committed) {
        for (const e of log.slice(from, log.committed + 1)) {
          this.#oracle.recordCommitted(e, `member ${m.id}`);
        }
      }
      m.recordedCommit = log.committed;
    }
    if (node.role === "leader" && m.ledTerm !== node.term) {
      m.ledTerm = node.term;
      if (this.#oracle.recordLeader(node.term, m.id)) {
        this.#counts.leadersElected++;
        this.#log(`member ${m.id} leads term ${node.term} (last index ${log.lastIndex()})`);
        this.#oracle.checkLeaderCompleteness(
          m.id,
          node.term,
          log.marker.index,
          (i) => (i > log.lastIndex() ? -1 : log.term(i)),
        );
      }
    }
  }

  /**
   * Log Matching checked directly, not inductively: for every two logs (each member's log in
   * memory and its durable WAL), below the highest index where both hold the same term,
   * every index both hold must hold the same entry (Raft paper §5.3).
   */
  #checkLogsPairwise(): void {
    const logs: { name: string; at: Map<number, string> }[] = [];
    for (const m of this.#sortedMembers()) {
      const wal = new Map<number, string>();
      for (const e of m.disk.wal.entries) wal.set(e.index, `${e.term}:${commandOf(e)}`);
      logs.push({ name: `WAL of ${m.id}`, at: wal });
      const log = m.node?.log;
      if (log === undefined || log.lastIndex() < log.firstIndex()) continue;
      const held = new Map<number, string>();
      for (const e of log.slice(log.firstIndex(), log.lastIndex() + 1)) {
        held.set(e.index, `${e.term}:${commandOf(e)}`);
      }
      logs.push({ name: `log of ${m.id}`, at: held });
    }
    for (let a = 0; a < logs.length; a++) {
      for (let b = a + 1; b < logs.length; b++) {
        const x = logs[a];
        const y = logs[b];
        let highestShared = 0;
        for (const [i, v] of x.at) {
          const w = y.at.get(i);
          if (w !== undefined && i > highestShared && termOf(v) === termOf(w)) highestShared = i;
        }
        for (const [i, v] of x.at) {
          if (i > highestShared) continue;
          const w = y.at.get(i);
          if (w !== undefined && w !== v) {
            this.#fail(
              "Log Matching",
              `${x.name} and ${y.name} agree at ${highestShared} but differ at ${i}: ` +
                `${JSON.stringify(v)} vs ${JSON.stringify(w)}`,
            );
          }
        }
      }
    }
  }

  // ---- liveness ----

  #checkLiveness(): void {
    this.#faultsOn = false;
    this.#network.heal();
    this.#network.faults = { ...reliableNetwork };
    for (const m of this.#sortedMembers()) {
      if (!m.removed && !m.up) m.restartAt = this.#now;
    }
    this.#log("liveness phase: network healed, every member restarting");
    this.#checkLogsPairwise();
    const deadline = this.#now + livenessTicks * unitsPerTick;
    const value = `final-${this.#options.seed}`;
    let proposedAt = -Infinity;
    let finalIndex = 0;
    while (this.#now < deadline) {
      this.#unit();
      this.#stopMembersOutside();
      const leader = this.#leader();
      if (leader === null) continue;
      const node = leader.node!;
      const retry = this.#now - proposedAt > 4 * electionTicks * unitsPerTick;
      const lost = finalIndex > node.log.lastIndex();
      if (finalIndex === 0 || retry || lost) {
        try {
          finalIndex = node.propose(encoder.encode(value));
          proposedAt = this.#now;
          this.#log(`liveness: proposed ${value} at ${finalIndex} on ${leader.id}`);
        } catch (err) {
          if (!(err instanceof ProposalDroppedError)) throw err;
        }
        continue;
      }
      if (this.#appliedEverywhere(leader, finalIndex, value)) {
        this.#checkLogsPairwise();
        return;
      }
    }
    const states = this.#sortedMembers().map((m) =>
      `${m.id}:${
        m.removed
          ? "removed"
          : m.up
          ? `${m.node!.role}@${m.node!.term} commit=${
            m.node!.log.committed
          } applied=${m.sm.applied}`
          : "down"
      }`
    );
    const leader = this.#leader();
    const progress = leader === null
      ? []
      : [...leader.node!.status().progress].map(([id, pr]) =>
        `${id}:${pr.state} match=${pr.match} next=${pr.next} inflight=${pr.inflight} ` +
        `pendingSnapshot=${pr.pendingSnapshot} active=${pr.recentActive}`
      );
    this.#fail(
      "liveness",
      `after healing, ${livenessTicks} ticks did not commit a proposal everywhere ` +
        `(final index ${finalIndex}); members ${states.join(" ")}; leader's progress ` +
        `${progress.join("; ")}; leader's snapshot ${leader?.node?.snapshot?.metadata.index} ` +
        `marker ${leader?.node?.log.marker.index}`,
    );
  }

  #appliedEverywhere(leader: SimMember, index: number, value: string): boolean {
    if (leader.node!.log.committed < index) return false;
    const conf = leader.node!.status().confState;
    for (const id of [...conf.voters, ...conf.learners]) {
      const m = this.#members.get(id);
      if (m === undefined || !m.up || m.sm.applied < index) return false;
    }
    // The entry at `index` must be ours (the leader may have changed in between).
    const log = leader.node!.log;
    if (index <= log.marker.index) return true;
    const e = log.slice(index, index + 1)[0];
    return decoder.decode(e.data) === value;
  }

  /** Stops members the newest configuration no longer names (etcd shuts them down). */
  #stopMembersOutside(): void {
    let newest: SimMember | null = null;
    for (const m of this.#upMembers()) {
      if (newest === null || m.sm.applied > newest.sm.applied) newest = m;
    }
    if (newest === null) return;
    const conf = newest.sm.conf;
    for (const m of this.#upMembers()) {
      if (conf.voters.includes(m.id) || conf.learners.includes(m.id)) continue;
      if (conf.voters.length === 0) continue;
      this.#log(`member ${m.id} is outside ${fmtConf(conf)} and stops`);
      m.removed = true;
      m.node = null;
    }
  }
}

function termOf(termAndCommand: string): string {
  return termAndCommand.slice(0, termAndCommand.indexOf(":"));
}

/** Term of the entry before `index` in `node`'s log, -1 when compacted away. */
function termBefore(node: RawNode, index: number): number {
  if (index - 1 < node.log.marker.index) return -1;
  return node.log.term(index - 1);
}

function fmtConf(c: ConfState): string {
  return `voters [${c.voters.join(",")}] learners [${c.learners.join(",")}]`;
}

function describe(m: Message): string {
  const kind = Object.entries(MessageType).find(([, v]) => v === m.type)?.[0] ?? String(m.type);
  let s = `${kind} ${m.from}->${m.to} t${m.term}`;
  if (m.type === MessageType.app || m.type === MessageType.appResp) {
    s += ` i${m.index} lt${m.logTerm} c${m.commit}`;
  }
  if (m.entries.length > 0) {
    s += ` [${m.entries[0].index}..${m.entries[m.entries.length - 1].index}]`;
  }
  if (m.reject) s += ` reject(hint ${m.rejectHint})`;
  if (m.snapshot) s += ` snap@${m.snapshot.metadata.index}`;
  return s;
}
