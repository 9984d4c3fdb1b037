/**
 * `npm run bench`: the benchmarks' composition root (the only place that reads argv, installs
 * signal handlers or exits). Starts three real agents on 127.0.0.1, runs the mesh scenarios in
 * order against them, then the hub scenario (its own PostgreSQL, hubs and agents), prints the
 * table and writes bench-results/mesh.json.
 */
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { packageRoot } from "../../agent/ops/paths.js";
import { startBenchCluster, type Synchronous } from "./bench-cluster.js";
import { cpuBusyFraction, machineInfo, summarize, writeResults, type ModeReport } from "./report.js";
import { runCatchUp } from "./scenarios/catch-up.js";
import { runLatency } from "./scenarios/latency.js";
import { runMemory } from "./scenarios/memory.js";
import type { BenchSizes, Scenario } from "./scenarios/scenario.js";
import { runThroughput } from "./scenarios/throughput.js";
import { KAMAILIO_FULL, runKamailioBench } from "./kamailio-bench.js";
import { HUB_PARTS, runHubBench, type HubPart } from "./scenarios/hub.js";

/** Runs after the mesh scenarios, on its own cluster (PostgreSQL, hubs, 11 agents). */
const HUB = "hub";

const SCENARIOS: Record<string, Scenario> = {
  throughput: runThroughput,
  latency: runLatency,
  catchup: runCatchUp,
  memory: runMemory,
};

const FULL: BenchSizes = {
  throughputChanges: 200_000,
  latencySeconds: 15,
  latencyRate: 2000,
  catchupChanges: 100_000,
  memoryBindings: 1_000_000,
  publishBatch: 500,
  publishInFlight: 4,
  hubThroughputChanges: 50_000,
  hubReceivers: 10,
  hubLatencySeconds: 10,
  hubOriginsRate: 500,
  hubOriginsLingerMs: 5,
  hubTierAgents: 10,
  hubTierRate: 2000,
  hubManyAgents: 100,
  hubManyRate: 500,
  hubManyLingerMs: 20,
  repeat: 3,
};

const QUICK: BenchSizes = {
  ...FULL,
  throughputChanges: 20_000,
  latencySeconds: 4,
  catchupChanges: 20_000,
  memoryBindings: 100_000,
  hubThroughputChanges: 10_000,
  hubLatencySeconds: 4,
  repeat: 1,
};

