/**
 * Issue 3, database fallback: with its FIFO gone, node 2's agent writes replicated bindings
 * straight into Kamailio's SQLite `location` table (Julian-day expiry), and a Kamailio started on
 * that database (db_mode 1) routes calls with them. With the database gone too, the change stays
 * pending, shows in status and metrics and at the sending peer, and is written once the FIFO
 * comes back.
 */
import { mkdtempSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/protocol.js";
import { julianDayToUnix } from "../../agent/kamailio/kamailio-db-encoding.js";
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

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-kfallback-"));
  dbPath = createKamailioSqlite(join(dir, "n2-kamailio.db"));
  const url = `sqlite://${dbPath}`;
  cluster = await startKamailioCluster({
    baseDir: dir,
    n: 2,
    node: (i) =>
      i === 1
        ? {
            kamailio: { extraCfg: kamailioDbCfg({ url, mode: 1 }) },
            // FIFO only (no datagram socket), so removing the FIFO cuts jsonrpcs off.
            agentKamailio: { dgram: null, db: { url, dbMode: 1 }, timeoutMs: 1000 },
          }
        : {},
  });
  [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
}, 60_000);

afterAll(async () => {
  await cluster?.close();
  rmSync(dir, { recursive: true, force: true });
});

const status = (node: ClusterNode) => node.agent.call<ClusterStatus>("cluster.status");

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
    const bob = await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "bob", domain: TEST_DOMAIN, expires: 300 });
    const row = await waitFor("bob's row in n2's database", async () => locationRow("bob"));
    expect(row.contact).toBe(bob.contact);
    // db_sqlite's encoding: a Julian-day REAL, here about now + 300 s.
    expect(typeof row.expires).toBe("number");
    expect(Math.abs(julianDayToUnix(row.expires) - (Date.now() / 1000 + 300))).toBeLessThan(5);
    const s = await status(n2);
    expect(s.kamailio?.writer).toBe("database");
    expect(await n2.agent.metric("locmesh_kamailio_writes_total", { route: "database" })).toBeGreaterThanOrEqual(1);

    // Kamailio restarts on that database (db_mode 1 loads it) and routes a call to bob's phone.
    await n2.kamailio.restart();
    await waitFor("bob loaded by n2's Kamailio", async () => (await n2.lookup(`bob@${TEST_DOMAIN}`)).length === 1);
    const phone = startPhone({ dir, port: bob.localPort, name: "bob" });
    try {
      await sippCall({ dir, proxyPort: n2.kamailio.sipPort, to: `sip:bob@${TEST_DOMAIN}` });
      expect(phone.answered()).toBe(1);
    } finally {
      await phone.stop();
    }
    expect((await n2.lookup(`alice@${TEST_DOMAIN}`)).map((c) => c.contact)).toEqual([alice.contact]);
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
    await waitFor("nothing pending", async () => {
      const s = await status(n2);
      return s.pendingWrites === 0 && s.kamailio?.writer === "rpc";
    });
    expect((await status(n2)).kamailio?.rejected).toBe(0);
  });
});
