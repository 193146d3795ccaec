/**
 * A simulated member disk: the WAL (hard state, entries, raft snapshot) and the state
 * machine's backend, each with a durable part and writes not yet synced. A crash keeps only
 * the durable part, as a power loss would (the backend, like etcd's, is committed without
 * fsync of its own: its checkpoints are taken at random points and may lag the WAL).
 *
 * @module
 */
import { assert } from "../../internal/assert.ts";
import type { ConfState, Entry, HardState, LogMarker, Snapshot } from "../../raft/mod.ts";

/** One write to the WAL, durable only after the next `sync()`. */
export type WalWrite =
  | { kind: "hardState"; hardState: HardState }
  | { kind: "entries"; entries: Entry[] }
  /** A snapshot received from the leader: the log restarts after it. */
  | { kind: "receivedSnapshot"; snapshot: Snapshot }
  /** A snapshot this member made: entries up to it are released. */
  | { kind: "createdSnapshot"; snapshot: Snapshot };

/** What survives a crash of the WAL. */
export interface DurableWal {
  hardState: HardState | null;
  snapshot: Snapshot | null;
  marker: LogMarker;
  /** Entries after `marker`, contiguous. */
  entries: Entry[];
}

/** The state machine: a hash chain over every applied entry, and the configuration. */
export interface MachineState {
  applied: number;
  /** FNV-1a chain over `index:term:type:data` of every applied entry (snapshots carry it). */
  hash: number;
  conf: ConfState;
  /** Client values applied. */
  values: number;
}

/** Bound on WAL writes waiting for a sync; past it the disk flushes on its own. */
const maxUnsyncedWrites = 256;

/** A member's disk. */
export class SimDisk {
  readonly wal: DurableWal = {
    hardState: null,
    snapshot: null,
    marker: { index: 0, term: 0 },
    entries: [],
  };
  /** The backend's last checkpoint (durable). */
  backend: MachineState;
  #unsynced: WalWrite[] = [];
  /** Highest durable commit index ever synced: it must never go back. */
  #durableCommit = 0;

  /** An empty disk whose state machine starts in configuration `conf`. */
  constructor(conf: ConfState) {
    this.backend = { applied: 0, hash: 0, conf, values: 0 };
  }

  /** Queues a WAL write (lost on crash until synced). */
  write(w: WalWrite): void {
    this.#unsynced.push(w);
    if (this.#unsynced.length > maxUnsyncedWrites) this.sync();
  }

  /** Makes every queued write durable, in order. Returns a broken invariant, or null. */
  sync(): string | null {
    const writes = this.#unsynced;
    this.#unsynced = [];
    for (const w of writes) this.#applyDurable(w);
    const commit = this.wal.hardState?.commit ?? 0;
    if (commit < this.#durableCommit) {
      return `durable commit index went back from ${this.#durableCommit} to ${commit}`;
    }
    this.#durableCommit = commit;
    return null;
  }

  /** Drops every write not yet synced. */
  crash(): void {
    this.#unsynced = [];
  }

  /** Writes waiting for a sync. */
  get unsyncedWrites(): number {
    return this.#unsynced.length;
  }

  /** Last durable entry index. */
  lastIndex(): number {
    return this.wal.marker.index + this.wal.entries.length;
  }

  #applyDurable(w: WalWrite): void {
    const wal = this.wal;
    switch (w.kind) {
      case "hardState":
        wal.hardState = w.hardState;
        return;
      case "entries": {
        if (w.entries.length === 0) return;
        const first = w.entries[0].index;
        assert(first > wal.marker.index, `WAL write of entry ${first} at or below the marker`);
        const keep = first - wal.marker.index - 1;
        assert(keep <= wal.entries.length, `WAL gap before entry ${first}`);
        // Entries replace any at the same or later indexes (the Ready contract).
        wal.entries.length = keep;
        for (const e of w.entries) wal.entries.push(e);
        return;
      }
      case "receivedSnapshot": {
        const { index, term } = w.snapshot.metadata;
        wal.snapshot = w.snapshot;
        wal.marker = { index, term };
        wal.entries = [];
        return;
      }
      case "createdSnapshot": {
        const { index, term } = w.snapshot.metadata;
        if (!wal.snapshot || wal.snapshot.metadata.index < index) wal.snapshot = w.snapshot;
        if (index <= wal.marker.index) return;
        assert(index <= this.lastIndex(), `snapshot ${index} past the durable log`);
        const dropped = index - wal.marker.index;
        assert(wal.entries[dropped - 1].term === term, `snapshot ${index} term mismatch`);
        wal.entries = wal.entries.slice(dropped);
        wal.marker = { index, term };
        return;
      }
    }
  }
}
