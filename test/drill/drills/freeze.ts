/**
 * Drills where nothing dies but time misbehaves: an agent frozen (SIGSTOP) under traffic, a node
 * partitioned from the mesh while its Kamailio and API keep taking writes, and nodes whose clocks
 * are seconds apart (libfaketime) while their edits collide.
 */
import { sleep, waitFor } from "../../support/agent-process.js";
import type { ClusterNode } from "../../support/kamailio-cluster.js";
import { skewedClockEnv } from "../../support/faketime.js";
import { waitConnected, type DrillCluster } from "../drill-cluster.js";
import { runTrafficDrill, type Drill, type FaultReport } from "../drill.js";
import { SKEW_SEC, checkSkew, skewProbe } from "../skew-probe.js";

type Vv = Record<string, number>;
interface Status {
  replicaId: string;
  vv: Vv;
  peers: { nodeId: string; connected: boolean }[];
  kamailio: { events: { received: number } | null; lastReconcile: { learned: number } | null } | null;
}

const status = (n: ClusterNode): Promise<Status> => n.agent.call<Status>("cluster.status");
const covers = (have: Vv, want: Vv): boolean => Object.entries(want).every(([origin, seq]) => (have[origin] ?? 0) >= seq);

/**
 * Seconds from now until node `id` and the others have exchanged everything they held now: `id`
 * holds what the others had journaled, and they hold what `id` had.
 */
async function secondsToSync(c: DrillCluster, id: string): Promise<number> {
  const t0 = Date.now();
  const want = await Promise.all(c.nodes.map(async (n) => ({ id: n.id, vv: (await status(n)).vv })));
  await waitFor(`${id} and its peers to exchange what they missed`, async () => {
    const now = await Promise.all(c.nodes.map(async (n) => ({ id: n.id, vv: (await status(n)).vv })));
    const mine = now.find((n) => n.id === id)!.vv;
    return want.every((w) => (w.id === id ? now.every((n) => covers(n.vv, w.vv)) : covers(mine, w.vv)));
  }, 120_000, 100);
  return (Date.now() - t0) / 1000;
}

async function secondsToConnect(c: DrillCluster): Promise<number> {
  const t0 = Date.now();
  await waitConnected(c, 60_000);
  return (Date.now() - t0) / 1000;
}

const metric = (n: ClusterNode, name: string, labels: Record<string, string> = {}): Promise<number> => n.agent.metric(name, labels);

const freezeSec = (short: boolean) => (short ? 8 : 60);
const cutSec = (short: boolean) => (short ? 6 : 30);
const leadSec = (short: boolean) => (short ? 3 : 8);

