/**
 * Lease persistence in the backend: leases live in a table of the same SQLite database as the
 * key space, written inside the same batch, so a lease and the consistent index of the entry
 * that granted it commit together.
 *
 * @module
 */
import type { StatementSync } from "node:sqlite";
import type { LeasePersistence } from "../lease/mod.ts";
import type { MvccStore } from "../mvcc/mod.ts";

/** The lease table over an open store. */
export class LeaseBackend implements LeasePersistence {
  readonly #store: MvccStore;
  readonly #save: StatementSync;
  readonly #delete: StatementSync;

  /** Creates the table if needed. */
  constructor(store: MvccStore) {
    this.#store = store;
    store.withBatch((db) =>
      db.exec("CREATE TABLE IF NOT EXISTS lease (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL)")
    );
    this.#save = store.database.prepare("INSERT OR REPLACE INTO lease (id, ttl) VALUES (?, ?)");
    this.#delete = store.database.prepare("DELETE FROM lease WHERE id = ?");
  }

  /** Records a granted lease. */
  saveLease(id: bigint, ttlSeconds: number): void {
    this.#store.withBatch(() => this.#save.run(id, ttlSeconds));
  }

  /** Forgets a revoked lease. */
  deleteLease(id: bigint): void {
    this.#store.withBatch(() => this.#delete.run(id));
  }

  /** Every stored lease. */
  load(): { id: bigint; ttlSeconds: number }[] {
    const stmt = this.#store.database.prepare("SELECT id, ttl FROM lease ORDER BY id");
    stmt.setReadBigInts(true);
    return (stmt.all() as { id: bigint; ttl: bigint }[]).map((r) => ({
      id: r.id,
      ttlSeconds: Number(r.ttl),
    }));
  }
}
