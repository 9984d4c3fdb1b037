/**
 * The hub benchmark's cluster: a real PostgreSQL 15 (test/support/postgres-process.ts), one or two
 * `locmesh hub` processes on one database, one publishing agent on the first hub and `receivers`
 * agents spread over the hubs in turn. Every agent knows only the hubs.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { waitFor, type AgentProcess } from "../support/agent-process.js";
import { makeHubCluster, type HubProcess } from "../support/hub-process.js";
import type { PostgresProcess } from "../support/postgres-process.js";

export interface HubBenchCluster {
  readonly hubs: readonly HubProcess[];
  readonly publisher: AgentProcess;
  readonly receivers: readonly AgentProcess[];
  /** Every process, for CPU meters. */
  readonly all: readonly AgentProcess[];
  close(): Promise<void>;
  killNow(): void;
}

export async function startHubBenchCluster(o: {
  pg: PostgresProcess;
  hubs: number;
  receivers: number;
  synchronous: "full" | "normal";
  /** Merged into every hub's config (e.g. { mesh: { relayLingerMs: 5 } }). */
  hubConfig?: Record<string, unknown>;
  nodeArgs?: readonly string[];
  keepDir?: boolean;
  log(line: string): void;
}): Promise<HubBenchCluster> {
  const dir = mkdtempSync(join(tmpdir(), "locmesh-hub-bench-"));
  const pgUrl = await o.pg.createDatabase(`bench_${o.hubs}hubs_${Date.now()}`);
  // Agent 0 publishes through hub 0; receiver k prefers hub k mod hubs and fails over to the others.
  const spec = await makeHubCluster(dir, {
    hubs: o.hubs,
    agents: o.receivers + 1,
    pgUrl,
    hubOrder: (a, n) => Array.from({ length: n }, (_, k) => ((a === 0 ? 0 : a - 1) + k) % n),
    agentConfig: { journal: { synchronous: o.synchronous } },
    hubConfig: o.hubConfig,
    nodeArgs: o.nodeArgs,
  });
  const [publisher, ...receivers] = spec.agents as [AgentProcess, ...AgentProcess[]];
  const all = [...spec.hubs, ...spec.agents];
  const cluster: HubBenchCluster = {
    hubs: spec.hubs,
    publisher,
    receivers,
    all,
    async close() {
      await Promise.allSettled(all.map((p) => p.stop()));
      if (!o.keepDir) rmSync(dir, { recursive: true, force: true });
      else o.log(`kept the hub cluster folder ${dir}`);
    },
    killNow() {
      for (const p of all) if (p.child && p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
    },
  };
  try {
    await Promise.all(spec.hubs.map((h) => h.start()));
    await Promise.all(spec.agents.map((a) => a.start()));
    await waitFor("every agent on a hub", async () => {
      const st = await Promise.all(spec.agents.map((a) => a.call<ClusterStatus>("cluster.status")));
      return st.every((s) => s.peers.some((p) => p.connected));
    }, 30_000);
  } catch (err) {
    await cluster.close();
    throw err;
  }
  return cluster;
}
