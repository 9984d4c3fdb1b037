/**
 * Issue 3, benchmark 1: the most REGISTERs/s one Kamailio node answers with 200 OK, with plain
 * `save("location")`, with the least a hook that sends from the SIP worker can do (one UDP
 * datagram per REGISTER), with locmesh's hook and its agent attached (alone, and in a 3-node
 * mesh), and with dmq_usrloc replicating to 2 peers. sipp offers far more than the node can take (`-r` high)
 * with at most `limit` REGISTERs unanswered, so 200 OKs over the time to the last 200 OK is the
 * node's capacity. REGISTERs lost on the way are counted apart ("lost" in the notes).
 */
import { median, fmt } from "./scenario.js";
import type { Figure, ScenarioReport } from "../report.js";
import { contactCount, cpuOf, queuesDrained, sippRegisters, startNodes, type Flavour } from "../kamailio-nodes.js";
import type { KamailioBenchContext } from "../kamailio-bench.js";

interface Variant {
  name: string;
  flavour: Flavour;
  n: number;
}

/** Variants also measured at the fixed rate (sizes.registrarFixedRate). */
const FIXED_RATE = new Set(["plain", "floor", "hook-only", "locmesh-1"]);

const VARIANTS: Variant[] = [
  { name: "plain", flavour: "plain", n: 1 },
  { name: "hook-only", flavour: "hook", n: 1 },
  { name: "floor", flavour: "floor", n: 1 },
  { name: "locmesh-1", flavour: "locmesh", n: 1 },
  { name: "locmesh-3", flavour: "locmesh", n: 3 },
  { name: "dmq-3", flavour: "dmq", n: 3 },
];

