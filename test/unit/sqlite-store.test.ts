import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { JournalTooNewError, loadMigrations, migrateSqlite } from "../../agent/journal/migrate-sqlite.js";
import { PAGE_SQL, type PageParams } from "../../agent/journal/sqlite-page-sql.js";
import { JournalOwnerError } from "../../agent/journal/sqlite-meta.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import type { ReplicaStore } from "../../agent/core/store.js";
import { REPLICA_A, REPLICA_B, aliasDraft, batchOf, binding, counterStamp, locDraft, makeTempDirs, remoteChange } from "../support/fixtures.js";
import { describeStoreContract } from "../support/store-contract.js";

const temp = makeTempDirs("locmesh-sqlite-");
const NOW_SEC = 1_800_000_000;
const open: ReplicaStore[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  temp.cleanup();
});

function openAt(path: string, nodeId = "n1"): ReplicaStore {
  const s = openSqliteStore({ path, nodeId });
  open.push(s);
  return s;
}

describeStoreContract("sqlite file", async () => openSqliteStore({ path: join(temp.make(), "journal.db"), nodeId: "n1" }));

describe("sqlite journal on disk", () => {
  it("keeps replica id, version vector, max hlc and records across close and reopen", async () => {
    const path = join(temp.make(), "nested", "journal.db");
    const first = openAt(path);
    await first.commitLocal([locDraft("a@x", "sip:a@1", binding({ callid: "kept" })), aliasDraft("s@x", "sip:a@x")], counterStamp(100));
    const remote = remoteChange(REPLICA_A, 1, 300, aliasDraft("r@x", "sip:r@x"));
    await first.applyRemote(batchOf(REPLICA_A, 0, 4, [remote]));
    const before = { id: first.replicaId, vv: await first.versionVector(), loc: await first.get("loc", "a@x", "sip:a@1") };
    await first.close();

    const again = openAt(path);
    expect(again.replicaId).toBe(before.id);
    expect(await again.versionVector()).toEqual({ [before.id]: 2, [REPLICA_A]: 4 });
    expect(await again.versionVector()).toEqual(before.vv);
    expect(await again.maxHlc()).toBe(300);
    expect(await again.get("loc", "a@x", "sip:a@1")).toEqual(before.loc);
    expect(await again.get("alias", "r@x", "")).toEqual(remote);
    // Sequence numbers continue where they stopped.
    const [next] = await again.commitLocal([aliasDraft("t@x", "sip:t@x")], counterStamp(400));
    expect(next?.seq).toBe(3);
  });

  it("refuses a journal that belongs to another node", async () => {
    const path = join(temp.make(), "journal.db");
    await openAt(path, "n1").close();
    expect(() => openSqliteStore({ path, nodeId: "n2" })).toThrow(JournalOwnerError);
    expect(() => openSqliteStore({ path, nodeId: "n2" })).toThrow(/belongs to node "n1", not "n2"/);
  });

  it("starts a new epoch for every fresh journal", async () => {
    const a = openAt(join(temp.make(), "journal.db"));
    const b = openAt(join(temp.make(), "journal.db"));
    expect(a.replicaId).toMatch(/^n1~[0-9a-f]{12}$/);
    expect(b.replicaId).toMatch(/^n1~[0-9a-f]{12}$/);
    expect(a.replicaId).not.toBe(b.replicaId);
  });

  it("notes that a fresh journal has not caught up with the cluster until told, across reopening; an older journal counts as seeded", async () => {
    const path = join(temp.make(), "journal.db");
    const fresh = openSqliteStore({ path, nodeId: "n1" });
    expect(fresh.seeded()).toBe(false);
    await fresh.close();
    const reopened = openSqliteStore({ path, nodeId: "n1" });
    expect(reopened.seeded()).toBe(false);
    reopened.markSeeded();
    expect(reopened.seeded()).toBe(true);
    await reopened.close();
    const seeded = openSqliteStore({ path, nodeId: "n1" });
    expect(seeded.seeded()).toBe(true);
    await seeded.close();
    // A journal made before the flag existed has no row either way: seeded.
    const legacy = new Database(path);
    legacy.prepare("DELETE FROM meta WHERE name = 'unseeded'").run();
    legacy.close();
    const old = openSqliteStore({ path, nodeId: "n1" });
    expect(old.seeded()).toBe(true);
    await old.close();
  });

  it("opens an in-memory journal for simulations", async () => {
    const s = openAt(":memory:");
    await s.applyRemote(batchOf(REPLICA_B, 0, 1, [remoteChange(REPLICA_B, 1, 1, aliasDraft("a@x", "sip:a@x"))]));
    expect(await s.versionVector()).toEqual({ [REPLICA_B]: 1 });
  });
});

