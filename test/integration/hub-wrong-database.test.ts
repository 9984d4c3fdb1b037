/**
 * A hub whose postgres.url names another database than the other hubs (a typo, a staging copy)
 * splits the cluster: each half replicates only within its own database. The agents that move to
 * it notice that it holds none of the changes a hub had acknowledged, and say so at warn (the hub
 * dry run, F35), as after a database recreated empty. Real hubs on a real PostgreSQL 15.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { AgentProcess, freePort, waitFor } from "../support/agent-process.js";
import { publishAliases } from "../support/aliases.js";
import { HubProcess, SECRET, TOKEN, hubOf, stopHubCluster } from "../support/hub-process.js";
import { startPostgres, type PostgresProcess } from "../support/postgres-process.js";

let dir: string;
let pgServer: PostgresProcess;
let hubs: HubProcess[];
let agent: AgentProcess;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-wrongdb-"));
  pgServer = await startPostgres();
  // hub1 on the cluster's database, hub2 on another one.
  const urls = [await pgServer.createDatabase("locmesh"), await pgServer.createDatabase("locmesh_staging")];
  hubs = await Promise.all(urls.map(async (url, i) => new HubProcess({
    id: `hub${i + 1}`, meshPort: await freePort(), apiPort: await freePort(), dir: join(dir, `hub${i + 1}`), secret: SECRET, token: TOKEN, peers: [], config: {},
  }, url)));
  await Promise.all(hubs.map((h) => h.start()));
  agent = new AgentProcess({
    id: "a1", meshPort: await freePort(), apiPort: await freePort(), dir: join(dir, "a1"), secret: SECRET, token: TOKEN, peers: [],
    config: { hub: { urls: hubs.map((h) => h.meshUrl) } },
  });
  await agent.start();
  await waitFor("a1 on hub1", async () => (await hubOf(agent)) === "hub1");
}, 90_000);

afterAll(async () => {
  await stopHubCluster({ agents: [agent], hubs, closers: [pgServer], dir });
});

describe("a hub on another database than the other hubs", () => {
  it("is noticed by an agent that fails over to it: it holds none of what a hub acknowledged", async () => {
    await publishAliases(agent, 0, 30, "before-");
    await waitFor("hub1 holding a1's 30 changes", async () => (await agent.call<ClusterStatus>("cluster.status")).hubUnacknowledged === 0);
    await hubs[0]!.stop();
    await waitFor("a1 on hub2", async () => (await hubOf(agent)) === "hub2", 30_000);
    const line = await waitFor("a1 warning that hub2 holds none of its changes", async () =>
      readFileSync(agent.logPath, "utf8").split("\n").find((l) => l.includes("holds none of this node's changes")), 10_000);
    expect(JSON.parse(line)).toMatchObject({
      level: "warn", hub: "hub2",
      msg: expect.stringMatching(/^hub hub2 holds none of this node's changes, where a hub had acknowledged 30: check that every hub's postgres\.url names the same database/),
    });
    // It sends them again: nothing of this node's is lost, even in the wrong database.
    await waitFor("hub2 acknowledging them", async () => (await agent.call<ClusterStatus>("cluster.status")).hubUnacknowledged === 0, 30_000);
  });
});