const HELP = `Usage: node dist/test/bench/run.js [options]

Benchmarks a 3-agent locmesh mesh and a PostgreSQL-backed hub cluster on 127.0.0.1 (real
processes, no Kamailio) and prints
| metric | locmesh | target | reference | ratio/verdict |. Results go to bench-results/mesh.json.

Scenarios, in the order they run (all by default; they share one cluster). Throughput and catch-up
run ${FULL.repeat} times each and report the median run; the notes under the table list every run.
  throughput  ${FULL.throughputChanges.toLocaleString("en-US")} bindings into n1 until n2 and n3 hold them all (target ≥ 20,000/s)
  latency     ${FULL.latencyRate}/s paced single-edit publishes for ${FULL.latencySeconds} s; n1 publish → n2/n3 notification (target p99 < 10 ms)
  catchup     kill -9 n3, ${FULL.catchupChanges.toLocaleString("en-US")} bindings into n1, restart n3 until it holds them (target < 2 s)
  memory      agent RSS with ${FULL.memoryBindings.toLocaleString("en-US")} bindings on every node (target < 300 MB)
  kamailio    issue 3, against Kamailio's dmq_usrloc in the same run (3 real Kamailio nodes, -m 512), into
              bench-results/kamailio.json; its parts can be picked alone as kamailio.registrar, .convergence, .reload:
              registrar    REGISTER/s one node answers: plain save() vs locmesh hook + agent (target ≤ 5% cost) vs dmq
              convergence  ${KAMAILIO_FULL.convergenceCount.toLocaleString("en-US")} REGISTERs at ${KAMAILIO_FULL.convergenceRate}/s: lost bindings and time until 3 nodes agree (target 0, ≤ 0.5 s)
              reload       ${KAMAILIO_FULL.reloadCount.toLocaleString("en-US")} bindings back into a restarted Kamailio (target: no slower than dmq's sync)
  hub         a real PostgreSQL, 1 publishing agent → 1 hub → ${FULL.hubReceivers} agents, then the same through 2 hubs:
              throughput of ${FULL.hubThroughputChanges.toLocaleString("en-US")} bindings (target ≥ 10,000/s; 2 hubs ≥ 90% of 1 hub),
              latency at ${FULL.latencyRate}/s for ${FULL.hubLatencySeconds} s (target p99 < 20 ms); then the hub tier alone:
              the same through 1 hub to ${FULL.hubTierAgents} sink agents (the agent's mesh code, no journal), no target; then
              ${FULL.hubReceivers} agents on 1 hub (relayLingerMs ${FULL.hubOriginsLingerMs}), each publishing and receiving everyone else's:
              throughput, latency at ${FULL.hubOriginsRate}/s in all, pushes per agent, no target; then ${FULL.hubManyAgents} sink agents
              on 1 hub (relayLingerMs ${FULL.hubManyLingerMs}), all publishing ${FULL.hubManyRate}/s in all: latency, pushes per agent, the
              hub's CPU, no target. Its parts can be picked alone as hub.targets, hub.tier, hub.origins, hub.many

Options:
  --only <list>      comma-separated scenarios to run, e.g. --only throughput,latency
  --quick            smaller sizes, one run each (a smoke test; figures are not comparable with the targets)
  --sync <mode>      journal synchronous mode: full (default, production), normal, or both
  --profile <dir>    run the agents with --cpu-prof, writing .cpuprofile files into <dir>
  --node-flag <flag> pass a flag to the agents' node (repeatable), e.g. --node-flag=--trace-gc
  --hub-linger <ms>  the hubs' mesh.relayLingerMs in the hub scenario (default 0)
  --hub-tier-agents <n>  sink agents in the hub tier part (default ${FULL.hubTierAgents}; e.g. 100 for a hub's fan-out
                     to a hundred nodes)
  --hub-tier-rate <n>  single-edit publishes/s of the hub tier's latency run (default ${FULL.hubTierRate})
  --hub-many-linger <ms>  the hub's mesh.relayLingerMs in hub.many (default ${FULL.hubManyLingerMs})
  --hub-many-rate <n>  edits/s in all that hub.many's agents publish (default ${FULL.hubManyRate})
  --out <file>       results file (default bench-results/mesh.json)
  --keep             keep the agents' temp folders (journals and logs) for inspection
  -h, --help         this text
`;

interface Options {
  scenarios: string[];
  /** Parts of the Kamailio group to run (kamailio-bench.ts); empty = none. */
  kamailio: string[];
  /** Parts of the hub scenario to run (scenarios/hub.ts); empty = none. */
  hub: HubPart[];
  hubLingerMs: number;
  hubTierAgents: number;
  hubTierRate: number;
  hubManyLingerMs: number;
  hubManyRate: number;
  modes: Synchronous[];
  quick: boolean;
  nodeArgs: string[];
  out: string;
  keep: boolean;
}

