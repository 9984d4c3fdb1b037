/**
 * A journal that holds a change its peers refuse, as agents before the local check (core/local-check.ts)
 * could write one: the operator's dry run journaled AoRs without @domain from a Kamailio with usrloc
 * use_domain 0, and both peers refused every later batch of that node with nothing but
 * "disconnected: 4004 batch rejected" to show for it. Now the refusal names the field and value,
 * and the refused node's status says which change, what it holds back and what to do; the link
 * stays up and carries everything else.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatStatus } from "../../agent/cli/client-output.js";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { AgentProcess, makeCluster, sleep, waitFor } from "../support/agent-process.js";
import { aliasDraft, binding, counterStamp, locDraft } from "../support/fixtures.js";

let dir: string;
let agents: AgentProcess[];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-poisoned-"));
  agents = await makeCluster(dir, 2);
  const [n1] = agents as [AgentProcess, AgentProcess];
  // n1's journal as the old reconcile left it: a domainless AoR, then an alias set after it.
  const dataDir = join(n1.spec.dir, "data");
  mkdirSync(dataDir, { recursive: true });
  const store = openSqliteStore({ path: join(dataDir, "journal.sqlite"), nodeId: "n1" });
  await store.commitLocal([
    locDraft("alice", "sip:alice@192.0.2.1:5060", binding({ owner: "n1", expires: Math.floor(Date.now() / 1000) + 3600 })),
    aliasDraft("probe1@example.com", "sip:bob@example.com"),
  ], counterStamp(Date.now() * 1024));
  store.markSeeded();
  await store.close();
  for (const a of agents) await a.start();
}, 60_000);

afterAll(async () => {
  for (const a of agents ?? []) await a.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("a journal holding a change its peers refuse", () => {
  it("is named by the peer's refusal and in the refused node's status, with what it holds back and what to do", async () => {
    const [n1, n2] = agents as [AgentProcess, AgentProcess];
    const status = await waitFor("n1's batches refused", async () => {
      const s = await n1.call<ClusterStatus>("cluster.status");
      return (s.batchesRefused?.length ?? 0) > 0 ? s : null;
    }, 15_000, 100);
    const [refusal] = status.batchesRefused!;
    expect(refusal).toMatchObject({
      peer: "n2",
      origin: status.replicaId,
      reason: 'invalid params: changes.0.key: AoR "alice" must look like user@domain (with or without sip:), without parameters',
      change: { seq: 1, kind: "loc", key: "alice", sub: "sip:alice@192.0.2.1:5060" },
    });
    const text = formatStatus(status);
    expect(text.split("\n")[0]).toMatch(/^PEERS REFUSE THIS NODE'S CHANGES: n2 refuses n1~\w+'s changes since .*: invalid params: changes\.0\.key: AoR "alice" must look like user@domain/);
    expect(text).toContain(`(the change: ${status.replicaId} #1, loc "alice" sip:alice@192.0.2.1:5060)`);
    expect(text).toContain("move dataDir/journal.sqlite* aside");
    // The link's last error says it too, and the link stays up: it closed at each refusal before,
    // so what n2 sends n1 stopped as well.
    const link = await waitFor("n1's link to n2 showing the refusal", async () => {
      const p = (await n1.call<ClusterStatus>("cluster.status")).peers[0];
      return p?.lastError?.includes('batch rejected: invalid params: changes.0.key: AoR "alice"') ? p : null;
    }, 15_000, 100);
    expect(link.connected).toBe(true);
    expect(link.lastError).toContain("'s later changes wait; tried again every 60 s)");
    await n2.call("alias.set", { alias: "from-n2@example.com", target: "sip:carol@example.com" });
    await waitFor("n2's alias on n1", async () => (await n1.call<{ items: { alias: string }[] }>("alias.list", {})).items.some((i) => i.alias === "from-n2@example.com"), 10_000, 100);
    const since = link.connectedSince;
    // n1's alias set after it never reached n2, and the session was never closed meanwhile.
    await sleep(1000);
    expect((await n2.call<{ items: { alias: string }[] }>("alias.list", {})).items.map((i) => i.alias)).toEqual(["from-n2@example.com"]);
    const after = (await n1.call<ClusterStatus>("cluster.status")).peers[0]!;
    expect([after.connected, after.connectedSince]).toEqual([true, since]);
  }, 60_000);
});
