/**
 * Issue 3, database fallback: with its FIFO gone, node 2's agent writes replicated bindings
 * straight into Kamailio's SQLite `location` table (Julian-day expiry), and a Kamailio started on
 * that database (db_mode 1) routes calls with them. With the database gone too, the change stays
 * pending, shows in status and metrics and at the sending peer, and is written once the FIFO
 * comes back.
 *
 * Node 3's Kamailio keeps usrloc in SQLite with db_mode 3 (no cache: every lookup reads the
 * database). Its `ul.dump` is always empty (kamailio-5.6.md surprise 7), so its agent must
 * reconcile against the database: against the empty dump it took every binding registered on its
 * node for de-registered and removed them cluster-wide (found by the fifo-removed drill).
 */
import { mkdtempSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import type { Location } from "../../agent/contract/records.js";
import { julianDayToUnix } from "../../agent/kamailio/kamailio-db-encoding.js";
import { UL_ADD_CALLID } from "../../agent/kamailio/registrar-input.js";
import { waitFor } from "../support/agent-process.js";
import { kamailioDbCfg } from "../support/kamailio-cfg.js";
import { TEST_DOMAIN, startKamailioCluster, type ClusterNode, type KamailioCluster } from "../support/kamailio-cluster.js";
import { createKamailioSqlite } from "../support/kamailio-schema.js";
import { sippRegister } from "../support/sipp.js";
import { sippCall, startPhone } from "../support/sipp-call.js";

let dir: string;
let dbPath: string;
let cluster: KamailioCluster;
let n1: ClusterNode;
let n2: ClusterNode;
let n3: ClusterNode;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-kfallback-"));
  dbPath = createKamailioSqlite(join(dir, "n2-kamailio.db"));
  const url = `sqlite://${dbPath}`;
  const url3 = `sqlite://${createKamailioSqlite(join(dir, "n3-kamailio.db"))}`;
  cluster = await startKamailioCluster({
    baseDir: dir,
    n: 3,
    node: (i) =>
      i === 1
        ? {
            kamailio: { extraCfg: kamailioDbCfg({ url, mode: 1 }) },
            // FIFO only (no datagram socket), so removing the FIFO cuts jsonrpcs off.
            agentKamailio: { dgram: null, db: { url, dbMode: 1 }, timeoutMs: 1000 },
          }
        : i === 2
          ? { kamailio: { extraCfg: kamailioDbCfg({ url: url3, mode: 3 }) }, agentKamailio: { db: { url: url3, dbMode: 3 }, reconcileIntervalSec: 1 } }
          : {},
  });
  [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
}, 60_000);

afterAll(async () => {
  await cluster?.close();
  rmSync(dir, { recursive: true, force: true });
});

const status = (node: ClusterNode) => node.agent.call<ClusterStatus>("cluster.status");

/** Every row of `user` in node 2's location table. */
function locationRows(user: string): { ruid: string; contact: string }[] {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return db.prepare("SELECT ruid, contact FROM location WHERE username = ? AND domain = ? ORDER BY id").all(user, TEST_DOMAIN) as { ruid: string; contact: string }[];
  } finally {
    db.close();
  }
}

function locationRow(user: string): { expires: number; contact: string; callid: string } | undefined {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return db.prepare("SELECT expires, contact, callid FROM location WHERE username = ? AND domain = ?").get(user, TEST_DOMAIN) as
      | { expires: number; contact: string; callid: string }
      | undefined;
  } finally {
    db.close();
  }
}