/** Reads argv; a string is a usage error to print, null means --help was printed. */
function parseOptions(argv: string[]): Options | string | null {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        only: { type: "string" },
        quick: { type: "boolean", default: false },
        sync: { type: "string", default: "full" },
        profile: { type: "string" },
        "node-flag": { type: "string", multiple: true, default: [] },
        out: { type: "string", default: join(packageRoot(), "bench-results", "mesh.json") },
        "hub-linger": { type: "string", default: "0" },
        "hub-tier-agents": { type: "string", default: String(FULL.hubTierAgents) },
        "hub-tier-rate": { type: "string", default: String(FULL.hubTierRate) },
        "hub-many-linger": { type: "string", default: String(FULL.hubManyLingerMs) },
        "hub-many-rate": { type: "string", default: String(FULL.hubManyRate) },
        keep: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (err) {
    return `${(err as Error).message}; see --help`;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return null;
  }
  const known = [...Object.keys(SCENARIOS), HUB];
  const wanted = values.only ? values.only.split(",").map((s) => s.trim()).filter(Boolean) : [...known, "kamailio"];
  const kamailio = wanted.includes("kamailio") ? KAMAILIO_PARTS : KAMAILIO_PARTS.filter((p) => wanted.includes(`kamailio.${p}`));
  const hub = wanted.includes(HUB) ? [...HUB_PARTS] : HUB_PARTS.filter((p) => wanted.includes(`${HUB}.${p}`));
  const unknown = wanted.filter((s) => !known.includes(s) && s !== "kamailio" && !KAMAILIO_PARTS.some((p) => s === `kamailio.${p}`) && !HUB_PARTS.some((p) => s === `${HUB}.${p}`));
  if (unknown.length > 0) return `unknown scenario ${unknown.join(", ")}; choose from ${[...known, "kamailio"].join(", ")} (or a part: kamailio.${KAMAILIO_PARTS.join(", kamailio.")}, hub.${HUB_PARTS.join(", hub.")})`;
  const modes: Record<string, Synchronous[]> = { full: ["full"], normal: ["normal"], both: ["full", "normal"] };
  if (!/^\d+$/.test(values["hub-linger"])) return `--hub-linger must be a whole number of milliseconds, not ${values["hub-linger"]}`;
  const tierAgents = values["hub-tier-agents"];
  if (!/^\d+$/.test(tierAgents) || Number(tierAgents) < 1 || Number(tierAgents) > 1000) return `--hub-tier-agents must be a whole number from 1 to 1000, not ${tierAgents}`;
  const tierRate = values["hub-tier-rate"];
  if (!/^\d+$/.test(tierRate) || Number(tierRate) < 1) return `--hub-tier-rate must be a whole number of publishes a second, not ${tierRate}`;
  const manyLinger = values["hub-many-linger"];
  if (!/^\d+$/.test(manyLinger)) return `--hub-many-linger must be a whole number of milliseconds, not ${manyLinger}`;
  const manyRate = values["hub-many-rate"];
  if (!/^\d+$/.test(manyRate) || Number(manyRate) < 1) return `--hub-many-rate must be a whole number of edits a second, not ${manyRate}`;
  if (!modes[values.sync]) return `--sync must be full, normal or both, not ${values.sync}`;
  return {
    // Always in the canonical order: later scenarios build on the data earlier ones left.
    scenarios: Object.keys(SCENARIOS).filter((s) => wanted.includes(s)),
    kamailio,
    hub,
    hubLingerMs: Number(values["hub-linger"]),
    hubTierAgents: Number(tierAgents),
    hubTierRate: Number(tierRate),
    hubManyLingerMs: Number(manyLinger),
    hubManyRate: Number(manyRate),
    modes: modes[values.sync]!,
    quick: values.quick,
    nodeArgs: [...(values.profile ? ["--cpu-prof", `--cpu-prof-dir=${resolve(values.profile)}`] : []), ...values["node-flag"]],
    out: values.out,
    keep: values.keep,
  };
}

const KAMAILIO_PARTS = ["registrar", "convergence", "reload"];

