/**
 * An agent beside a Kamailio whose usrloc writes back to SQLite (db_mode 2) and which loaded one
 * contact twice at its start (two rows under two ruids: an agent killed between its database
 * fallback write and the settle leaves that). The reconcile takes out one copy; usrloc in db_mode 2
 * only marks it until its timer runs, and a repair's ul.add of the contact meanwhile brought the
 * marked copy back, so both copies stayed run after run (kamailio-usrloc-copies.test.ts shows the
 * Kamailio side). With the plan's one copy per run and no write while a removed copy lingers, one
 * copy stays, as the journal has it, and one row.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { UL_ADD_CALLID } from "../../agent/kamailio/registrar-input.js";
import { waitFor } from "../support/agent-process.js";
import { kamailioDbCfg } from "../support/kamailio-cfg.js";
import { TEST_DOMAIN, startKamailioCluster, type ClusterNode, type KamailioCluster } from "../support/kamailio-cluster.js";
import { createKamailioSqlite } from "../support/kamailio-schema.js";
import { sippRegister } from "../support/sipp.js";

let dir: string;
let dbPath: string;
let cluster: KamailioCluster;
let n1: ClusterNode;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-dbmode2-"));
  dbPath = createKamailioSqlite(join(dir, "kamailio.db"));
  const url = `sqlite://${dbPath}`;
  cluster = await startKamailioCluster({
    baseDir: dir,
    n: 1,
    node: () => ({
      // usrloc writes its changes back every 2 s (its default is 60 s).
      kamailio: { extraCfg: `${kamailioDbCfg({ url, mode: 2 })}\nmodparam("usrloc", "timer_interval", 2)` },
      agentKamailio: { db: { url, dbMode: 2 }, reconcileIntervalSec: 1 },
    }),
  });
  [n1] = cluster.nodes as [ClusterNode];
}, 60_000);

afterAll(async () => {
  await cluster?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function rows(user: string): { ruid: string; expires: number }[] {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return db.prepare("SELECT ruid, expires FROM location WHERE username = ? AND domain = ? ORDER BY id").all(user, TEST_DOMAIN) as { ruid: string; expires: number }[];
  } finally {
    db.close();
  }
}

describe("an agent beside a Kamailio with usrloc db_mode 2", () => {
  it("takes a contact Kamailio loaded twice down to one copy and one row, and keeps it there", async () => {
    const judy = await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "judy", domain: TEST_DOMAIN, expires: 600 });
    await waitFor("judy's row written back", async () => rows("judy").length === 1, 10_000, 100);
    // Two rows as the agent's fallback writes them (ul.add's Call-ID), under two ruids, both with
    // an expiry the journal does not have (Julian days: 300 s sooner), so the copy the reconcile
    // keeps needs a repair.
    const db = new Database(dbPath, { fileMustExist: true });
    try {
      const cols = (db.prepare("PRAGMA table_info(location)").all() as { name: string }[]).map((c) => c.name).filter((c) => c !== "id" && c !== "ruid");
      db.prepare(`INSERT INTO location (ruid, ${cols.join(", ")}) SELECT 'second-copy', ${cols.join(", ")} FROM location WHERE username = 'judy'`).run();
      db.prepare("UPDATE location SET expires = expires - 300.0 / 86400, callid = ?, cseq = 1 WHERE username = 'judy'").run(UL_ADD_CALLID);
    } finally {
      db.close();
    }
    await n1.kamailio.restart();
    const restartedAt = new Date().toISOString();
    const aor = `judy@${TEST_DOMAIN}`;
    await waitFor("a reconcile after the restart", async () =>
      ((await n1.agent.call<ClusterStatus>("cluster.status")).kamailio?.lastReconcile?.at ?? "") > restartedAt, 20_000, 100);
    await waitFor("one copy of judy, as the journal has it", async () => {
      const held = await n1.lookup(aor);
      return held.length === 1 && held[0]!.expires > Date.now() / 1000 + 500;
    }, 20_000, 100);
    // And it stays one: several reconciles and usrloc timer runs later, one copy and one row.
    const reconciles = (await n1.agent.call<ClusterStatus>("cluster.status")).kamailio?.lastReconcile?.at ?? "";
    await waitFor("three more reconciles", async () => {
      const at = (await n1.agent.call<ClusterStatus>("cluster.status")).kamailio?.lastReconcile?.at ?? "";
      return at > reconciles && Date.parse(at) - Date.parse(reconciles) >= 3000;
    }, 20_000, 200);
    expect((await n1.lookup(aor)).map((c) => c.contact)).toEqual([judy.contact]);
    await waitFor("one row for judy", async () => rows("judy").length === 1, 10_000, 100);
  }, 90_000);
});