describe("Kamailio database fallback", () => {
  it("writes into Kamailio's table when the FIFO is gone, and a Kamailio started on it routes there", async () => {
    const alice = await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "alice", domain: TEST_DOMAIN, expires: 300 });
    await waitFor("alice in n2's Kamailio", async () => (await n2.lookup(`alice@${TEST_DOMAIN}`)).length === 1);
    expect((await status(n2)).kamailio?.writer).toBe("rpc");

    renameSync(n2.kamailio.fifoPath, `${n2.kamailio.fifoPath}.away`);
    // A phone some REGISTERs into its Call-ID (CSeq 5), where ul.add's own CSeq is 1.
    const bob = await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "bob", domain: TEST_DOMAIN, expires: 300, callId: "bob-phone", cseq: 5 });
    const row = await waitFor("bob's row in n2's database", async () => locationRow("bob"));
    expect(row.contact).toBe(bob.contact);
    // Marked as the agent's, as ul.add would: not a phone that registered at n2.
    expect(row.callid).toBe(UL_ADD_CALLID);
    // db_sqlite's encoding: a Julian-day REAL, here about now + 300 s.
    expect(typeof row.expires).toBe("number");
    expect(Math.abs(julianDayToUnix(row.expires) - (Date.now() / 1000 + 300))).toBeLessThan(5);
    const s = await status(n2);
    expect(s.kamailio?.writer).toBe("database");
    expect(await n2.agent.metric("locmesh_kamailio_writes_total", { route: "database" })).toBeGreaterThanOrEqual(1);

    // Before any restart, a laptop of bob's registers at n2. Its event cannot list bob's phone (the
    // running db_mode 1 Kamailio does not read what went into its database), and that absence must
    // not be taken for save() dropping it: the phone stays, everywhere.
    const laptop = await sippRegister({ dir, sipPort: n2.kamailio.sipPort, user: "bob", domain: TEST_DOMAIN, expires: 300 });
    await waitFor("bob's laptop on n1", async () => (await n1.agent.call<{ bindings: Location[] }>("location.lookup", { aor: `bob@${TEST_DOMAIN}` })).bindings.some((b) => b.contact === laptop.contact));
    for (const node of [n1, n2]) {
      const contacts = (await node.agent.call<{ bindings: Location[] }>("location.lookup", { aor: `bob@${TEST_DOMAIN}` })).bindings.map((b) => b.contact).sort();
      expect(contacts, node.id).toEqual([bob.contact, laptop.contact].sort());
    }

    // Kamailio restarts on that database (db_mode 1 loads it) and routes a call to bob's phone.
    await n2.kamailio.restart();
    const restartedAt = new Date().toISOString();
    await waitFor("bob's phone loaded by n2's Kamailio", async () => (await n2.lookup(`bob@${TEST_DOMAIN}`)).some((c) => c.contact === bob.contact));
    // n2 reconciles with the Kamailio that loaded the row, and does not take bob for its own.
    await waitFor("n2 reconciled after the restart", async () => ((await status(n2)).kamailio?.lastReconcile?.at ?? "") > restartedAt, 20_000, 100);
    // Kamailio answers again: writes go through jsonrpcs, whatever way the last one went.
    expect((await status(n2)).kamailio?.writer).toBe("rpc");
    // A second phone of bob's registers at n2: its event lists the row n2's Kamailio loaded, and
    // n2 must not learn that one as a registration of its own (it is n1's phone).
    const desk = await sippRegister({ dir, sipPort: n2.kamailio.sipPort, user: "bob", domain: TEST_DOMAIN, expires: 300 });
    for (const node of [n1, n2]) {
      const owned = async () => Object.fromEntries((await node.agent.call<{ bindings: Location[] }>("location.lookup", { aor: `bob@${TEST_DOMAIN}` })).bindings.map((b) => [b.contact, b.owner]));
      await waitFor(`bob's desk phone on ${node.id}`, async () => (await owned())[desk.contact] === "n2");
      expect(await owned(), node.id).toEqual({ [bob.contact]: "n1", [laptop.contact]: "n2", [desk.contact]: "n2" });
    }
    const phone = startPhone({ dir, port: bob.localPort, name: "bob" });
    try {
      await sippCall({ dir, proxyPort: n2.kamailio.sipPort, to: `sip:bob@${TEST_DOMAIN}` });
      await expect.poll(() => phone.answered()).toBe(1);
    } finally {
      await phone.stop();
    }
    expect((await n2.lookup(`alice@${TEST_DOMAIN}`)).map((c) => c.contact)).toEqual([alice.contact]);

    // The row the fallback wrote takes later writes: bob's phone refreshes at n1 (CSeq 6, 900 s),
    // and n2's Kamailio holds the new expiry. (With the phone's CSeq on the row, every ul.add of
    // that contact failed "500 Can't get record", and Kamailio dropped bob at the old expiry.)
    await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "bob", domain: TEST_DOMAIN, expires: 900, callId: "bob-phone", cseq: 6, localPort: bob.localPort });
    await waitFor("bob's refresh in n2's Kamailio", async () =>
      (await n2.lookup(`bob@${TEST_DOMAIN}`)).some((c) => c.contact === bob.contact && Math.abs(c.expires - (Date.now() / 1000 + 900)) < 10));
    expect((await status(n2)).kamailio?.rejected).toBe(0);
  });

  it("keeps a change pending and reports it while FIFO and database are both gone, then applies it", async () => {
    renameSync(n2.kamailio.fifoPath, `${n2.kamailio.fifoPath}.away`);
    renameSync(dbPath, `${dbPath}.away`);
    const carol = await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "carol", domain: TEST_DOMAIN, expires: 300 });

    const pending = await waitFor("n2 reports a pending write", async () => {
      const s = await status(n2);
      return s.kamailio?.writer === "pending" && s.pendingWrites >= 1 ? s : null;
    });
    expect(pending.kamailio?.lastError).toMatch(/unreachable/);
    expect(await n2.agent.metric("locmesh_pending_kamailio_writes")).toBeGreaterThanOrEqual(1);
    // ...and the peer that sent it sees it too.
    await waitFor("n1 sees n2's pending write", async () => ((await status(n1)).peers.find((p) => p.nodeId === "n2")?.pendingWrites ?? 0) >= 1);

    // Both come back. (With only the FIFO back, a db_mode 1 Kamailio may itself answer 500 "Can't
    // insert contact" while its database is gone; the agent retries that too.)
    renameSync(`${n2.kamailio.fifoPath}.away`, n2.kamailio.fifoPath);
    renameSync(`${dbPath}.away`, dbPath);
    await waitFor("carol in n2's Kamailio", async () => (await n2.lookup(`carol@${TEST_DOMAIN}`)).map((c) => c.contact).join() === carol.contact, 20_000, 100);
    expect(locationRow("carol")?.contact).toBe(carol.contact);
    // Written, by either route: the FIFO, or (a FIFO attempt that failed while the two came back,
    // on a loaded machine) the database that is back; both are right, "pending" is not.
    let last: ClusterStatus | null = null;
    await waitFor("nothing pending", async () => {
      last = await status(n2);
      return last.pendingWrites === 0 && (last.kamailio?.writer === "rpc" || last.kamailio?.writer === "database");
    }, 30_000).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; n2's last status: ${JSON.stringify({ pendingWrites: last?.pendingWrites, kamailio: last?.kamailio })}`);
    });
    expect((await status(n2)).kamailio?.rejected).toBe(0);
  });

  it("writes again over the FIFO, once it is back, what went into the database only, also across an agent restart and with the reconcile skipped", async () => {
    // Above reconcileMaxContacts (0 here) the reconcile does not look, so only the agent's own note
    // of what went into the database can bring it into the running db_mode 1 Kamailio.
    const agentKamailio = n2.agent.spec.config!["kamailio"] as Record<string, unknown>;
    n2.agent.spec.config!["kamailio"] = { ...agentKamailio, reconcileMaxContacts: 0 };
    try {
      renameSync(n2.kamailio.fifoPath, `${n2.kamailio.fifoPath}.away`);
      const grace = await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "grace", domain: TEST_DOMAIN, expires: 300 });
      await waitFor("grace's row in n2's database", async () => locationRow("grace")?.contact === grace.contact);
      await waitFor("n2's writer on the database", async () => (await status(n2)).kamailio?.writer === "database");

      // The agent restarts before Kamailio answers again: the note is in its journal.
      await n2.agent.stop();
      await n2.agent.start();
      renameSync(`${n2.kamailio.fifoPath}.away`, n2.kamailio.fifoPath);
      await waitFor("grace in n2's running Kamailio", async () => (await n2.lookup(`grace@${TEST_DOMAIN}`)).map((c) => c.contact).join() === grace.contact, 20_000, 100);
      const s = await status(n2);
      expect(s.kamailio?.lastReconcile?.outcome).toBe("skipped");
      expect(s.kamailio?.writer).toBe("rpc");
      await n2.agent.waitForLog(/wrote again over jsonrpcs what had gone into Kamailio's database only/);
      // Kamailio (db_mode 1) took the write as a contact it did not hold and wrote its own row: the
      // agent's row beside it is dropped, else Kamailio loads grace twice at its next start.
      const held = (await n2.lookup(`grace@${TEST_DOMAIN}`))[0]!.ruid;
      await waitFor("one row for grace in n2's database", async () => locationRows("grace").length === 1);
      expect(locationRows("grace")).toMatchObject([{ ruid: held, contact: grace.contact }]);
      await n2.kamailio.restart();
      await waitFor("grace back in n2's Kamailio", async () => (await n2.lookup(`grace@${TEST_DOMAIN}`)).length > 0, 20_000, 100);
      expect((await n2.lookup(`grace@${TEST_DOMAIN}`)).map((c) => c.contact)).toEqual([grace.contact]);
    } finally {
      n2.agent.spec.config!["kamailio"] = agentKamailio;
    }
  });

  it("brings an API removal made while Kamailio did not answer into it once it does, also across an agent restart and with the reconcile skipped", async () => {
    const agentKamailio = n2.agent.spec.config!["kamailio"] as Record<string, unknown>;
    n2.agent.spec.config!["kamailio"] = { ...agentKamailio, reconcileMaxContacts: 0 };
    try {
      await n2.agent.stop();
      await n2.agent.start();
      const aor = `static@${TEST_DOMAIN}`;
      const contact = "sip:static@192.0.2.77:5060";
      // A second contact stays: with a live binding in the journal, reconcileMaxContacts 0 skips every reconcile.
      const added = await n2.agent.call<{ notes?: string[] }>("location.publish", {
        edits: [{ op: "upsert", binding: { aor, contact, expires: 0 } }, { op: "upsert", binding: { aor, contact: "sip:stays@192.0.2.78:5060", expires: 0 } }],
      });
      expect(added.notes ?? []).toEqual([]);
      expect((await n2.lookup(aor)).map((c) => c.contact).sort()).toEqual([contact, "sip:stays@192.0.2.78:5060"].sort());

      renameSync(n2.kamailio.fifoPath, `${n2.kamailio.fifoPath}.away`);
      const removed = await n2.agent.call<{ notes?: string[] }>("location.publish", { edits: [{ op: "remove", aor, contact }] });
      expect(removed.notes?.join(" ")).toMatch(/not (be )?updated now.*keeps the edit in its journal/);
      await n2.agent.stop();
      await n2.agent.start();
      renameSync(`${n2.kamailio.fifoPath}.away`, n2.kamailio.fifoPath);
      await waitFor("the removal in n2's running Kamailio", async () => (await n2.lookup(aor)).map((c) => c.contact).join() === "sip:stays@192.0.2.78:5060", 20_000, 100);
      expect((await status(n2)).kamailio?.lastReconcile?.outcome).toBe("skipped");
      await n2.agent.waitForLog(/API edits that had waited for this node's Kamailio are in it now/);
    } finally {
      n2.agent.spec.config!["kamailio"] = agentKamailio;
    }
  });

  it("removes the second copy of a contact a restarted Kamailio loaded twice from its database, row and all", async () => {
    // With the config the tests above changed for their own runs (they restarted it with the reconcile skipped).
    await n2.agent.stop();
    await n2.agent.start();
    const heidi = await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "heidi", domain: TEST_DOMAIN, expires: 300 });
    await waitFor("heidi's row in n2's database", async () => locationRows("heidi").length === 1);
    // A second row of the same contact under another ruid: what an agent killed between its
    // fallback write and the settle left behind (both under ul.add's Call-ID).
    const db = new Database(dbPath, { fileMustExist: true });
    try {
      const cols = (db.prepare("PRAGMA table_info(location)").all() as { name: string }[]).map((c) => c.name).filter((c) => c !== "id" && c !== "ruid");
      db.prepare(`INSERT INTO location (ruid, ${cols.join(", ")}) SELECT 'locmesh-copy-1', ${cols.join(", ")} FROM location WHERE username = ? AND domain = ?`).run("heidi", TEST_DOMAIN);
    } finally {
      db.close();
    }
    expect(locationRows("heidi")).toHaveLength(2);
    await n2.kamailio.restart();
    const restartedAt = new Date().toISOString();
    await waitFor("n2 reconciled after the restart", async () => ((await status(n2)).kamailio?.lastReconcile?.at ?? "") > restartedAt, 20_000, 100);
    expect((await status(n2)).kamailio?.lastReconcile?.outcome).toBe("done");
    await waitFor("one copy of heidi in n2's Kamailio", async () => (await n2.lookup(`heidi@${TEST_DOMAIN}`)).length === 1, 20_000, 100);
    expect((await n2.lookup(`heidi@${TEST_DOMAIN}`)).map((c) => c.contact)).toEqual([heidi.contact]);
    // usrloc deletes the copy's row by its ruid (db_ops_ruid): one row stays, and the next start loads one.
    await waitFor("one row for heidi in n2's database", async () => locationRows("heidi").length === 1);
    await n2.agent.waitForLog(/removed second copies of contacts Kamailio held twice/);
    await n2.kamailio.restart();
    await waitFor("heidi back in n2's Kamailio", async () => (await n2.lookup(`heidi@${TEST_DOMAIN}`)).length > 0, 20_000, 100);
    expect((await n2.lookup(`heidi@${TEST_DOMAIN}`)).map((c) => c.contact)).toEqual([heidi.contact]);
  });
});

