/**
 * Real hub processes (`locmesh hub`) for integration tests and benchmarks, and a helper that
 * builds a cluster of hubs on one PostgreSQL database with agents in hub mode.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { AgentProcess, freePort, type NodeSpec } from "./agent-process.js";

export const SECRET = "integration-cluster-secret-0123456789";
export const TOKEN = "integration-api-token-0123456789";

/** Changes an agent received from its hub, and those it applied: equal when none came twice. */
export const changesReceived = (a: AgentProcess) => a.metric("locmesh_changes_received_total");
export const changesApplied = (a: AgentProcess) => a.metric("locmesh_changes_applied_total");
/** The node id of the hub the agent has a session with now; null while it has none. */
export const hubOf = async (a: AgentProcess) => (await a.call<ClusterStatus>("cluster.status")).peers.find((p) => p.connected)?.nodeId ?? null;

export class HubProcess extends AgentProcess {
  protected override readonly command = "hub";
  constructor(
    spec: NodeSpec,
    readonly pgUrl: string,
    nodeArgs: readonly string[] = [],
  ) {
    super(spec, nodeArgs);
  }

  protected override baseConfig(): Record<string, unknown> {
    return {
      nodeId: this.spec.id,
      mesh: {
        listen: `127.0.0.1:${this.spec.meshPort}`,
        secret: this.spec.secret,
        acceptUnlisted: true,
        retry: { minMs: 50, maxMs: 1000 },
        statusIntervalMs: 250,
      },
      api: { listen: `127.0.0.1:${this.spec.apiPort}`, token: this.spec.token },
      postgres: { url: this.pgUrl, poolSize: 8 },
      log: { level: "info" },
      ...this.spec.extra,
    };
  }
}

export interface HubClusterOptions {
  hubs: number;
  agents: number;
  pgUrl: string;
  /** Hub URL order for agent i (default: start at hub i mod hubs, then the others). */
  hubOrder?: (agent: number, hubs: number) => number[];
  agentConfig?: Record<string, unknown>;
  hubConfig?: Record<string, unknown>;
  nodeArgs?: readonly string[];
}

/** `hubs` hubs on one database and `agents` agents that know only the hubs, none started yet. */
export async function makeHubCluster(baseDir: string, o: HubClusterOptions): Promise<{ hubs: HubProcess[]; agents: AgentProcess[] }> {
  const ports = async () => ({ mesh: await freePort(), api: await freePort() });
  const hubs: HubProcess[] = [];
  for (let i = 0; i < o.hubs; i++) {
    const p = await ports();
    const id = `hub${i + 1}`;
    hubs.push(new HubProcess({ id, meshPort: p.mesh, apiPort: p.api, dir: join(baseDir, id), secret: SECRET, token: TOKEN, peers: [], config: o.hubConfig }, o.pgUrl, o.nodeArgs));
  }
  const order = o.hubOrder ?? ((a, n) => Array.from({ length: n }, (_, k) => (a + k) % n));
  const agents: AgentProcess[] = [];
  for (let i = 0; i < o.agents; i++) {
    const p = await ports();
    const id = `a${i + 1}`;
    const urls = order(i, o.hubs).map((h) => `ws://127.0.0.1:${hubs[h]!.spec.meshPort}`);
    agents.push(new AgentProcess(
      { id, meshPort: p.mesh, apiPort: p.api, dir: join(baseDir, id), secret: SECRET, token: TOKEN, peers: [], config: { hub: { urls }, ...o.agentConfig } },
      o.nodeArgs,
    ));
  }
  return { hubs, agents };
}

/**
 * A hub test's afterAll: stops every agent and hub, then closes what they stood on (a freezable
 * path, PostgreSQL) in that order, and removes the test's folder unless LOCMESH_KEEP_TEST_DIRS is set.
 */
export async function stopHubCluster(c: {
  agents: readonly AgentProcess[] | undefined;
  hubs: readonly HubProcess[] | undefined;
  closers?: readonly ({ close(): Promise<unknown> } | undefined)[];
  dir?: string | undefined;
}): Promise<void> {
  await Promise.all([...(c.agents ?? []), ...(c.hubs ?? [])].map((p) => p.stop()));
  for (const x of c.closers ?? []) await x?.close();
  if (c.dir && !process.env["LOCMESH_KEEP_TEST_DIRS"]) rmSync(c.dir, { recursive: true, force: true });
}
