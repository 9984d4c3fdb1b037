/**
 * Hub mode: one agent publishes, `hubReceivers` agents receive everything through one hub, then
 * through two hubs on the same PostgreSQL. Throughput is timed from the first publish until every
 * receiver holds every change (the median of `repeat` runs); latency is the paced single-edit run
 * of latency-probe.ts with every receiver subscribed.
 *
 * Then the hub tier on its own: the same publisher and one hub, with the receivers replaced by sink
 * agents (sink-agents.ts: the agent's own mesh code, no journal) in two processes. On a 2-core
 * machine the ten real receivers use about half the CPU; the sinks show what the hub and its
 * PostgreSQL carry when the agents have machines of their own, as they do in production. Those
 * figures are reported beside the targets, not against them.
 */
import { availableParallelism } from "node:os";
import type { ClusterStatus } from "../../../agent/contract/cluster-status.js";
import { appliedFromPeers, cpuMeter, pollUntil } from "../bench-cluster.js";
import { startHubBenchCluster, type HubBenchCluster } from "../hub-cluster.js";
import { measureLatency } from "../latency-probe.js";
import { publishBulk, publishFrames } from "../publisher.js";
import type { Figure, ScenarioReport } from "../report.js";
import { startSinkAgents, type SinkAgents } from "../sink-agents.js";
import { connectWsRpc } from "../ws-client.js";
import { waitFor } from "../../support/agent-process.js";
import { SECRET } from "../../support/hub-process.js";
import { startPostgres } from "../../support/postgres-process.js";
import { fmt, median, type BenchSizes } from "./scenario.js";
import { measureManyPublishers } from "./hub-many.js";
import { measureManyOrigins } from "./hub-origins.js";

/** The hub scenario's parts, in the order they run: the targets' 1 and 2 hubs, the hub tier alone, every agent publishing. */
export const HUB_PARTS = ["targets", "tier", "origins", "many"] as const;
export type HubPart = (typeof HUB_PARTS)[number];

export interface HubBenchOptions {
  /** Which parts to run (all by default). */
  parts?: readonly HubPart[];
  sizes: BenchSizes;
  synchronous: "full" | "normal";
  nodeArgs: readonly string[];
  keepDir: boolean;
  /** Hub `mesh.relayLingerMs` (0: send at once). */
  relayLingerMs: number;
  log(line: string): void;
  /** Set while a cluster runs, so the bench's signal handler can stop it. */
  onCluster(c: HubBenchCluster | null): void;
}

async function throughputOnce(c: HubBenchCluster, o: HubBenchOptions, prefix: string) {
  const n = o.sizes.hubThroughputChanges;
  const before = await Promise.all(c.receivers.map(appliedFromPeers));
  const hubBefore = await appliedFromPeers(c.hubs[0]!);
  const frames = [...publishFrames({ prefix, count: n, batchSize: o.sizes.publishBatch, nowSec: Math.floor(Date.now() / 1000) })];
  const client = await connectWsRpc(c.publisher.apiUrl, c.publisher.spec.token);
  try {
    const cpu = cpuMeter(c.all);
    const t0 = performance.now();
    const done = c.receivers.map((r, i) =>
      pollUntil(`${r.spec.id} holds`, async () => (await appliedFromPeers(r)) - before[i]!, n, { timeoutMs: Math.max(120_000, n), intervalMs: 100, log: i === 0 ? o.log : undefined }),
    );
    // When the first hub had every change committed in PostgreSQL: the ingest side on its own.
    const stored = pollUntil("hub1 stored", async () => (await appliedFromPeers(c.hubs[0]!)) - hubBefore, n, { timeoutMs: Math.max(120_000, n), intervalMs: 100 });
    const published = await publishBulk(client, frames, { inFlight: o.sizes.publishInFlight });
    const ends = await Promise.all(done);
    const storedAt = await stored;
    if (published.accepted !== n) throw new Error(`the publisher accepted ${published.accepted} of ${n} edits`);
    const seconds = (Math.max(...ends) - t0) / 1000;
    const run = {
      changesPerSecond: n / seconds, ingestSeconds: (published.lastAnsweredAt - t0) / 1000, seconds,
      hubStoredPerSecond: n / ((storedAt - t0) / 1000), cpuSecondsPerSecond: cpu(),
    };
    o.log(`  ${fmt(n)} changes on all ${c.receivers.length} receivers in ${fmt(seconds, 2)} s → ${fmt(run.changesPerSecond)}/s ` +
      `(stored by hub1 at ${fmt(run.hubStoredPerSecond)}/s); CPU-s/s ${JSON.stringify(run.cpuSecondsPerSecond)}`);
    return run;
  } finally {
    await client.close();
  }
}

