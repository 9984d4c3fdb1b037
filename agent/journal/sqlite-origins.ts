/**
 * The journal's origins (one per node epoch: few) kept in memory both ways: by replica id, the
 * origin's row id and how far its changes go (`have`, which the store raises in place as it
 * writes), and by row id, the replica id. A transaction that fails rolls the table back, so the
 * store reloads the cache from it then (sqlite-store.ts `guarded`).
 */
import type Database from "better-sqlite3";
import type { VersionVector } from "../contract/records.js";

export interface Origin {
  id: number;
  have: number;
}

export interface OriginCache {
  /** The origin of `replica`, inserted with nothing yet when the journal has none: inside a write transaction. */
  origin(replica: string): Origin;
  /** The origin of `replica`, if the journal has one. */
  find(replica: string): Origin | undefined;
  /** The replica id of the origin with row id `id`. */
  replicaOf(id: number): string | undefined;
  /** Every origin that has changes, and how far they go. */
  versionVector(): VersionVector;
  /** Reads the table again. Read first, then replace: a reload that fails leaves the cache as it was, not empty. */
  reload(): void;
}

export function createOriginCache(db: Database.Database): OriginCache {
  const originById = new Map<number, string>();
  const originByReplica = new Map<string, Origin>();
  const selectOrigins = db.prepare<[], { id: number; replica: string; have: number }>("SELECT id, replica, have FROM origins");
  const reload = () => {
    const rows = selectOrigins.all();
    originById.clear();
    originByReplica.clear();
    for (const o of rows) {
      originById.set(o.id, o.replica);
      originByReplica.set(o.replica, { id: o.id, have: o.have });
    }
  };
  reload();
  const insertOrigin = db.prepare<[string]>("INSERT INTO origins (replica, have) VALUES (?, 0)");
  return {
    origin(replica) {
      let o = originByReplica.get(replica);
      if (!o) {
        const id = Number(insertOrigin.run(replica).lastInsertRowid);
        o = { id, have: 0 };
        originById.set(id, replica);
        originByReplica.set(replica, o);
      }
      return o;
    },
    find: (replica) => originByReplica.get(replica),
    replicaOf: (id) => originById.get(id),
    versionVector() {
      const vv: VersionVector = {};
      for (const [replica, o] of originByReplica) if (o.have > 0) vv[replica] = o.have;
      return vv;
    },
    reload,
  };
}
