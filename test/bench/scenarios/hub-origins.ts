/**
 * Hub mode as a cluster uses it: every agent publishes its own registrations and receives everyone
 * else's. `hubReceivers` agents on one hub, each publishing a share: throughput is timed from the
 * first publish until every agent holds every other agent's changes; latency is the paced
 * single-edit run of latency-probe.ts with the publishes spread over all agents in turn, each
 * change timed at the agents that did not make it.
 *
 * The hub scenario's other runs have one publishing agent, so each push a hub sends carries that
 * one origin's changes. Here the hub relays many origins at once to every agent, which is what a
 * cluster of many nodes asks of it (the README's "Scale-out"). The hub lingers
 * (`hubOriginsLingerMs`), as the README advises for many publishing nodes, so that a push carries
 * every origin's changes that came meanwhile; the pushes per agent and the agents' CPU per change
 * they take show what that saves. The paced rate (`hubOriginsRate`) is lower than the targets'
 * 2,000/s: ten agents publishing single edits saturate this 2-core machine well before.
 */
import { appliedFromPeers, cpuMeter, pollUntil } from "../bench-cluster.js";
import { startHubBenchCluster, type HubBenchCluster } from "../hub-cluster.js";
import { measureLatency } from "../latency-probe.js";
import { publishBulk, publishFrames } from "../publisher.js";
import type { Figure } from "../report.js";
import { connectWsRpc } from "../ws-client.js";
import type { startPostgres } from "../../support/postgres-process.js";
import { fmt, median } from "./scenario.js";
import type { HubBenchOptions } from "./hub.js";

