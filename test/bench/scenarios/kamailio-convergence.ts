/**
 * Issue 3, benchmark 2: REGISTERs at a steady 2,000/s into node 1 of 3; once sipp has its last
 * 200 OK, how long until every node's Kamailio holds them all (usrloc's contact counter, polled
 * every 20 ms over jsonrpcs UDP), and which of them each node lacks (ul.lookup of every AoR), and
 * the CPU the 3 nodes (Kamailio and agents) spent per REGISTER until then: the cost of
 * replication at a steady load, which unlike a saturating load does not depend on who wins the CPUs.
 * locmesh and dmq_usrloc, alternately, in the same run.
 */
import { fmt, median } from "./scenario.js";
import type { Figure, ScenarioReport } from "../report.js";
import { contactCount, cpuOf, missingAors, sippRegisters, startNodes, waitCounts, type BenchNodes, type Flavour } from "../kamailio-nodes.js";
import type { KamailioBenchContext } from "../kamailio-bench.js";

interface Run {
  accepted: number;
  failedAtRegistrar: number;
  /** Seconds from sipp's end until all nodes held every accepted binding; NaN when they never did. */
  lagSeconds: number;
  /** Accepted bindings missing from each node's Kamailio at the end. */
  lost: number[];
  /** CPU ms per 1,000 accepted REGISTERs, all 3 nodes, from sipp's start until they agreed. */
  kamailioCpuMsPer1k: number;
  agentCpuMsPer1k: number;
}

export async function runKamailioConvergence(ctx: KamailioBenchContext): Promise<ScenarioReport> {
  const { sizes, log } = ctx;
  const count = sizes.convergenceCount;
  const runs: Record<"locmesh" | "dmq", Run[]> = { locmesh: [], dmq: [] };
  const clusters: Partial<Record<Flavour, BenchNodes>> = {};
  try {
    for (const f of ["locmesh", "dmq"] as const) {
      clusters[f] = await startNodes(f, { n: 3, baseDir: ctx.dir(`conv-${f}`), shmMb: sizes.shmMb, dgramWorkers: 2, nodeArgs: ctx.nodeArgs });
    }
    for (let r = 0; r < sizes.repeat; r++) {
      for (const f of ["locmesh", "dmq"] as const) {
        const { nodes } = clusters[f]!;
        const prefix = `c${r}u`;
        const before = await Promise.all(nodes.map(contactCount));
        const cpu0 = await Promise.all(nodes.map(cpuOf));
        const out = await sippRegisters({ dir: ctx.dir(`conv-${f}`), sipPort: nodes[0]!.kam.sipPort, count, rate: sizes.convergenceRate, limit: 2000, prefix });
        const ended = performance.now();
        const accepted = (await contactCount(nodes[0]!)) - before[0]!;
        const seen = await waitCounts(nodes, before.map((b) => b + accepted), sizes.convergenceTimeoutMs);
        const lagSeconds = seen.at === null ? NaN : Math.max(0, seen.at - ended) / 1000;
        const cpu1 = await Promise.all(nodes.map(cpuOf));
        const per1k = (k: "kamailio" | "agent") => (cpu1.reduce((sum, c, i) => sum + c[k] - cpu0[i]![k], 0) * 1e6) / Math.max(1, accepted);
        const missing = await Promise.all(nodes.map((x) => missingAors(x, prefix, count)));
        const lost = missing.map((m) => m - missing[0]!);
        runs[f].push({ accepted, failedAtRegistrar: count - accepted, lagSeconds, lost, kamailioCpuMsPer1k: per1k("kamailio"), agentCpuMsPer1k: per1k("agent") });
        log(`convergence ${f} run ${r + 1}: ${fmt(out.successful)} 200 OK at ${fmt(out.successful / out.answeredSeconds)}/s; node 1 stored ${fmt(accepted)}; ` +
          `all nodes equal ${Number.isNaN(lagSeconds) ? `NEVER (counts ${seen.counts.map((c, i) => c - before[i]!).join("/")})` : `${fmt(lagSeconds, 3)} s`} after the load; lost per node ${lost.join("/")}; ` +
          `CPU per 1,000 REGISTERs: Kamailios ${fmt(per1k("kamailio"))} ms, agents ${fmt(per1k("agent"))} ms`);
      }
    }
  } finally {
    await Promise.allSettled(Object.values(clusters).map((c) => c.close()));
  }
  const lag = (f: "locmesh" | "dmq") => median(runs[f].map((x) => (Number.isNaN(x.lagSeconds) ? Infinity : x.lagSeconds)));
  const lostMax = (f: "locmesh" | "dmq") => Math.max(...runs[f].map((x) => Math.max(...x.lost)));
  const list = (f: "locmesh" | "dmq") => runs[f].map((x) => `${fmt(x.lagSeconds, 3)} s, lost ${x.lost.join("/")}, registrar failed ${x.failedAtRegistrar}`).join("; ");
  const dmqLag = lag("dmq");
  const cpu = (f: "locmesh" | "dmq") => median(runs[f].map((x) => x.kamailioCpuMsPer1k + x.agentCpuMsPer1k));
  const cpuNote = (f: "locmesh" | "dmq") =>
    `Kamailio ${fmt(median(runs[f].map((x) => x.kamailioCpuMsPer1k)))} ms + agents ${fmt(median(runs[f].map((x) => x.agentCpuMsPer1k)))} ms (medians)`;
  const figures: Figure[] = [
    {
      id: "kamailio.convergence.locmesh.lag", metric: `3 nodes equal after ${fmt(count)} REGISTERs at ${fmt(sizes.convergenceRate)}/s (locmesh)`,
      value: lag("locmesh"), unit: "s", digits: 3, target: { kind: "atMost", value: 0.5 },
      reference: { value: dmqLag, unit: "s", source: "dmq_usrloc, same run" }, note: `median of ${sizes.repeat}; runs: ${list("locmesh")}`,
    },
    {
      id: "kamailio.convergence.dmq.lag", metric: `3 nodes equal after ${fmt(count)} REGISTERs at ${fmt(sizes.convergenceRate)}/s (dmq_usrloc)`,
      value: dmqLag, unit: "s", digits: 3, target: null, note: `median of ${sizes.repeat}; runs: ${list("dmq")}`,
    },
    {
      id: "kamailio.convergence.locmesh.lost", metric: "bindings lost on a node, worst run (locmesh)", value: lostMax("locmesh"), unit: "",
      target: { kind: "atMost", value: 0 }, reference: { value: lostMax("dmq"), unit: "", source: "dmq_usrloc, same run" },
    },
    { id: "kamailio.convergence.dmq.lost", metric: "bindings lost on a node, worst run (dmq_usrloc)", value: lostMax("dmq"), unit: "", target: null },
    {
      id: "kamailio.convergence.locmesh.cpu", metric: `CPU ms per 1,000 REGISTERs at ${fmt(sizes.convergenceRate)}/s, 3 nodes (locmesh)`,
      value: cpu("locmesh"), unit: "ms", target: null, reference: { value: cpu("dmq"), unit: "ms", source: "dmq_usrloc, same run" },
      note: `${cpuNote("locmesh")}; dmq_usrloc: ${cpuNote("dmq")}`,
    },
  ];
  return { name: "kamailio-convergence", figures, details: { runs, count, rate: sizes.convergenceRate } };
}
