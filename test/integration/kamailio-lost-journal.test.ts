/**
 * A lost disk on a node whose Kamailio keeps usrloc in its database (db_mode 2, write-back), with
 * real Kamailio 5.6 and agents: the agent starts with an empty journal, catches up from its peer,
 * and reloads Kamailio by difference with its `location` table. Found by the 2026-11-23 operator
 * dry run: that reload removed every phone registered at the node since Kamailio started (the
 * journal held them live, but the plan skipped them and then took their rows for ones to remove),
 * and the next reconcile removed them from the whole cluster.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { FIRST_CONTACT } from "../../agent/kamailio/instance-watch.js";
import { sleep, waitFor } from "../support/agent-process.js";
import { kamailioDbCfg } from "../support/kamailio-cfg.js";
import { TEST_DOMAIN, startKamailioCluster, type ClusterNode, type KamailioCluster } from "../support/kamailio-cluster.js";
import { createKamailioSqlite } from "../support/kamailio-schema.js";
import { sippRegister } from "../support/sipp.js";

let dir: string;
let dbPath: string;
let cluster: KamailioCluster;
let n1: ClusterNode;
let n2: ClusterNode;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-lostjournal-"));
  dbPath = createKamailioSqlite(join(dir, "n1-kamailio.db"));
  const url = `sqlite://${dbPath}`;
  cluster = await startKamailioCluster({
    baseDir: dir,
    n: 2,
    // usrloc writes its changed contacts to the database every second (timer_interval 1).
    node: (i) => (i === 0
      ? { kamailio: { extraCfg: `${kamailioDbCfg({ url, mode: 2 })}\nmodparam("usrloc", "timer_interval", 1)` }, agentKamailio: { db: { url, dbMode: 2 } } }
      : {}),
  });
  [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
}, 60_000);

afterAll(async () => {
  await cluster?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const aor = (user: string) => `${user}@${TEST_DOMAIN}`;
const status = (n: ClusterNode) => n.agent.call<ClusterStatus>("cluster.status");
const journalHas = async (n: ClusterNode, user: string) => (await n.agent.call<{ bindings: unknown[] }>("location.lookup", { aor: aor(user) })).bindings.length;

function rowsFor(users: string[]): number {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return users.filter((u) => db.prepare("SELECT 1 FROM location WHERE username = ? AND domain = ?").get(u, TEST_DOMAIN) !== undefined).length;
  } finally {
    db.close();
  }
}

describe("a lost journal beside a Kamailio that keeps usrloc in its database", () => {
  it("keeps the node's own phones, registered since Kamailio started, in Kamailio and on every node", async () => {
    const users = ["alice", "bob"];
    // Registered well after Kamailio started (the reload leaves such phones to Kamailio: it holds them).
    await sleep(3000);
    for (const user of users) await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user, domain: TEST_DOMAIN, expires: 300 });
    await waitFor("both on n2 and in n1's location table", async () =>
      (await journalHas(n2, "alice")) === 1 && (await journalHas(n2, "bob")) === 1 && rowsFor(users) === 2, 20_000, 100);

    // The disk is lost: the agent starts with no journal and no record of its Kamailio.
    await n1.agent.stop();
    rmSync(join(n1.agent.spec.dir, "data"), { recursive: true, force: true });
    await n1.agent.start();
    const reloaded = await waitFor("n1's reload by difference after its catch-up", async () => {
      const s = await status(n1);
      return s.kamailio?.reload.state === "done" && s.counts.locations >= 2 ? s : null;
    }, 30_000, 200);
    // No record of its Kamailio: not called a restart (nor counted as one).
    expect(reloaded.kamailio?.reload.reason).toBe(FIRST_CONTACT);
    expect(reloaded.kamailio?.restarts).toBe(0);
    for (const user of users) expect(await n1.lookup(aor(user))).toHaveLength(1);

    // And a reconcile after it takes nothing for de-registered.
    const after = Date.now();
    await waitFor("a reconcile on n1 after the reload", async () => {
      const s = await status(n1);
      return s.kamailio?.lastReconcile && Date.parse(s.kamailio.lastReconcile.at) > after ? s : null;
    }, 20_000, 200);
    for (const user of users) {
      expect(await n1.lookup(aor(user))).toHaveLength(1);
      expect(await journalHas(n1, user)).toBe(1);
      expect(await journalHas(n2, user)).toBe(1);
    }
    expect((await status(n1)).counts.tombstones).toBe(0);
  }, 90_000);
});
