/**
 * Memory: tops the cluster up to `memoryBindings` live bindings (published into n1, replicated to
 * n2 and n3), waits until every node holds them all, lets the agents idle briefly and reads each
 * agent's resident set size (VmRSS) and peak (VmHWM) from /proc.
 */
import type { ClusterStatus } from "../../../agent/contract/cluster-status.js";
import { journalBytes, memoryOf, waitConverged } from "../bench-cluster.js";
import { publishBulk, publishFrames } from "../publisher.js";
import type { ScenarioReport } from "../report.js";
import { connectWsRpc } from "../ws-client.js";
import { fmt, type ScenarioContext } from "./scenario.js";

const SETTLE_MS = 3000;
const MIB_PER_MB = 1e6 / 2 ** 20;

export async function runMemory(ctx: ScenarioContext): Promise<ScenarioReport> {
  const { cluster, sizes, log } = ctx;
  const [n1, n2, n3] = cluster.nodes;
  const locations = async (n: typeof n1) => (await n.call<ClusterStatus>("cluster.status")).counts.locations;
  const held = await locations(n1);
  const topUp = Math.max(0, sizes.memoryBindings - held);
  log(`memory: n1 holds ${fmt(held)} bindings; publishing ${fmt(topUp)} more to reach ${fmt(sizes.memoryBindings)}`);
  const t0 = performance.now();
  if (topUp > 0) {
    const client = await connectWsRpc(n1.apiUrl, n1.spec.token);
    try {
      let lastPrint = t0;
      const frames = publishFrames({ prefix: "mem", count: topUp, batchSize: sizes.publishBatch, nowSec: Math.floor(Date.now() / 1000) });
      await publishBulk(client, frames, {
        inFlight: sizes.publishInFlight,
        onProgress: (accepted) => {
          const now = performance.now();
          if (now - lastPrint < 5000) return;
          lastPrint = now;
          log(`  … n1 accepted ${fmt(accepted)} / ${fmt(topUp)} (n1 RSS ${fmt(memoryOf(n1).rssMiB)} MiB, n2 ${fmt(memoryOf(n2).rssMiB)} MiB)`);
        },
      });
    } finally {
      await client.close();
    }
  }
  await waitConverged(cluster.nodes, 300_000, log);
  const loadSeconds = (performance.now() - t0) / 1000;
  const counts = await Promise.all(cluster.nodes.map(locations));
  if (counts.some((c) => c < sizes.memoryBindings)) throw new Error(`nodes hold ${counts.join("/")} bindings, expected ${sizes.memoryBindings}`);
  log(`memory: all nodes hold ${counts.map((c) => fmt(c)).join(" / ")} bindings (load took ${fmt(loadSeconds, 1)} s); idling ${SETTLE_MS} ms`);
  await new Promise((r) => setTimeout(r, SETTLE_MS));

  const mem = { n1: memoryOf(n1), n2: memoryOf(n2), n3: memoryOf(n3) };
  // Where the resident memory sits: the V8 heap (JavaScript objects) versus everything else
  // (SQLite's page cache, code, buffers), from the agents' default Prometheus metrics.
  // prom-client reads all three in nodejs_heap_size_total_bytes's collect: a `?name=` scrape of
  // the other two alone returns what the last scrape of it set, so that one is asked first.
  const heapOf = async (n: typeof n1) => {
    const heapTotalMiB = (await n.metric("nodejs_heap_size_total_bytes")) / 2 ** 20;
    return {
      heapUsedMiB: (await n.metric("nodejs_heap_size_used_bytes")) / 2 ** 20,
      heapTotalMiB,
      externalMiB: (await n.metric("nodejs_external_memory_bytes")) / 2 ** 20,
    };
  };
  const heaps = { n1: await heapOf(n1), n2: await heapOf(n2), n3: await heapOf(n3) };
  const journals = { n1: journalBytes(n1), n2: journalBytes(n2), n3: journalBytes(n3) };
  for (const [id, m] of Object.entries(mem)) {
    const k = id as keyof typeof journals;
    log(
      `memory: ${id} RSS ${fmt(m.rssMiB, 1)} MiB (peak ${fmt(m.peakRssMiB, 1)} MiB); V8 heap ${fmt(heaps[k].heapUsedMiB, 1)} used / ` +
        `${fmt(heaps[k].heapTotalMiB, 1)} MiB, external ${fmt(heaps[k].externalMiB, 1)} MiB; journal ${fmt(journals[k] / 2 ** 20, 1)} MiB on disk`,
    );
  }
  // Targets are in MB (10^6 bytes), as is usual; RSS is read in KiB. Report MB to match.
  const mb = (mib: number) => mib / MIB_PER_MB;
  const note = `${fmt(sizes.memoryBindings)} bindings on every node, VmRSS after ${SETTLE_MS / 1000} s idle; peak (VmHWM) n1 ${fmt(mb(mem.n1.peakRssMiB))} MB, n2 ${fmt(mb(mem.n2.peakRssMiB))} MB`;
  return {
    name: "memory",
    figures: [
      { id: "memory.n1", metric: "RSS n1 (publishing node)", value: mb(mem.n1.rssMiB), unit: "MB", target: { kind: "max", value: 300 }, note },
      { id: "memory.n2", metric: "RSS n2 (receiving node)", value: mb(mem.n2.rssMiB), unit: "MB", target: { kind: "max", value: 300 } },
      { id: "memory.n2.peak", metric: "  peak RSS n2 (VmHWM)", value: mb(mem.n2.peakRssMiB), unit: "MB", target: null },
    ],
    details: {
      bindings: counts,
      loadSeconds,
      toppedUp: topUp,
      rssMiB: Object.fromEntries(Object.entries(mem).map(([k, v]) => [k, v.rssMiB])),
      peakRssMiB: Object.fromEntries(Object.entries(mem).map(([k, v]) => [k, v.peakRssMiB])),
      journalBytes: journals,
      v8: heaps,
    },
  };
}
