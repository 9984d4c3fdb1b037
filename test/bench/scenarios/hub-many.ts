/**
 * A hundred nodes publishing through one hub: the README's scale-out case, with sink agents
 * (sink-agents.ts: the agent's own mesh code over a store in memory, in two processes) in place of
 * a hundred journaling agents, which two cores could not hold. Every sink agent publishes single
 * alias edits at an equal share of `hubManyRate`, and each edit is timed from its publish to its
 * arrival at every other sink agent. The hub lingers `hubManyLingerMs` (20 ms, as the README
 * advises for many publishing nodes), so that each push carries every origin's edits that came
 * meanwhile; the pushes per agent and the hub's CPU show what a hub pays for a hundred nodes.
 * No target: the issue asks how far one hub goes, not a figure at this size.
 */
import type { ClusterStatus } from "../../../agent/contract/cluster-status.js";
import { waitFor } from "../../support/agent-process.js";
import { SECRET } from "../../support/hub-process.js";
import type { startPostgres } from "../../support/postgres-process.js";
import { cpuMeter } from "../bench-cluster.js";
import { startHubBenchCluster } from "../hub-cluster.js";
import { percentile, type Figure } from "../report.js";
import { startSinkAgents, type SinkAgents } from "../sink-agents.js";
import { fmt } from "./scenario.js";
import type { HubBenchOptions } from "./hub.js";

export async function measureManyPublishers(o: HubBenchOptions, pg: Awaited<ReturnType<typeof startPostgres>>): Promise<{ figures: Figure[]; details: Record<string, unknown> }> {
  const { sizes, log } = o;
  const n = sizes.hubManyAgents;
  const linger = sizes.hubManyLingerMs;
  const rate = sizes.hubManyRate;
  log(`hub, ${n} sink agents publishing ${fmt(rate)}/s in all → 1 hub (relayLingerMs ${linger}) → each other`);
  const cluster = await startHubBenchCluster({ pg, hubs: 1, receivers: 0, synchronous: o.synchronous, nodeArgs: o.nodeArgs, keepDir: o.keepDir, log,
    hubConfig: { mesh: { relayLingerMs: linger } },
  });
  const hub = cluster.hubs[0]!;
  o.onCluster(cluster);
  let sinks: SinkAgents | null = null;
  try {
    const ids = Array.from({ length: n }, (_, i) => `m${i + 1}`);
    sinks = await startSinkAgents({ secret: SECRET, agents: ids.map((id) => ({ id, hubUrls: [hub.meshUrl] })), processes: 2 });
    await waitFor(`all ${n} sink agents on the hub`, async () => {
      const st = await hub.call<ClusterStatus>("cluster.status");
      return st.peers.filter((p) => p.connected).length >= n + 1;
    }, 60_000);
    const perAgent = Math.max(1, Math.round((rate * sizes.hubLatencySeconds) / n));
    const total = perAgent * n;
    const prefix = "many";
    await sinks.track(prefix, total);
    const pushesBefore = await hub.metric("locmesh_pushes_sent_total");
    const cpu = cpuMeter(cluster.all, sinks.processes);
    const t0 = performance.now();
    const sentAt = await sinks.publish(prefix, perAgent, rate / n);
    const sendSeconds = (performance.now() - t0) / 1000;
    // Each agent takes every edit but its own.
    const all = sinks;
    await waitFor("every edit at every other sink agent", async () => Object.values((await all.counts()).tracked).every((t) => t >= total - perAgent), 60_000, 100)
      .catch((err: unknown) => log(`  ${(err as Error).message}: the figures count what is missing`));
    const used = cpu();
    const pushes = (await hub.metric("locmesh_pushes_sent_total")) - pushesBefore;
    const arrivals = await sinks.arrivals();
    const delays: number[] = [];
    let missing = 0;
    ids.forEach((id, ordinal) => {
      const seen = arrivals[id] ?? [];
      for (let i = 0; i < total; i++) {
        if (i % n === ordinal) continue; // its own
        const at = seen[i];
        const sent = sentAt[i];
        if (at === null || at === undefined || sent === undefined) missing++;
        else delays.push(at - sent);
      }
    });
    delays.sort((a, b) => a - b);
    const p50 = percentile(delays, 50);
    const p99 = percentile(delays, 99);
    const pushesPerAgent = pushes / n / sendSeconds;
    const hubCpu = used[hub.spec.id] ?? 0;
    log(`  ${fmt(total)} edits from ${n} agents at ${fmt(total / sendSeconds)}/s: p50 ${fmt(p50, 2)} ms, p99 ${fmt(p99, 2)} ms, max ${fmt(delays.at(-1) ?? NaN, 2)} ms over ` +
      `${fmt(delays.length)} arrivals, missing ${missing}; ${fmt(pushesPerAgent)} pushes/s per agent; CPU-s/s ${JSON.stringify(used)}`);
    const label = `${n} agents publishing ${fmt(rate)}/s in all`;
    const cpuNote = `CPU-s/s ${JSON.stringify(used)} (the hub ${hubCpu})`;
    const figures: Figure[] = [
      { id: "hubmany.latency.p50", metric: `Hub latency, ${label}, p50`, value: p50, unit: "ms", digits: 2, target: null },
      {
        id: "hubmany.latency.p99", metric: `Hub latency, ${label}, p99`, value: p99, unit: "ms", digits: 2, target: null,
        note: `relayLingerMs ${linger}; ${fmt(total)} single alias edits, ${fmt(perAgent)} from each sink agent (the agent's mesh code, no journal; ` +
          `in 2 processes), each timed from its publish to its arrival at the ${n - 1} others; max ${fmt(delays.at(-1) ?? NaN, 2)} ms, missing ${missing}; ${cpuNote}`,
      },
      {
        id: "hubmany.pushes", metric: `  pushes the hub sent each agent, ${label}`, value: pushesPerAgent, unit: "pushes/s", target: null,
        note: `locmesh_pushes_sent_total over the run, per agent; the hub used ${hubCpu} CPU-s/s for ${fmt(total / sendSeconds)} edits/s in and ${fmt(pushes / sendSeconds)} pushes/s out`,
      },
    ];
    return { figures, details: { agents: n, perAgent, sendSeconds, p50, p99, missing, pushes, cpuSecondsPerSecond: used } };
  } finally {
    log("hub, many publishers: stopping");
    await sinks?.close();
    await cluster.close();
    o.onCluster(null);
  }
}
