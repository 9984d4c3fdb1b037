/**
 * The agent's durable journal on SQLite (better-sqlite3, WAL). Every method runs one synchronous
 * transaction, so a change is on disk before the promise resolves: the caller acknowledges only
 * after that, and `kill -9` cannot lose an acknowledged change. With `synchronous: "full"` the WAL
 * is fsynced on every commit and a power cut cannot either.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { compareVersions, type Change } from "../contract/records.js";
import { InvalidBatchError, type ApplyOutcome, type Draft, type Page, type PageQuery, type RemoteBatch, type ReplicaStore, type StoreCounts } from "../core/store.js";

export { InvalidBatchError };
import { journalFullOr } from "./journal-full.js";
import { lockJournal } from "./journal-lock.js";
import { migrateSqlite } from "./migrate-sqlite.js";
import { COUNT_SQL, PAGE_SQL, type CountParams, type PageParams } from "./sqlite-page-sql.js";
import { KIND_CODE, expiresOf, rowToChange, type StoredRow as Row } from "../core/stored-row.js";
import { listSearch } from "../core/list-search.js";
import { openJournalMeta, type JournalMeta, type JournalNotes } from "./sqlite-meta.js";
import { createOriginCache } from "./sqlite-origins.js";
import { openSqliteKeySet, type KeySet } from "./sqlite-key-set.js";
import { createRecordTally, type RowState } from "./sqlite-tally.js";

export interface SqliteStoreOptions {
  path: string;
  nodeId: string;
  /** "full" fsyncs every commit (survives power loss); "normal" survives process crashes only. */
  synchronous?: "full" | "normal";
  /** Page cache in MiB; bounds the journal's share of memory. */
  cacheMiB?: number;
}

/**
 * The agent's journal: the replica store, its notes, whether it has caught up with the cluster once
 * (sqlite-meta.ts), and three sets kept for the Kamailio attachment (sqlite-key-set.ts): the bindings
 * written only into a database the running Kamailio does not read, the local API's edits that wait
 * to go into Kamailio, and the aliases that wait for alias_db's database.
 */
export interface SqliteStore extends ReplicaStore, Pick<JournalMeta, "created" | "seeded" | "markSeeded">, JournalNotes {
  readonly kamailioUnseen: KeySet;
  readonly kamailioApiWaiting: KeySet;
  readonly kamailioAliasesWaiting: KeySet;
}

