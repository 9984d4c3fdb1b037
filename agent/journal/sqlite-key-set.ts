/**
 * A durable set of strings in one journal table (`key TEXT PRIMARY KEY`), written behind: add and
 * delete only note the change in memory, and flush() writes what was noted in one transaction, so
 * a batch of a thousand changes costs one commit. Reads see the noted changes at once.
 *
 * Kept for sets that are empty nearly always (kamailio_unseen, kamailio_api_waiting,
 * kamailio_aliases_waiting: migrations sqlite/0002, 0003, 0004): while the table and the notes are
 * empty, has() and delete() touch no SQL at all, and the set holds nothing in memory however large
 * it grows.
 */
import type Database from "better-sqlite3";
import { journalFullOr } from "./journal-full.js";

export interface KeySet {
  has(key: string): boolean;
  add(key: string): void;
  delete(key: string): void;
  /** How many keys the set holds, noted changes included. */
  size(): number;
  /** Up to `limit` keys greater than `after`, in key order (written first). */
  list(after: string, limit: number): string[];
  /** Writes the noted changes in one transaction; throws (JournalFullError on a full disk) and keeps them noted when it cannot. */
  flush(): void;
}

/** The tables a key set may live in: each comes from a migration. */
export type KeySetTable = "kamailio_unseen" | "kamailio_api_waiting" | "kamailio_aliases_waiting";

export function openSqliteKeySet(db: Database.Database, table: KeySetTable, path: string): KeySet {
  const selectOne = db.prepare<[string], { key: string }>(`SELECT key FROM ${table} WHERE key = ?`);
  const insert = db.prepare<[string]>(`INSERT INTO ${table} (key) VALUES (?) ON CONFLICT (key) DO NOTHING`);
  const remove = db.prepare<[string]>(`DELETE FROM ${table} WHERE key = ?`);
  const selectAfter = db.prepare<[string, number], { key: string }>(`SELECT key FROM ${table} WHERE key > ? ORDER BY key LIMIT ?`);
  const count = () => (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;

  /** Rows in the table. */
  let stored = count();
  /** Changes not written yet: true = add, false = delete. */
  const noted = new Map<string, boolean>();
  /** Noted adds of keys not stored, less noted deletes of stored keys: size() = stored + delta. */
  let delta = 0;

  const inTable = (key: string): boolean => stored > 0 && selectOne.get(key) !== undefined;
  const has = (key: string): boolean => {
    const n = noted.get(key);
    return n !== undefined ? n : inTable(key);
  };

  const write = db.transaction((changes: [string, boolean][]) => {
    let n = 0;
    for (const [key, add] of changes) n += add ? insert.run(key).changes : -remove.run(key).changes;
    return n;
  });

  return {
    has,
    add(key) {
      if (has(key)) return;
      noted.set(key, true);
      delta++;
    },
    delete(key) {
      if (noted.size === 0 && stored === 0) return;
      if (!has(key)) return;
      noted.set(key, false);
      delta--;
    },
    size: () => stored + delta,
    list(after, limit) {
      this.flush();
      return selectAfter.all(after, limit).map((r) => r.key);
    },
    flush() {
      if (noted.size === 0) return;
      const changes = [...noted];
      try {
        stored += write(changes);
      } catch (err) {
        throw journalFullOr(err, path);
      }
      noted.clear();
      delta = 0;
    },
  };
}
