/**
 * An agent beside a usrloc db_mode 3 Kamailio (no cache: every lookup reads the database). There
 * `ul.dump` is always empty (kamailio-5.6.md surprise 7), so the agent must reconcile against the
 * database: against the empty dump it took every binding registered on its node for
 * de-registered, removed them from the whole cluster, and rewrote every other node's binding on
 * each run (found by the fifo-removed drill).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/protocol.js";
import { waitFor } from "../support/agent-process.js";
import { kamailioDbCfg } from "../support/kamailio-cfg.js";
import { TEST_DOMAIN, startKamailioCluster, type ClusterNode, type KamailioCluster } from "../support/kamailio-cluster.js";
import { createKamailioSqlite } from "../support/kamailio-schema.js";
import { sippRegister } from "../support/sipp.js";

let dir: string;
let cluster: KamailioCluster;
let n1: ClusterNode;
let n2: ClusterNode;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-kmode3-"));
  const url = `sqlite://${createKamailioSqlite(join(dir, "n1-kamailio.db"))}`;
  cluster = await startKamailioCluster({
    baseDir: dir,
    n: 2,
    agentKamailio: { reconcileIntervalSec: 1 },
    node: (i) => (i === 0 ? { kamailio: { extraCfg: kamailioDbCfg({ url, mode: 3 }) }, agentKamailio: { db: { url, dbMode: 3 } } } : {}),
  });
  [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
}, 60_000);

afterAll(async () => {
  await cluster?.close();
  rmSync(dir, { recursive: true, force: true });
});

const status = (node: ClusterNode) => node.agent.call<ClusterStatus>("cluster.status");
const journalHas = async (node: ClusterNode, aor: string) => (await node.agent.call<{ bindings: unknown[] }>("location.lookup", { aor })).bindings.length;

describe("Kamailio with usrloc db_mode 3", () => {
  it("reconciles against the database: bindings registered there stay, others are not rewritten", async () => {
    await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "alice", domain: TEST_DOMAIN, expires: 300 });
    await sippRegister({ dir, sipPort: n2.kamailio.sipPort, user: "bob", domain: TEST_DOMAIN, expires: 300 });
    await waitFor("alice on n2 and bob in n1's Kamailio", async () =>
      (await journalHas(n2, `alice@${TEST_DOMAIN}`)) === 1 && (await n1.lookup(`bob@${TEST_DOMAIN}`)).length === 1);
    const after = Date.now();
    // Two whole reconcile runs on n1 that began after both bindings were in place.
    const s = await waitFor("two reconciles on n1", async () => {
      const st = await status(n1);
      return st.kamailio?.lastReconcile && Date.parse(st.kamailio.lastReconcile.at) > after + 1500 ? st : null;
    }, 20_000, 200);
    expect(s.kamailio?.lastReconcile).toMatchObject({ learned: 0, repaired: 0, contacts: 2 });
    expect(await journalHas(n1, `alice@${TEST_DOMAIN}`)).toBe(1);
    expect(await journalHas(n2, `alice@${TEST_DOMAIN}`)).toBe(1);
    expect((await n1.lookup(`alice@${TEST_DOMAIN}`)).length).toBe(1);
  });
});
