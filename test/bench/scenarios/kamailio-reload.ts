/**
 * Issue 3, benchmark 3: a Kamailio (usrloc db_mode 0) restarts empty while its peers hold N
 * bindings; how long until it holds them all again.
 *   locmesh: the bindings are published to n2's agent (location.publish) and installed by every
 *   agent into its Kamailio; n1's Kamailio restarts and n1's agent notices and reloads it: ul.add
 *   through the evapi bulk channel, or (kamailio.bulkReload false) over jsonrpcs UDP with `window`
 *   in flight and Kamailio `dgram_workers`. Each setting tried is reported.
 *   dmq_usrloc: the bindings go into n2 with ul.add and reach n1/n3 by live replication; n1
 *   restarts and its startup sync (`sync=1`) brings them back from both peers.
 * Times run from the restarted Kamailio's spawn (the common point) and, separately, from the
 * moment its FIFO answers ("ready"); the count in Kamailio is checked in every run.
 */
import type { ClusterStatus } from "../../../agent/contract/cluster-status.js";
import { fmt, median } from "./scenario.js";
import type { Figure, ScenarioReport } from "../report.js";
import { contactCount, sleep, startNodes, ulAddBulk, waitCounts, type BenchNode } from "../kamailio-nodes.js";
import { reloadSettingName, type KamailioBenchContext, type ReloadSetting } from "../kamailio-bench.js";
import { publishBulk, publishFrames } from "../publisher.js";
import { connectWsRpc } from "../ws-client.js";

interface Run {
  fromSpawn: number;
  fromReady: number;
  held: number;
  /** dmq: the node reached the donor's count (false: it stopped short). */
  whole?: boolean;
  /** locmesh: the agent's own figures for the reload. */
  detectSeconds?: number;
  agentRate?: number;
}

/** Stops a node's Kamailio and starts it again; spawn and ready times (Date.now()). */
async function restart(node: BenchNode): Promise<{ spawnAt: number; readyAt: number }> {
  await node.kam.stop();
  const spawnAt = Date.now();
  await node.kam.restart(); // stop() is a no-op now: this is the start
  return { spawnAt, readyAt: Date.now() };
}

async function locmeshRuns(ctx: KamailioBenchContext, setting: ReloadSetting): Promise<Run[]> {
  const { sizes, log } = ctx;
  const n = sizes.reloadCount;
  const { dgramWorkers, window, bulk } = setting;
  const name = reloadSettingName(setting);
  const cluster = await startNodes("locmesh", {
    n: 3, baseDir: ctx.dir(`reload-locmesh-${bulk ? "bulk" : `${dgramWorkers}x${window}`}`), shmMb: sizes.shmMb, dgramWorkers,
    agentKamailio: { window, bulkReload: bulk }, nodeArgs: ctx.nodeArgs,
  });
  const runs: Run[] = [];
  try {
    const [n1, n2] = cluster.nodes as [BenchNode, BenchNode];
    const client = await connectWsRpc(n2.agent!.apiUrl, n2.agent!.spec.token);
    try {
      await publishBulk(client, publishFrames({ prefix: "rl", count: n, batchSize: 500, nowSec: Math.floor(Date.now() / 1000) }), { inFlight: 4 });
    } finally {
      await client.close();
    }
    // The peers' agents install what n2's was given into their Kamailios (n2's own gets it from the API call).
    const others = cluster.nodes.filter((x) => x !== n2);
    const filled = await waitCounts(others, others.map(() => n), 180_000, 200);
    if (filled.at === null) throw new Error(`locmesh: the peers' Kamailios never held ${n} (counts ${filled.counts.join("/")})`);
    for (let r = 0; r < sizes.repeat; r++) {
      const { spawnAt, readyAt } = await restart(n1);
      const deadline = Date.now() + 180_000;
      let reload: NonNullable<ClusterStatus["kamailio"]>["reload"] | undefined;
      for (;;) {
        reload = (await n1.agent!.call<ClusterStatus>("cluster.status")).kamailio?.reload;
        if (reload?.state === "done" && reload.startedAt !== null && Date.parse(reload.startedAt) >= spawnAt) break;
        if (reload?.state === "failed" && reload.startedAt !== null && Date.parse(reload.startedAt) >= spawnAt) log(`reload locmesh ${name}: a reload failed (${reload.error}); the agent retries`);
        if (Date.now() > deadline) throw new Error(`locmesh reload did not finish: ${JSON.stringify(reload)}`);
        // The agent's own start and finish times are used, so the poll's period does not matter;
        // each poll costs the agent one status (counts come from the journal's tally, ~0.04 ms).
        await sleep(500);
      }
      const doneAt = Date.parse(reload.finishedAt!);
      const held = await contactCount(n1);
      const wanted = bulk ? "evapi" : "jsonrpcs";
      if (reload.channel !== wanted) throw new Error(`locmesh reload ${name} went through ${reload.channel}, not ${wanted}`);
      const run: Run = {
        fromSpawn: (doneAt - spawnAt) / 1000, fromReady: (doneAt - readyAt) / 1000, held,
        detectSeconds: (Date.parse(reload.startedAt!) - readyAt) / 1000, agentRate: reload.rate,
      };
      runs.push(run);
      log(`reload locmesh ${name} run ${r + 1}: ${fmt(reload.done)} written; done ${fmt(run.fromSpawn, 2)} s after spawn, ` +
        `${fmt(run.fromReady, 2)} s after ready (noticed ${fmt(run.detectSeconds!, 2)} s after ready, agent's rate ${fmt(reload.rate)}/s); Kamailio holds ${fmt(held)}`);
    }
  } finally {
    await cluster.close();
  }
  return runs;
}

