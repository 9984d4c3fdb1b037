/**
 * The hub's PostgreSQL store against a real PostgreSQL 15: the same store contract as the agent's
 * SQLite journal (a database per test), the migration runner, and two stores on one database
 * applying the same origin at once.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadMigrations } from "../../agent/journal/migrate-sqlite.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { startChangeFeed } from "../../hub/change-feed.js";
import { migratePostgres, SchemaTooNewError } from "../../hub/migrate-postgres.js";
import { openPgStore, PG_TYPES } from "../../hub/pg-store.js";
import { isTransient } from "../../agent/core/transient.js";
import { REPLICA_A, REPLICA_B, aliasDraft, batchOf, binding, locDraft, remoteChange } from "../support/fixtures.js";
import { startPostgres, type PostgresProcess } from "../support/postgres-process.js";
import { describeStoreContract } from "../support/store-contract.js";

let server: PostgresProcess;
let dbs = 0;

beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server?.close();
});

async function freshDatabase(): Promise<pg.Pool> {
  return poolOn(await server.createDatabase(`t${++dbs}`));
}

/** A pool on `url`, with the schema migrated. */
async function poolOn(url: string, max = 4): Promise<pg.Pool> {
  const pool = new pg.Pool({ connectionString: url, max, types: PG_TYPES });
  // pool.end() resolves once its clients are told to end, before their sockets have closed; the
  // server's shutdown in afterAll can reach one still closing, and a pool without a listener
  // rethrows that FATAL 57P01 as an unhandled error (CI failed on it once). The hub does the same.
  pool.on("error", () => undefined);
  const c = await pool.connect();
  try {
    await migratePostgres(c);
  } finally {
    c.release();
  }
  return pool;
}

describeStoreContract("postgres", async () => {
  const pool = await freshDatabase();
  const store = await openPgStore({ pool, nodeId: "n1" });
  // The contract's stamps are synthetic (a tombstone at hlc 500): its rows are dated back as if
  // stored long ago, so that the stamp decides, as for any row stored a retention ago. How recently
  // stored rows are kept has its own test ("purge" below).
  const purge: typeof store.purge = async (...args) => {
    await pool.query("UPDATE records SET stored_at = '-infinity'");
    return store.purge(...args);
  };
  return { ...store, purge, close: () => pool.end() };
});