/**
 * What the throughput target would take on this machine: the median run's CPU per change, by role,
 * times 10,000 changes/s. It says, run by run, whether the missed target is the machine's limit.
 */
function cpuForTarget(c: HubBenchCluster, run: { changesPerSecond: number; cpuSecondsPerSecond: Record<string, number> }, target: number): Figure {
  const cpu = run.cpuSecondsPerSecond;
  const sumOf = (ids: readonly string[]) => ids.reduce((s, id) => s + (cpu[id] ?? 0), 0);
  const roles = {
    receivers: sumOf(c.receivers.map((r) => r.spec.id)),
    hubs: sumOf(c.hubs.map((h) => h.spec.id)),
    publisher: sumOf([c.publisher.spec.id]),
    "PostgreSQL and the rest": sumOf(["other"]),
    bench: sumOf(["bench"]),
  };
  const at = (v: number) => (v / run.changesPerSecond) * target;
  const total = Object.values(roles).reduce((a, b) => a + b, 0);
  return {
    id: `hub${c.hubs.length}.cpuForTarget`, metric: `  CPU that ${fmt(target)} changes/s would take`, value: at(total), unit: "CPU-s/s", digits: 2, target: null,
    note: `the median run's CPU per change × ${fmt(target)}/s: ${Object.entries(roles).map(([k, v]) => `${k} ${fmt(at(v), 2)}`).join(", ")}; ` +
      `this machine has ${availableParallelism()} CPUs`,
  };
}

async function measureTopology(hubs: number, o: HubBenchOptions, pg: Awaited<ReturnType<typeof startPostgres>>): Promise<{ figures: Figure[]; details: Record<string, unknown> }> {
  const { sizes, log } = o;
  log(`hub: starting PostgreSQL-backed cluster with ${hubs} hub(s), 1 publisher and ${sizes.hubReceivers} receivers`);
  const c = await startHubBenchCluster({ pg, hubs, receivers: sizes.hubReceivers, synchronous: o.synchronous, nodeArgs: o.nodeArgs, keepDir: o.keepDir, log,
    hubConfig: { mesh: { relayLingerMs: o.relayLingerMs } },
  });
  o.onCluster(c);
  try {
    const runs = [];
    for (let rep = 1; rep <= sizes.repeat; rep++) {
      log(`hub (${hubs}): throughput run ${rep}/${sizes.repeat}`);
      runs.push(await throughputOnce(c, o, `hub${hubs}r${rep}x`));
    }
    const rates = runs.map((r) => r.changesPerSecond);
    const mid = runs[rates.indexOf(median(rates))]!;
    const lat = await measureLatency({ publisher: c.publisher, receivers: c.receivers, meter: c.all, rate: sizes.latencyRate, seconds: sizes.hubLatencySeconds, log });
    const label = `${hubs} hub${hubs > 1 ? "s" : ""}`;
    const figures: Figure[] = [
      {
        id: `hub${hubs}.throughput`, metric: `Hub: 1 agent → ${label} → ${sizes.hubReceivers} agents`, value: mid.changesPerSecond, unit: "changes/s",
        target: { kind: "min", value: 10_000 },
        note: `median of ${runs.length} runs (${rates.map((r) => fmt(r)).join(", ")}/s), ${fmt(sizes.hubThroughputChanges)} bindings each, first publish → every receiver holds all; CPU-s/s ${JSON.stringify(mid.cpuSecondsPerSecond)}`,
      },
      cpuForTarget(c, mid, 10_000),
      {
        id: `hub${hubs}.ingest`, metric: `  1 agent → hub1 → PostgreSQL (stored)`, value: mid.hubStoredPerSecond, unit: "changes/s", target: null,
        note: "first publish until hub1 had committed every change; while it also served the receivers",
      },
      { id: `hub${hubs}.latency.p50`, metric: `Hub latency via ${label} p50`, value: lat.pooled.p50, unit: "ms", digits: 2, target: null },
      {
        id: `hub${hubs}.latency.p99`, metric: `Hub latency via ${label} p99`, value: lat.pooled.p99, unit: "ms", digits: 2, target: { kind: "max", value: 20 },
        note: `relayLingerMs ${o.relayLingerMs}; ${fmt(lat.total)} single-edit publishes at ${fmt(sizes.latencyRate)}/s (achieved ${fmt(lat.achieved)}/s), all ${sizes.hubReceivers} receivers pooled, max ${fmt(lat.pooled.max, 2)} ms, missing ${lat.missing}; CPU-s/s ${JSON.stringify(lat.cpuSecondsPerSecond)}`,
      },
    ];
    return { figures, details: { runs, latency: lat } };
  } finally {
    log(`hub (${hubs}): stopping the cluster`);
    await c.close();
    o.onCluster(null);
  }
}

