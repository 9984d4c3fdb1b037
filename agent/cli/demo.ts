/**
 * `locmesh demo`: a local cluster a newcomer can watch working. Writes one config per node under
 * <root>/.demo/, starts one agent process per node on 127.0.0.1, waits until each answers, and
 * prints commands to try. Data stays in .demo/ between runs, so a restart shows that it persisted.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { createServer } from "node:net";
import { join, relative } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { stringify } from "yaml";
import { ApiMethod } from "../contract/protocol.js";
import { createApiClient } from "./api-client.js";
import { formatTable } from "./table.js";

export interface DemoOptions {
  /** The locmesh package folder (holds bin/locmesh.js and receives .demo/). */
  root: string;
  nodes?: number;
  /** Node i (1-based) uses mesh port basePort+i and API port basePort+80+i. */
  basePort?: number;
  stdout: NodeJS.WritableStream;
  /** Environment for the agents; defaults to this process's, minus LOCMESH_* (see below). */
  env?: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
}

export interface Demo {
  stop(): Promise<void>;
}

// Fixed, visibly non-secret values: the demo only listens on 127.0.0.1.
const DEMO_SECRET = "locmesh-demo-cluster-key-do-not-use-in-production";
const DEMO_TOKEN = "locmesh-demo-api-token";

interface DemoNode {
  id: string;
  dir: string;
  config: string;
  log: string;
  meshUrl: string;
  apiUrl: string;
  child?: ChildProcess;
}

export async function runDemo(opts: DemoOptions): Promise<Demo> {
  const count = opts.nodes ?? 3;
  const basePort = opts.basePort ?? 7100;
  if (!Number.isInteger(count) || count < 1 || count > 20) throw new Error(`--nodes must be a whole number from 1 to 20, got ${count}`);
  const nodes = writeConfigs(opts.root, count, basePort);
  // An agent that cannot bind exits, but a leftover demo on the same port would still answer the
  // readiness check; refuse up front instead.
  for (const n of nodes) for (const url of [n.meshUrl, n.apiUrl]) await assertPortFree(Number(new URL(url).port));
  const stop = () => stopAll(nodes);
  try {
    for (const n of nodes) n.child = startAgent(opts.root, n, agentEnv(opts.env ?? process.env));
    await Promise.all(nodes.map((n) => waitUntilReady(n, opts.readyTimeoutMs ?? 30_000)));
  } catch (err) {
    await stop();
    throw err;
  }
  opts.stdout.write(describe(opts.root, nodes));
  return { stop };
}

function writeConfigs(root: string, count: number, basePort: number): DemoNode[] {
  const nodes: DemoNode[] = Array.from({ length: count }, (_, k) => {
    const i = k + 1;
    const dir = join(root, ".demo", `node${i}`);
    return {
      id: `n${i}`,
      dir,
      config: join(dir, "config.yaml"),
      log: join(dir, "agent.log"),
      meshUrl: `ws://127.0.0.1:${basePort + i}`,
      apiUrl: `http://127.0.0.1:${basePort + 80 + i}`,
    };
  });
  nodes.forEach((n, k) => {
    const i = k + 1;
    const config = {
      nodeId: n.id,
      dataDir: join(n.dir, "data"),
      mesh: {
        listen: `127.0.0.1:${basePort + i}`,
        secret: DEMO_SECRET,
        peers: nodes.filter((p) => p !== n).map((p) => ({ id: p.id, url: p.meshUrl })),
      },
      api: { listen: `127.0.0.1:${basePort + 80 + i}`, token: DEMO_TOKEN },
      log: { level: "info" },
    };
    mkdirSync(n.dir, { recursive: true });
    writeFileSync(n.config, `# written by \`locmesh demo\`; rewritten on every run\n${stringify(config)}`, { mode: 0o600 });
  });
  return nodes;
}

/** LOCMESH_* variables override config files, so a developer's own settings would break the demo. */
function agentEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith("LOCMESH_")));
}

function startAgent(root: string, n: DemoNode, env: NodeJS.ProcessEnv): ChildProcess {
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

async function waitUntilReady(n: DemoNode, timeoutMs: number): Promise<void> {
  const client = createApiClient({ url: n.apiUrl, token: DEMO_TOKEN, timeoutMs: 1000 });
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  try {
    for (;;) {
      const child = n.child;
      if (child && (child.exitCode !== null || child.signalCode !== null)) {
        throw new Error(`demo agent ${n.id} exited (${child.exitCode ?? child.signalCode}) before it was ready; see ${n.log}:\n${logTail(n.log)}`);
      }
      try {
        await client.call(ApiMethod.ClusterStatus);
        return;
      } catch (err) {
        lastError = (err as Error).message;
      }
      if (Date.now() > deadline) {
        throw new Error(`demo agent ${n.id} did not answer at ${n.apiUrl} within ${timeoutMs / 1000} s (${lastError}); see ${n.log}`);
      }
      await sleep(200);
    }
  } finally {
    client.close();
  }
}

function assertPortFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", (err: NodeJS.ErrnoException) =>
      reject(new Error(`port ${port} on 127.0.0.1 is in use (${err.code ?? err.message}); is another demo or agent running? Stop it first`)),
    );
    probe.listen(port, "127.0.0.1", () => probe.close(() => resolve()));
  });
}

function logTail(path: string, lines = 10): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).map((l) => `  | ${l}`).join("\n");
  } catch {
    return "  (no log)";
  }
}

async function stopAll(nodes: readonly DemoNode[]): Promise<void> {
  await Promise.all(nodes.map((n) => (n.child ? stopChild(n.child) : undefined)));
}

/** SIGTERM lets the agent flush and close its journal; SIGKILL only if it has not exited in 5 s. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

function describe(root: string, nodes: readonly DemoNode[]): string {
  const rel = (p: string) => {
    const r = relative(process.cwd(), p);
    return r === "" || r.startsWith("..") ? p : r;
  };
  const cli = `node ${rel(join(root, "bin", "locmesh.js"))}`;
  const at = (k: number) => `--url ${(nodes[k % nodes.length] as DemoNode).apiUrl} --token ${DEMO_TOKEN}`;
  const table = formatTable(
    ["NODE", "MESH", "API", "LOG"],
    nodes.map((n) => [n.id, n.meshUrl, n.apiUrl, rel(n.log)]),
  );
  return [
    `locmesh demo: ${nodes.length} agent${nodes.length === 1 ? "" : "s"} running on 127.0.0.1`,
    "",
    indent(table),
    "",
    "Try, in another terminal (an alias written on one node shows up on the others):",
    `  ${cli} alias add ${at(0)} sip:bob@example.com sip:alice@example.com`,
    `  ${cli} alias ls ${at(1)}`,
    `  ${cli} status ${at(2)}`,
    `  ${cli} location ls ${at(1)}`,
    `  ${cli} resync ${at(1)}`,
    `  ${cli} status --config ${rel((nodes[0] as DemoNode).config)}    (URL and token taken from the config)`,
    "",
    "Press Ctrl-C to stop the demo.",
    "",
  ].join("\n");
}

const indent = (text: string) => text.split("\n").map((l) => `  ${l}`).join("\n");