describe("Kamailio with usrloc db_mode 3", () => {
  const journalHas = async (node: ClusterNode, aor: string) => (await node.agent.call<{ bindings: unknown[] }>("location.lookup", { aor })).bindings.length;

  it("reconciles against the database: bindings registered there stay, others are not rewritten", async () => {
    await sippRegister({ dir, sipPort: n3.kamailio.sipPort, user: "dave", domain: TEST_DOMAIN, expires: 300 });
    await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "erin", domain: TEST_DOMAIN, expires: 300 });
    await waitFor("dave on n1 and erin in n3's Kamailio", async () =>
      (await journalHas(n1, `dave@${TEST_DOMAIN}`)) === 1 && (await n3.lookup(`erin@${TEST_DOMAIN}`)).length === 1);
    const after = Date.now();
    // Two whole reconcile runs on n3 that began after both bindings were in place.
    const s = await waitFor("two reconciles on n3", async () => {
      const st = await status(n3);
      return st.kamailio?.lastReconcile && Date.parse(st.kamailio.lastReconcile.at) > after + 1500 ? st : null;
    }, 20_000, 200);
    // It read every live binding of the cluster from its database, and had nothing to change.
    expect(s.kamailio?.lastReconcile).toMatchObject({ learned: 0, repaired: 0, contacts: s.counts.locations });
    expect(s.counts.locations).toBeGreaterThanOrEqual(2);
    expect(await journalHas(n3, `dave@${TEST_DOMAIN}`)).toBe(1);
    expect(await journalHas(n1, `dave@${TEST_DOMAIN}`)).toBe(1);
    expect((await n3.lookup(`dave@${TEST_DOMAIN}`)).length).toBe(1);
  });
});