/** Throughput into the sinks: first publish until every sink agent has taken all `n` changes. */
async function sinkThroughputOnce(publisher: HubBenchCluster["publisher"], sinks: SinkAgents, meter: () => () => Record<string, number>, o: HubBenchOptions, prefix: string) {
  const n = o.sizes.hubThroughputChanges;
  const before = (await sinks.counts()).taken;
  const frames = [...publishFrames({ prefix, count: n, batchSize: o.sizes.publishBatch, nowSec: Math.floor(Date.now() / 1000) })];
  const client = await connectWsRpc(publisher.apiUrl, publisher.spec.token);
  try {
    const cpu = meter();
    const t0 = performance.now();
    const published = await publishBulk(client, frames, { inFlight: o.sizes.publishInFlight });
    if (published.accepted !== n) throw new Error(`the publisher accepted ${published.accepted} of ${n} edits`);
    const until = t0 + Math.max(120_000, n);
    for (;;) {
      const { taken } = await sinks.counts();
      if (sinks.ids.every((id) => taken[id]! - before[id]! >= n)) break;
      if (performance.now() > until) throw new Error(`the sink agents did not all take ${n} changes in time: ${JSON.stringify(taken)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const seconds = (performance.now() - t0) / 1000;
    const run = { changesPerSecond: n / seconds, seconds, cpuSecondsPerSecond: cpu() };
    o.log(`  ${fmt(n)} changes on all ${sinks.ids.length} sink agents in ${fmt(seconds, 2)} s → ${fmt(run.changesPerSecond)}/s; CPU-s/s ${JSON.stringify(run.cpuSecondsPerSecond)}`);
    return run;
  } finally {
    await client.close();
  }
}

async function measureHubTier(o: HubBenchOptions, pg: Awaited<ReturnType<typeof startPostgres>>): Promise<{ figures: Figure[]; details: Record<string, unknown> }> {
  const { sizes, log } = o;
  log(`hub tier: 1 publisher → 1 hub → ${sizes.hubTierAgents} sink agents (no journal) in 2 processes`);
  // The publisher and the hub alone (no receiving agents); the sink agents dial the hub below.
  const cluster = await startHubBenchCluster({ pg, hubs: 1, receivers: 0, synchronous: o.synchronous, nodeArgs: o.nodeArgs, keepDir: o.keepDir, log,
    hubConfig: { mesh: { relayLingerMs: o.relayLingerMs } },
  });
  const hub = cluster.hubs[0]!;
  const { publisher } = cluster;
  o.onCluster(cluster);
  let sinks: SinkAgents | null = null;
  try {
    const ids = Array.from({ length: sizes.hubTierAgents }, (_, i) => `s${i + 1}`);
    sinks = await startSinkAgents({ secret: SECRET, agents: ids.map((id) => ({ id, hubUrls: [hub.meshUrl] })), processes: 2 });
    await waitFor("the publisher and every sink agent on the hub", async () => {
      const st = await hub.call<ClusterStatus>("cluster.status");
      return st.peers.filter((p) => p.connected).length >= ids.length + 1;
    }, 30_000);
    const sinkSet = sinks;
    const meter = () => cpuMeter(cluster.all, sinkSet.processes);
    const runs = [];
    for (let rep = 1; rep <= sizes.repeat; rep++) {
      log(`hub tier: throughput run ${rep}/${sizes.repeat}`);
      runs.push(await sinkThroughputOnce(publisher, sinkSet, meter, o, `tier${rep}x`));
    }
    const rates = runs.map((r) => r.changesPerSecond);
    const mid = runs[rates.indexOf(median(rates))]!;
    const pushesBefore = await hub.metric("locmesh_pushes_sent_total");
    const lat = await measureLatency({ publisher, receivers: sinkSet, meter: cluster.all, meterOthers: sinkSet.processes, rate: sizes.hubTierRate, seconds: sizes.hubLatencySeconds, log });
    const pushesPerSecond = (await hub.metric("locmesh_pushes_sent_total") - pushesBefore) / lat.sendSeconds;
    const hubCpu = lat.cpuSecondsPerSecond[hub.spec.id] ?? 0;
    const perPush = pushesPerSecond > 0 ? `${fmt(hubCpu / pushesPerSecond * 1e6)} µs` : "(no pushes counted)";
    log(`  the hub sent ${fmt(pushesPerSecond / ids.length)} pushes/s to each sink agent, ${perPush} of its CPU per push`);
    const figures: Figure[] = [
      {
        id: "hubtier.throughput", metric: `Hub tier: 1 agent → 1 hub → ${sizes.hubTierAgents} sink agents`, value: mid.changesPerSecond, unit: "changes/s", target: null,
        note: `median of ${runs.length} runs (${rates.map((r) => fmt(r)).join(", ")}/s); sink agents run the agent's mesh code without a journal, ` +
          `so the hub and PostgreSQL are timed without journaling agents on the same 2 CPUs; CPU-s/s ${JSON.stringify(mid.cpuSecondsPerSecond)}`,
      },
      { id: "hubtier.latency.p50", metric: "Hub tier latency p50", value: lat.pooled.p50, unit: "ms", digits: 2, target: null },
      {
        id: "hubtier.latency.p99", metric: "Hub tier latency p99", value: lat.pooled.p99, unit: "ms", digits: 2, target: null,
        note: `${fmt(lat.total)} single-edit publishes at ${fmt(sizes.hubTierRate)}/s (achieved ${fmt(lat.achieved)}/s) into a journaling agent, ` +
          `arrival noted by each sink agent; max ${fmt(lat.pooled.max, 2)} ms, missing ${lat.missing}; CPU-s/s ${JSON.stringify(lat.cpuSecondsPerSecond)}`,
      },
      {
        id: "hubtier.latency.pushes", metric: `  pushes the hub sent each sink agent at ${fmt(sizes.hubTierRate)}/s`, value: pushesPerSecond / ids.length, unit: "pushes/s", target: null,
        note: `relayLingerMs ${o.relayLingerMs}; locmesh_pushes_sent_total over the paced run; the hub's CPU over its pushes: ${perPush} a push`,
      },
    ];
    return { figures, details: { runs, latency: lat } };
  } finally {
    log("hub tier: stopping");
    await sinks?.close();
    await cluster.close();
    o.onCluster(null);
  }
}

