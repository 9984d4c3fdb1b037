/**
 * What an operator of two hubs on one PostgreSQL sees: each hub's link metrics (which the README's
 * alert rules read), `cluster.status` on hubs and agents, and the hub's refusals. Two hub processes
 * that list a1..a3, three agents (a1 and a3 prefer hub1, a2 prefers hub2).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { AgentProcess, ROOT, freePort, sleep, waitFor } from "../support/agent-process.js";
import { publishAliases } from "../support/aliases.js";
import { HubProcess, SECRET, TOKEN, makeHubCluster, stopHubCluster } from "../support/hub-process.js";
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
/** Every hub's locmesh_peer_connected values, by agent: { a1: [1], a3: [0, 0] } (hubs in order). */
async function linksByAgent(): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const h of hubs) for (const [peer, v] of Object.entries(await links(h))) (out[peer] ??= []).push(v);
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
}
const status = (p: AgentProcess) => p.call<ClusterStatus>("cluster.status");
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
/** Starts a process the test stopped (not one still running: that would start a second one). */
async function ensureRunning(p: AgentProcess): Promise<void> {
  if (!p.child || p.child.exitCode !== null || p.child.signalCode !== null) await p.start();
}
/** `locmesh hub <args>` against a hub's config. */
const hubCommand = (hub: HubProcess, ...args: string[]) =>
  spawnSync(process.execPath, [join(ROOT, "bin", "locmesh.js"), "hub", ...args, "--config", hub.configPath], { encoding: "utf8" });

