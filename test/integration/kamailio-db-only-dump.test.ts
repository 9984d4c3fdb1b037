/**
 * A Kamailio whose usrloc runs db_mode 3 (database only), attached by an agent not told so (no
 * `kamailio.db`): its ul.dump is always empty (usrloc keeps nothing in memory; ul.lookup reads the
 * database). Found by the 2026-11-23 review of "Attach to your Kamailio": the reconcile took every
 * phone registered at the node for a de-registration whose event never came, and removed it from
 * the journal and the whole cluster, every reconcile. Now it looks a few of them up first, finds
 * them, removes nothing and fails saying what to configure.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { sleep, waitFor } from "../support/agent-process.js";
import { kamailioDbCfg } from "../support/kamailio-cfg.js";
import { TEST_DOMAIN, startKamailioCluster, type ClusterNode, type KamailioCluster } from "../support/kamailio-cluster.js";
import { createKamailioSqlite } from "../support/kamailio-schema.js";
import { sippRegister } from "../support/sipp.js";

let dir: string;
let cluster: KamailioCluster;
let n1: ClusterNode;
let n2: ClusterNode;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-dbonly-"));
  const url = `sqlite://${createKamailioSqlite(join(dir, "n1-kamailio.db"))}`;
  cluster = await startKamailioCluster({
    baseDir: dir,
    n: 2,
    // n1's agent has no kamailio.db: it reads n1's table with ul.dump. It reconciles every 2 s.
    node: (i) => (i === 0 ? { kamailio: { extraCfg: kamailioDbCfg({ url, mode: 3 }) }, agentKamailio: { reconcileIntervalSec: 2 } } : {}),
  });
  [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
}, 60_000);

afterAll(async () => {
  await cluster?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const aor = `alice@${TEST_DOMAIN}`;
const journalHas = async (n: ClusterNode) => (await n.agent.call<{ bindings: unknown[] }>("location.lookup", { aor })).bindings.length;
const lastReconcile = async (n: ClusterNode) => (await n.agent.call<ClusterStatus>("cluster.status")).kamailio?.lastReconcile ?? null;

describe("usrloc db_mode 3 attached without kamailio.db (ul.dump always empty)", () => {
  it("keeps the node's own phones on every node, and the reconcile fails saying to set kamailio.db", async () => {
    await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "alice", domain: TEST_DOMAIN, expires: 300 });
    await waitFor("alice on both nodes", async () => (await journalHas(n1)) === 1 && (await journalHas(n2)) === 1, 20_000, 100);
    // Kamailio holds her (in its database), and its dump lists nothing.
    expect((await n1.lookup(aor)).length).toBe(1);
    expect(await n1.dump()).toEqual([]);

    // Reconciles that began after the REGISTER (and its Last-Modified second) was over.
    await sleep(1500);
    const since = Date.now();
    const failed = await waitFor("a reconcile after the REGISTER", async () => {
      const r = await lastReconcile(n1);
      return r !== null && Date.parse(r.at) > since ? r : null;
    }, 15_000, 200);
    expect(failed.outcome, JSON.stringify(failed)).toBe("failed");
    expect(failed.reason).toMatch(/ul\.dump did not list alice@example\.com's contact sip:alice@127\.0\.0\.1:\d+, which Kamailio holds .*give the agent kamailio\.db \(its url, and dbMode: 3\)/);
    // A second run, and still nothing removed anywhere.
    await waitFor("another reconcile", async () => Date.parse((await lastReconcile(n1))?.at ?? "0") > Date.parse(failed.at), 10_000, 200);
    expect(await journalHas(n1)).toBe(1);
    expect(await journalHas(n2)).toBe(1);
    expect((await n2.lookup(aor)).length).toBe(1);
  });
});
