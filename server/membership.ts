/**
 * The cluster's membership as applied from the raft log: members (IDs, names, peer and client
 * URLs, learner flag) and the IDs of removed members. It lives in the backend next to the key
 * space, so a snapshot of the backend carries it to a member that catches up, and it is
 * exactly as current as the backend's consistent index after a restart.
 *
 * @module
 */
import type { StatementSync } from "node:sqlite";
import type { MvccStore } from "../mvcc/mod.ts";
import type { ConfState } from "../raft/mod.ts";

/** A member of the cluster as the Cluster service reports it. */
export interface MemberInfo {
  id: bigint;
  /** Empty until the member has started and published its attributes. */
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

/** The JSON a conf change entry carries as its context (etcd's member JSON shape). */
interface MemberJson {
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner?: boolean;
}

/** Encodes a member as the context of a conf change entry. */
export function encodeMemberContext(member: MemberInfo): Uint8Array {
  const json: MemberJson = {
    id: member.id.toString(16),
    name: member.name,
    peerURLs: member.peerUrls,
    clientURLs: member.clientUrls,
    isLearner: member.isLearner,
  };
  return new TextEncoder().encode(JSON.stringify(json));
}

/** Decodes a conf change context; throws on anything but a well-formed member. */
export function decodeMemberContext(context: Uint8Array): MemberInfo {
  const json = JSON.parse(new TextDecoder().decode(context)) as Partial<MemberJson>;
  if (typeof json.id !== "string" || !/^[0-9a-f]{1,16}$/.test(json.id)) {
    throw new Error("conf change context: bad member id");
  }
  const strings = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === "string");
  if (!strings(json.peerURLs) || !strings(json.clientURLs ?? [])) {
    throw new Error("conf change context: bad URLs");
  }
  return {
    id: BigInt(`0x${json.id}`),
    name: typeof json.name === "string" ? json.name : "",
    peerUrls: json.peerURLs as string[],
    clientUrls: (json.clientURLs ?? []) as string[],
    isLearner: json.isLearner === true,
  };
}

/** Membership persisted in the backend's `members` and `members_removed` tables. */
export class Membership {
  readonly #store: MvccStore;
  #members = new Map<bigint, MemberInfo>();
  #removed = new Set<bigint>();
  #upsert!: StatementSync;
  #delete!: StatementSync;
  #markRemoved!: StatementSync;

  /** Opens the tables (creating them) and loads them. */
  constructor(store: MvccStore) {
    this.#store = store;
    this.reload();
  }

  /** Re-reads the tables: after the backend was replaced by a snapshot. */
  reload(): void {
    const db = this.#store.database;
    this.#store.withBatch((batch) =>
      batch.exec(
        `CREATE TABLE IF NOT EXISTS members (id TEXT PRIMARY KEY, name TEXT NOT NULL,
           peer_urls TEXT NOT NULL, client_urls TEXT NOT NULL, is_learner INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS members_removed (id TEXT PRIMARY KEY);`,
      )
    );
    this.#upsert = db.prepare(
      `INSERT INTO members (id, name, peer_urls, client_urls, is_learner) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET name = excluded.name, peer_urls = excluded.peer_urls,
         client_urls = excluded.client_urls, is_learner = excluded.is_learner`,
    );
    this.#delete = db.prepare("DELETE FROM members WHERE id = ?");
    this.#markRemoved = db.prepare("INSERT OR IGNORE INTO members_removed (id) VALUES (?)");
    this.#members = new Map();
    for (const row of db.prepare("SELECT * FROM members").all()) {
      const id = BigInt(`0x${row.id}`);
      this.#members.set(id, {
        id,
        name: String(row.name),
        peerUrls: JSON.parse(String(row.peer_urls)),
        clientUrls: JSON.parse(String(row.client_urls)),
        isLearner: Number(row.is_learner) === 1,
      });
    }
    this.#removed = new Set(
      db.prepare("SELECT id FROM members_removed").all().map((r) => BigInt(`0x${r.id}`)),
    );
  }

  /** True before any member was recorded (a data dir that was never bootstrapped). */
  get isEmpty(): boolean {
    return this.#members.size === 0 && this.#removed.size === 0;
  }

  /** Members sorted by ID (etcd's MemberList order). */
  list(): MemberInfo[] {
    return [...this.#members.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** The member with `id`, if it is in the cluster. */
  get(id: bigint): MemberInfo | undefined {
    return this.#members.get(id);
  }

  /** True for a member that was removed (it may never rejoin under the same ID). */
  isRemoved(id: bigint): boolean {
    return this.#removed.has(id);
  }

  /** Raft's view of the membership. */
  confState(): ConfState {
    const members = this.list();
    return {
      voters: members.filter((m) => !m.isLearner).map((m) => m.id),
      learners: members.filter((m) => m.isLearner).map((m) => m.id),
    };
  }

  /** Records or replaces a member (add, promote, update, bootstrap). */
  put(member: MemberInfo): void {
    this.#store.withBatch(() =>
      this.#upsert.run(
        member.id.toString(16),
        member.name,
        JSON.stringify(member.peerUrls),
        JSON.stringify(member.clientUrls),
        member.isLearner ? 1 : 0,
      )
    );
    this.#members.set(member.id, { ...member });
  }

  /** Removes a member for good. */
  remove(id: bigint): void {
    this.#store.withBatch(() => {
      this.#delete.run(id.toString(16));
      this.#markRemoved.run(id.toString(16));
    });
    this.#members.delete(id);
    this.#removed.add(id);
  }

  /** Applies a started member's published name and client URLs. */
  setAttributes(id: bigint, name: string, clientUrls: string[]): void {
    const member = this.#members.get(id);
    if (!member) return; // removed meanwhile
    this.put({ ...member, name, clientUrls });
  }
}