export const FREEZE_DRILLS: readonly Drill[] = [
  {
    name: "freeze-agent",
    title: "an agent frozen (SIGSTOP) under traffic for a minute, then SIGCONT",
    run: (ctx) =>
      runTrafficDrill(ctx, {
        // A rate that keeps the live bindings under reconcileMaxContacts over the long full run.
        traffic: (short) => ({ registerRate: short ? 40 : 60, seconds: leadSec(short) + freezeSec(short) + (short ? 5 : 12), aliasRate: short ? 10 : 20 }),
        leadSec,
        async fault(c): Promise<FaultReport> {
          const n2 = c.node("n2");
          const pid = n2.agent.child!.pid!;
          const before = {
            events: (await status(n2)).kamailio?.events?.received ?? 0,
            learned: await metric(n2, "locmesh_kamailio_learned_total", { source: "reconcile" }),
          };
          process.kill(pid, "SIGSTOP");
          const frozenAt = Date.now();
          try {
            await sleep(freezeSec(ctx.short) * 1000);
          } finally {
            process.kill(pid, "SIGCONT");
          }
          const frozenSec = (Date.now() - frozenAt) / 1000;
          // Taken at once: what the others journaled while n2 slept is what it has to catch up on.
          const [syncSec, connectSec] = await Promise.all([secondsToSync(c, "n2"), secondsToConnect(c)]);
          // Registrar events Kamailio queued or dropped while n2 slept: the events n2 got after
          // waking, and what its reconcile had to learn from ul.dump instead.
          await sleep(6000); // one reconcile interval
          const after = await status(n2);
          return {
            did: [`SIGSTOP to n2's agent under traffic for ${frozenSec.toFixed(0)} s (its Kamailio kept taking REGISTERs; alias calls to it timed out), then SIGCONT`],
            info: {
              "n2 connected to its peers again after (s)": connectSec.toFixed(1),
              "n2 and its peers had exchanged what they missed after (s)": syncSec.toFixed(1),
              "registrar events n2 received from the freeze on": (after.kamailio?.events?.received ?? 0) - before.events,
              "bindings n2's reconcile learned from ul.dump after waking (ahead of, or instead of, their events)": (await metric(n2, "locmesh_kamailio_learned_total", { source: "reconcile" })) - before.learned,
            },
          };
        },
      }),
  },
  {
    name: "partition",
    title: "a node's mesh links cut and healed, its Kamailio and API taking writes meanwhile",
    run: (ctx) =>
      runTrafficDrill(ctx, {
        traffic: (short) => ({ registerRate: short ? 40 : 80, seconds: leadSec(short) + cutSec(short) + (short ? 5 : 10), aliasRate: short ? 10 : 20, aliasPool: 50 }),
        leadSec,
        async fault(c): Promise<FaultReport> {
          const n3 = c.node("n3");
          // n3's own sequence number: every change it journals (registrar events, API calls).
          const made = async () => {
            const s = await status(n3);
            return s.vv[s.replicaId] ?? 0;
          };
          const before = await made();
          c.links.cut(["n3"]);
          const cutAt = Date.now();
          await waitFor("n3 to notice the partition", async () => (await status(n3)).peers.every((p) => !p.connected), 30_000, 100);
          await sleep(cutSec(ctx.short) * 1000 - (Date.now() - cutAt));
          const during = (await made()) - before;
          c.links.heal();
          const cutFor = (Date.now() - cutAt) / 1000;
          const [syncSec, connectSec] = await Promise.all([secondsToSync(c, "n3"), secondsToConnect(c)]);
          return {
            did: [`cut every mesh link of n3 under traffic for ${cutFor.toFixed(0)} s (n3's Kamailio and API kept taking writes), then healed them`],
            info: {
              "changes n3 journaled while cut off": during,
              "n3 connected to its peers again after (s)": connectSec.toFixed(1),
              "n3 and its peers had exchanged what they missed after (s)": syncSec.toFixed(1),
            },
          };
        },
      }),
  },
  {
    name: "clock-skew",
    title: "clocks ±5 s apart (n1 +5 s, n3 −5 s, agents and Kamailio) while alias edits collide",
    run: (ctx) =>
      runTrafficDrill(ctx, {
        cluster: {
          // The production reconcile period, not the drills' 5 s: under skew the registrar events
          // alone must keep every node right, not a ul.dump sweep that would hide their mistakes.
          agentKamailio: { reconcileIntervalSec: 300 },
          // Agent and Kamailio share a host, so they share its clock.
          node: (i) => {
            const env = skewedClockEnv(SKEW_SEC[i] ?? 0);
            return { agentEnv: env, kamailio: { env } };
          },
        },
        // 10 aliases at 20-30 calls/s over 3 nodes: the same alias is edited on different nodes
        // a few hundred milliseconds apart, all the time.
        traffic: (short) => ({ registerRate: short ? 40 : 100, seconds: short ? 12 : 40, aliasRate: short ? 20 : 30, aliasPool: 10 }),
        leadSec,
        async fault(c): Promise<FaultReport> {
          const skew = await checkSkew(c);
          return {
            did: ["ran n1's agent and Kamailio 5 s ahead and n3's 5 s behind (libfaketime), n2 on the true clock"],
            info: skew.info,
            zeroes: skew.zeroes,
          };
        },
        afterCheck: (c) => skewProbe(c),
      }),
  },
];
