/**
 * Throughput: N bindings published into n1 over its WebSocket API (batches of edits, several
 * requests in flight), timed from the first publish until both n2 and n3 hold all of them.
 * Repeated `sizes.repeat` times with fresh keys; the median run is the figure.
 */
import { appliedFromPeers, cpuMeter, pollUntil, vvEntry, type BenchCluster } from "../bench-cluster.js";
import { publishBulk, publishFrames } from "../publisher.js";
import type { ScenarioReport } from "../report.js";
import { editBytes } from "../workload.js";
import { connectWsRpc } from "../ws-client.js";
import { fmt, median, type ScenarioContext } from "./scenario.js";

interface ThroughputRun {
  changesPerSecond: number;
  ingestPerSecond: number;
  ingestSeconds: number;
  n2Seconds: number;
  n3Seconds: number;
  cpuSecondsPerSecond: Record<string, number>;
}

export async function runThroughput(ctx: ScenarioContext): Promise<ScenarioReport> {
  const { sizes, log } = ctx;
  const runs: ThroughputRun[] = [];
  for (let rep = 1; rep <= sizes.repeat; rep++) {
    log(`throughput run ${rep}/${sizes.repeat}`);
    runs.push(await throughputOnce(ctx.cluster, ctx, `tp${rep}x`));
  }
  const rates = runs.map((r) => r.changesPerSecond);
  const mid = runs[rates.indexOf(median(rates))]!;
  const all = rates.map((r) => fmt(r)).join(", ");
  return {
    name: "throughput",
    figures: [
      {
        id: "throughput",
        metric: "Throughput n1 → n2+n3",
        value: mid.changesPerSecond,
        unit: "changes/s",
        target: { kind: "min", value: 20_000 },
        note:
          `median of ${runs.length} runs (${all}/s); ${fmt(sizes.throughputChanges)} bindings each (${editBytes()} B of JSON per edit), ${sizes.publishBatch} edits/request, ` +
          `${sizes.publishInFlight} in flight, first publish → both peers hold all; CPU-s/s in the median run ${JSON.stringify(mid.cpuSecondsPerSecond)}`,
      },
      { id: "throughput.ingest", metric: "  n1 local ingest (publish acks)", value: mid.ingestPerSecond, unit: "changes/s", target: null },
    ],
    details: { changesPerRun: sizes.throughputChanges, requestSize: sizes.publishBatch, inFlight: sizes.publishInFlight, runs },
  };
}

async function throughputOnce(cluster: BenchCluster, ctx: ScenarioContext, prefix: string): Promise<ThroughputRun> {
  const { sizes, log } = ctx;
  const [n1, n2, n3] = cluster.nodes;
  const n = sizes.throughputChanges;
  const r1 = await cluster.replicaOf(n1);
  const base = await vvEntry(n1, r1);
  const [applied2, applied3] = await Promise.all([appliedFromPeers(n2), appliedFromPeers(n3)]);
  // Serialised up front so that building requests does not compete with the agents for CPU.
  const frames = [...publishFrames({ prefix, count: n, batchSize: sizes.publishBatch, nowSec: Math.floor(Date.now() / 1000) })];
  const client = await connectWsRpc(n1.apiUrl, n1.spec.token);
  try {
    log(`  publishing ${fmt(n)} bindings into n1 (${sizes.publishBatch} edits/request, ${sizes.publishInFlight} in flight)`);
    const cpu = cpuMeter(cluster.nodes);
    const t0 = performance.now();
    const timeout = Math.max(120_000, n / 2);
    const wait = (node: typeof n2, from: number) =>
      pollUntil(`${node.spec.id} holds`, async () => (await appliedFromPeers(node)) - from, n, { timeoutMs: timeout, log });
    const done2 = wait(n2, applied2);
    const done3 = wait(n3, applied3);
    let lastPrint = t0;
    const published = await publishBulk(client, frames, {
      inFlight: sizes.publishInFlight,
      onProgress: (accepted) => {
        const now = performance.now();
        if (now - lastPrint < 2000) return;
        lastPrint = now;
        log(`  … n1 accepted ${fmt(accepted)} / ${fmt(n)}`);
      },
    });
    const [t2, t3] = await Promise.all([done2, done3]);
    const cpuUse = cpu();
    if (published.accepted !== n) throw new Error(`n1 accepted ${published.accepted} of ${n} edits`);
    // The metric said so; the version vectors must agree that n1's whole range is there.
    const want = base + n;
    const [have2, have3] = await Promise.all([vvEntry(n2, r1), vvEntry(n3, r1)]);
    if (have2 < want || have3 < want) throw new Error(`n2/n3 hold ${r1} up to ${have2}/${have3}, expected ${want}`);

    const seconds = (Math.max(t2, t3) - t0) / 1000;
    const ingestSeconds = (published.lastAnsweredAt - t0) / 1000;
    const run: ThroughputRun = {
      changesPerSecond: n / seconds,
      ingestPerSecond: n / ingestSeconds,
      ingestSeconds,
      n2Seconds: (t2 - t0) / 1000,
      n3Seconds: (t3 - t0) / 1000,
      cpuSecondsPerSecond: cpuUse,
    };
    log(
      `  n1 accepted all in ${fmt(ingestSeconds, 2)} s (${fmt(run.ingestPerSecond)}/s); n2 had all at ${fmt(run.n2Seconds, 2)} s, ` +
        `n3 at ${fmt(run.n3Seconds, 2)} s → ${fmt(run.changesPerSecond)} changes/s; CPU-s/s ${JSON.stringify(cpuUse)}`,
    );
    return run;
  } finally {
    await client.close();
  }
}
