/**
 * The database fallback (agent/kamailio/kamailio-db.ts) against real Kamailio 5.6 processes on
 * SQLite and PostgreSQL 15 databases made from Debian's own schema files: what we write is what
 * Kamailio loads (db_mode 1) or sees at once (db_mode 3, alias_db), and what Kamailio writes is what
 * we read. Surprises 8 (Julian days), 9 (local-time timestamps) and 10 (aliases version) of
 * kamailio-5.6.md are checked end to end.
 */
import { createKamailioPostgres, createKamailioSqlite } from "../support/kamailio-schema.js";
import { createSocket, type Socket } from "node:dgram";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isTransient } from "../../agent/core/transient.js";
import { createFifoClient } from "../../agent/kamailio/fifo-client.js";
import { unixToJulianDay, unixToLocalTimestamp } from "../../agent/kamailio/kamailio-db-encoding.js";
import {
  KamailioDbSchemaError, KamailioDbUnavailableError, openKamailioDb, type DbBinding, type KamailioDb, type KamailioDbOptions,
} from "../../agent/kamailio/kamailio-db.js";
import { createUsrlocRpc, type UsrlocRpc } from "../../agent/kamailio/usrloc-rpc.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { kamailioDbCfg, type KamailioDbCfg } from "../support/kamailio-cfg.js";
import { freeUdpPort, startKamailio, type KamailioProcess } from "../support/kamailio-process.js";
import { startPostgres, type PostgresProcess } from "../support/postgres-process.js";

const NY = "America/New_York";
const nowSec = (): number => Math.floor(Date.now() / 1000);

/**
 * What an unknown user gets from the test cfg: its `if (lookup("location") < 0)` is never true
 * (Kamailio turns a function's negative return into false in an expression), so instead of its 404
 * the R-URI is relayed as is and example.com does not resolve: 478.
 */
const NOT_ROUTED = /^SIP\/2\.0 (404|478)/;

const binding = (contact: string, over: Partial<DbBinding> = {}): DbBinding => ({
  contact, expires: nowSec() + 600, q: -1, path: "", received: "", socket: "", callid: `cid-${contact}`, cseq: 7,
  userAgent: "locmesh-test", flags: 0, cflags: 0, methods: 4294967295, instance: "", regId: 0, ruid: "", ...over,
});

const started: Array<{ close(): Promise<void> }> = [];
const work = mkdtempSync(join(tmpdir(), "locmesh-kamdb-"));

function track<T extends { close(): Promise<void> }>(x: T): T {
  started.push(x);
  return x;
}

afterAll(async () => {
  for (const x of started.reverse()) await x.close().catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
});

/** A SQLite file made from Debian's db_sqlite schema files, as `kamdbctl create` would. */
function sqliteDb(name: string, opts: { fixAliases?: boolean; files?: string[] } = {}): string {
  return createKamailioSqlite(join(work, `${name}.db`), opts);
}