describe("sqlite list pages", () => {
  // A page seeks the identity index to its cursor and reads in index order (no sort), searching or
  // not: the search is a filter on the rows walked, never a reason to scan from the start.
  it.each(["loc", "alias"] as const)("seek the identity index to the cursor for %s", (kind) => {
    const db = new Database(":memory:");
    try {
      migrateSqlite(db);
      const plan = db.prepare<PageParams, { detail: string }>(`EXPLAIN QUERY PLAN ${PAGE_SQL[kind]}`)
        .all({ now: NOW_SEC, all: 0, name: "bob", text: "bob", ak: "alice@x", as: "", n: 26 })
        .map((r) => r.detail);
      expect(plan).toEqual(["SEARCH records USING INDEX records_identity (kind=? AND (key,sub)>(?,?))"]);
    } finally {
      db.close();
    }
  });
});

describe("sqlite migrations", () => {
  it("applies each migration once", () => {
    const db = new Database(":memory:");
    try {
      const known = loadMigrations("sqlite").map((m) => m.version);
      expect(known[0]).toBe(1);
      expect(migrateSqlite(db)).toEqual(known);
      expect(migrateSqlite(db)).toEqual([]);
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
      expect(tables).toEqual(expect.arrayContaining(["meta", "origins", "records", "schema_migrations"]));
    } finally {
      db.close();
    }
  });

  it("brings a journal of the first schema forward with its records, and adds kamailio_unseen, kamailio_api_waiting and kamailio_aliases_waiting", async () => {
    const path = join(temp.make(), "journal.db");
    const first = new Database(path);
    expect(migrateSqlite(first, loadMigrations("sqlite").slice(0, 1))).toEqual([1]);
    first.prepare("INSERT INTO origins (id, replica, have) VALUES (1, ?, 1)").run(REPLICA_A);
    first.prepare("INSERT INTO records (kind, key, sub, hlc, origin, seq, value, expires) VALUES (0, 'alice@example.com', 'sip:alice@192.0.2.1', 5, 1, 1, ?, 0)").run(JSON.stringify(binding()));
    first.close();

    const store = openSqliteStore({ path, nodeId: "n1" });
    expect((await store.listKey("loc", "alice@example.com")).map((c) => c.sub)).toEqual(["sip:alice@192.0.2.1"]);
    store.kamailioUnseen.add("loc\u0000alice@example.com\u0000sip:alice@192.0.2.1");
    store.kamailioUnseen.flush();
    expect(store.kamailioUnseen.size()).toBe(1);
    store.kamailioApiWaiting.add("loc\u0000alice@example.com\u0000sip:alice@192.0.2.1");
    store.kamailioApiWaiting.flush();
    store.kamailioAliasesWaiting.add("alias\u0000x@example.com");
    store.kamailioAliasesWaiting.flush();
    await store.close();
    const reopened = openSqliteStore({ path, nodeId: "n1" });
    expect([reopened.kamailioUnseen.size(), reopened.kamailioApiWaiting.size(), reopened.kamailioAliasesWaiting.size()]).toEqual([1, 1, 1]);
    await reopened.close();
  });

  it("refuses a journal written by newer code", () => {
    const path = join(temp.make(), "journal.db");
    const db = new Database(path);
    migrateSqlite(db);
    db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 'x')").run();
    db.close();
    expect(() => openSqliteStore({ path, nodeId: "n1" })).toThrow(JournalTooNewError);
    expect(() => openSqliteStore({ path, nodeId: "n1" })).toThrow(/schema version 9999/);
  });
});