export function openSqliteStore(opts: SqliteStoreOptions): SqliteStore {
  if (opts.path !== ":memory:") mkdirSync(dirname(opts.path), { recursive: true });
  // Held until close: one agent per journal (journal-lock.ts).
  const lock = lockJournal(opts.path);
  const { db, meta } = (() => {
    let db: Database.Database | null = null;
    try {
      db = new Database(opts.path);
      db.pragma("journal_mode = WAL");
      db.pragma(`synchronous = ${opts.synchronous === "normal" ? "NORMAL" : "FULL"}`);
      db.pragma("busy_timeout = 5000");
      db.pragma(`cache_size = -${(opts.cacheMiB ?? 32) * 1024}`);
      db.pragma("temp_store = MEMORY");
      migrateSqlite(db);
      // Whose journal this is, its epoch, and the notes kept with it; another node's is refused.
      return { db, meta: openJournalMeta(db, opts) };
    } catch (err) {
      if (db?.open) db.close();
      lock.release();
      throw err;
    }
  })();
  const self = meta.replicaId;

  // Origins are few (one per node epoch): kept in memory both ways (sqlite-origins.ts), and
  // reloaded from the table when a transaction fails (see `guarded`).
  const origins = createOriginCache(db);
  const origin = origins.origin;
  const setHave = db.prepare<[number, number]>("UPDATE origins SET have = ? WHERE id = ?");
  origin(self);

  const selectVersion = db.prepare<[number, string, string], { hlc: number; origin: number; value: string | null }>(
    "SELECT hlc, origin, value FROM records WHERE kind = ? AND key = ? AND sub = ?",
  );
  const upsert = db.prepare<[number, string, string, number, number, number, string | null, number | null]>(
    `INSERT INTO records (kind, key, sub, hlc, origin, seq, value, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (kind, key, sub) DO UPDATE SET hlc = excluded.hlc, origin = excluded.origin,
       seq = excluded.seq, value = excluded.value, expires = excluded.expires`,
  );
  const selectFull = db.prepare<[number, string, string], Row>(
    "SELECT kind, key, sub, hlc, origin, seq, value FROM records WHERE kind = ? AND key = ? AND sub = ?",
  );
  const selectKey = db.prepare<[number, string], Row>(
    "SELECT kind, key, sub, hlc, origin, seq, value FROM records WHERE kind = ? AND key = ? ORDER BY sub",
  );
  const selectRange = db.prepare<[number, number, number, number], Row>(
    `SELECT kind, key, sub, hlc, origin, seq, value FROM records
     WHERE origin = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?`,
  );
  const selectKindRange = db.prepare<[number, number, number, number, number], Row>(
    `SELECT kind, key, sub, hlc, origin, seq, value FROM records
     WHERE origin = ? AND seq > ? AND seq <= ? AND kind = ? ORDER BY seq LIMIT ?`,
  );
  const countAfter = db.prepare<[number, number], { n: number }>("SELECT count(*) AS n FROM records WHERE origin = ? AND seq > ?");
  const firstAfter = db.prepare<[number, number], { hlc: number }>(
    "SELECT hlc FROM records WHERE origin = ? AND seq > ? ORDER BY seq LIMIT 1",
  );
  const selectPage = {
    loc: db.prepare<PageParams, Row>(PAGE_SQL.loc),
    alias: db.prepare<PageParams, Row>(PAGE_SQL.alias),
  };
  const countPage = {
    loc: db.prepare<CountParams, { n: number }>(COUNT_SQL.loc),
    alias: db.prepare<CountParams, { n: number }>(COUNT_SQL.alias),
  };
  // counts() answers from a tally kept up to date by every write (sqlite-tally.ts).
  const tally = createRecordTally(db);
  const purgeTombstones = db.prepare<[number]>("DELETE FROM records WHERE value IS NULL AND hlc < ?");
  const purgeExpired = db.prepare<[number]>("DELETE FROM records WHERE expires > 0 AND expires < ?");
  // With a floor per origin (purge's `held`): the same rows through the same partial indexes, each
  // kept unless its seq is at or below its origin's floor (none listed: kept).
  db.exec("CREATE TEMP TABLE IF NOT EXISTS purge_floor (origin INTEGER PRIMARY KEY, upto INTEGER NOT NULL)");
  const clearFloor = db.prepare("DELETE FROM temp.purge_floor");
  const setFloor = db.prepare<[number, number]>("INSERT INTO temp.purge_floor (origin, upto) VALUES (?, ?)");
  const underFloor = "seq <= coalesce((SELECT upto FROM temp.purge_floor f WHERE f.origin = records.origin), -1)";
  const purgeTombstonesHeld = db.prepare<[number]>(`DELETE FROM records WHERE value IS NULL AND hlc < ? AND ${underFloor}`);
  const purgeExpiredHeld = db.prepare<[number]>(`DELETE FROM records WHERE expires > 0 AND expires < ? AND ${underFloor}`);

  const loadMaxHlc = () => Number(meta.get("max_hlc") ?? 0);
  let maxHlc = loadMaxHlc();
  /** Runs a write transaction; on failure, drops in-memory state the rollback undid (a full disk says so). */
  const guarded = <A extends unknown[], R>(fn: (...args: A) => R) => {
    const tx = db.transaction(fn);
    return (...args: A): R => {
      try {
        return tx(...args);
      } catch (err) {
        origins.reload();
        maxHlc = loadMaxHlc();
        tally.drop();
        throw journalFullOr(err, opts.path);
      }
    };
  };
  const noteHlc = (hlc: number) => {
    if (hlc > maxHlc) maxHlc = hlc;
  };
  const saveHlc = () => meta.set("max_hlc", String(maxHlc));

  const toChange = (r: Row): Change => rowToChange(r, origins.replicaOf(r.origin)!);

  const write = (c: Change, originId: number) => {
    upsert.run(KIND_CODE[c.kind], c.key, c.sub, c.hlc, originId, c.seq, c.value === null ? null : JSON.stringify(c.value), expiresOf(c));
  };

  const commitLocal = guarded((drafts: readonly Draft[], stamp: () => number): (Change | null)[] => {
    const me = origin(self);
    const results: (Change | null)[] = [];
    let wrote = false;
    for (const d of drafts) {
      const kind = KIND_CODE[d.kind];
      let before: RowState = "none";
      if (d.value === null) {
        const existing = selectVersion.get(kind, d.key, d.sub);
        if (!existing || existing.value === null) {
          results.push(null);
          continue;
        }
        before = "value";
      } else if (tally.tracking()) {
        before = tally.stateOf(kind, d.key, d.sub);
      }
      const c: Change = { ...d, hlc: stamp(), origin: self, seq: me.have + 1 };
      write(c, me.id);
      tally.write(kind, before, c.value !== null);
      me.have = c.seq;
      noteHlc(c.hlc);
      results.push(c);
      wrote = true;
    }
    if (wrote) {
      setHave.run(me.have, me.id);
      saveHlc();
    }
    return results;
  });

  const applyRemote = guarded((batch: RemoteBatch): ApplyOutcome => {
    if (batch.origin === self) return { applied: [], have: origin(self).have };
    const o = origin(batch.origin);
    const applied: Change[] = [];
    let last = batch.after;
    for (const c of batch.changes) {
      if (c.origin !== batch.origin || c.seq <= last || c.seq > batch.upTo) {
        throw new InvalidBatchError(
          `batch for ${batch.origin} (${batch.after}, ${batch.upTo}] holds ${c.origin}#${c.seq} out of order or range`,
        );
      }
      last = c.seq;
      noteHlc(c.hlc);
      const existing = selectVersion.get(KIND_CODE[c.kind], c.key, c.sub);
      if (existing && compareVersions(c, { hlc: existing.hlc, origin: origins.replicaOf(existing.origin)! }) <= 0) continue;
      write(c, o.id);
      tally.write(KIND_CODE[c.kind], !existing ? "none" : existing.value === null ? "dead" : "value", c.value !== null);
      applied.push(c);
    }
    if (batch.after <= o.have && batch.upTo > o.have) {
      o.have = batch.upTo;
      setHave.run(o.have, o.id);
    }
    saveHlc();
    return { applied, have: o.have };
  });

  // The batches' transactions nest as savepoints: a refused batch rolls back alone (and `guarded`
  // reloads the caches from inside the outer transaction), a full disk rolls back the whole group.
  const applyRemoteGroup = guarded((batches: readonly RemoteBatch[]): (ApplyOutcome | InvalidBatchError)[] =>
    batches.map((b) => {
      try {
        return applyRemote(b);
      } catch (err) {
        if (err instanceof InvalidBatchError) return err;
        throw err;
      }
    }),
  );

  return {
    nodeId: opts.nodeId,
    replicaId: self,
    created: meta.created,
    seeded: meta.seeded,
    readNote: meta.readNote,
    kamailioUnseen: openSqliteKeySet(db, "kamailio_unseen", opts.path),
    kamailioApiWaiting: openSqliteKeySet(db, "kamailio_api_waiting", opts.path),
    kamailioAliasesWaiting: openSqliteKeySet(db, "kamailio_aliases_waiting", opts.path),
    writeNote: meta.writeNote,
    markSeeded: meta.markSeeded,
    async versionVector() {
      return origins.versionVector();
    },
    async maxHlc() {
      return maxHlc;
    },
    async commitLocal(drafts, stamp) {
      return commitLocal(drafts, stamp);
    },
    async applyRemote(batch) {
      return applyRemote(batch);
    },
    async applyRemoteGroup(batches) {
      return applyRemoteGroup(batches);
    },
    async readRange(originReplica, after, upTo, limit, kind) {
      const o = origins.find(originReplica);
      if (!o) return [];
      const rows = kind === undefined ? selectRange.all(o.id, after, upTo, limit) : selectKindRange.all(o.id, after, upTo, KIND_CODE[kind], limit);
      return rows.map(toChange);
    },
    async countAfter(originReplica, after) {
      const o = origins.find(originReplica);
      return o ? countAfter.get(o.id, after)!.n : 0;
    },
    async firstHlcAfter(originReplica, after) {
      const o = origins.find(originReplica);
      return o ? (firstAfter.get(o.id, after)?.hlc ?? null) : null;
    },
    async get(kind, key, sub) {
      const r = selectFull.get(KIND_CODE[kind], key, sub);
      return r ? toChange(r) : null;
    },
    async listKey(kind, key) {
      return selectKey.all(KIND_CODE[kind], key).map(toChange);
    },
    async page(kind, q: PageQuery): Promise<Page> {
      let ak = "";
      let as = "";
      if (q.after !== "") {
        const cursor = JSON.parse(q.after) as unknown;
        if (Array.isArray(cursor) && typeof cursor[0] === "string" && typeof cursor[1] === "string") [ak, as] = cursor as [string, string];
      }
      const s = listSearch(q.search);
      const match = { now: q.nowSec, all: s.all ? 1 : 0, name: s.name, text: s.text } as const;
      const rows = selectPage[kind].all({ ...match, ak, as, n: q.limit + 1 });
      const more = rows.length > q.limit;
      const items = rows.slice(0, q.limit).map(toChange);
      const lastItem = items.at(-1);
      const total = q.countTotal === false ? null : countPage[kind].get(match)!.n;
      return { items, next: more && lastItem ? JSON.stringify([lastItem.key, lastItem.sub]) : null, total };
    },
    async counts(nowSec): Promise<StoreCounts> {
      return tally.counts(nowSec);
    },
    async purge(tombstoneBeforeHlc, expiredBeforeSec, held) {
      if (held === null) return 0;
      return guarded(() => {
        let tombstones: number;
        let expired: number;
        if (held === undefined) {
          tombstones = purgeTombstones.run(tombstoneBeforeHlc).changes;
          // Rows with an expiry are live bindings.
          expired = purgeExpired.run(expiredBeforeSec).changes;
        } else {
          clearFloor.run();
          for (const [replica, upTo] of Object.entries(held)) {
            const o = origins.find(replica);
            if (o !== undefined) setFloor.run(o.id, upTo);
          }
          tombstones = purgeTombstonesHeld.run(tombstoneBeforeHlc).changes;
          expired = purgeExpiredHeld.run(expiredBeforeSec).changes;
          clearFloor.run();
        }
        tally.purged(tombstones, expired);
        return tombstones + expired;
      })();
    },
    async close() {
      if (db.open) db.close();
      lock.release();
    },
  };
}