function rawSqlite<T>(path: string, sql: string, ...params: unknown[]): T[] {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

function openDb(url: string, over: Partial<KamailioDbOptions> = {}, log = silentLogger()): KamailioDb {
  return track(openKamailioDb({ url, aliasMode: "dbaliases", ...over }, { log }));
}

async function fifoCall(kam: KamailioProcess, method: string): Promise<unknown> {
  const fifo = createFifoClient({ fifoPath: kam.fifoPath, replyDir: kam.replyDir, timeoutMs: 3000, log: silentLogger() });
  try {
    return await fifo.call(method);
  } finally {
    await fifo.close();
  }
}

async function kamailio(db: KamailioDbCfg, env?: Record<string, string>): Promise<{ kam: KamailioProcess; ul: UsrlocRpc }> {
  const kam = track(await startKamailio({ extraCfg: `${kamailioDbCfg(db)}\nalias="example.com"`, env }));
  const fifo = track(createFifoClient({ fifoPath: kam.fifoPath, replyDir: kam.replyDir, timeoutMs: 3000, log: silentLogger() }));
  return { kam, ul: createUsrlocRpc({ rpc: fifo }) };
}

/**
 * ul.lookup until `n` contacts show (or 5 s pass): usrloc preloads the DB in a child's init
 * (PROC_SIPINIT), which is not ordered with the FIFO process answering startKamailio's probe.
 */
async function lookupLoaded(ul: UsrlocRpc, aor: string, n: number, table = "location"): Promise<Awaited<ReturnType<UsrlocRpc["ulLookup"]>>> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const got = await ul.ulLookup(table, aor);
    if (got.length >= n || Date.now() > deadline) return got;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * A phone on 127.0.0.1 that answers 200 to whatever Kamailio relays to it, and an OPTIONS sender:
 * send() resolves with the R-URI the phone saw, or with the status line Kamailio answered itself.
 */
async function phone(): Promise<{ port: number; send(sipPort: number, ruri: string): Promise<string>; close(): Promise<void> }> {
  const bind = async (): Promise<Socket> => {
    const s = createSocket("udp4");
    await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", resolve));
    return s;
  };
  const [callee, caller] = [await bind(), await bind()];
  let seen: ((ruri: string) => void) | undefined;
  callee.on("message", (m, from) => {
    const text = m.toString();
    const ruri = /^OPTIONS (\S+) SIP\/2\.0/.exec(text)?.[1];
    if (!ruri) return;
    const headers = text.split("\r\n").filter((l) => /^(Via|From|To|Call-ID|CSeq):/i.test(l));
    callee.send(["SIP/2.0 200 OK", ...headers, "Content-Length: 0", "", ""].join("\r\n"), from.port, from.address);
    seen?.(ruri);
  });
  return {
    port: callee.address().port,
    send(sipPort, ruri) {
      const cport = caller.address().port;
      const msg = [
        `OPTIONS ${ruri} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${cport};branch=z9hG4bK${Math.random().toString(16).slice(2)}`,
        "Max-Forwards: 70", "From: <sip:tester@example.com>;tag=t1", `To: <${ruri}>`, `Call-ID: ${Math.random().toString(16).slice(2)}@test`,
        "CSeq: 1 OPTIONS", "Content-Length: 0", "", "",
      ].join("\r\n");
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no answer to OPTIONS ${ruri}`)), 5000);
        const done = (s: string): void => {
          clearTimeout(timer);
          caller.removeAllListeners("message");
          seen = undefined;
          resolve(s);
        };
        seen = (r) => done(`relayed to ${r}`);
        caller.on("message", (m) => {
          const status = m.toString().split("\r\n")[0] ?? "";
          if (!/^SIP\/2\.0 1\d\d/.test(status) && !/^SIP\/2\.0 200/.test(status)) done(status);
        });
        caller.send(msg, sipPort, "127.0.0.1");
      });
    },
    async close() {
      await Promise.all([callee, caller].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    },
  };
}

describe("SQLite, db_mode 1: Kamailio loads what we wrote at start", () => {
  it("upserts, lookups after start, reads Kamailio's own rows back, removes", async () => {
    const path = sqliteDb("mode1");
    const url = `sqlite://${path}`;
    const db = openDb(url);
    const exp = nowSec() + 600;
    await db.upsertLocation("alice@example.com", binding("sip:alice@192.0.2.10:5060", {
      expires: exp, q: 0.5, path: "<sip:edge.example.net;lr>", received: "sip:198.51.100.7:34567", methods: 0x1f, flags: 2, cflags: 0x80000000, ruid: "given-ruid-1",
    }));
    await db.upsertLocation("alice@example.com", binding("sip:alice@192.0.2.11:5060", { expires: 0, q: 1 }));
    // An update keeps the row (and its ruid) and rewrites the rest.
    await db.upsertLocation("alice@example.com", binding("sip:alice@192.0.2.10:5060", {
      expires: exp, q: 0.5, path: "<sip:edge.example.net;lr>", received: "sip:198.51.100.7:34567", methods: 0x1f, flags: 2, cflags: 0x80000000, ruid: "other",
    }));
    expect(rawSqlite(path, "SELECT ruid FROM location WHERE contact = ?", "sip:alice@192.0.2.10:5060")).toEqual([{ ruid: "given-ruid-1" }]);
    expect(rawSqlite(path, "SELECT methods FROM location WHERE contact = ?", "sip:alice@192.0.2.11:5060")).toEqual([{ methods: null }]);

    const { kam, ul } = await kamailio({ url, mode: 1 });
    const got = await lookupLoaded(ul, "alice@example.com", 2);
    const timed = got.find((c) => c.contact === "sip:alice@192.0.2.10:5060");
    const perm = got.find((c) => c.contact === "sip:alice@192.0.2.11:5060");
    expect(timed, kam.logTail()).toBeDefined();
    expect(Math.abs((timed?.expires ?? 0) - exp)).toBeLessThanOrEqual(2);
    expect(timed).toMatchObject({ q: 0.5, path: "<sip:edge.example.net;lr>", received: "sip:198.51.100.7:34567", ruid: "given-ruid-1", methods: 0x1f, flags: 2, cflags: 0x80000000, callid: "cid-sip:alice@192.0.2.10:5060", cseq: 7, userAgent: "locmesh-test" });
    expect(perm).toMatchObject({ status: "permanent", expires: 0 });

    // Kamailio writes through (db_mode 1): its rows decode to what it holds, bit-exact for permanent.
    await ul.ulAdd("location", "bob@example.com", { ...binding("sip:bob@192.0.2.20"), expires: nowSec() + 300, q: 0.7 }, nowSec());
    await ul.ulAdd("location", "bob@example.com", { ...binding("sip:bob@192.0.2.21"), expires: 0 }, nowSec());
    const bob = (await db.listLocations(nowSec())).filter((l) => l.aor === "bob@example.com");
    expect(bob.map((b) => [b.contact, b.q, b.methods])).toEqual([["sip:bob@192.0.2.20", 0.7, 4294967295], ["sip:bob@192.0.2.21", -1, 4294967295]]);
    expect(Math.abs((bob[0]?.expires ?? 0) - (nowSec() + 300))).toBeLessThanOrEqual(2);
    expect(bob[1]?.expires).toBe(0);
    expect(rawSqlite<{ expires: number }>(path, "SELECT expires FROM location WHERE contact = 'sip:bob@192.0.2.21'")[0]?.expires).toBe(unixToJulianDay(0));

    await db.removeLocation("alice@example.com", "sip:alice@192.0.2.10:5060");
    await kam.restart();
    expect((await lookupLoaded(ul, "alice@example.com", 1)).map((c) => c.contact)).toEqual(["sip:alice@192.0.2.11:5060"]);
  });
});