export async function runKamailioRegistrar(ctx: KamailioBenchContext): Promise<ScenarioReport> {
  const { sizes, log } = ctx;
  const fixed: Record<string, { kamailioUs: number; agentUs: number; failed: number }[]> = {};
  const runs: Record<string, { perSecond: number; successful: number; failed: number; seconds: number; stored: number; notified: number; kamailioCpuMsPer1k: number; agentCpuMsPer1k: number }[]> = {};
  // Variants interleaved round by round, so a burst of other work on the box hits all of them alike.
  for (let round = 0; round < sizes.registrarRounds; round++) {
    for (const v of VARIANTS) {
      const nodes = await startNodes(v.flavour, { n: v.n, baseDir: ctx.dir(`reg-${v.name}-${round}`), shmMb: sizes.shmMb, dgramWorkers: 2, nodeArgs: ctx.nodeArgs });
      try {
        const n1 = nodes.nodes[0]!;
        for (let r = 0; r < sizes.registrarRepeat; r++) {
          const prefix = `t${round}r${r}u`;
          const before = await contactCount(n1);
          const cpu0 = await Promise.all(nodes.nodes.map(cpuOf));
          const notified0 = nodes.notified();
          const out = await sippRegisters({ dir: ctx.dir(`reg-${v.name}-${round}`), sipPort: n1.kam.sipPort, count: sizes.registrarCount, rate: 50_000, limit: sizes.registrarLimit, prefix });
          await queuesDrained(nodes.nodes);
          const stored = (await contactCount(n1)) - before;
          const cpu1 = await Promise.all(nodes.nodes.map(cpuOf));
          const per1k = (k: "kamailio" | "agent") => (cpu1.reduce((s, c, i) => s + c[k] - cpu0[i]![k], 0) * 1e6) / out.successful;
          const perSecond = out.successful / out.answeredSeconds;
          const run = { perSecond, successful: out.successful, failed: out.failed, seconds: out.answeredSeconds, stored, notified: nodes.notified() - notified0, kamailioCpuMsPer1k: per1k("kamailio"), agentCpuMsPer1k: per1k("agent") };
          (runs[v.name] ??= []).push(run);
          log(`registrar ${v.name} round ${round + 1} run ${r + 1}: ${fmt(out.successful)} 200 OK in ${fmt(out.answeredSeconds, 2)} s = ${fmt(perSecond)}/s (failed ${out.failed}, stored ${stored}); ` +
            `CPU per 1,000 REGISTERs: Kamailios ${fmt(run.kamailioCpuMsPer1k)} ms, agents ${fmt(run.agentCpuMsPer1k)} ms`);
          if (!Number.isFinite(perSecond)) log(`sipp said:\n${out.output}`);
        }
        if (FIXED_RATE.has(v.name)) {
          const cpu0 = await cpuOf(n1);
          const out = await sippRegisters({ dir: ctx.dir(`reg-${v.name}-${round}`), sipPort: n1.kam.sipPort, count: sizes.registrarFixedCount, rate: sizes.registrarFixedRate, limit: sizes.registrarLimit, prefix: `t${round}fu` });
          await queuesDrained(nodes.nodes);
          const cpu1 = await cpuOf(n1);
          const run = { kamailioUs: ((cpu1.kamailio - cpu0.kamailio) * 1e6) / out.successful, agentUs: ((cpu1.agent - cpu0.agent) * 1e6) / out.successful, failed: out.failed };
          (fixed[v.name] ??= []).push(run);
          log(`registrar ${v.name} round ${round + 1} at ${fmt(sizes.registrarFixedRate)}/s: ${fmt(out.successful)} 200 OK (failed ${out.failed}); CPU per REGISTER: Kamailio ${fmt(run.kamailioUs)} µs, agent ${fmt(run.agentUs)} µs`);
        }
      } finally {
        await nodes.close();
      }
    }
  }
  const med = (name: string) => median(runs[name]!.map((x) => x.perSecond));
  const plain = med("plain");
  const dmq = med("dmq-3");
  const cpu = (name: string) => `CPU per 1,000 REGISTERs (all nodes, median): Kamailio ${fmt(median(runs[name]!.map((x) => x.kamailioCpuMsPer1k)))} ms, agents ${fmt(median(runs[name]!.map((x) => x.agentCpuMsPer1k)))} ms`;
  const all = (name: string) => `${runs[name]!.map((x) => fmt(x.perSecond)).join(", ")}; lost ${fmt(runs[name]!.reduce((s, x) => s + x.failed, 0))} of ${fmt(runs[name]!.reduce((s, x) => s + x.successful + x.failed, 0))}; ${cpu(name)}`;
  const figures: Figure[] = [
    {
      id: "kamailio.registrar.plain", metric: "REGISTER/s, one node, plain save()", value: plain, unit: "/s", target: null,
      reference: { value: dmq, unit: "/s", source: "dmq_usrloc, same run" },
      note: `runs: ${all("plain")}`,
    },
    {
      id: "kamailio.registrar.locmesh", metric: "REGISTER/s, one node, locmesh hook + agent", value: med("locmesh-1"), unit: "/s",
      target: { kind: "min", value: Math.round(plain * 0.95) },
      reference: { value: dmq, unit: "/s", source: "dmq_usrloc, same run" },
      note: `hook cost ${fmt((1 - med("locmesh-1") / plain) * 100, 1)}% of plain (target ≤ 5%); runs: ${all("locmesh-1")}`,
    },
    {
      id: "kamailio.registrar.hook", metric: "REGISTER/s, one node, locmesh hook, no agent attached", value: med("hook-only"), unit: "/s",
      target: { kind: "min", value: Math.round(plain * 0.95) },
      reference: { value: dmq, unit: "/s", source: "dmq_usrloc, same run" },
      note: `the cfg route alone (the queue, the drain and evapi_relay to a client that discards) costs ${fmt((1 - med("hook-only") / plain) * 100, 1)}%; runs: ${all("hook-only")}`,
    },
    {
      id: "kamailio.registrar.floor", metric: "REGISTER/s, one node, one UDP datagram per REGISTER from the SIP worker (the least a hook sending from there can do)", value: med("floor"), unit: "/s",
      target: null,
      reference: { value: plain, unit: "/s", source: "plain save(), same run" },
      note: `costs ${fmt((1 - med("floor") / plain) * 100, 1)}% of plain: corex send_data of the AoR to a socket of the bench's (sharing the CPUs, as an agent would), which received ${fmt(runs["floor"]!.reduce((s, x) => s + x.notified, 0))} datagrams for ${fmt(runs["floor"]!.reduce((s, x) => s + x.successful, 0))} 200 OKs; runs: ${all("floor")}`,
    },
    {
      id: "kamailio.registrar.locmesh3", metric: "REGISTER/s, node 1 of 3, locmesh replicating", value: med("locmesh-3"), unit: "/s", target: null,
      reference: { value: dmq, unit: "/s", source: "dmq_usrloc, same run" },
      note: `${fmt((1 - med("locmesh-3") / plain) * 100, 1)}% below plain; all 3 Kamailios and 3 agents share the 2 CPUs with sipp; runs: ${all("locmesh-3")}`,
    },
    {
      id: "kamailio.registrar.dmq", metric: "REGISTER/s, node 1 of 3, dmq_usrloc replicating", value: dmq, unit: "/s", target: null,
      note: `${fmt((1 - dmq / plain) * 100, 1)}% below plain; runs: ${all("dmq-3")}`,
    },
    ...(["plain", "floor", "hook-only", "locmesh-1", "dmq-3"] as const).map((name): Figure => ({
      id: `kamailio.registrar.cpu.${name}`, metric: `CPU µs per REGISTER, Kamailio + agent, all nodes (${name})`,
      value: median(runs[name]!.map((x) => x.kamailioCpuMsPer1k + x.agentCpuMsPer1k)), unit: "µs", target: null,
      reference: { value: median(runs["plain"]!.map((x) => x.kamailioCpuMsPer1k)), unit: "µs", source: "plain save(), same run" },
      note: "CPU time is steadier than REGISTER/s on a shared box: sipp and other work take the CPUs, the cost per REGISTER stays",
    })),
  ];
  const fixedMedian = (name: string, k: "kamailioUs" | "agentUs") => median(fixed[name]!.map((x) => x[k]));
  const fixedPlain = fixedMedian("plain", "kamailioUs");
  for (const name of FIXED_RATE) {
    const kam = fixedMedian(name, "kamailioUs");
    figures.push({
      id: `kamailio.registrar.fixed.${name}`, metric: `Kamailio CPU µs per REGISTER at ${fmt(sizes.registrarFixedRate)}/s, one node (${name})`,
      value: kam, unit: "µs", target: null,
      reference: { value: fixedPlain, unit: "µs", source: "plain save(), same run" },
      note: `${fmt((kam / fixedPlain - 1) * 100, 1)}% over plain; runs: ${fixed[name]!.map((x) => fmt(x.kamailioUs)).join(", ")} µs` +
        (name === "locmesh-1" ? `; the agent besides: ${fmt(fixedMedian(name, "agentUs"))} µs` : "") +
        `; lost ${fmt(fixed[name]!.reduce((s, x) => s + x.failed, 0))}`,
    });
  }
  return { name: "kamailio-registrar", figures, details: { runs, fixed, count: sizes.registrarCount, limit: sizes.registrarLimit } };
}
