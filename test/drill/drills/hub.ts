/**
 * Hub drills: the 3 Kamailio nodes' agents reach each other only through 2 hubs on one PostgreSQL
 * (agent n1 and n3 start at hub1, n2 at hub2). A hub killed with -9 under traffic (its agents fail
 * over to the other hub, then it comes back), and PostgreSQL stopped under traffic for a few
 * seconds and started again. Every journal, every Kamailio and the hubs' database must then hold
 * exactly what was acknowledged.
 */
import type { ClusterStatus } from "../../../agent/contract/cluster-status.js";
import { sleep, waitFor } from "../../support/agent-process.js";
import type { DrillCluster } from "../drill-cluster.js";
import { runTrafficDrill, type Drill, type DrillContext, type FaultReport } from "../drill.js";

const traffic = (short: boolean) => ({ registerRate: short ? 40 : 100, seconds: short ? 12 : 40, aliasRate: short ? 10 : 20 });
const lead = (short: boolean) => (short ? 3 : 10);
const HUBS = 2;

/** The hub each agent has a session with (null: none). */
async function hubOf(c: DrillCluster): Promise<Record<string, string | null>> {
  const out: Record<string, string | null> = {};
  for (const n of c.nodes) {
    const s = await n.agent.call<ClusterStatus>("cluster.status");
    out[n.id] = s.peers.find((p) => p.connected)?.nodeId ?? null;
  }
  return out;
}

const show = (m: Record<string, string | null>): string => Object.entries(m).map(([a, h]) => `${a}→${h ?? "none"}`).join(", ");

async function everyAgentOnAHub(c: DrillCluster, timeoutMs = 30_000): Promise<Record<string, string | null>> {
  return waitFor("every agent to have a hub session", async () => {
    const m = await hubOf(c);
    return Object.values(m).every((h) => h !== null) ? m : null;
  }, timeoutMs, 100);
}

/** A drill on the hub-mode cluster with the usual traffic, injecting `fault` while it flows. */
function hubDrill(name: string, title: string, fault: (c: DrillCluster, ctx: DrillContext) => Promise<FaultReport>): Drill {
  return { name, title, run: (ctx) => runTrafficDrill(ctx, { cluster: { hubs: HUBS }, traffic, leadSec: lead, fault }) };
}

export const HUB_DRILLS: readonly Drill[] = [
  hubDrill("hub-kill", "kill -9 of one of 2 hubs under traffic (its agents fail over), restarted after a pause", async (c, ctx) => {
    const before = await everyAgentOnAHub(c);
    const hub1 = c.hubs[0]!;
    const killedAt = Date.now();
    await hub1.kill9();
    const after = await waitFor("hub1's agents to fail over to hub2", async () => {
      const m = await hubOf(c);
      return Object.values(m).every((h) => h === "hub2") ? m : null;
    }, 30_000, 100);
    const failoverSec = (Date.now() - killedAt) / 1000;
    await sleep(ctx.short ? 2000 : 5000);
    await hub1.start();
    const back = await everyAgentOnAHub(c);
    return {
      did: [
        `hub sessions before: ${show(before)}`,
        `kill -9 of hub1 under traffic; all agents on hub2 ${failoverSec.toFixed(1)} s later (${show(after)})`,
        `hub1 started again ${ctx.short ? 2 : 5} s later; sessions: ${show(back)}`,
      ],
      info: { "fail-over to hub2 (s)": Number(failoverSec.toFixed(1)) },
    };
  }),
  hubDrill("hub-postgres-restart", "PostgreSQL under 2 hubs stopped under traffic for a few seconds, then started again", async (c, ctx) => {
    const pg = c.postgres!;
    const down = ctx.short ? 3 : 8;
    const retries = async () => (await Promise.all(c.nodes.map((n) => n.agent.metric("locmesh_peer_retries_total")))).reduce((a, b) => a + b, 0);
    const retriesBefore = await retries();
    await pg.stop();
    await sleep(down * 1000);
    await pg.start();
    const sessions = await everyAgentOnAHub(c);
    return {
      did: [`PostgreSQL stopped (fast shutdown) under traffic for ${down} s, then started again; hub sessions after: ${show(sessions)}`],
      info: { "agents' delivery retries while PostgreSQL was down": (await retries()) - retriesBefore },
    };
  }),
];