describe("SQLite, db_mode 3 with alias_db: Kamailio sees our rows at once", () => {
  it("finds a contact written while it runs, and routes a request to an alias to the target's contact", async () => {
    const path = sqliteDb("mode3");
    const url = `sqlite://${path}`;
    const db = openDb(url);
    const { kam, ul } = await kamailio({ url, mode: 3, aliasDb: true });
    const ph = track(await phone());
    const contact = `sip:dave@127.0.0.1:${ph.port}`;
    const exp = nowSec() + 900;
    await db.upsertLocation("dave@example.com", binding(contact, { expires: exp }));
    const got = await ul.ulLookup("location", "dave@example.com");
    expect(got.map((c) => c.contact), kam.logTail()).toEqual([contact]);
    expect(Math.abs((got[0]?.expires ?? 0) - exp)).toBeLessThanOrEqual(2);

    // The db_mode 3 timer (ul.flush runs it) deletes `expires < now AND expires != <epoch 0 as
    // db_sqlite encodes it>`: our permanent row must be bit-exact to survive; a plain 2440587.5 does not.
    await db.upsertLocation("dave@example.com", binding("sip:dave@192.0.2.50", { expires: 0 }));
    await db.upsertLocation("dave@example.com", binding("sip:dave@192.0.2.51", { expires: nowSec() - 60 }));
    rawSqliteWrite(path, "INSERT INTO location (ruid, username, domain, contact, expires) VALUES ('plain', 'dave', 'example.com', 'sip:dave@192.0.2.52', 2440587.5)");
    await fifoCall(kam, "ul.flush");
    expect(rawSqlite(path, "SELECT contact FROM location ORDER BY id")).toEqual([{ contact }, { contact: "sip:dave@192.0.2.50" }]);

    expect(await ph.send(kam.sipPort, "sip:nick@example.com")).toMatch(NOT_ROUTED);
    await db.setAlias("nick@example.com", "sip:dave@example.com;transport=tcp");
    expect(await db.listAliases()).toEqual([{ alias: "nick@example.com", target: "sip:dave@example.com" }]);
    // As alias_db holds it (no parameters), whether asked with sip: or without.
    expect(await db.lookupAlias("sip:nick@example.com")).toEqual(["sip:dave@example.com"]);
    expect(await db.lookupAlias("nobody@example.com")).toEqual([]);
    expect(await ph.send(kam.sipPort, "sip:nick@example.com")).toBe(`relayed to ${contact}`);
    await db.removeAlias("nick@example.com");
    expect(await ph.send(kam.sipPort, "sip:nick@example.com")).toMatch(NOT_ROUTED);
  });
});