/** Restarts both hubs with these mesh settings instead of the listed agents. */
async function restartHubs(mesh: Record<string, unknown>): Promise<void> {
  await Promise.all(hubs.map((h) => h.stop()));
  for (const h of hubs) h.spec.config = { mesh };
  await Promise.all(hubs.map((h) => h.start()));
  await waitFor("every agent back on a hub", async () => (await Promise.all(hubs.map(status))).every((s) => s.peers.length === 3 && s.peers.every((p) => p.connected)));
}

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
  await stopHubCluster({ agents, hubs, closers: [pgServer], dir });
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
      await ensureRunning(a3);
    }
    await waitFor("a3 back on hub1", async () => same(await links(hub1), { a1: 1, a3: 1 }) && same(await links(hub2), { a2: 1 }));
  });

  it("cluster.status on either hub says which hub each agent is on, as the agents themselves do", async () => {
    const own = await Promise.all(agents.map(async (a) => [a.spec.id, (await status(a)).peers[0]?.hub] as const));
    expect(own.map(([, hub]) => hub).sort()).toEqual(["hub1", "hub1", "hub2"]);
    for (const h of hubs) {
      const peers = (await status(h)).peers;
      expect(peers.map((p) => [p.nodeId, p.hub])).toEqual(own);
      expect(peers.every((p) => p.connected)).toBe(true);
    }
  });

  it("an agent's status gives the hub's reason while the hub refuses its batches, and clears it once one is taken", async () => {
    const [a1, a2] = agents as [AgentProcess, AgentProcess];
    const logFrom = hubs.map((h) => readFileSync(h.logPath, "utf8").length);
    await pgServer.kill();
    const killedAt = Date.now();
    try {
      await a1.call("alias.set", { alias: "while-pg-down@example.com", target: "sip:x@example.com" });
      const hubLink = await waitFor("a1's hub link shows the refusal", async () => {
        const link = (await status(a1)).peers[0];
        return link?.lastError ? link : null;
      });
      expect(hubLink.connected).toBe(true);
      expect(hubLink.lastError).toMatch(/^batch not acknowledged, retrying: temporary failure/);
      // Each hub's change feed retries its LISTEN meanwhile: it says so once, not every 500 ms.
      await sleep(killedAt + 4000 - Date.now());
      for (const [i, h] of hubs.entries()) {
        const lines = readFileSync(h.logPath, "utf8").slice(logFrom[i]).split("\n").filter((l) => l.includes("LISTEN for changes"));
        expect(lines.length, lines.join("\n")).toBeLessThanOrEqual(1);
      }
    } finally {
      await pgServer.start();
    }
    await waitFor("the alias on a2", async () => (await a2.call<{ items: unknown[] }>("alias.list", { search: "while-pg-down" })).items.length === 1, 30_000);
    await waitFor("a1's last error cleared", async () => (await status(a1)).peers[0]?.lastError === null);
  });

  it("an agent the hubs do not list says in its status why the hub refused it", async () => {
    const hub1 = hubs[0]!;
    const stranger = new AgentProcess({
      id: "stranger", meshPort: await freePort(), apiPort: await freePort(), dir: join(dir, "stranger"),
      secret: SECRET, token: TOKEN, peers: [], config: { hub: { urls: [hub1.meshUrl] } },
    });
    await stranger.start();
    try {
      const link = await waitFor("the refusal in stranger's status", async () => (await status(stranger)).peers.find((p) => p.lastError !== null));
      expect(link).toMatchObject({ nodeId: "hub", connected: false, hub: null });
      expect(link.lastError).toBe("disconnected: 4001 refused by hub1: unauthorized: unknown node id");
    } finally {
      await stranger.stop();
    }
  });

  it("a second hub started with a running hub's nodeId exits 1, saying to give each hub its own nodeId", async () => {
    const hub1 = hubs[0]!;
    const twin = new HubProcess({ ...hub1.spec, meshPort: await freePort(), apiPort: await freePort(), dir: join(dir, "hub1-twin") }, hub1.pgUrl);
    const started = twin.start();
    try {
      await expect(started).rejects.toThrow(/exited with 1/);
      await expect(started).rejects.toThrow(/another hub process uses nodeId "hub1" on this PostgreSQL database \(.*pid \d+.*\). Give every hub its own nodeId/);
    } finally {
      await twin.stop();
    }
    expect((await status(hub1)).peers.map((p) => p.nodeId)).toEqual(["a1", "a2", "a3"]);
  });

  it("with mesh.acceptUnlisted, a stopped agent reads 0 on every hub until `locmesh hub forget` drops it", async () => {
    const [hub1, hub2] = hubs as [HubProcess, HubProcess];
    const a3 = agents[2]!;
    await restartHubs({ acceptUnlisted: true, agents: [] });
    try {
      expect(await linksByAgent()).toEqual({ a1: [1], a2: [1], a3: [1] });
      const running = hubCommand(hub1, "forget", "a3");
      expect(running.status).toBe(1);
      expect(running.stdout).toMatch(/^a3 is connected to hub hub[12] now \(recorded within the last \d+ s\): stop it .*run this again in \d+ s$/m);
      await a3.stop();
      await waitFor("both hubs read the stopped a3 as down", async () => same(await linksByAgent(), { a1: [1], a2: [1], a3: [0, 0] }));
      expect((await status(hub2)).peers.map((p) => [p.nodeId, p.connected])).toEqual([["a1", true], ["a2", true], ["a3", false]]);
      const forgot = hubCommand(hub2, "forget", "a3", "gone");
      expect([forgot.status, forgot.stdout]).toEqual([0, "forgot a3: no hub reports it any more\ngone: no hub has recorded it; nothing to forget\n"]);
      expect(await linksByAgent()).toEqual({ a1: [1], a2: [1] });
      expect((await status(hub1)).peers.map((p) => p.nodeId)).toEqual(["a1", "a2"]);
    } finally {
      await ensureRunning(a3);
      await restartHubs({ acceptUnlisted: false, agents: ["a1", "a2", "a3"] });
    }
  });

  it("`locmesh hub forget` refuses, exit 1, an agent listed in mesh.agents: hubs keep reporting it whatever the record says", async () => {
    const hub1 = hubs[0]!;
    const a3 = agents[2]!;
    await a3.stop();
    try {
      // Once a3's record is stale (it is on no hub), it is only its listing that keeps it reported.
      const r = await waitFor("a3's record stale", async () => {
        const run = hubCommand(hub1, "forget", "a3");
        return /is connected to hub/.test(run.stdout) ? null : run;
      }, 30_000);
      expect([r.status, r.stdout]).toEqual([1, "a3 is still listed in mesh.agents: hubs keep reporting it (0 while it is down); remove it from mesh.agents on every hub and send them SIGHUP (systemctl reload)\n"]);
      await waitFor("both hubs still reporting a3, as down", async () => same((await linksByAgent())["a3"], [0, 0]));
    } finally {
      await ensureRunning(a3);
    }
  });

  it("SIGHUP applies mesh.agents: an agent taken out is closed and refused, `hub forget` then drops it, and put back it is taken again, with no hub restart", async () => {
    const a3 = agents[2]!;
    const pids = hubs.map((h) => h.child?.pid);
    const listAgents = (ids: string[]) => {
      for (const h of hubs) {
        h.spec.config = { mesh: { acceptUnlisted: false, agents: ids } };
        h.reload();
      }
    };
    await waitFor("a3 on a hub", async () => (await status(a3)).peers.some((p) => p.hub !== undefined && p.hub !== null && p.connected));
    listAgents(["a1", "a2"]);
    try {
      // Its session is closed and its redials refused; the hubs keep no series of it.
      await waitFor("a3 refused by the hubs", async () => /unknown node id/.test((await status(a3)).peers.find((p) => p.nodeId === "hub")?.lastError ?? ""), 30_000);
      await waitFor("no hub reporting a3", async () => (await linksByAgent())["a3"] === undefined);
      for (const h of hubs) expect(readFileSync(h.logPath, "utf8")).toContain("agent list updated");
      await a3.stop();
      const r = await waitFor("a3 forgotten", async () => {
        const run = hubCommand(hubs[0]!, "forget", "a3");
        return run.status === 0 ? run : null;
      }, 30_000);
      expect(r.stdout).toBe("forgot a3: no hub reports it any more\n");
    } finally {
      listAgents(["a1", "a2", "a3"]);
      await ensureRunning(a3);
    }
    await waitFor("a3 on a hub again", async () => (await status(a3)).peers.some((p) => p.hub !== undefined && p.hub !== null && p.connected), 30_000);
    expect(hubs.map((h) => h.child?.pid)).toEqual(pids);
  }, 90_000);

  it("SIGHUP that turns on mesh.acceptUnlisted and empties mesh.agents keeps the list until the restart acceptUnlisted needs: no agent is refused meanwhile", async () => {
    const pids = hubs.map((h) => h.child?.pid);
    const logged = hubs.map((h) => readFileSync(h.logPath, "utf8").length);
    try {
      for (const h of hubs) {
        h.spec.config = { mesh: { acceptUnlisted: true, agents: [] } };
        h.reload();
      }
      for (const [i, h] of hubs.entries()) {
        await waitFor(`${h.spec.id} saying why it keeps mesh.agents`, async () => readFileSync(h.logPath, "utf8").slice(logged[i]).includes("keeping the agents this change drops from mesh.agents, because mesh.acceptUnlisted was turned on"));
        expect(readFileSync(h.logPath, "utf8").slice(logged[i])).not.toContain("agent list updated");
      }
      // Every agent keeps its hub, and a change still reaches all of them.
      await publishAliases(agents[0]!, 0, 1, "accept-unlisted-");
      await waitFor("the alias on every agent", async () => (await Promise.all(agents.map((a) => a.call<{ total: number }>("alias.list", { search: "accept-unlisted-" })))).every((r) => r.total === 1), 30_000);
      for (const a of agents) expect((await status(a)).peers.find((p) => p.nodeId === "hub")?.lastError ?? "").not.toMatch(/unknown node id/);
      expect(hubs.map((h) => h.child?.pid)).toEqual(pids);
    } finally {
      for (const h of hubs) {
        h.spec.config = { mesh: { acceptUnlisted: false, agents: ["a1", "a2", "a3"] } };
        h.reload();
      }
    }
  }, 90_000);
});