export async function runHubBench(o: HubBenchOptions): Promise<ScenarioReport> {
  const parts = new Set(o.parts ?? HUB_PARTS);
  const pg = await startPostgres();
  try {
    const figures: Figure[] = [];
    const details: Record<string, unknown> = {};
    if (parts.has("targets")) {
      const one = await measureTopology(1, o, pg);
      const two = await measureTopology(2, o, pg);
      const oneRate = one.figures[0]!.value;
      // "A second hub does not lower throughput": judged against the one-hub figure, with 10% for noise.
      two.figures[0]!.target = { kind: "min", value: Math.round(oneRate * 0.9) };
      two.figures[0]!.note += `; target: at least 90% of the one-hub figure (${fmt(oneRate)}/s)`;
      figures.push(...one.figures, ...two.figures);
      Object.assign(details, { oneHub: one.details, twoHubs: two.details });
    }
    if (parts.has("tier")) {
      const tier = await measureHubTier(o, pg);
      figures.push(...tier.figures);
      details["hubTier"] = tier.details;
    }
    if (parts.has("origins")) {
      const origins = await measureManyOrigins(o, pg);
      figures.push(...origins.figures);
      details["everyAgentPublishing"] = origins.details;
    }
    if (parts.has("many")) {
      const many = await measureManyPublishers(o, pg);
      figures.push(...many.figures);
      details["manyPublishers"] = many.details;
    }
    return { name: "hub", figures, details };
  } finally {
    await pg.close();
  }
}