describe("SQLite, usrloc-mode aliases (lookup(\"aliases\"), db_mode 1)", () => {
  it("warns about the shipped version 8, which stops Kamailio from starting (surprise 10)", async () => {
    const path = sqliteDb("aliases-v8", { fixAliases: false });
    const lines: string[] = [];
    const db = openDb(`sqlite://${path}`, { aliasMode: "usrloc" }, pino({ level: "warn" }, { write: (s: string) => void lines.push(s) }));
    await db.setAlias("nick@example.com", "sip:erin@example.com");
    expect(lines.join("")).toMatch(/UPDATE version SET table_version=9 WHERE table_name='aliases'/);
    await expect(startKamailio({ extraCfg: kamailioDbCfg({ url: `sqlite://${path}`, mode: 1 }) })).rejects.toThrow(/version/i);
  });

  it("after the version fix, a request to the alias reaches the target's contact", async () => {
    const path = sqliteDb("aliases-usrloc");
    const url = `sqlite://${path}`;
    const db = openDb(url, { aliasMode: "usrloc" });
    const ph = track(await phone());
    const contact = `sip:erin@127.0.0.1:${ph.port}`;
    await db.upsertLocation("erin@example.com", binding(contact));
    await db.setAlias("nick@example.com", "sip:old@example.com");
    await db.setAlias("nick@example.com", "sip:erin@example.com");
    expect(await db.listAliases()).toEqual([{ alias: "nick@example.com", target: "sip:erin@example.com" }]);
    expect(await db.lookupAlias("nick@example.com")).toEqual(["sip:erin@example.com"]);
    const { kam, ul } = await kamailio({ url, mode: 1 });
    expect(await lookupLoaded(ul, "nick@example.com", 1, "aliases")).toMatchObject([{ contact: "sip:erin@example.com", status: "permanent" }]);
    expect(await lookupLoaded(ul, "erin@example.com", 1)).toHaveLength(1);
    expect(await ph.send(kam.sipPort, "sip:nick@example.com"), kam.logTail()).toBe(`relayed to ${contact}`);
  });
});

