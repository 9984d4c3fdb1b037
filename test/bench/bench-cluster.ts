/**
 * The three-agent cluster the benchmarks run against: real `locmesh agent` processes on
 * 127.0.0.1 (test/support/agent-process.ts), each with its own journal in a fresh temp folder,
 * plus the probes the scenarios read (version vectors, metrics, RSS, journal size, agent logs).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { AgentProcess, makeCluster, sleep, waitFor } from "../support/agent-process.js";

export type Synchronous = "full" | "normal";

export interface BenchCluster {
  readonly dir: string;
  readonly nodes: readonly [BenchAgent, BenchAgent, BenchAgent];
  readonly synchronous: Synchronous;
  /** Replica id (`node~epoch`) of each node, by node id. */
  replicaOf(node: AgentProcess): Promise<string>;
  waitConnected(timeoutMs?: number): Promise<void>;
  /** Stops every agent (SIGTERM, then SIGKILL after 5 s) and removes the temp folder. */
  close(): Promise<void>;
  /** Last resort for an exiting bench: SIGKILL whatever still runs, synchronously. */
  killNow(): void;
}

export interface ClusterOptions {
  synchronous: Synchronous;
  /** Extra `node` flags for the agents (e.g. --cpu-prof). */
  nodeArgs?: readonly string[];
  keepDir?: boolean;
  log: (line: string) => void;
}

export async function startBenchCluster(opts: ClusterOptions): Promise<BenchCluster> {
  const dir = mkdtempSync(join(tmpdir(), "locmesh-bench-"));
  const specs = await makeCluster(dir, 3, {
    secret: "bench-cluster-secret-0123456789abcdef",
    extra: { journal: { synchronous: opts.synchronous }, log: { level: "info" } },
  });
  const nodeArgs = opts.nodeArgs ?? [];
  const nodes = specs.map((a) => new BenchAgent(a.spec, nodeArgs)) as [BenchAgent, BenchAgent, BenchAgent];
  const cluster: BenchCluster = {
    dir,
    nodes,
    synchronous: opts.synchronous,
    async replicaOf(node) {
      return (await node.call<ClusterStatus>("cluster.status")).replicaId;
    },
    async waitConnected(timeoutMs = 20_000) {
      await waitFor(
        "all peer sessions ready",
        async () => {
          const st = await Promise.all(nodes.map((n) => n.call<ClusterStatus>("cluster.status")));
          return st.every((s) => s.peers.length === 2 && s.peers.every((p) => p.connected));
        },
        timeoutMs,
        50,
      );
    },
    async close() {
      await Promise.allSettled(nodes.map((n) => n.stop()));
      if (!opts.keepDir) rmSync(dir, { recursive: true, force: true });
      else opts.log(`kept the cluster folder ${dir}`);
    },
    killNow() {
      for (const n of nodes) if (n.child && n.child.exitCode === null && n.child.signalCode === null) n.child.kill("SIGKILL");
    },
  };
  try {
    await Promise.all(nodes.map((n) => n.start()));
    await cluster.waitConnected();
  } catch (err) {
    await cluster.close();
    throw err;
  }
  return cluster;
}

/** The benchmarks' agents: plain AgentProcesses (kept as a name for the scenarios). */
export class BenchAgent extends AgentProcess {}

/** A node's version-vector entry for `replica` (0 when it holds nothing of it). */
export async function vvEntry(node: AgentProcess, replica: string): Promise<number> {
  return (await node.call<ClusterStatus>("cluster.status")).vv[replica] ?? 0;
}

/**
 * Changes a node has stored from its peers since it started (locmesh_changes_applied_total over all
 * peers). Far cheaper to poll than cluster.status, whose live-record counts scan the journal and
 * would slow the very node being measured.
 */
export async function appliedFromPeers(node: AgentProcess): Promise<number> {
  return node.metric("locmesh_changes_applied_total");
}

export interface MemoryFigures {
  rssMiB: number;
  peakRssMiB: number;
}

/** VmRSS and VmHWM (peak RSS) of a running agent, from /proc/<pid>/status. */
export function memoryOf(node: AgentProcess): MemoryFigures {
  const pid = node.child?.pid;
  if (pid === undefined) throw new Error(`agent ${node.spec.id} is not running`);
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rssMiB: kib("VmRSS") / 1024, peakRssMiB: kib("VmHWM") / 1024 };
}

/** Bytes of the node's journal files (database, WAL and shared-memory index). */
export function journalBytes(node: AgentProcess): number {
  const dataDir = join(node.spec.dir, "data");
  let total = 0;
  for (const f of readdirSync(dataDir)) if (f.startsWith("journal.sqlite")) total += statSync(join(dataDir, f)).size;
  return total;
}

/** Byte length of the agent's log, to read only what a later phase appends. */
export function logSize(node: AgentProcess): number {
  try {
    return statSync(join(node.spec.dir, "agent.log")).size;
  } catch {
    return 0;
  }
}

export interface LogLine {
  time: string;
  msg: string;
  [field: string]: unknown;
}

/** The agent's JSON log lines written after byte `from`. */
export function logLinesSince(node: AgentProcess, from: number): LogLine[] {
  const text = readFileSync(join(node.spec.dir, "agent.log")).subarray(from).toString("utf8");
  const out: LogLine[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      out.push(JSON.parse(line) as LogLine);
    } catch {
      // a partial line at the end of the file
    }
  }
  return out;
}