async function throughputOnce(agents: HubBenchCluster["receivers"], meter: () => () => Record<string, number>, o: HubBenchOptions, prefix: string) {
  const n = o.sizes.hubThroughputChanges;
  const share = Math.floor(n / agents.length);
  const total = share * agents.length;
  const before = await Promise.all(agents.map(appliedFromPeers));
  const nowSec = Math.floor(Date.now() / 1000);
  const clients = await Promise.all(agents.map((a) => connectWsRpc(a.apiUrl, a.spec.token)));
  try {
    const cpu = meter();
    const t0 = performance.now();
    const done = agents.map((a, i) =>
      pollUntil(`${a.spec.id} holds the others'`, async () => (await appliedFromPeers(a)) - before[i]!, total - share, {
        timeoutMs: Math.max(120_000, n), intervalMs: 100, log: i === 0 ? o.log : undefined,
      }),
    );
    const published = await Promise.all(agents.map((_, i) =>
      publishBulk(clients[i]!, publishFrames({ prefix: `${prefix}${i}n`, count: share, batchSize: o.sizes.publishBatch, nowSec }), { inFlight: o.sizes.publishInFlight }),
    ));
    const ends = await Promise.all(done);
    const accepted = published.reduce((s, p) => s + p.accepted, 0);
    if (accepted !== total) throw new Error(`the agents accepted ${accepted} of ${total} edits`);
    const seconds = (Math.max(...ends) - t0) / 1000;
    const run = { changesPerSecond: total / seconds, seconds, cpuSecondsPerSecond: cpu() };
    o.log(`  ${fmt(total)} changes from ${agents.length} agents on all of them in ${fmt(seconds, 2)} s → ${fmt(run.changesPerSecond)}/s; ` +
      `CPU-s/s ${JSON.stringify(run.cpuSecondsPerSecond)}`);
    return run;
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

/** The agents' CPU per change they took from the hub, in µs: CPU-s/s summed over the agents, per delivery. */
function agentCpuPerDelivery(agents: readonly { spec: { id: string } }[], cpu: Record<string, number>, changesPerSecond: number): number {
  const used = agents.reduce((s, a) => s + (cpu[a.spec.id] ?? 0), 0);
  return (used / (changesPerSecond * (agents.length - 1))) * 1e6;
}

export async function measureManyOrigins(o: HubBenchOptions, pg: Awaited<ReturnType<typeof startPostgres>>): Promise<{ figures: Figure[]; details: Record<string, unknown> }> {
  const { sizes, log } = o;
  const count = sizes.hubReceivers;
  const linger = sizes.hubOriginsLingerMs;
  log(`hub, every agent publishing: ${count} agents → 1 hub (relayLingerMs ${linger}) → each other`);
  const c = await startHubBenchCluster({ pg, hubs: 1, receivers: count - 1, synchronous: o.synchronous, nodeArgs: o.nodeArgs, keepDir: o.keepDir, log,
    hubConfig: { mesh: { relayLingerMs: linger } },
  });
  const hub = c.hubs[0]!;
  const pushes = () => hub.metric("locmesh_pushes_sent_total");
  o.onCluster(c);
  const agents = [c.publisher, ...c.receivers];
  try {
    const runs = [];
    for (let rep = 1; rep <= sizes.repeat; rep++) {
      log(`hub, every agent publishing: throughput run ${rep}/${sizes.repeat}`);
      runs.push(await throughputOnce(agents, () => cpuMeter(c.all), o, `orig${rep}x`));
    }
    const rates = runs.map((r) => r.changesPerSecond);
    const mid = runs[rates.indexOf(median(rates))]!;
    const pushesBefore = await pushes();
    const lat = await measureLatency({ publisher: c.publisher, publishers: agents, receivers: agents, meter: c.all, rate: sizes.hubOriginsRate, seconds: sizes.hubLatencySeconds, log });
    const pushesPerAgent = (await pushes() - pushesBefore) / count / lat.sendSeconds;
    log(`  the hub sent each agent ${fmt(pushesPerAgent)} pushes/s for ${fmt(lat.achieved)} changes/s`);
    const rate = `${fmt(sizes.hubOriginsRate)}/s`;
    const figures: Figure[] = [
      {
        id: "huborigins.throughput", metric: `Hub: ${count} agents, each publishing → 1 hub → each other`, value: mid.changesPerSecond, unit: "changes/s", target: null,
        note: `median of ${runs.length} runs (${rates.map((r) => fmt(r)).join(", ")}/s), ${fmt(sizes.hubThroughputChanges)} bindings in ${count} equal shares published at once, ` +
          `first publish → every agent holds every other agent's; CPU-s/s ${JSON.stringify(mid.cpuSecondsPerSecond)}`,
      },
      {
        id: "huborigins.agentCpu", metric: "  agents' CPU per change taken from the hub", value: agentCpuPerDelivery(agents, mid.cpuSecondsPerSecond, mid.changesPerSecond), unit: "µs", digits: 1, target: null,
        note: "the agents' CPU (publishing their share included) over every change each took from the hub, in the median throughput run",
      },
      { id: "huborigins.latency.p50", metric: `Hub latency, ${count} agents publishing ${rate} in all, p50`, value: lat.pooled.p50, unit: "ms", digits: 2, target: null },
      {
        id: "huborigins.latency.p99", metric: `Hub latency, ${count} agents publishing ${rate} in all, p99`, value: lat.pooled.p99, unit: "ms", digits: 2, target: null,
        note: `relayLingerMs ${linger}; ${fmt(lat.total)} single-edit publishes spread over the ${count} agents in turn (achieved ${fmt(lat.achieved)}/s), ` +
          `each timed at the ${count - 1} others, max ${fmt(lat.pooled.max, 2)} ms, missing ${lat.missing}; CPU-s/s ${JSON.stringify(lat.cpuSecondsPerSecond)}`,
      },
      {
        id: "huborigins.latency.pushes", metric: `  pushes the hub sent each agent at ${rate}`, value: pushesPerAgent, unit: "pushes/s", target: null,
        note: "locmesh_pushes_sent_total on the hub over the paced run, per agent: a push carries every origin's changes that waited for it",
      },
      {
        id: "huborigins.latency.agentCpu", metric: `  agents' CPU per change taken from the hub at ${rate}`, value: agentCpuPerDelivery(agents, lat.cpuSecondsPerSecond, lat.achieved), unit: "µs", digits: 1, target: null,
        note: "the agents' CPU (publishing included) over every change each took from the hub, in the paced run",
      },
    ];
    return { figures, details: { runs, latency: lat } };
  } finally {
    log("hub, every agent publishing: stopping the cluster");
    await c.close();
    o.onCluster(null);
  }
}
