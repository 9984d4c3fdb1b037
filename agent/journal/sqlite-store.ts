/**
 * The agent's durable journal on SQLite (better-sqlite3, WAL). Every method runs one synchronous
 * transaction, so a change is on disk before the promise resolves: the caller acknowledges only
 * after that, and `kill -9` cannot lose an acknowledged change. With `synchronous: "full"` the WAL
 * is fsynced on every commit and a power cut cannot either.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { compareVersions, type Change, type VersionVector } from "../contract/records.js";
import { InvalidBatchError, type ApplyOutcome, type Draft, type Page, type PageQuery, type RemoteBatch, type ReplicaStore, type StoreCounts } from "../core/store.js";

export { InvalidBatchError };
import { journalFullOr } from "./journal-full.js";
import { migrateSqlite } from "./migrate-sqlite.js";
import { COUNT_SQL, PAGE_SQL, type CountParams, type PageParams } from "./sqlite-page-sql.js";
import { KIND_CODE, expiresOf, rowToChange, type StoredRow as Row } from "../core/stored-row.js";
import { listSearch } from "../core/list-search.js";

export interface SqliteStoreOptions {
  path: string;
  nodeId: string;
  /** "full" fsyncs every commit (survives power loss); "normal" survives process crashes only. */
  synchronous?: "full" | "normal";
  /** Page cache in MiB; bounds the journal's share of memory. */
  cacheMiB?: number;
}

export class JournalOwnerError extends Error {
  override readonly name = "JournalOwnerError";
}

/**
 * Small values other parts of the agent keep with the journal (its meta table), durable when
 * writeNote returns; null writes remove. Names are the caller's: NOTE_PREFIX keeps them apart
 * from the journal's own (node_id, replica_id, max_hlc, ...).
 */
export interface JournalNotes {
  readNote(name: string): string | null;
  writeNote(name: string, value: string | null): void;
}

/** The agent's journal: the replica store, its notes, and whether it has caught up with the cluster once. */
export interface SqliteStore extends ReplicaStore, JournalNotes {
  /** This open made the journal (it had no epoch yet): a new node, or dataDir points elsewhere. */
  readonly created: boolean;
  /**
   * False for a journal this node started empty (a new node, a lost disk, a journal moved aside)
   * until markSeeded: it does not yet know what the cluster holds, so nothing may be concluded
   * from what it lacks (journal-seed in agent.ts). A journal from before this flag counts as seeded.
   */
  seeded(): boolean;
  markSeeded(): void;
}

/** Notes live in the meta table under this prefix. */
const NOTE_PREFIX = "note:";

