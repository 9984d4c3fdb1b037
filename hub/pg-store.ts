/**
 * The hub's ReplicaStore on PostgreSQL (pg). It keeps the agent journal's contract (one contract
 * suite tests both), and adds what several hubs on one database need:
 * - applyRemote is one statement (pg-sql.ts APPLY_BATCH) that updates the origin's row, so two
 *   hubs applying batches of the same origin at once take turns on its row lock, and `have` only
 *   moves forward;
 * - every transaction that stores something NOTIFYs `channel` with "origin have"; each hub LISTENs
 *   (hub/change-feed.ts) and calls `noteHave`, so the version vector held in memory here follows
 *   what any hub committed;
 * - a write resolves only after COMMIT returned, so an acknowledged change survives a crash of the
 *   hub or of PostgreSQL (synchronous_commit stays on).
 * Reads are by index and bounded by their `limit`, so snapshots stream in constant memory. The
 * record counts (a table scan) are reused for a few seconds (counts-cache.ts).
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { compareVersions, hlcToMillis, type Change, type VersionVector } from "../agent/contract/records.js";
import { InvalidBatchError, type ApplyOutcome, type Page, type ReplicaStore, type StoreCounts } from "../agent/core/store.js";
import { KIND_CODE, expiresOf, rowToChange, type StoredRow as Row } from "../agent/core/stored-row.js";
import { listSearch } from "../agent/core/list-search.js";
import { createCountsCache, type CountedAt } from "./counts-cache.js";
import { TransientError } from "../agent/core/transient.js";
import { classifyPgError, pgCall, sqlStateOf } from "./pg-errors.js";
import * as SQL from "./pg-sql.js";
import { createRangeCache } from "./range-cache.js";

/** A row of SQL.SELECT_RANGE: a change (all null for an empty range) and how much the database holds of its origin. */
type RangeRow = { [K in keyof Row]: Row[K] | null } & { origin_have: number | string };

export interface PgStoreOptions {
  /** Connections for reads. */
  pool: pg.Pool;
  /** Connections for write transactions (default: `pool`); apart, a burst of reads never delays an acknowledgement. */
  writePool?: pg.Pool;
  nodeId: string;
  /** NOTIFY channel shared by every hub of the cluster. */
  channel?: string;
  /**
   * The purge keeps a tombstone until every agent a hub recorded (hub_agents) within this many
   * seconds holds it, however old it is (journal.holdForAgentsDays). Default 0: by its age alone.
   */
  holdForAgentsSec?: number;
}

export interface PgStore extends ReplicaStore {
  /** Another hub committed `origin` up to `have` (from LISTEN); raises the cached vector. */
  noteHave(origin: string, have: number): void;
  /**
   * Re-reads every origin's `have` (after the LISTEN connection was lost and notifications with
   * it, and every few seconds). Returns the origins the database now holds fewer changes of than
   * this hub had seen before the read (it lost commits: a failover to a replica that was behind, a
   * restore from a backup); the vector then follows the database down.
   */
  reloadVector(): Promise<VectorLoss[]>;
  /** The last record counts and when they were taken, without asking PostgreSQL; null before the first. */
  lastCounts(): CountedAt | null;
  readonly channel: string;
}

/** An origin the hubs' database holds fewer changes of than this hub had seen. */
export interface VectorLoss {
  origin: string;
  /** What this hub had seen committed. */
  had: number;
  /** What the database holds now (0: the origin's row is gone). */
  has: number;
}

/** "n1~ab12: had 100, holds 90; …", the first five. */
export function describeLoss(lost: readonly VectorLoss[]): string {
  const shown = lost.slice(0, 5).map((l) => `${l.origin}: had ${l.had}, holds ${l.has}`).join("; ");
  return lost.length > 5 ? `${shown}; and ${lost.length - 5} more origins` : shown;
}

