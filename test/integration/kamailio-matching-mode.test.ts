/**
 * A Kamailio whose usrloc matches contacts by URI and Call-ID (matching_mode 1), which locmesh does
 * not support: ul.rm_contact, whose Call-ID is its own, cannot find a phone's contact. With real
 * Kamailio 5.6 and sipp, a phone that registers one contact under two Call-IDs (as a rebooted phone
 * does) leaves two copies in such a Kamailio; the agent's reconcile says what that means in its
 * status and its log, and which setting to change.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { waitFor } from "../support/agent-process.js";
import { TEST_DOMAIN, startKamailioCluster, type ClusterNode, type KamailioCluster } from "../support/kamailio-cluster.js";
import { sippRegister } from "../support/sipp.js";

let dir: string;
let cluster: KamailioCluster;
let n1: ClusterNode;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-matching-"));
  cluster = await startKamailioCluster({
    baseDir: dir,
    n: 1,
    node: () => ({ kamailio: { extraCfg: 'modparam("usrloc", "matching_mode", 1)' }, agentKamailio: { reconcileIntervalSec: 1 } }),
  });
  [n1] = cluster.nodes as [ClusterNode];
}, 60_000);

afterAll(async () => {
  await cluster?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("an agent beside a Kamailio with usrloc matching_mode 1", () => {
  it("reports, after a reconcile, a contact Kamailio holds under two phones' Call-IDs, and says to set matching_mode 0", async () => {
    const first = await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "ivan", domain: TEST_DOMAIN, callId: "ivan-boot-1" });
    await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "ivan", domain: TEST_DOMAIN, callId: "ivan-boot-2", localPort: first.localPort });
    // Kamailio keeps the two apart: that is the setting.
    expect((await n1.lookup(`ivan@${TEST_DOMAIN}`)).map((c) => c.callid).sort()).toEqual(["ivan-boot-1", "ivan-boot-2"]);
    const reconcile = await waitFor("a reconcile that warns", async () => {
      const r = (await n1.agent.call<ClusterStatus>("cluster.status")).kamailio?.lastReconcile;
      return r?.outcome === "done" && r.reason !== null ? r : null;
    }, 20_000, 100);
    expect(reconcile.reason).toMatch(new RegExp(`^Kamailio holds 1 contact twice under two phones' Call-IDs \\(${first.contact.replace(/\./g, "\\.")} of ivan@${TEST_DOMAIN.replace(/\./g, "\\.")}\\): usrloc's matching_mode looks like 1`));
    expect(reconcile.reason).toMatch(/Set modparam\("usrloc", "matching_mode", 0\)/);
    await n1.agent.waitForLog(/matching_mode looks like 1.*Repeated hourly while found/);
  });
});