describe("PostgreSQL 15 with Kamailio at TZ=America/New_York (surprise 9)", () => {
  let pgp: PostgresProcess;
  let url: string;
  beforeAll(async () => {
    pgp = track(await startPostgres());
    url = await createKamailioPostgres(await pgp.createDatabase("kamailio"));
  });

  it("drops the other rows of a binding or usrloc alias but the ones named (dropOtherRows), on PostgreSQL and SQLite", async () => {
    // As after a write that went into the database while jsonrpcs failed, then in over jsonrpcs:
    // Kamailio (db_mode 1) took it as a new contact and wrote a row of its own beside the agent's.
    const twoRows = async (db: KamailioDb, insert: (table: string, ruid: string, user: string, contact: string) => Promise<void>) => {
      await db.upsertLocation("hank@example.com", binding("sip:hank@192.0.2.70", { ruid: "uloc-agent-1" }));
      await db.upsertLocation("hank@example.com", binding("sip:hank@192.0.2.71", { ruid: "uloc-other-1" }));
      await insert("location", "ulcx-kamailio-1", "hank", "sip:hank@192.0.2.70");
      await db.setAlias("sip:hal@example.com", "sip:hank@example.com");
      // The alias's target changed meanwhile: Kamailio holds the new one, the agent's row the old.
      await insert("aliases", "ulcx-kamailio-2", "hal", "sip:hank2@example.com");
      expect(await db.dropOtherRows("location", "hank@example.com", "sip:hank@192.0.2.70", ["ulcx-kamailio-1"])).toBe(1);
      expect(await db.dropOtherRows("aliases", "sip:hal@example.com", null, ["ulcx-kamailio-2"])).toBe(1);
      // Nothing else of the AoR is touched, and a second call finds nothing to drop.
      expect(await db.dropOtherRows("location", "hank@example.com", "sip:hank@192.0.2.70", ["ulcx-kamailio-1"])).toBe(0);
      return (await db.listLocations(nowSec())).filter((l) => l.aor === "hank@example.com").map((l) => [l.contact, l.ruid]).sort();
    };
    const pg = openDb(url, { aliasMode: "usrloc" });
    expect(await twoRows(pg, async (table, ruid, user, contact) => {
      await pgp.query(`INSERT INTO ${table} (ruid, username, domain, contact, expires) VALUES ($1, $2, 'example.com', $3, now() + interval '1 hour')`, [ruid, user, contact], "kamailio");
    })).toEqual([["sip:hank@192.0.2.70", "ulcx-kamailio-1"], ["sip:hank@192.0.2.71", "uloc-other-1"]]);
    expect(await pgp.query("SELECT ruid FROM aliases WHERE username = 'hal'", [], "kamailio")).toEqual([{ ruid: "ulcx-kamailio-2" }]);
    const path = sqliteDb("drop-other-rows");
    const lite = openDb(`sqlite://${path}`, { aliasMode: "usrloc" });
    expect(await twoRows(lite, async (table, ruid, user, contact) => {
      rawSqliteWrite(path, `INSERT INTO ${table} (ruid, username, domain, contact, expires) VALUES ('${ruid}', '${user}', 'example.com', '${contact}', ${unixToJulianDay(nowSec() + 3600)})`);
    })).toEqual([["sip:hank@192.0.2.70", "ulcx-kamailio-1"], ["sip:hank@192.0.2.71", "uloc-other-1"]]);
  });

  it("expiries come out right both ways, and a stopped server is a transient, typed failure", async () => {
    const db = openDb(url, { timeZone: NY });
    const exp = nowSec() + 900;
    await db.upsertLocation("carol@example.com", binding("sip:carol@192.0.2.30", { expires: exp, q: 0.1, path: "<sip:p1;lr>" }));
    await db.upsertLocation("carol@example.com", binding("sip:carol@192.0.2.31", { expires: 0 }));
    const raw = await pgp.query<{ expires: string }>("SELECT expires::text AS expires FROM location WHERE contact = 'sip:carol@192.0.2.31'", [], "kamailio");
    expect(raw[0]?.expires).toBe(unixToLocalTimestamp(0, NY));

    const { kam, ul } = await kamailio({ url, mode: 1 }, { TZ: NY });
    const got = await lookupLoaded(ul, "carol@example.com", 2);
    const timed = got.find((c) => c.contact === "sip:carol@192.0.2.30");
    expect(timed, kam.logTail()).toBeDefined();
    expect(Math.abs((timed?.expires ?? 0) - exp)).toBeLessThanOrEqual(2);
    expect(timed).toMatchObject({ q: 0.1, path: "<sip:p1;lr>" });
    expect(got.find((c) => c.contact === "sip:carol@192.0.2.31")).toMatchObject({ status: "permanent" });

    // Rows Kamailio writes in New York time decode to the right instants.
    await ul.ulAdd("location", "frank@example.com", { ...binding("sip:frank@192.0.2.40"), expires: nowSec() + 120 }, nowSec());
    await ul.ulAdd("location", "frank@example.com", { ...binding("sip:frank@192.0.2.41"), expires: 0 }, nowSec());
    const frank = (await db.listLocations(nowSec())).filter((l) => l.aor === "frank@example.com");
    expect(Math.abs((frank.find((f) => f.contact === "sip:frank@192.0.2.40")?.expires ?? 0) - (nowSec() + 120))).toBeLessThanOrEqual(2);
    expect(frank.find((f) => f.contact === "sip:frank@192.0.2.41")?.expires).toBe(0);

    // db_mode 3's timer keeps our permanent row (New York's epoch 0, as db_time2str writes it) and drops an expired one.
    await db.upsertLocation("gina@example.com", binding("sip:gina@192.0.2.60", { expires: 0 }));
    await db.upsertLocation("gina@example.com", binding("sip:gina@192.0.2.61", { expires: nowSec() - 60 }));
    const mode3 = await kamailio({ url, mode: 3 }, { TZ: NY });
    await fifoCall(mode3.kam, "ul.flush");
    const gina = await pgp.query("SELECT contact FROM location WHERE username = 'gina'", [], "kamailio");
    expect(gina).toEqual([{ contact: "sip:gina@192.0.2.60" }]);
    expect(await mode3.ul.ulLookup("location", "gina@example.com")).toMatchObject([{ contact: "sip:gina@192.0.2.60", status: "permanent" }]);

    await pgp.stop();
    const err = await db.upsertLocation("carol@example.com", binding("sip:carol@192.0.2.32")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KamailioDbUnavailableError);
    expect(isTransient(err)).toBe(true);
    expect((err as Error).message).toMatch(/unavailable.*retried/s);
    await pgp.start();
    await db.upsertLocation("carol@example.com", binding("sip:carol@192.0.2.32"));
    expect((await db.listLocations(nowSec())).some((l) => l.contact === "sip:carol@192.0.2.32")).toBe(true);
  });
});

