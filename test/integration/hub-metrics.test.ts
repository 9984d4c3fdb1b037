/**
 * Which series each kind of node exports (README, "Operations"), from real processes: a hub on a
 * real PostgreSQL 15, an agent on it attached to a real Kamailio 5.6, and a bare agent on it (no
 * `kamailio` section). A hub has no Kamailio and makes no changes of its own: series about those
 * at 0 on it read as facts on dashboards and in alert rules.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor, type AgentProcess } from "../support/agent-process.js";
import { hubOf, makeHubCluster, type HubProcess } from "../support/hub-process.js";
import { startKamailioCluster, type KamailioCluster } from "../support/kamailio-cluster.js";
import { startPostgres, type PostgresProcess } from "../support/postgres-process.js";
import { AGENT_ONLY_SERIES, HUB_ONLY_SERIES, KAMAILIO_ONLY_SERIES } from "../support/series-groups.js";

let dir: string;
let pgServer: PostgresProcess;
let hub: HubProcess;
let bare: AgentProcess;
let kamailio: KamailioCluster;

/** The locmesh_* metric families a node's /metrics names (a family with no series yet still has its # TYPE line), without process metrics. */
async function families(p: AgentProcess): Promise<string[]> {
  const text = await (await fetch(`${p.apiUrl}/metrics`)).text();
  return [...text.matchAll(/^# TYPE (locmesh_\w+) /gm)].map((m) => m[1]!).sort();
}
const without = (list: string[], ...drop: string[][]) => list.filter((n) => !drop.flat().includes(n));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-hub-metrics-"));
  pgServer = await startPostgres();
  const pgUrl = await pgServer.createDatabase("locmesh");
  const cluster = await makeHubCluster(dir, { hubs: 1, agents: 1, pgUrl });
  [hub, bare] = [cluster.hubs[0]!, cluster.agents[0]!];
  await hub.start();
  await bare.start();
  kamailio = await startKamailioCluster({ baseDir: join(dir, "kamailio"), n: 1, agentConfig: { hub: { urls: [hub.meshUrl] } } });
  const attached = kamailio.nodes[0]!.agent;
  await waitFor("both agents on the hub", async () => (await hubOf(bare)) === "hub1" && (await hubOf(attached)) === "hub1");
}, 60_000);

afterAll(async () => {
  await kamailio?.close();
  await Promise.all([bare, hub].map((p) => p?.stop()));
  await pgServer?.close();
  if (dir && !process.env["LOCMESH_KEEP_TEST_DIRS"]) rmSync(dir, { recursive: true, force: true });
});

describe("the series each node exports", () => {
  it("a hub has no Kamailio or agent series; an agent attached to Kamailio has them all; a bare agent only the agent series", async () => {
    const attached = await families(kamailio.nodes[0]!.agent);
    const onHub = await families(hub);
    for (const name of [...AGENT_ONLY_SERIES, ...KAMAILIO_ONLY_SERIES]) {
      expect(attached, name).toContain(name);
      expect(onHub, name).not.toContain(name);
    }
    for (const name of HUB_ONLY_SERIES) expect(attached, name).not.toContain(name);
    // Everything else is shared: the hub has exactly the attached agent's series less the agent's own, plus its PostgreSQL's.
    expect(onHub).toEqual([...without(attached, AGENT_ONLY_SERIES, KAMAILIO_ONLY_SERIES), ...HUB_ONLY_SERIES].sort());
    expect(await families(bare)).toEqual(without(attached, KAMAILIO_ONLY_SERIES));
  });
});
