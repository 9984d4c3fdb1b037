/**
 * kill -9 drills: an agent in the middle of traffic, an agent in the middle of its catch-up, a
 * Kamailio (db_mode 0: it comes back empty and its agent must refill it), and both at once.
 */
import { sleep, waitFor } from "../../support/agent-process.js";
import { waitConnected, type DrillCluster } from "../drill-cluster.js";
import { runTrafficDrill, type Drill, type FaultReport } from "../drill.js";
import type { Ledger } from "../ledger.js";

const traffic = (short: boolean) => ({ registerRate: short ? 40 : 100, seconds: short ? 12 : 40, aliasRate: short ? 10 : 20 });
const lead = (short: boolean) => (short ? 3 : 10);

/**
 * The 200 OK leaves Kamailio inside save(), before the event reaches the agent. A db_mode 0
 * Kamailio killed in between loses that REGISTER for good (as it would without locmesh): acked
 * writes within this window before the kill are counted as unanswered, and reported.
 */
const KILL_WINDOW_MS = 100;

function killWindow(node: string, killedAtMs: number): (ledger: Ledger) => number {
  // After killedAt only while the SIGKILLs land (a few ms); the window proper is before it.
  return (ledger) => ledger.doubtAckedBetween(node, "loc", killedAtMs - KILL_WINDOW_MS, killedAtMs + 20, `acked as ${node}'s Kamailio was killed`);
}

/** A kill drill: the common traffic and lead, and one fault. */
function killDrill(name: string, title: string, fault: (c: DrillCluster, short: boolean) => Promise<FaultReport>): Drill {
  return { name, title, run: (ctx) => runTrafficDrill(ctx, { traffic, leadSec: lead, fault: (c) => fault(c, ctx.short) }) };
}

export const KILL_DRILLS: readonly Drill[] = [
  killDrill("kill-agent", "kill -9 of an agent under traffic, restarted after a pause", async (c, short) => {
    const n2 = c.node("n2");
    await n2.agent.kill9();
    await sleep(short ? 2000 : 5000);
    await n2.agent.start();
    await waitConnected(c, 30_000, ["n2"]);
    return { did: [`kill -9 of n2's agent under traffic; restarted after ${short ? 2 : 5} s (its Kamailio kept taking REGISTERs)`] };
  }),
  killDrill("kill-agent-catchup", "kill -9 of an agent in the middle of its catch-up", async (c, short) => {
    const n3 = c.node("n3");
    await n3.agent.kill9();
    await sleep(short ? 3000 : 8000);
    await n3.agent.start();
    // Killed again as soon as replication has begun flowing in, before it is done.
    const before = await n3.agent.metric("locmesh_changes_received_total");
    await sleep(100);
    await n3.agent.kill9();
    await sleep(1000);
    await n3.agent.start();
    await waitConnected(c, 30_000, ["n3"]);
    return {
      did: [
        `kill -9 of n3's agent under traffic; restarted after ${short ? 3 : 8} s`,
        `kill -9 again 0.1 s into its catch-up (${before} changes received by then), restarted 1 s later`,
      ],
    };
  }),
  killDrill("kill-kamailio", "kill -9 of a Kamailio (db_mode 0: restarts empty) under traffic", async (c, short) => {
    const n2 = c.node("n2");
    const killedAt = Date.now();
    await n2.kamailio.kill9();
    await sleep(short ? 2000 : 5000);
    await n2.kamailio.start();
    // The reload that counts is the one that started after the kill (one ran at startup too).
    const reload = await waitFor("n2's agent to reload its restarted Kamailio", async () => {
      const s = await n2.agent.call<{ kamailio: { reload: { state: string; total: number; rate: number; startedAt: string | null } } | null }>("cluster.status");
      const r = s.kamailio?.reload;
      return r?.state === "done" && r.startedAt !== null && Date.parse(r.startedAt) > killedAt ? r : null;
    }, 60_000, 200);
    return {
      did: [`kill -9 of n2's Kamailio under traffic; started again ${short ? 2 : 5} s later, empty`, `n2's agent put ${reload.total} records back at ${reload.rate}/s`],
      atRisk: killWindow("n2", killedAt),
    };
  }),
  killDrill("kill-both", "kill -9 of a Kamailio and its agent at once, under traffic", async (c, short) => {
    const n1 = c.node("n1");
    const killedAt = Date.now();
    await Promise.all([n1.kamailio.kill9(), n1.agent.kill9()]);
    await sleep(short ? 2000 : 5000);
    await n1.kamailio.start();
    await n1.agent.start();
    await waitConnected(c, 30_000, ["n1"]);
    return {
      did: [`kill -9 of n1's Kamailio and agent together under traffic; both started again ${short ? 2 : 5} s later`],
      atRisk: killWindow("n1", killedAt),
    };
  }),
];