describe("postgres purge", () => {
  it("keeps a tombstone a retention after it was stored here, however old its stamp (an agent held it back through an outage)", async () => {
    const pool = await freshDatabase();
    try {
      const store = await openPgStore({ pool, nodeId: "hub1" });
      const made = 1_700_000_000_000 * 1024; // stamped long ago
      await store.applyRemote(batchOf(REPLICA_A, 0, 2, [
        remoteChange(REPLICA_A, 1, made, aliasDraft("a@x", null)),
        remoteChange(REPLICA_A, 2, made + 1, aliasDraft("b@x", null)),
      ]));
      // b's removal was stored two days ago, a's just now: a cutoff a day back takes b's only.
      await pool.query("UPDATE records SET stored_at = now() - interval '2 days' WHERE key = 'b@x'");
      const dayAgoHlc = (Date.now() - 86_400_000) * 1024;
      expect(await store.purge(dayAgoHlc, 0)).toBe(1);
      expect(await store.get("alias", "a@x", "")).toMatchObject({ value: null, seq: 1 });
      expect(await store.get("alias", "b@x", "")).toBeNull();
    } finally {
      await pool.end();
    }
  });

  it("keeps a tombstone past the retention until every agent recorded lately holds it (holdForAgentsSec)", async () => {
    const pool = await freshDatabase();
    try {
      const store = await openPgStore({ pool, nodeId: "hub1", holdForAgentsSec: 86_400 });
      const made = 1_700_000_000_000 * 1024; // stamped long ago
      await store.applyRemote(batchOf(REPLICA_A, 0, 2, [
        remoteChange(REPLICA_A, 1, made, aliasDraft("a@x", null)),
        remoteChange(REPLICA_A, 2, made + 1, aliasDraft("b@x", null)),
      ]));
      await store.applyRemote(batchOf(REPLICA_B, 0, 1, [remoteChange(REPLICA_B, 1, made + 2, aliasDraft("c@x", null))]));
      await pool.query("UPDATE records SET stored_at = now() - interval '2 days'");
      const agent = (nodeId: string, vv: Record<string, number> | null, seenDaysAgo: number) =>
        pool.query("INSERT INTO hub_agents (node_id, replica_id, hub_node, behind_changes, behind_seconds, vv, seen_at) VALUES ($1, $2, 'hub1', 0, 0, $3, now() - make_interval(days => $4)) ON CONFLICT (node_id) DO UPDATE SET vv = excluded.vv, seen_at = excluded.seen_at",
          [nodeId, `${nodeId}~000000000001`, vv === null ? null : JSON.stringify(vv), seenDaysAgo]);
      const dayAgoHlc = (Date.now() - 86_400_000) * 1024;
      const left = async () => (await pool.query<{ key: string }>("SELECT key FROM records ORDER BY key")).rows.map((r) => r.key);
      // n1 holds A's first removal and none of B's; n2, down for three days, is past the hold and not waited for.
      await agent("n1", { [REPLICA_A]: 1 }, 0);
      await agent("n2", {}, 3);
      expect(await store.purge(dayAgoHlc, 0)).toBe(1);
      expect(await left()).toEqual(["b@x", "c@x"]);
      // An agent whose vector no hub recorded yet (a row from an older hub) holds them all.
      await agent("n3", null, 0);
      await agent("n1", { [REPLICA_A]: 2, [REPLICA_B]: 1 }, 0);
      expect(await store.purge(dayAgoHlc, 0)).toBe(0);
      await agent("n3", { [REPLICA_A]: 2, [REPLICA_B]: 1 }, 0);
      expect(await store.purge(dayAgoHlc, 0)).toBe(2);
      expect(await left()).toEqual([]);
    } finally {
      await pool.end();
    }
  });

  it("keeps an expired version that replaced a permanent one until every agent recorded lately holds it, as it keeps a removal", async () => {
    const pool = await freshDatabase();
    try {
      const store = await openPgStore({ pool, nodeId: "hub1", holdForAgentsSec: 86_400 });
      const made = 1_700_000_000_000 * 1024;
      const nowSec = Math.floor(Date.now() / 1000);
      await store.applyRemote(batchOf(REPLICA_A, 0, 2, [
        remoteChange(REPLICA_A, 1, made, locDraft("dora@x", "sip:d@192.0.2.1", binding({ expires: 0 }))),
        remoteChange(REPLICA_A, 2, made + 1, locDraft("dora@x", "sip:d@192.0.2.1", binding({ expires: nowSec - 3 * 86_400 }))),
      ]));
      await pool.query("INSERT INTO hub_agents (node_id, replica_id, hub_node, behind_changes, behind_seconds, vv) VALUES ('n1', 'n1~000000000001', 'hub1', 0, 0, $1)", [JSON.stringify({ [REPLICA_A]: 1 })]);
      // n1 holds only the permanent version: purged now, it would never hear of the expiring one.
      expect(await store.purge((Date.now() - 86_400_000) * 1024, nowSec - 86_400)).toBe(0);
      expect(await store.get("loc", "dora@x", "sip:d@192.0.2.1")).toMatchObject({ seq: 2 });
      await pool.query("UPDATE hub_agents SET vv = $1", [JSON.stringify({ [REPLICA_A]: 2 })]);
      expect(await store.purge((Date.now() - 86_400_000) * 1024, nowSec - 86_400)).toBe(1);
      expect(await store.get("loc", "dora@x", "sip:d@192.0.2.1")).toBeNull();
    } finally {
      await pool.end();
    }
  });

  it("purges by age alone without the hold, whatever the agents hold", async () => {
    const pool = await freshDatabase();
    try {
      const store = await openPgStore({ pool, nodeId: "hub1" });
      await store.applyRemote(batchOf(REPLICA_A, 0, 1, [remoteChange(REPLICA_A, 1, 1_700_000_000_000 * 1024, aliasDraft("a@x", null))]));
      await pool.query("UPDATE records SET stored_at = now() - interval '2 days'");
      await pool.query("INSERT INTO hub_agents (node_id, replica_id, hub_node, behind_changes, behind_seconds, vv) VALUES ('n1', 'n1~000000000001', 'hub1', 0, 0, '{}')");
      expect(await store.purge((Date.now() - 86_400_000) * 1024, 0)).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it("migrates a database with rows (0002) forward: they count as stored at the migration", async () => {
    const url = await server.createDatabase(`upgrade${++dbs}`);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const all = loadMigrations("postgres");
      expect(await migratePostgres(client, all.slice(0, 2))).toEqual([1, 2]);
      await client.query("INSERT INTO origins (replica, have) VALUES ('a~00000001', 1)");
      await client.query("INSERT INTO records (kind, key, sub, hlc, origin, seq, value, expires) SELECT 1, 'gone@x', '', 5, id, 1, NULL, NULL FROM origins");
      expect(await migratePostgres(client, all)).toEqual(all.slice(2).map((m) => m.version));
      const row = await client.query<{ fresh: boolean }>("SELECT stored_at > now() - interval '1 minute' AS fresh FROM records WHERE key = 'gone@x'");
      expect(row.rows).toEqual([{ fresh: true }]);
    } finally {
      await client.end();
    }
  });
});

describe("postgres migrations", () => {
  it("migrates a fresh database, re-running is a no-op, and a newer schema is refused", async () => {
    const url = await server.createDatabase("migrations");
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const all = loadMigrations("postgres").map((m) => m.version);
      expect(await migratePostgres(client)).toEqual(all);
      expect(await migratePostgres(client)).toEqual([]);
      const tables = await client.query<{ t: string }>("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
      expect(tables.rows.map((r) => r.t)).toEqual(["hub_agents", "hub_nodes", "origins", "records", "replicas", "schema_migrations"]);
      await client.query("INSERT INTO schema_migrations (version, name) VALUES (9999, 'from_the_future')");
      await expect(migratePostgres(client)).rejects.toThrow(SchemaTooNewError);
    } finally {
      await client.end();
    }
  });

  it("lets several hubs migrate at once (advisory lock): each migration runs exactly once", async () => {
    const url = await server.createDatabase("concurrent");
    const clients = await Promise.all([1, 2, 3].map(async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      return c;
    }));
    try {
      const applied = await Promise.all(clients.map((c) => migratePostgres(c)));
      expect(applied.flat().sort()).toEqual(loadMigrations("postgres").map((m) => m.version));
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });
});

describe("two hubs on one database", () => {
  it("apply the same origin concurrently without losing or doubling anything", async () => {
    const pool = await freshDatabase();
    try {
      const [h1, h2] = await Promise.all([openPgStore({ pool, nodeId: "hub1" }), openPgStore({ pool, nodeId: "hub2" })]);
      const changes = Array.from({ length: 200 }, (_, i) => remoteChange(REPLICA_A, i + 1, 1000 + i, aliasDraft(`a${i}@x`, "sip:t@x")));
      const batches = Array.from({ length: 20 }, (_, b) => batchOf(REPLICA_A, b * 10, b * 10 + 10, changes.slice(b * 10, b * 10 + 10)));
      // Both hubs receive every batch, each in order as a session applies them (an agent failing
      // over resends what it was not sure of), the two hubs at the same time.
      const inOrder = async (h: typeof h1) => {
        let applied = 0;
        for (const b of batches) applied += (await h.applyRemote(b)).applied.length;
        return applied;
      };
      const applied = await Promise.all([inOrder(h1), inOrder(h2)]);
      expect(applied[0] + applied[1]).toBe(200);
      const { rows } = await pool.query<{ have: number; n: number }>(
        "SELECT have, (SELECT count(*)::int FROM records) AS n FROM origins WHERE replica = $1", [REPLICA_A]);
      expect(rows[0]).toEqual({ have: 200, n: 200 });
    } finally {
      await pool.end();
    }
  });
});

describe("postgres last-writer-wins on equal stamps", () => {
  it("breaks the tie by replica id when the stored version's origin is newer than the applying statement", async () => {
    const pool = await freshDatabase();
    const other = await pool.connect();
    try {
      const hub = await openPgStore({ pool, nodeId: "hub1" });
      // Another hub stores alpha's version of k@x under alpha's brand-new origin, in one transaction
      // not committed yet. bravo's version has the same stamp: it wins (the greater replica id), as
      // in every agent's journal (contract/records.ts compareVersions).
      await other.query("BEGIN");
      const { rows } = await other.query<{ id: number }>("INSERT INTO origins (replica) VALUES ($1) RETURNING id", [REPLICA_A]);
      await other.query("INSERT INTO records (kind, key, sub, hlc, origin, seq, value) VALUES (1, 'k@x', '', 5000, $1, 1, '{\"target\":\"sip:a@x\"}')", [rows[0]!.id]);
      // bravo's batch: its statement begins now, before alpha's origin is committed, and waits on the row.
      const applying = hub.applyRemote(batchOf(REPLICA_B, 0, 1, [remoteChange(REPLICA_B, 1, 5000, aliasDraft("k@x", "sip:b@x"))]));
      await new Promise((r) => setTimeout(r, 300));
      await other.query("COMMIT");
      expect((await applying).applied.map((c) => c.origin)).toEqual([REPLICA_B]);
      expect((await hub.get("alias", "k@x", ""))?.origin).toBe(REPLICA_B);
    } finally {
      other.release();
      await pool.end();
    }
  });
});

describe("list search in a database with a Unicode locale", () => {
  // lower() folds "Ö" under C.UTF-8 (or en_US.UTF-8); the hub must still answer as the agents'
  // SQLite journals do (agent/core/list-search.ts): only ASCII letters fold in contacts and targets.
  it("folds only ASCII letters in alias targets, as the agents' journals do", async () => {
    await server.query(`CREATE DATABASE unicode_locale TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'`);
    expect(await server.query("SELECT lower('Ö') AS l", [], "unicode_locale")).toEqual([{ l: "ö" }]);
    const pool = await poolOn(server.url("unicode_locale"));
    try {
      const store = await openPgStore({ pool, nodeId: "n1" });
      await store.commitLocal([aliasDraft("müller@x", "sip:Jörg.ÖZ@pbx.example.com")], () => 1);
      const keys = async (search: string) => (await store.page("alias", { search, after: "", limit: 10, nowSec: 0 })).items.map((c) => c.key);
      expect(await keys("Jörg.ÖZ")).toEqual(["müller@x"]);
      expect(await keys("JÖRG.ÖZ")).toEqual([]);
      expect(await keys("jörg.öz")).toEqual([]);
      // Names fold ASCII letters only, as Kamailio keys AoRs: "MüLLER" finds it, "MÜLLER" does not.
      expect(await keys("MüLLER")).toEqual(["müller@x"]);
      expect(await keys("MÜLLER")).toEqual([]);
    } finally {
      await pool.end();
    }
  });
});

describe("range reads after a batch (the pumps' reads)", () => {
  // What the origin's rows in (after, upTo] are in the database, as seq → alias target.
  const rowsIn = async (pool: pg.Pool, after: number, upTo: number) =>
    (await pool.query<{ seq: number; v: string | null }>(
      `SELECT r.seq, r.value AS v FROM records r JOIN origins o ON o.id = r.origin
       WHERE o.replica = $1 AND r.seq > $2 AND r.seq <= $3 ORDER BY r.seq`, [REPLICA_A, after, upTo])).rows;
  const asRows = (changes: { seq: number; value: unknown }[]) => changes.map((c) => ({ seq: c.seq, v: c.value === null ? null : JSON.stringify(c.value) }));
  const alias = (seq: number, name: string, hlc = 1000 + seq, origin = REPLICA_A) => remoteChange(origin, seq, hlc, aliasDraft(`${name}@x`, `sip:${name}-${seq}@x`));

  it("serve a batch stored whole without a query, and read the database whenever the batch does not show every row", async () => {
    const url = await server.createDatabase(`t${++dbs}`);
    const pool = await poolOn(url);
    // Writes go through their own pool, as in the hub, so that `reads` counts the pumps' queries.
    const writePool = await poolOn(url, 2);
    let reads = 0;
    const query = pool.query.bind(pool) as typeof pool.query;
    pool.query = ((...args: Parameters<typeof pool.query>) => {
      reads++;
      return query(...args);
    }) as typeof pool.query;
    try {
      const store = await openPgStore({ pool, writePool, nodeId: "hub1" });
      const check = async (after: number, upTo: number) => {
        const before = reads;
        const got = await store.readRange(REPLICA_A, after, upTo, 1000);
        const queried = reads - before;
        expect(asRows(got)).toEqual(await rowsIn(writePool, after, upTo));
        return queried;
      };

      // Stored whole: every seq of (0, 3] present and every change won.
      await store.applyRemote(batchOf(REPLICA_A, 0, 3, [alias(1, "a"), alias(2, "b"), alias(3, "c")]));
      expect(await check(0, 3)).toBe(0);
      // A limit the batch does not fit in is read from the database.
      const before = reads;
      expect((await store.readRange(REPLICA_A, 0, 3, 2)).map((c) => c.seq)).toEqual([1, 2]);
      expect(reads - before).toBe(1);

      // A batch beyond a gap is stored but does not move `have` (3); then the resend of the whole
      // run: 6 and 7 are there already, so they do not come back as won, yet they are in the range.
      await store.applyRemote(batchOf(REPLICA_A, 5, 7, [alias(6, "f"), alias(7, "g")]));
      await store.applyRemote(batchOf(REPLICA_A, 3, 7, [alias(4, "d"), alias(5, "e"), alias(6, "f"), alias(7, "g")]));
      expect(await check(3, 7)).toBe(1);

      // The sender skipped seq 9 (superseded at the origin by a later seq), but the database holds
      // seq 9 from an earlier batch: the range has a row the batch does not show.
      await store.applyRemote(batchOf(REPLICA_A, 8, 9, [alias(9, "i")]));
      await store.applyRemote(batchOf(REPLICA_A, 7, 10, [alias(8, "h"), alias(10, "j")]));
      expect((await rowsIn(writePool, 7, 10)).map((r) => r.seq)).toEqual([8, 9, 10]);
      expect(await check(7, 10)).toBe(1);

      // A change that loses to a newer version from another origin is not in the range.
      await store.applyRemote(batchOf(REPLICA_B, 0, 1, [alias(1, "k", 9_000_000, REPLICA_B)]));
      await store.applyRemote(batchOf(REPLICA_A, 10, 12, [alias(11, "k"), alias(12, "l")]));
      expect((await rowsIn(writePool, 10, 12)).map((r) => r.seq)).toEqual([12]);
      expect(await check(10, 12)).toBe(1);
    } finally {
      await writePool.end();
      await pool.end();
    }
  });
});

describe("a hubs' database that lost commits (a failover to a replica that was behind, a restore)", () => {
  const alias = (seq: number) => remoteChange(REPLICA_A, seq, 1000 + seq, aliasDraft(`a${seq}@x`, "sip:t@x"));
  /** What a replica 5 commits behind holds: the last five of A's changes and its origin row's `have` gone back. */
  const loseCommits = (pool: pg.Pool) => pool.query(
    `WITH a AS (SELECT id FROM origins WHERE replica = $1)
     , gone AS (DELETE FROM records WHERE origin = (SELECT id FROM a) AND seq > 5)
     UPDATE origins SET have = 5 WHERE id = (SELECT id FROM a)`, [REPLICA_A]);

  it("refuses, as a temporary failure, a range read before the vector's reload found the loss, and finds it then", async () => {
    const pool = await freshDatabase();
    try {
      const store = await openPgStore({ pool, nodeId: "hub1" });
      await store.applyRemote(batchOf(REPLICA_A, 0, 10, Array.from({ length: 10 }, (_, i) => alias(i + 1))));
      await loseCommits(pool);
      // The pump of an agent at 5 reads (5, 10] with the vector still at 10: served empty, the
      // agent would take it for holding #6-#10, and skip them for good.
      const err = await store.readRange(REPLICA_A, 5, 10, 100).then(() => null, (e: unknown) => e);
      expect(isTransient(err)).toBe(true);
      expect((err as Error).message).toMatch(/holds 5 of .*fewer than the 10 this hub had seen: it lost commits/);
      // The read found the loss: the vector is down, and the next reload tells it.
      expect((await store.versionVector())[REPLICA_A]).toBe(5);
      expect(await store.reloadVector()).toEqual([{ origin: REPLICA_A, had: 10, has: 5 }]);
      // What it still holds is served as before, and an empty range of an origin it holds is empty.
      expect((await store.readRange(REPLICA_A, 0, 5, 100)).map((c) => c.seq)).toEqual([1, 2, 3, 4, 5]);
      expect(await store.readRange(REPLICA_A, 5, 5, 100)).toEqual([]);
    } finally {
      await pool.end();
    }
  });

  it("follows the database down, says so once, and serves no range it no longer holds", async () => {
    const pool = await freshDatabase();
    try {
      const store = await openPgStore({ pool, nodeId: "hub1" });
      await store.applyRemote(batchOf(REPLICA_A, 0, 10, Array.from({ length: 10 }, (_, i) => alias(i + 1))));
      expect((await store.versionVector())[REPLICA_A]).toBe(10);
      expect(await store.reloadVector()).toEqual([]);

      await loseCommits(pool);
      expect(await store.reloadVector()).toEqual([{ origin: REPLICA_A, had: 10, has: 5 }]);
      // Before, the vector stayed at 10: agents were told the hub held A's #6-#10, an agent at 5
      // was served an empty (5, 10] and skipped them for good, and A never sent them again.
      expect((await store.versionVector())[REPLICA_A]).toBe(5);
      expect(await store.reloadVector()).toEqual([]); // told once
      // A sends them again from there, and they are stored and served.
      await store.applyRemote(batchOf(REPLICA_A, 5, 10, [6, 7, 8, 9, 10].map(alias)));
      expect((await store.versionVector())[REPLICA_A]).toBe(10);
      expect((await store.readRange(REPLICA_A, 5, 10, 100)).map((c) => c.seq)).toEqual([6, 7, 8, 9, 10]);
    } finally {
      await pool.end();
    }
  });

  it("is told to the change feed's onLoss, which the hub answers by closing its agents' sessions", async () => {
    const url = await server.createDatabase(`loss${++dbs}`);
    const pool = await poolOn(url);
    const store = await openPgStore({ pool, nodeId: "hub1" });
    const losses: unknown[] = [];
    const feed = startChangeFeed({ connection: { connectionString: url }, store, log: silentLogger(), onChange: () => undefined, onLoss: (l) => losses.push(...l), retryMs: 20, reloadMs: 100 });
    try {
      await feed.ready;
      await store.applyRemote(batchOf(REPLICA_A, 0, 10, Array.from({ length: 10 }, (_, i) => alias(i + 1))));
      await loseCommits(pool);
      await expect.poll(() => losses, { timeout: 5000 }).toEqual([{ origin: REPLICA_A, had: 10, has: 5 }]);
    } finally {
      await feed.close();
      await pool.end();
    }
  });
});

describe("the change feed (LISTEN)", () => {
  const listeners = async (pool: pg.Pool, channel: string) =>
    (await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query = $1", [`LISTEN ${channel}`])).rows[0]!.n;

  it("keeps one LISTEN connection when its first reload fails, and hears another hub's commits", async () => {
    const url = await server.createDatabase(`feed${++dbs}`);
    const pool = await poolOn(url);
    const store = await openPgStore({ pool, nodeId: "hub1" });
    const other = await openPgStore({ pool, nodeId: "hub2" });
    // The first reload after LISTEN fails (PostgreSQL just restarted, too many clients, ...).
    let failures = 1;
    const reloadVector = store.reloadVector;
    const flaky = { ...store, reloadVector: () => (failures-- > 0 ? Promise.reject(new Error("too many clients already")) : reloadVector()) };
    let changes = 0;
    const feed = startChangeFeed({ connection: { connectionString: url }, store: flaky, log: silentLogger(), onChange: () => changes++, retryMs: 20, reloadMs: 60_000 });
    try {
      await feed.ready;
      await new Promise((r) => setTimeout(r, 300));
      expect(await listeners(pool, store.channel)).toBe(1);

      const before = changes;
      await other.applyRemote(batchOf(REPLICA_A, 0, 1, [remoteChange(REPLICA_A, 1, 1000, aliasDraft("a@x", "sip:t@x"))]));
      await expect.poll(() => changes, { timeout: 5000 }).toBeGreaterThan(before);
      expect((await store.versionVector())[REPLICA_A]).toBe(1);
    } finally {
      await feed.close();
    }
    await expect.poll(() => listeners(pool, store.channel), { timeout: 5000 }).toBe(0);
    await pool.end();
  });
});