/** How fast the dmq cluster is filled before the runs (not part of the measured time). */
const DMQ_FILL_PER_SECOND = 4000;

async function dmqRuns(ctx: KamailioBenchContext): Promise<Run[]> {
  const { sizes, log } = ctx;
  const n = sizes.reloadCount;
  const cluster = await startNodes("dmq", { n: 3, baseDir: ctx.dir("reload-dmq"), shmMb: sizes.shmMb, dgramWorkers: 4 });
  const runs: Run[] = [];
  try {
    const [n1, n2] = cluster.nodes as [BenchNode, BenchNode];
    // Paced: unpaced, dmq_usrloc's live replication fell behind and n2 refused 30-60% at 100k.
    const refused = await ulAddBulk(n2, "rl", n, 8, DMQ_FILL_PER_SECOND);
    if (refused > 0) log(`dmq: n2's Kamailio refused ${fmt(refused)} of ${fmt(n)} ul.add while replicating them (500 Can't insert contact)`);
    const donor = await contactCount(n2);
    const filled = await waitCounts(cluster.nodes, [donor, donor, donor], 120_000, 200);
    if (filled.at === null) log(`dmq: live replication left the peers short (counts ${filled.counts.join("/")}); the restarted node must reach n2's ${fmt(donor)}`);
    for (let r = 0; r < sizes.repeat; r++) {
      const { spawnAt, readyAt } = await restart(n1);
      const seen = await waitCounts([n1], [donor], 20_000, 10);
      // Never whole: timed to when its count stopped moving, which flatters dmq (it stopped short).
      const doneAt = performance.timeOrigin + (seen.at ?? seen.lastChangeAt);
      const run: Run = { fromSpawn: (doneAt - spawnAt) / 1000, fromReady: (doneAt - readyAt) / 1000, held: seen.counts[0]!, whole: seen.at !== null };
      runs.push(run);
      log(`reload dmq run ${r + 1}: n1 holds ${fmt(run.held)} of ${fmt(donor)}${run.whole ? "" : " (never whole; time is to its last change)"} ${fmt(run.fromSpawn, 2)} s after spawn, ${fmt(run.fromReady, 2)} s after ready`);
    }
  } finally {
    await cluster.close();
  }
  return runs;
}

export async function runKamailioReload(ctx: KamailioBenchContext): Promise<ScenarioReport> {
  const { sizes } = ctx;
  const n = sizes.reloadCount;
  const dmq = await dmqRuns(ctx);
  const settings: Record<string, Run[]> = {};
  for (const s of sizes.reloadSettings) settings[reloadSettingName(s)] = await locmeshRuns(ctx, s);
  const med = (runs: Run[], k: "fromSpawn" | "fromReady") => median(runs.map((x) => x[k]));
  const best = Object.entries(settings).sort((a, b) => med(a[1], "fromSpawn") - med(b[1], "fromSpawn"))[0]!;
  const [bestName, bestRuns] = best;
  const dmqSpawn = med(dmq, "fromSpawn");
  // In ms: the table prints targets without decimals.
  const ms = (seconds: number) => Math.round(seconds * 1000);
  const list = (runs: Run[]) => runs.map((x) => `${fmt(x.fromSpawn, 2)} s (held ${fmt(x.held)})`).join(", ");
  const sweep = Object.entries(settings).map(([k, runs]) => `${k}: ${fmt(med(runs, "fromSpawn"), 2)} s, agent ${fmt(median(runs.map((x) => x.agentRate ?? 0)))}/s`).join("; ");
  const figures: Figure[] = [
    {
      id: "kamailio.reload.locmesh", metric: `${fmt(n)} bindings back into a restarted Kamailio, from spawn (locmesh, ${bestName})`,
      value: ms(med(bestRuns, "fromSpawn")), unit: "ms", target: { kind: "atMost", value: ms(dmqSpawn) },
      reference: { value: ms(dmqSpawn), unit: "ms", source: "dmq_usrloc sync, same run" },
      note: `median of ${bestRuns.length}: ${list(bestRuns)}; from ready ${fmt(med(bestRuns, "fromReady"), 2)} s, of which noticing the restart ` +
        `${fmt(median(bestRuns.map((x) => x.detectSeconds ?? 0)), 2)} s (checkIntervalSec 1 / evapi reconnect); settings tried: ${sweep}`,
    },
    {
      id: "kamailio.reload.locmesh.rate", metric: "contacts/s the agent's reload wrote (best setting)", value: median(bestRuns.map((x) => x.agentRate ?? 0)), unit: "/s", target: null,
      // What dmq's sync put in, not what it was asked to (it never held all of them).
      reference: { value: median(dmq.map((x) => x.held / x.fromSpawn)), unit: "/s", source: "dmq_usrloc sync from spawn (contacts it held over its time), same run" },
    },
    {
      id: "kamailio.reload.dmq", metric: `${fmt(n)} bindings back into a restarted Kamailio, from spawn (dmq_usrloc sync)`,
      value: ms(dmqSpawn), unit: "ms", target: null,
      note: `median of ${dmq.length}: ${list(dmq)}; from ready ${fmt(med(dmq, "fromReady"), 2)} s` +
        (dmq.some((x) => x.whole === false) ? `; NEVER WHOLE in ${dmq.filter((x) => x.whole === false).length} run(s): timed to when its count stopped moving` : ""),
    },
  ];
  return { name: "kamailio-reload", figures, details: { dmq, locmesh: settings, best: bestName, count: n } };
}
