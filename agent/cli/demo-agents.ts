/**
 * The demo's locmesh agents: one config per node under the demo folder (with the `kamailio`
 * section that attaches it to that node's demo Kamailio), one `bin/locmesh.js agent` process per
 * node, and the readiness check the banner waits for.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { stringify } from "yaml";
import { ApiMethod } from "../contract/api-protocol.js";
import type { ClusterStatus } from "../contract/cluster-status.js";
import { createApiClient } from "./api-client.js";
import type { DemoPorts } from "./demo-ports.js";
import { kamailioFiles, logTail } from "./demo-kamailio.js";

// Fixed, visibly non-secret values: the demo only listens on 127.0.0.1.
export const DEMO_SECRET = "locmesh-demo-cluster-key-do-not-use-in-production";
export const DEMO_TOKEN = "locmesh-demo-api-token";

export interface DemoNode {
  id: string;
  /** The agent's folder: config, journal, log. */
  dir: string;
  config: string;
  log: string;
  meshUrl: string;
  apiUrl: string;
  ports: DemoPorts;
  /** The node's Kamailio runtime dir; null with --no-kamailio. */
  kamailioDir: string | null;
  child?: ChildProcess;
}

export function demoNodes(demoDir: string, ports: readonly DemoPorts[], kamailio: boolean): DemoNode[] {
  return ports.map((p, k) => {
    const i = k + 1;
    const dir = join(demoDir, `node${i}`);
    return {
      id: `n${i}`,
      dir,
      config: join(dir, "config.yaml"),
      log: join(dir, "agent.log"),
      meshUrl: `ws://127.0.0.1:${p.mesh}`,
      apiUrl: `http://127.0.0.1:${p.api}`,
      ports: p,
      kamailioDir: kamailio ? join(demoDir, `kamailio-n${i}`) : null,
    };
  });
}

export function writeAgentConfigs(nodes: readonly DemoNode[]): void {
  for (const n of nodes) {
    const config = {
      nodeId: n.id,
      dataDir: join(n.dir, "data"),
      mesh: {
        listen: `127.0.0.1:${n.ports.mesh}`,
        secret: DEMO_SECRET,
        peers: nodes.filter((p) => p !== n).map((p) => ({ id: p.id, url: p.meshUrl })),
      },
      api: { listen: `127.0.0.1:${n.ports.api}`, token: DEMO_TOKEN },
      log: { level: "info" },
      ...(n.kamailioDir ? { kamailio: kamailioSection(n.kamailioDir, n.ports) } : {}),
    };
    mkdirSync(n.dir, { recursive: true });
    writeFileSync(n.config, `# written by \`locmesh demo\`; rewritten on every run\n${stringify(config)}`, { mode: 0o600 });
  }
}

/** Matches demo-kamailio-cfg.ts: FIFO and reply dir in the runtime dir, jsonrpcs on UDP, evapi on TCP. */
function kamailioSection(dir: string, ports: DemoPorts): Record<string, unknown> {
  return {
    fifo: kamailioFiles(dir).fifo,
    replyDir: dir,
    dgram: `udp:127.0.0.1:${ports.rpc}`,
    evapi: `127.0.0.1:${ports.evapi}`,
    aliases: "usrloc",
    checkIntervalSec: 1,
  };
}

/** LOCMESH_* variables override config files, so a developer's own settings would break the demo. */
export function agentEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith("LOCMESH_")));
}

export function startAgentProcess(root: string, n: DemoNode, env: NodeJS.ProcessEnv): ChildProcess {
  const fd = openSync(n.log, "a");
  try {
    writeSync(fd, `--- locmesh demo: starting ${n.id} at ${new Date().toISOString()} ---\n`);
    return spawn(process.execPath, [join(root, "bin", "locmesh.js"), "agent", "--config", n.config], {
      cwd: root,
      env,
      stdio: ["ignore", fd, fd],
    });
  } finally {
    closeSync(fd); // the child holds its own copy of the descriptor
  }
}

/** Answers on its API and, with Kamailio, has it up and the registrar events connected. */
export async function waitUntilReady(n: DemoNode, timeoutMs: number): Promise<void> {
  const client = createApiClient({ url: n.apiUrl, token: DEMO_TOKEN, timeoutMs: 1000 });
  const deadline = Date.now() + timeoutMs;
  let waitingFor = "";
  try {
    for (;;) {
      const child = n.child;
      if (child && (child.exitCode !== null || child.signalCode !== null)) {
        throw new Error(`demo agent ${n.id} exited (${child.exitCode ?? child.signalCode}) before it was ready; see ${n.log}:\n${logTail(n.log, 10)}`);
      }
      try {
        const status = await client.call<ClusterStatus>(ApiMethod.ClusterStatus);
        waitingFor = kamailioNotReady(n, status);
        if (waitingFor === "") return;
      } catch (err) {
        waitingFor = `an answer at ${n.apiUrl} (${(err as Error).message})`;
      }
      if (Date.now() > deadline) throw new Error(`demo agent ${n.id} not ready within ${timeoutMs / 1000} s: still waiting for ${waitingFor}; see ${n.log}`);
      await sleep(200);
    }
  } finally {
    client.close();
  }
}

function kamailioNotReady(n: DemoNode, s: ClusterStatus): string {
  if (!n.kamailioDir) return "";
  if (!s.kamailio?.up) return "its Kamailio to answer over jsonrpcs";
  if (!s.kamailio.events?.connected) return "the evapi connection to its Kamailio";
  return "";
}

/** SIGTERM lets the agent flush and close its journal; SIGKILL only if it has not exited in 5 s. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}