export function openSqliteStore(opts: SqliteStoreOptions): SqliteStore {
  if (opts.path !== ":memory:") mkdirSync(dirname(opts.path), { recursive: true });
  const db = new Database(opts.path);
  db.pragma("journal_mode = WAL");
  db.pragma(`synchronous = ${opts.synchronous === "normal" ? "NORMAL" : "FULL"}`);
  db.pragma("busy_timeout = 5000");
  db.pragma(`cache_size = -${(opts.cacheMiB ?? 32) * 1024}`);
  db.pragma("temp_store = MEMORY");
  try {
    migrateSqlite(db);
  } catch (err) {
    db.close();
    throw err;
  }

  const metaGet = db.prepare<[string], { value: string }>("SELECT value FROM meta WHERE name = ?");
  const metaSet = db.prepare<[string, string]>(
    "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
  );

  const owner = metaGet.get("node_id")?.value;
  if (owner !== undefined && owner !== opts.nodeId) {
    db.close();
    throw new JournalOwnerError(
      `the journal at ${opts.path} belongs to node "${owner}", not "${opts.nodeId}"; ` +
        "point dataDir at this node's own journal, or move it aside to start empty",
    );
  }
  let replicaId = metaGet.get("replica_id")?.value;
  const created = replicaId === undefined;
  if (replicaId === undefined) {
    // A new epoch per empty journal: a node that lost its disk must not reuse sequence numbers
    // that its peers have already seen under the old epoch.
    replicaId = `${opts.nodeId}~${randomBytes(6).toString("hex")}`;
    db.transaction(() => {
      metaSet.run("node_id", opts.nodeId);
      metaSet.run("replica_id", replicaId!);
      metaSet.run("created_at", new Date().toISOString());
      metaSet.run("unseeded", "1");
    })();
  }
  const self = replicaId;

  // Origins are few (one per node epoch): keep them in memory both ways. A transaction that
  // fails rolls the table back, so the caches are reloaded from it (see `guarded`).
  const originById = new Map<number, string>();
  const originByReplica = new Map<string, { id: number; have: number }>();
  const selectOrigins = db.prepare<[], { id: number; replica: string; have: number }>("SELECT id, replica, have FROM origins");
  // Read first, then replace: a reload that fails leaves the caches as they were, not empty.
  const loadOrigins = () => {
    const rows = selectOrigins.all();
    originById.clear();
    originByReplica.clear();
    for (const o of rows) {
      originById.set(o.id, o.replica);
      originByReplica.set(o.replica, { id: o.id, have: o.have });
    }
  };
  loadOrigins();
  const insertOrigin = db.prepare<[string]>("INSERT INTO origins (replica, have) VALUES (?, 0)");
  const setHave = db.prepare<[number, number]>("UPDATE origins SET have = ? WHERE id = ?");
  function origin(replica: string): { id: number; have: number } {
    let o = originByReplica.get(replica);
    if (!o) {
      const id = Number(insertOrigin.run(replica).lastInsertRowid);
      o = { id, have: 0 };
      originById.set(id, replica);
      originByReplica.set(replica, o);
    }
    return o;
  }
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
  // counts() answers from a tally kept up to date by every write, plus the bindings expired and not
  // yet purged (few: the purge removes them), found through records_expiring. cluster.status asks
  // for it whenever a status page, `locmesh status` or `locmesh resync` polls, and counting the
  // table took ~35 ms of the event loop at 100,000 records (a Kamailio reload waited that long).
  // The tally is counted once, on first use; a failed transaction drops it, to be counted again.
  const selectTally = db.prepare<[], { kind: number; dead: number; n: number }>(
    "SELECT kind, value IS NULL AS dead, count(*) AS n FROM records GROUP BY kind, value IS NULL",
  );
  const countExpired = db.prepare<[number], { n: number }>("SELECT count(*) AS n FROM records WHERE expires > 0 AND expires <= ?");
  const selectDead = db.prepare<[number, string, string], { dead: number }>(
    "SELECT value IS NULL AS dead FROM records WHERE kind = ? AND key = ? AND sub = ?",
  );
  /** Rows with a value, by kind code, and tombstones; null until counts() first needs it. */
  let tally: { withValue: number[]; tombstones: number } | null = null;
  const countTally = () => {
    const t = { withValue: [0, 0], tombstones: 0 };
    for (const r of selectTally.all()) {
      if (r.dead) t.tombstones += r.n;
      else t.withValue[r.kind] = (t.withValue[r.kind] ?? 0) + r.n;
    }
    return t;
  };
  /** A row of `kind` goes from `before` (absent, tombstone or with a value) to `after`. */
  const tallyWrite = (kind: number, before: "none" | "dead" | "value", afterHasValue: boolean) => {
    if (tally === null) return;
    if (before === "value") tally.withValue[kind]!--;
    else if (before === "dead") tally.tombstones--;
    if (afterHasValue) tally.withValue[kind]!++;
    else tally.tombstones++;
  };
  const purgeTombstones = db.prepare<[number]>("DELETE FROM records WHERE value IS NULL AND hlc < ?");
  const purgeExpired = db.prepare<[number]>("DELETE FROM records WHERE expires > 0 AND expires < ?");

  const loadMaxHlc = () => Number(metaGet.get("max_hlc")?.value ?? 0);
  let maxHlc = loadMaxHlc();
  /** Runs a write transaction; on failure, drops in-memory state the rollback undid (a full disk says so). */
  const guarded = <A extends unknown[], R>(fn: (...args: A) => R) => {
    const tx = db.transaction(fn);
    return (...args: A): R => {
      try {
        return tx(...args);
      } catch (err) {
        loadOrigins();
        maxHlc = loadMaxHlc();
        tally = null;
        throw journalFullOr(err, opts.path);
      }
    };
  };
  const noteHlc = (hlc: number) => {
    if (hlc > maxHlc) maxHlc = hlc;
  };
  const saveHlc = () => metaSet.run("max_hlc", String(maxHlc));

  const toChange = (r: Row): Change => rowToChange(r, originById.get(r.origin)!);

  const write = (c: Change, originId: number) => {
    upsert.run(KIND_CODE[c.kind], c.key, c.sub, c.hlc, originId, c.seq, c.value === null ? null : JSON.stringify(c.value), expiresOf(c));
  };

  const commitLocal = guarded((drafts: readonly Draft[], stamp: () => number): (Change | null)[] => {
    const me = origin(self);
    const results: (Change | null)[] = [];
    let wrote = false;
    for (const d of drafts) {
      const kind = KIND_CODE[d.kind];
      let before: "none" | "dead" | "value" = "none";
      if (d.value === null) {
        const existing = selectVersion.get(kind, d.key, d.sub);
        if (!existing || existing.value === null) {
          results.push(null);
          continue;
        }
        before = "value";
      } else if (tally !== null) {
        const existing = selectDead.get(kind, d.key, d.sub);
        if (existing) before = existing.dead ? "dead" : "value";
      }
      const c: Change = { ...d, hlc: stamp(), origin: self, seq: me.have + 1 };
      write(c, me.id);
      tallyWrite(kind, before, c.value !== null);
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
      if (existing && compareVersions(c, { hlc: existing.hlc, origin: originById.get(existing.origin)! }) <= 0) continue;
      write(c, o.id);
      tallyWrite(KIND_CODE[c.kind], !existing ? "none" : existing.value === null ? "dead" : "value", c.value !== null);
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

  let seeded = metaGet.get("unseeded") === undefined;
  const metaDelete = db.prepare<[string]>("DELETE FROM meta WHERE name = ?");

  return {
    nodeId: opts.nodeId,
    replicaId: self,
    created,
    seeded: () => seeded,
    readNote: (name) => metaGet.get(NOTE_PREFIX + name)?.value ?? null,
    writeNote(name, value) {
      try {
        if (value === null) metaDelete.run(NOTE_PREFIX + name);
        else metaSet.run(NOTE_PREFIX + name, value);
      } catch (err) {
        throw journalFullOr(err, opts.path);
      }
    },
    markSeeded() {
      if (seeded) return;
      // Seeded for this run even if the row cannot be deleted (a full disk): after a restart the
      // journal would only wait for another catch-up.
      seeded = true;
      metaDelete.run("unseeded");
    },
    async versionVector() {
      const vv: VersionVector = {};
      for (const [replica, o] of originByReplica) if (o.have > 0) vv[replica] = o.have;
      return vv;
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
      const o = originByReplica.get(originReplica);
      if (!o) return [];
      const rows = kind === undefined ? selectRange.all(o.id, after, upTo, limit) : selectKindRange.all(o.id, after, upTo, KIND_CODE[kind], limit);
      return rows.map(toChange);
    },
    async countAfter(originReplica, after) {
      const o = originByReplica.get(originReplica);
      return o ? countAfter.get(o.id, after)!.n : 0;
    },
    async firstHlcAfter(originReplica, after) {
      const o = originByReplica.get(originReplica);
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
      tally ??= countTally();
      return {
        // Only bindings expire (aliases and tombstones have no expiry), and live ones only count.
        locations: tally.withValue[KIND_CODE.loc]! - countExpired.get(nowSec)!.n,
        aliases: tally.withValue[KIND_CODE.alias]!,
        tombstones: tally.tombstones,
      };
    },
    async purge(tombstoneBeforeHlc, expiredBeforeSec) {
      return guarded(() => {
        const tombstones = purgeTombstones.run(tombstoneBeforeHlc).changes;
        // Rows with an expiry are live bindings.
        const expired = purgeExpired.run(expiredBeforeSec).changes;
        if (tally !== null) {
          tally.tombstones -= tombstones;
          tally.withValue[KIND_CODE.loc]! -= expired;
        }
        return tombstones + expired;
      })();
    },
    async close() {
      if (db.open) db.close();
    },
  };
}
