/**
 * `locmesh demo`: a local cluster a newcomer can watch working. Per node it starts a real Kamailio
 * 5.6 (demo-kamailio.ts: a generated operator-style kamailio.cfg with the locmesh include) and a
 * locmesh agent attached to it (demo-agents.ts), all on 127.0.0.1, waits until every agent has its
 * Kamailio up and its registrar events connected, and prints where everything is and commands to
 * try (demo-banner.ts). With `kamailio: false` only the agents run. Data stays in the demo folder
 * between runs, so a restart shows that it persisted.
 */
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { evapiBulkToken } from "../kamailio/evapi-bulk.js";
import { DEMO_SECRET, agentEnv, demoNodes, startAgentProcess, stopChild, waitUntilReady, writeAgentConfigs } from "./demo-agents.js";
import { demoBanner } from "./demo-banner.js";
import { checkDemoDomain } from "./demo-kamailio-cfg.js";
import { findKamailio, startDemoKamailio, type DemoKamailio } from "./demo-kamailio.js";
import { writeSippRegisterScenario } from "./demo-phone.js";
import { assertPortsFree, checkBasePorts, demoPorts } from "./demo-ports.js";

export interface DemoOptions {
  /** The locmesh package folder (holds bin/locmesh.js). */
  root: string;
  /** Where configs, journals, Kamailio runtime dirs and logs go; default <root>/.demo. */
  dir?: string;
  nodes?: number;
  /** Agent ports: node i (1-based) meshes on basePort+i and serves its API on basePort+80+i. */
  basePort?: number;
  /** Kamailio ports: node i has SIP on sipBasePort+i, jsonrpcs on +100+i, evapi on +200+i. */
  sipBasePort?: number;
  /** The SIP domain the Kamailio nodes serve (alias=). */
  domain?: string;
  /** Start a Kamailio per node (default true). */
  kamailio?: boolean;
  stdout: NodeJS.WritableStream;
  /** Environment for the agents; defaults to this process's, minus LOCMESH_*. */
  env?: NodeJS.ProcessEnv;
  /** Paths in the banner are shown relative to this folder; default process.cwd(). */
  cwd?: string;
  readyTimeoutMs?: number;
  /** Aborting while starting (Ctrl-C) stops whatever already runs and rejects with DemoAborted. */
  signal?: AbortSignal;
}

export class DemoAborted extends Error {
  override readonly name = "DemoAborted";
}

export interface Demo {
  /** Stops the agents, then the Kamailio processes; safe to call more than once. */
  stop(): Promise<void>;
}

export async function runDemo(opts: DemoOptions): Promise<Demo> {
  const count = opts.nodes ?? 3;
  const basePort = opts.basePort ?? 7100;
  const sipBasePort = opts.sipBasePort ?? 5070;
  const withKamailio = opts.kamailio ?? true;
  const domain = opts.domain ?? "example.com";
  const demoDir = opts.dir === undefined ? join(opts.root, ".demo") : resolve(opts.dir);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  if (!Number.isInteger(count) || count < 1 || count > 20) throw new Error(`--nodes must be a whole number from 1 to 20, got ${count}`);
  checkBasePorts(count, basePort, sipBasePort, withKamailio);
  if (withKamailio) checkDemoDomain(domain);
  // Before touching anything: no Kamailio means a clear error with the install command.
  const modulesDir = withKamailio ? findKamailio() : null;
  const ports = Array.from({ length: count }, (_, k) => demoPorts(k + 1, basePort, sipBasePort));
  await assertPortsFree(ports, withKamailio);

  mkdirSync(demoDir, { recursive: true });
  const nodes = demoNodes(demoDir, ports, withKamailio);
  writeAgentConfigs(nodes);
  const sippScenario = withKamailio ? writeSippRegisterScenario(demoDir, domain) : null;

  const kamailios: DemoKamailio[] = [];
  let kamailioStarts: Promise<void>[] = [];
  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      // Agents first, so none of them reports its Kamailio going away as a restart to repair.
      await Promise.all(nodes.map((n) => (n.child ? stopChild(n.child) : undefined)));
      // A Kamailio still starting (Ctrl-C during start-up) is stopped once its start settles.
      await Promise.allSettled(kamailioStarts);
      await Promise.all(kamailios.map((k) => k.stop()));
    })());
  const abortable = <T>(work: Promise<T>) => untilAborted(work, opts.signal);
  try {
    if (modulesDir !== null) {
      kamailioStarts = nodes.map(async (n) => {
        const spec = { nodeId: n.id, dir: n.kamailioDir as string, sipPort: n.ports.sip, rpcPort: n.ports.rpc, evapiPort: n.ports.evapi, domain, bulkToken: evapiBulkToken(DEMO_SECRET, n.id) };
        kamailios.push(await startDemoKamailio(spec, modulesDir, readyTimeoutMs));
      });
      await abortable(Promise.all(kamailioStarts));
    }
    const env = agentEnv(opts.env ?? process.env);
    for (const n of nodes) n.child = startAgentProcess(opts.root, n, env);
    await abortable(Promise.all(nodes.map((n) => waitUntilReady(n, readyTimeoutMs))));
  } catch (err) {
    await stop();
    throw err;
  }
  opts.stdout.write(demoBanner({ root: opts.root, nodes, domain: withKamailio ? domain : null, sippScenario, cwd: opts.cwd ?? process.cwd() }));
  return { stop };
}

/** Settles with `work`, or rejects with DemoAborted as soon as the signal fires. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new DemoAborted("the demo was stopped while starting"));
    if (signal.aborted) onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
