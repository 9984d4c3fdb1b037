/**
 * Growing a running cluster: a third node joins once the two running nodes list it in their config
 * and get SIGHUP. Until then they refuse it; afterwards it holds everything and its own changes
 * reach them, and neither of them restarted.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ListResult } from "../../agent/contract/api-protocol.js";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import type { Alias, Location } from "../../agent/contract/records.js";
import { AgentProcess, freePort, waitFor } from "../support/agent-process.js";

const SECRET = "join-test-cluster-secret-0123456789";
let dir: string;
let n1: AgentProcess;
let n2: AgentProcess;
let n3: AgentProcess;

async function dump(a: AgentProcess): Promise<string[]> {
  const out: string[] = [];
  for (const [method, show] of [
    ["alias.list", (x: Alias) => `alias ${x.alias} => ${x.target}`],
    ["location.list", (x: Location) => `loc ${x.aor} ${x.contact} ${x.owner}`],
  ] as const) {
    let after = "";
    do {
      const page = await a.call<ListResult<Alias & Location>>(method, { limit: 1000, after });
      out.push(...page.items.map(show));
      after = page.next ?? "";
    } while (after !== "");
  }
  return out;
}

const connected = async (a: AgentProcess, peer: string) =>
  (await a.call<ClusterStatus>("cluster.status")).peers.some((p) => p.nodeId === peer && p.connected);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-join-"));
  const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()];
  const url = (port: number) => `ws://127.0.0.1:${port}`;
  const node = async (id: string, meshPort: number, peers: { id: string; url: string }[]) =>
    new AgentProcess({ id, meshPort, apiPort: await freePort(), dir: join(dir, id), secret: SECRET, token: "join-test-api-token-0123456789", peers });
  n1 = await node("n1", p1, [{ id: "n2", url: url(p2) }]);
  n2 = await node("n2", p2, [{ id: "n1", url: url(p1) }]);
  n3 = await node("n3", p3, [{ id: "n1", url: url(p1) }, { id: "n2", url: url(p2) }]);
  await Promise.all([n1.start(), n2.start()]);
  await waitFor("n1 and n2 connected", async () => (await connected(n1, "n2")) && (await connected(n2, "n1")));
});

afterAll(async () => {
  await Promise.all([n1, n2, n3].map((n) => n?.stop()));
  if (dir && !process.env["LOCMESH_KEEP_TEST_DIRS"]) rmSync(dir, { recursive: true, force: true });
});

describe("a node joining a running cluster", () => {
  it("is refused until listed, then gets the full state after SIGHUP, and its changes reach everyone", async () => {
    const expires = Math.floor(Date.now() / 1000) + 3600;
    for (let i = 0; i < 40; i++) {
      const owner = i % 2 === 0 ? n1 : n2;
      await owner.call("alias.set", { alias: `sip:user${i}@example.com`, target: `sip:desk${i}@example.com` });
    }
    await n1.call("location.publish", { edits: [{ op: "upsert", binding: { aor: "sip:alice@example.com", contact: "sip:alice@192.0.2.1", expires } }] });
    await n2.call("location.publish", { edits: [{ op: "upsert", binding: { aor: "sip:bob@example.com", contact: "sip:bob@192.0.2.2", expires } }] });
    await n2.call("alias.remove", { alias: "user0@example.com" });
    const expected = await dump(n1);
    await waitFor("n1 and n2 agree", async () => JSON.stringify(await dump(n2)) === JSON.stringify(expected));
    expect(expected).toHaveLength(39 + 2);

    await n3.start();
    await waitFor("n3 refused as an unknown node", async () => (await n1.metric("locmesh_auth_failures_total", { reason: "unknown node id" })) > 0
      && (await n2.metric("locmesh_auth_failures_total", { reason: "unknown node id" })) > 0);
    expect(await dump(n3)).toEqual([]);
    // Its status says its new journal has not caught up: the empty lists are not the cluster's.
    expect((await n3.call<ClusterStatus>("cluster.status")).journalSeeded).toBe(false);
    for (const n of [n1, n2]) expect((await n.call<ClusterStatus>("cluster.status")).journalSeeded).toBe(true);

    const pids = [n1.child?.pid, n2.child?.pid];
    n1.reloadPeers([...n1.spec.peers, { id: "n3", url: n3.meshUrl }]);
    n2.reloadPeers([...n2.spec.peers, { id: "n3", url: n3.meshUrl }]);

    await waitFor("n3 holds the full state", async () => JSON.stringify(await dump(n3)) === JSON.stringify(expected));
    await waitFor("n3's journal caught up", async () => (await n3.call<ClusterStatus>("cluster.status")).journalSeeded === true);
    await waitFor("n3 connected to both", async () => (await connected(n3, "n1")) && (await connected(n3, "n2")));
    expect(await connected(n1, "n3")).toBe(true);
    expect(await connected(n2, "n3")).toBe(true);
    // n3's own dials were refused before the others listed it; with the sessions up, no row keeps
    // that refusal as its last error (the column then says why batches are not acknowledged).
    for (const n of [n1, n2, n3]) {
      for (const p of (await n.call<ClusterStatus>("cluster.status")).peers) expect({ peer: p.nodeId, lastError: p.lastError }).toEqual({ peer: p.nodeId, lastError: null });
    }

    await n3.call("alias.set", { alias: "sip:newcomer@example.com", target: "sip:n3-desk@example.com" });
    await n3.call("location.publish", { edits: [{ op: "upsert", binding: { aor: "sip:carol@example.com", contact: "sip:carol@192.0.2.3", expires } }] });
    for (const n of [n1, n2]) {
      await waitFor(`n3's changes on ${n.spec.id}`, async () => {
        const d = await dump(n);
        return d.includes("alias newcomer@example.com => sip:n3-desk@example.com") && d.includes("loc carol@example.com sip:carol@192.0.2.3 n3");
      });
    }

    expect([n1.child?.pid, n2.child?.pid]).toEqual(pids);
    expect([n1.child?.exitCode, n2.child?.exitCode]).toEqual([null, null]);
    expect((await n1.call<ClusterStatus>("cluster.status")).peers.map((p) => p.nodeId)).toEqual(["n2", "n3"]);
  });
});
