/**
 * What an operator of two hubs on one PostgreSQL sees: each hub's link metrics (which the README's
 * alert rules read), `cluster.status` on hubs and agents, and the hub's refusals. Two hub processes
 * that list a1..a3, three agents (a1 and a3 prefer hub1, a2 prefers hub2).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/protocol.js";
import { type AgentProcess, waitFor } from "../support/agent-process.js";
import { makeHubCluster, type HubProcess } from "../support/hub-process.js";
import { startPostgres, type PostgresProcess } from "../support/postgres-process.js";

let dir: string;
let pgServer: PostgresProcess;
let hubs: HubProcess[];
let agents: AgentProcess[];

/** A node's locmesh_peer_connected series, as { peer: value }. */
async function links(p: AgentProcess): Promise<Record<string, number>> {
  const text = await (await fetch(`${p.apiUrl}/metrics`)).text();
  return Object.fromEntries([...text.matchAll(/^locmesh_peer_connected\{peer="([^"]+)"\} (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
}
const status = (p: AgentProcess) => p.call<ClusterStatus>("cluster.status");
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-hub-ops-"));
  pgServer = await startPostgres();
  const pgUrl = await pgServer.createDatabase("locmesh");
  ({ hubs, agents } = await makeHubCluster(dir, {
    hubs: 2, agents: 3, pgUrl,
    hubConfig: { mesh: { acceptUnlisted: false, agents: ["a1", "a2", "a3"] } },
  }));
  await Promise.all(hubs.map((h) => h.start()));
  await Promise.all(agents.map((a) => a.start()));
  // Each hub has recorded its agents: hub1 shows a2 on hub2, hub2 shows a1 and a3 on hub1.
  await waitFor("every agent on a hub, as both hubs see it", async () =>
    (await Promise.all(hubs.map(status))).every((s) => s.peers.length === 3 && s.peers.every((p) => p.connected)));
});

afterAll(async () => {
  await Promise.all([...(agents ?? []), ...(hubs ?? [])].map((p) => p.stop()));
  await pgServer?.close();
  if (dir && !process.env["LOCMESH_KEEP_TEST_DIRS"]) rmSync(dir, { recursive: true, force: true });
});

describe("two hubs: metrics and status", () => {
  it("a hub exports a link for each agent on it, none for an agent on the other hub, and 0 for one on no hub", async () => {
    const [hub1, hub2] = hubs as [HubProcess, HubProcess];
    const a3 = agents[2]!;
    expect(await links(hub1)).toEqual({ a1: 1, a3: 1 });
    expect(await links(hub2)).toEqual({ a2: 1 });
    // Neither hub has a Kamailio, so neither says one is down.
    expect(await (await fetch(`${hub1.apiUrl}/metrics`)).text()).not.toContain("locmesh_kamailio_up");
    await a3.stop();
    try {
      // On no hub: every hub that lists it says so, and "a peer or hub link down" fires.
      await waitFor("both hubs read a3 as down", async () =>
        same(await links(hub1), { a1: 1, a3: 0 }) && same(await links(hub2), { a2: 1, a3: 0 }));
    } finally {
      await a3.start();
    }
    await waitFor("a3 back on hub1", async () => same(await links(hub1), { a1: 1, a3: 1 }) && same(await links(hub2), { a2: 1 }));
  });
});