const identity = (kind: number, key: string, sub: string) => `${kind}\u0000${key}\u0000${sub}`;
/** bigint columns come back as numbers: every value we store (hlc, seq, expiry) is below 2^53. */
export const PG_TYPES = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

export async function openPgStore(opts: PgStoreOptions): Promise<PgStore> {
  const { pool } = opts;
  const writePool = opts.writePool ?? pool;
  const ranges = createRangeCache();
  const channel = opts.channel ?? "locmesh_changes";
  const q = <T extends pg.QueryResultRow>(text: string, values: unknown[] = [], name?: string) => pgCall(() => pool.query<T>({ name, text, values }));
  // The statements run for every batch are prepared once per connection (a named statement): sent
  // unnamed, PostgreSQL parsed and planned the batch's CTE again each time. Measured at 2,000
  // single-edit publishes/s through one hub (about 500 batches/s): PostgreSQL's CPU 0.36–0.37 →
  // 0.25 CPU-s/s, latency p50 10–11 → 8 ms. pg prepares them again on a new connection by itself.
  const APPLY_BATCH = "locmesh_apply_batch";
  const SELECT_RANGE = "locmesh_select_range";

  // A replica id per hub node id, kept in the database: the hub has no disk of its own.
  await q(SQL.INSERT_REPLICA, [opts.nodeId, `${opts.nodeId}~${randomBytes(6).toString("hex")}`]);
  const self = (await q<{ replica_id: string }>(SQL.SELECT_REPLICA, [opts.nodeId])).rows[0]!.replica_id;

  const replicaOf = new Map<number, string>();
  const idOf = new Map<string, number>();
  const haves = new Map<string, number>();
  /**
   * versionVector()'s answer, kept until `haves` changes: every push pump of the hub asks for it on
   * every push (a hundred agents, a hundred origins). Frozen: callers share it.
   */
  let vvCache: Readonly<VersionVector> | null = null;
  const setHave = (origin: string, have: number) => {
    haves.set(origin, have);
    vvCache = null;
  };
  /**
   * Reads the origins: their row ids and how much the database holds of each. The cached `have`
   * only rises while the database is the one it was (another hub's NOTIFY may be newer than this
   * read); one the database holds less of than was seen before the read began can only be lost
   * commits, since every commit seen then is visible to the read. Then the ids are read afresh too
   * (a row may have come back under another id) and the range cache is dropped.
   */
  /** Losses found by a read that was not reloadVector's (an unknown origin's lookup): told at its next call. */
  const unreported: VectorLoss[] = [];
  let loading: Promise<void> = Promise.resolve();
  /** One read at a time: a read begun before a loss, ending after the one that found it, would raise the vector again. */
  function loadOrigins(): Promise<void> {
    const run = loading.then(readOrigins, readOrigins);
    loading = run.catch(() => undefined);
    return run;
  }
  async function readOrigins(): Promise<void> {
    const before = new Map(haves);
    const rows = (await q<{ id: number; replica: string; have: number }>(SQL.SELECT_ORIGINS)).rows;
    const lost: VectorLoss[] = [];
    const present = new Set<string>();
    for (const o of rows) {
      present.add(o.replica);
      const had = before.get(o.replica) ?? 0;
      if (o.have < had) lost.push({ origin: o.replica, had, has: o.have });
    }
    for (const [replica, had] of before) if (!present.has(replica) && had > 0) lost.push({ origin: replica, had, has: 0 });
    if (lost.length > 0) {
      unreported.push(...lost);
      replicaOf.clear();
      idOf.clear();
      for (const l of lost) setHave(l.origin, l.has);
      ranges.clear();
    }
    for (const o of rows) {
      replicaOf.set(o.id, o.replica);
      idOf.set(o.replica, o.id);
      if (o.have > (haves.get(o.replica) ?? 0)) setHave(o.replica, o.have);
    }
  }
  await loadOrigins();
  let maxHlc = (await q<{ m: number }>(SQL.MAX_HLC)).rows[0]!.m;
  /** The origin's row id; an origin another hub created is looked up (never guessed as absent). */
  async function originId(replica: string): Promise<number | undefined> {
    if (!idOf.has(replica)) await loadOrigins();
    return idOf.get(replica);
  }
  const noteHave = (origin: string, have: number) => {
    if (have > (haves.get(origin) ?? 0)) setHave(origin, have);
  };

  async function toChanges(rows: Row[]): Promise<Change[]> {
    if (rows.some((r) => !replicaOf.has(r.origin))) await loadOrigins();
    return rows.map((r) => rowToChange(r, replicaOf.get(r.origin)!));
  }

  /** Runs `fn` in one transaction on one pooled connection; resolves after COMMIT. */
  async function tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await pgCall(() => writePool.connect());
    let broken = false;
    // A connection lost between two statements is reported as an 'error' event on the checked-out
    // client (the pool only listens on idle ones); unheard, it would crash the hub. The next
    // statement then fails and the transaction is retried by the agent.
    const onError = () => (broken = true);
    client.on("error", onError);
    try {
      await client.query("BEGIN");
      const out = await fn(client);
      await client.query("COMMIT");
      return out;
    } catch (err) {
      // A connection that was lost or timed out gets no ROLLBACK (it would wait out its own
      // timeout behind the unanswered statement): dropped, it takes the transaction with it.
      if (sqlStateOf(err) === null) broken = true;
      else await client.query("ROLLBACK").catch(() => (broken = true));
      throw classifyPgError(err);
    } finally {
      client.removeListener("error", onError);
      client.release(broken);
    }
  }

  /** Creates the origin's row if no hub has yet; returns its id. */
  async function ensureOrigin(replica: string): Promise<number> {
    await q(SQL.ENSURE_ORIGIN, [replica]);
    const id = (await q<{ id: number }>(SQL.ORIGIN_ID, [replica])).rows[0]!.id;
    replicaOf.set(id, replica);
    idOf.set(replica, id);
    return id;
  }

  async function lockOrigin(c: pg.PoolClient, replica: string): Promise<{ id: number; have: number }> {
    await c.query(SQL.ENSURE_ORIGIN, [replica]);
    const o = (await c.query<{ id: number; have: number }>(SQL.LOCK_ORIGIN, [replica])).rows[0]!;
    replicaOf.set(o.id, replica);
    idOf.set(replica, o.id);
    return o;
  }

  const finish = async (c: pg.PoolClient, o: { id: number }, replica: string, have: number, hlc: number) => {
    await c.query(SQL.SET_HAVE, [o.id, have, hlc]);
    await c.query(SQL.NOTIFY, [channel, `${replica} ${have}`]);
  };

  const counts = createCountsCache(async (nowSec) => (await q<StoreCounts>(SQL.COUNT_LIVE, [nowSec])).rows[0]!);
  const store: PgStore = {
    nodeId: opts.nodeId,
    replicaId: self,
    channel,
    noteHave,
    async reloadVector() {
      await loadOrigins();
      return unreported.splice(0);
    },
    async versionVector() {
      if (vvCache !== null) return vvCache;
      const vv: VersionVector = {};
      for (const [replica, have] of haves) if (have > 0) vv[replica] = have;
      vvCache = Object.freeze(vv);
      return vvCache;
    },
    async maxHlc() {
      return maxHlc;
    },
    async commitLocal(drafts, stamp) {
      const out = await tx(async (c) => {
        const o = await lockOrigin(c, self);
        const results: (Change | null)[] = [];
        let have = o.have;
        let top = 0;
        for (const d of drafts) {
          if (d.value === null) {
            const existing = (await c.query<Row>(SQL.SELECT_ONE, [KIND_CODE[d.kind], d.key, d.sub])).rows[0];
            if (!existing || existing.value === null) {
              results.push(null);
              continue;
            }
          }
          const ch: Change = { ...d, hlc: stamp(), origin: self, seq: ++have };
          top = Math.max(top, ch.hlc);
          await c.query(SQL.UPSERT_LOCAL, [KIND_CODE[d.kind], d.key, d.sub, ch.hlc, o.id, ch.seq, d.value === null ? null : JSON.stringify(d.value), expiresOf(d)]);
          results.push(ch);
        }
        if (have > o.have) await finish(c, o, self, have, top);
        return { results, have, top };
      });
      noteHave(self, out.have);
      maxHlc = Math.max(maxHlc, out.top);
      return out.results;
    },
    async applyRemote(batch): Promise<ApplyOutcome> {
      if (batch.origin === self) return { applied: [], have: haves.get(self) ?? 0 };
      let last = batch.after;
      // One version per record: the batch's newest (a statement may not update a row twice).
      const newest = new Map<string, Change>();
      for (const c of batch.changes) {
        if (c.origin !== batch.origin || c.seq <= last || c.seq > batch.upTo) {
          throw new InvalidBatchError(`batch for ${batch.origin} (${batch.after}, ${batch.upTo}] holds ${c.origin}#${c.seq} out of order or range`);
        }
        last = c.seq;
        const id = identity(KIND_CODE[c.kind], c.key, c.sub);
        const held = newest.get(id);
        if (!held || compareVersions(c, held) > 0) newest.set(id, c);
      }
      // Sorted by identity so that concurrent batches touching the same records lock them in one order.
      const rows = [...newest.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, c]) => c);
      const top = rows.reduce((m, c) => Math.max(m, c.hlc), 0);
      const id = idOf.get(batch.origin) ?? (await ensureOrigin(batch.origin));
      const res = await pgCall(() =>
        writePool.query<{ have: number; won: [number, string, string][] }>({ name: APPLY_BATCH, text: SQL.APPLY_BATCH, values: [
          id, rows.map((r) => KIND_CODE[r.kind]), rows.map((r) => r.key), rows.map((r) => r.sub), rows.map((r) => r.hlc),
          rows.map((r) => r.seq), rows.map((r) => (r.value === null ? null : JSON.stringify(r.value))), rows.map(expiresOf),
          batch.origin, batch.after, batch.upTo, top, channel,
        ] }),
      );
      const out = { have: res.rows[0]!.have, won: new Set(res.rows[0]!.won.map(([k, key, sub]) => identity(k, key, sub))) };
      // When the batch holds every seq of its range and every change in it won, the origin's rows in
      // that range are exactly these changes: a seq names one change, and each one is now stored as
      // sent. Any other case (a resend of changes stored before, a version that lost, a seq the
      // sender skipped) may leave rows the batch does not show, and the pumps read the range instead.
      // Bulk batches (over the default batchSize of 1,000) are read: the read costs little per change.
      const whole = out.won.size === batch.changes.length && batch.upTo - batch.after === batch.changes.length;
      if (whole && out.have >= batch.upTo && batch.changes.length <= 1000) {
        ranges.prime(batch.origin, batch.after, batch.upTo, batch.changes as Change[]);
      }
      noteHave(batch.origin, out.have);
      maxHlc = Math.max(maxHlc, top);
      const applied = batch.changes.filter((c) => newest.get(identity(KIND_CODE[c.kind], c.key, c.sub)) === c && out.won.has(identity(KIND_CODE[c.kind], c.key, c.sub)));
      return { applied, have: out.have };
    },
    async applyRemoteGroup(batches) {
      // Each batch is one statement and its own transaction; PostgreSQL's WAL flush is shared by
      // concurrent commits already, so a group gains nothing here but one outcome per batch.
      const out: (ApplyOutcome | InvalidBatchError)[] = [];
      for (const b of batches) out.push(await store.applyRemote(b).catch((err: unknown) => {
        if (err instanceof InvalidBatchError) return err;
        throw err;
      }));
      return out;
    },
    async readRange(origin, after, upTo, limit, kind) {
      const id = await originId(origin);
      if (id === undefined) return [];
      // The range cache holds whole ranges, as the hub's fan-out reads them; a kind's are read apart.
      if (kind !== undefined) return toChanges((await q<Row>(SQL.SELECT_KIND_RANGE, [id, after, upTo, limit, KIND_CODE[kind]])).rows);
      return ranges.read(origin, after, upTo, limit, async () => {
        const rows = (await q<RangeRow>(SQL.SELECT_RANGE, [id, after, upTo, limit], SELECT_RANGE)).rows;
        if (rows.length > 0 && Number(rows[0]!.origin_have) < upTo) {
          // The database lost commits: the reload reports it (and lowers the vector); served now,
          // the range would reach agents as empty, and they would skip it for good.
          await loadOrigins();
          throw new TransientError(`PostgreSQL holds ${String(rows[0]!.origin_have)} of ${origin}'s changes, fewer than the ${upTo} this hub had seen: it lost commits; the range is served again once the vector is read afresh`);
        }
        return toChanges(rows.filter((r): r is RangeRow & Row => r.seq !== null));
      });
    },
    async countAfter(origin, after) {
      const id = await originId(origin);
      return id === undefined ? 0 : (await q<{ n: number }>(SQL.COUNT_AFTER, [id, after])).rows[0]!.n;
    },
    async firstHlcAfter(origin, after) {
      const id = await originId(origin);
      return id === undefined ? null : ((await q<{ hlc: number }>(SQL.FIRST_AFTER, [id, after])).rows[0]?.hlc ?? null);
    },
    async get(kind, key, sub) {
      const [c] = await toChanges((await q<Row>(SQL.SELECT_ONE, [KIND_CODE[kind], key, sub])).rows);
      return c ?? null;
    },
    async listKey(kind, key) {
      return toChanges((await q<Row>(SQL.SELECT_KEY, [KIND_CODE[kind], key])).rows);
    },
    async page(kind, pq): Promise<Page> {
      let [ak, as] = ["", ""];
      if (pq.after !== "") {
        const cursor = JSON.parse(pq.after) as unknown;
        if (Array.isArray(cursor) && typeof cursor[0] === "string" && typeof cursor[1] === "string") [ak, as] = cursor as [string, string];
      }
      const s = listSearch(pq.search);
      const match = [KIND_CODE[kind], pq.nowSec, s.all, s.name, s.text];
      const rows = (await q<Row>(SQL.SELECT_PAGE[kind], [...match, ak, as, pq.limit + 1])).rows;
      const items = await toChanges(rows.slice(0, pq.limit));
      const lastItem = items.at(-1);
      const total = pq.countTotal === false ? null : (await q<{ n: number }>(SQL.COUNT_PAGE[kind], match)).rows[0]!.n;
      return { items, next: rows.length > pq.limit && lastItem ? JSON.stringify([lastItem.key, lastItem.sub]) : null, total };
    },
    counts: (nowSec) => counts.get(nowSec),
    lastCounts: () => counts.last(),
    async purge(tombstoneBeforeHlc, expiredBeforeSec) {
      // A tombstone goes once it is as old by the time it was stored here as by its stamp: one an
      // agent held back through a long outage is relayed for a whole retention after it came. And
      // once every agent seen lately holds it: one down for longer than the retention gets it too.
      const storedBeforeMs = hlcToMillis(tombstoneBeforeHlc);
      return (await q<{ n: number }>(SQL.PURGE, [tombstoneBeforeHlc, expiredBeforeSec, storedBeforeMs, opts.holdForAgentsSec ?? 0])).rows[0]!.n;
    },
    async close() {
      // The pool belongs to the caller (several components share it).
    },
  };
  return store;
}