describe("migration files", () => {
  const dirWith = (files: string[]) => {
    const dir = mkdtempSync(join(tmpdir(), "lmmig-"));
    for (const f of files) writeFileSync(join(dir, f), "SELECT 1;");
    return dir;
  };

  it("loads NNNN_name.sql files in order, and refuses misnamed files, gaps and repeats", () => {
    const ok = dirWith(["0002_more.sql", "0001_first.sql", "README.md"]);
    try {
      expect(loadMigrations("sqlite", ok).map((m) => [m.version, m.name])).toEqual([[1, "first"], [2, "more"]]);
    } finally {
      rmSync(ok, { recursive: true, force: true });
    }
    for (const [files, problem] of [
      [["0001_first.sql", "0002-more.sql"], /0002-more\.sql: migration files are named NNNN_lower_case_name\.sql/],
      [["0001_first.sql", "0002_More.sql"], /0002_More\.sql: migration files are named/],
      [["0001_first.sql", "0003_third.sql"], /0003_third\.sql: expected number 0002/],
      [["0001_first.sql", "0001_again.sql"], /expected number 0002/],
    ] as const) {
      const dir = dirWith([...files]);
      try {
        expect(() => loadMigrations("sqlite", dir), files.join(", ")).toThrow(problem);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    // The shipped ones pass.
    expect(loadMigrations("sqlite").length).toBeGreaterThan(0);
    expect(loadMigrations("postgres").length).toBeGreaterThan(0);
  });
});

describe("sqlite purge of this node's own removals", () => {
  /** Own removals #2, #4 and #6 (of aliases made at #1, #3, #5), and a peer's removal, all old. */
  async function journal(): Promise<ReplicaStore> {
    const s = openAt(join(temp.make(), "journal.db"));
    const stamp = counterStamp(100);
    for (const a of ["a@x", "b@x", "c@x"]) {
      await s.commitLocal([aliasDraft(a, "sip:t@x")], stamp);
      await s.commitLocal([aliasDraft(a, null)], stamp);
    }
    await s.applyRemote(batchOf(REPLICA_A, 0, 1, [remoteChange(REPLICA_A, 1, 150, aliasDraft("p@x", null))]));
    return s;
  }
  const tombstones = async (s: ReplicaStore) => (await s.counts(NOW_SEC)).tombstones;

  it("keeps its own tombstones that peers have not acknowledged, however old, and purges the rest", async () => {
    const s = await journal();
    expect(await tombstones(s)).toBe(4);
    // Peers hold our changes up to #4, and the other origin's: #6 stays; #2, #4 and the peer's go.
    expect(await s.purge(1_000_000, 0, { [s.replicaId]: 4, [REPLICA_A]: 1 })).toBe(3);
    expect(await s.get("alias", "c@x", "")).toMatchObject({ seq: 6, value: null });
    expect(await s.get("alias", "b@x", "")).toBeNull();
    expect(await s.get("alias", "p@x", "")).toBeNull();
    // Once they hold #6 it goes too.
    expect(await s.purge(1_000_000, 0, { [s.replicaId]: 6, [REPLICA_A]: 1 })).toBe(1);
    expect(await tombstones(s)).toBe(0);
  });

  it("keeps another origin's tombstones that a peer lacks, however old: it may relay them to that peer while their origin is down", async () => {
    const s = await journal();
    // A peer holds none of REPLICA_A's: its removal stays, and so does what an origin not listed made.
    expect(await s.purge(1_000_000, 0, { [s.replicaId]: 6, [REPLICA_A]: 0 })).toBe(3);
    expect(await s.get("alias", "p@x", "")).toMatchObject({ seq: 1, value: null });
    expect(await s.purge(1_000_000, 0, { [s.replicaId]: 6 })).toBe(0);
    expect(await s.purge(1_000_000, 0, { [REPLICA_A]: 1 })).toBe(1);
    expect(await tombstones(s)).toBe(0);
  });

  it("keeps an expired version that replaced a live one until every peer holds it", async () => {
    const s = openAt(join(temp.make(), "journal.db"));
    const stamp = counterStamp(100);
    // A permanent binding (#1), replaced by one that expired long ago (#2).
    await s.commitLocal([locDraft("dora@x", "sip:d@192.0.2.1", binding({ expires: 0 }))], stamp);
    await s.commitLocal([locDraft("dora@x", "sip:d@192.0.2.1", binding({ expires: NOW_SEC - 90_000 }))], stamp);
    // A peer holds only #1: purged now, the peer would be told nothing of #2 and keep #1 forever.
    expect(await s.purge(1_000_000, NOW_SEC - 86_400, { [s.replicaId]: 1 })).toBe(0);
    expect(await s.get("loc", "dora@x", "sip:d@192.0.2.1")).toMatchObject({ seq: 2 });
    expect(await s.purge(1_000_000, NOW_SEC - 86_400, { [s.replicaId]: 2 })).toBe(1);
    expect(await s.get("loc", "dora@x", "sip:d@192.0.2.1")).toBeNull();
  });

  it("keeps every tombstone and expired binding while a peer has not said what it holds (null)", async () => {
    const s = await journal();
    expect(await s.purge(1_000_000, NOW_SEC, null)).toBe(0);
    expect(await tombstones(s)).toBe(4);
  });

  it("purges by age alone when the caller has no own changes to keep (a hub)", async () => {
    const s = await journal();
    expect(await s.purge(1_000_000, 0)).toBe(4);
  });
});