const log = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 23)} ${line}\n`);

/** The cluster being measured, so that signals and a crashing bench can stop it. */
let current: { close(): Promise<void>; killNow(): void } | null = null;

/** One cluster per journal mode; every scenario runs even if an earlier one failed. */
async function runMode(opts: Options, synchronous: Synchronous, sizes: BenchSizes): Promise<ModeReport> {
  log(`starting 3 agents (journal synchronous=${synchronous})`);
  const cluster = await startBenchCluster({ synchronous, nodeArgs: opts.nodeArgs, keepDir: opts.keep, log });
  current = cluster;
  const report: ModeReport = { synchronous, scenarios: [] };
  try {
    for (const name of opts.scenarios) {
      log(`── ${name} ──`);
      try {
        report.scenarios.push(await SCENARIOS[name]!({ cluster, sizes, quick: opts.quick, log }));
      } catch (err) {
        log(`${name} FAILED: ${(err as Error).stack ?? String(err)}`);
        report.scenarios.push({ name, figures: [], details: {}, error: (err as Error).message });
      }
    }
  } finally {
    log("stopping the agents");
    await cluster.close();
    current = null;
  }
  return report;
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  if (opts === null) return 0;
  if (typeof opts === "string") {
    process.stderr.write(`${opts}\n`);
    return 2;
  }
  const onSignal = (signal: NodeJS.Signals) => {
    log(`${signal}: stopping the agents`);
    void (current?.close() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  // However the bench ends (a crash included), no agent outlives it.
  process.once("exit", () => current?.killNow());

  const started = new Date();
  const machine = { ...machineInfo(), cpuBusyBeforeStart: Math.round((await cpuBusyFraction(1000)) * 100) / 100 };
  if (machine.cpuBusyBeforeStart > BUSY) {
    log(`WARNING: the CPUs were ${Math.round(machine.cpuBusyBeforeStart * 100)}% busy before the bench started; other work skews the figures`);
  }
  const sizes = { ...(opts.quick ? QUICK : FULL), hubTierAgents: opts.hubTierAgents, hubTierRate: opts.hubTierRate, hubManyLingerMs: opts.hubManyLingerMs, hubManyRate: opts.hubManyRate };
  if (opts.kamailio.length > 0 && !(await runKamailio(opts, started, machine))) failedKamailio = true;
  if (opts.scenarios.length === 0 && opts.hub.length === 0) return failedKamailio ? 1 : 0;
  const modes: ModeReport[] = [];
  if (opts.scenarios.length > 0) for (const synchronous of opts.modes) modes.push(await runMode(opts, synchronous, sizes));
  if (opts.hub.length > 0) {
    const synchronous = opts.modes[0]!;
    log(`── hub (journal synchronous=${synchronous}) ──`);
    const hub = await runHubBench({ parts: opts.hub, sizes, synchronous, relayLingerMs: opts.hubLingerMs, nodeArgs: opts.nodeArgs, keepDir: opts.keep, log, onCluster: (c) => (current = c) }).catch(
      (err: unknown) => {
        log(`hub FAILED: ${(err as Error).stack ?? String(err)}`);
        return { name: HUB, figures: [], details: {}, error: (err as Error).message };
      },
    );
    const mode = modes.find((m) => m.synchronous === synchronous);
    if (mode) mode.scenarios.push(hub);
    else modes.push({ synchronous, scenarios: [hub] });
  }

  const outcome = summarize(modes);
  const busyNote = machine.cpuBusyBeforeStart > BUSY ? " (BUSY MACHINE: figures skewed)" : "";
  process.stdout.write(
    `\nlocmesh mesh benchmark — ${started.toISOString()} — ${machine.cpu}, ${machine.nproc} CPUs, node ${machine.node}` +
      `${opts.quick ? " — QUICK RUN (smaller sizes)" : ""}; journal synchronous=${opts.modes.join(", ")}` +
      `; CPUs ${Math.round(machine.cpuBusyBeforeStart * 100)}% busy before start${busyNote}\n\n${outcome.text}`,
  );
  writeResults(opts.out, {
    date: started.toISOString(),
    durationSeconds: Math.round((Date.now() - started.getTime()) / 1000),
    machine,
    quick: opts.quick,
    sizes,
    figures: outcome.figures,
    runs: modes,
  });
  process.stdout.write(`\nresults written to ${opts.out}\n`);
  return outcome.failed || failedKamailio ? 1 : 0;
}

let failedKamailio = false;

/** The Kamailio group (its own Kamailio nodes and agents); false when a part failed. */
async function runKamailio(opts: Options, started: Date, machine: Record<string, unknown>): Promise<boolean> {
  const out = opts.out.endsWith("mesh.json") ? join(dirname(opts.out), "kamailio.json") : opts.out.replace(/\.json$/, "") + ".kamailio.json";
  const k = await runKamailioBench({ quick: opts.quick, keep: opts.keep, log, only: opts.kamailio, nodeArgs: opts.nodeArgs });
  process.stdout.write(`\nlocmesh vs Kamailio dmq_usrloc, same run — ${started.toISOString()}${opts.quick ? " — QUICK RUN (smaller sizes)" : ""}\n\n${k.text}`);
  writeResults(out, {
    date: started.toISOString(), durationSeconds: Math.round((Date.now() - started.getTime()) / 1000),
    machine: { ...machine, cpuBusyAfter: Math.round((await cpuBusyFraction(1000)) * 100) / 100 },
    quick: opts.quick, sizes: k.sizes, figures: k.figures, runs: k.scenarios,
  });
  process.stdout.write(`\nresults written to ${out}\n`);
  return !k.failed;
}

/** Share of CPU time busy before the start above which the figures are flagged as skewed. */
const BUSY = 0.15;

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