describe("failures are typed", () => {
  it("a SQLite file in a missing directory, or not there at all, is unavailable (transient)", async () => {
    for (const path of [join(work, "no-such-dir", "kam.db"), join(work, "missing.db")]) {
      const err = await openDb(`sqlite://${path}`).upsertLocation("a@example.com", binding("sip:a@192.0.2.1")).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KamailioDbUnavailableError);
      expect(isTransient(err)).toBe(true);
      expect((err as Error).message).toContain(path);
    }
  });

  it("a SQLite file another writer holds locked is unavailable until it lets go", async () => {
    const path = sqliteDb("locked");
    const db = openDb(`sqlite://${path}`, { connectTimeoutMs: 100 });
    await db.ping();
    const holder = new Database(path);
    holder.exec("BEGIN EXCLUSIVE");
    const err = await db.upsertLocation("a@example.com", binding("sip:a@192.0.2.1")).catch((e: unknown) => e);
    holder.exec("COMMIT");
    holder.close();
    expect(err).toBeInstanceOf(KamailioDbUnavailableError);
    expect((err as Error).message).toMatch(/SQLITE_BUSY/);
    await db.upsertLocation("a@example.com", binding("sip:a@192.0.2.1"));
    expect((await db.listLocations(nowSec())).map((l) => l.contact)).toEqual(["sip:a@192.0.2.1"]);
  });

  it("a missing table or a wrong version is a permanent schema error naming the table and the fix", async () => {
    const noLocation = sqliteDb("no-location", { files: ["standard-create.sql", "alias_db-create.sql"], fixAliases: false });
    const e1 = await openDb(`sqlite://${noLocation}`).ping().catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(KamailioDbSchemaError);
    expect(isTransient(e1)).toBe(false);
    expect((e1 as Error).message).toMatch(/"location".*usrloc-create\.sql/s);

    const oldLocation = sqliteDb("old-location");
    rawSqliteWrite(oldLocation, "UPDATE version SET table_version = 8 WHERE table_name = 'location'");
    const e2 = await openDb(`sqlite://${oldLocation}`).upsertLocation("a@example.com", binding("sip:a@192.0.2.1")).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(KamailioDbSchemaError);
    expect((e2 as Error).message).toMatch(/version 8, Kamailio 5\.6 needs 9/);
  });

  it("an unreachable PostgreSQL is unavailable (transient)", async () => {
    const port = await freeUdpPort(); // nothing listens on TCP there either, almost surely
    const err = await openDb(`postgres://postgres@127.0.0.1:${port}/kamailio`, { timeZone: "UTC" }).ping().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KamailioDbUnavailableError);
    expect(isTransient(err)).toBe(true);
  });
});

function rawSqliteWrite(path: string, sql: string): void {
  const db = new Database(path);
  db.exec(sql);
  db.close();
}