/** Polls `probe` until it reaches `target`, printing progress every `everyMs`. Returns when it did. */
export async function pollUntil(
  what: string,
  probe: () => Promise<number>,
  target: number,
  opts: {
    timeoutMs: number;
    intervalMs?: number;
    log?: (line: string) => void;
    progressMs?: number;
    /** Checked on every poll: a non-null error ends the wait at once (e.g. the agent died). */
    abortIf?: () => Error | null;
  },
): Promise<number> {
  const started = performance.now();
  let lastPrint = started;
  let value = -1;
  for (;;) {
    try {
      value = await probe();
    } catch {
      // not reachable yet (a restarting agent); keep polling
    }
    const now = performance.now();
    if (value >= target) return now;
    const abort = opts.abortIf?.();
    if (abort) throw abort;
    if (opts.log && now - lastPrint >= (opts.progressMs ?? 2000)) {
      opts.log(`  … ${what}: ${Math.max(0, value).toLocaleString("en-US")} / ${target.toLocaleString("en-US")}`);
      lastPrint = now;
    }
    if (now - started > opts.timeoutMs) throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what} (at ${value} of ${target})`);
    // Each /metrics scrape costs the agent ~1 ms of CPU, so poll slowly until the end is near,
    // then closely, to time the end well without slowing the node being timed.
    await sleep(value >= target * 0.9 ? 10 : (opts.intervalMs ?? 50));
  }
}

/**
 * CPU seconds (user + system) an agent process has used, from /proc/<pid>/stat. Sampled around a
 * phase, it shows which process was busy: a node near 1.0 s per wall second is CPU-bound on its
 * single JavaScript thread.
 */
export function cpuSecondsOf(node: AgentProcess): number {
  const pid = node.child?.pid;
  if (pid === undefined) return NaN;
  try {
    return cpuSecondsOfPid(pid);
  } catch (err) {
    const c = node.child!;
    throw new Error(`${node.spec.id} (pid ${pid}) is gone (exit code ${c.exitCode}, signal ${c.signalCode}); its log: ${node.logPath}`, { cause: err });
  }
}

/** The same for any process by pid; throws if it is gone. */
export function cpuSecondsOfPid(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  return ticks / CLOCK_TICKS_PER_SECOND;
}

/** sysconf(_SC_CLK_TCK): 100 on every Linux this runs on (x86-64 and arm64 kernels alike). */
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * CPU use over a phase, in CPU-seconds per wall second: each agent, each of `others` (processes
 * known by pid, such as the hub bench's sink agents), the bench process itself, and "other": everything else on the box (kernel I/O threads, and whatever else is running; on a
 * shared machine that last part skews the figures, so it is reported).
 */
export function cpuMeter(nodes: readonly AgentProcess[], others: readonly { id: string; pid: number }[] = []): () => Record<string, number> {
  const t0 = performance.now();
  const before = nodes.map(cpuSecondsOf);
  const othersBefore = others.map((o) => cpuSecondsOfPid(o.pid));
  const self0 = process.cpuUsage();
  const busy0 = busyCpuSeconds();
  return () => {
    const wall = (performance.now() - t0) / 1000;
    const out: Record<string, number> = {};
    let ours = 0;
    nodes.forEach((n, i) => {
      const used = cpuSecondsOf(n) - before[i]!;
      ours += used;
      out[n.spec.id] = round2(used / wall);
    });
    others.forEach((o, i) => {
      const used = cpuSecondsOfPid(o.pid) - othersBefore[i]!;
      ours += used;
      out[o.id] = round2(used / wall);
    });
    const self = process.cpuUsage(self0);
    ours += (self.user + self.system) / 1e6;
    out["bench"] = round2((self.user + self.system) / 1e6 / wall);
    out["other"] = round2(Math.max(0, busyCpuSeconds() - busy0 - ours) / wall);
    return out;
  };
}

/** CPU-seconds the whole machine has spent busy since boot (all CPUs, /proc/stat). */
function busyCpuSeconds(): number {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // user … steal; guest time is already in user
  return (total - f[3]! - f[4]!) / CLOCK_TICKS_PER_SECOND; // minus idle and iowait
}

const round2 = (v: number) => Math.round(v * 100) / 100;

/** Waits until every node's version vector equals every other's: nothing left in flight. */
export async function waitConverged(nodes: readonly AgentProcess[], timeoutMs: number, log?: (line: string) => void): Promise<void> {
  const vvOf = async (n: AgentProcess) => {
    const vv = (await n.call<ClusterStatus>("cluster.status")).vv;
    return JSON.stringify(Object.entries(vv).sort(([a], [b]) => (a < b ? -1 : 1)));
  };
  const started = performance.now();
  let lastPrint = started;
  for (;;) {
    const vvs = await Promise.all(nodes.map(vvOf));
    if (vvs.every((v) => v === vvs[0])) return;
    const now = performance.now();
    if (now - started > timeoutMs) throw new Error(`nodes did not converge within ${timeoutMs} ms: ${vvs.join(" / ")}`);
    if (log && now - lastPrint > 5000) {
      log(`  … waiting for the nodes to converge: ${vvs.join(" / ")}`);
      lastPrint = now;
    }
    await sleep(200);
  }
}
