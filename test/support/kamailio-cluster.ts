/**
 * A locmesh cluster as operators run it: N real Kamailio 5.6 processes, each with locmesh's cfg
 * include (evapi events, Path relay), and N real agent processes attached to them (FIFO, optional
 * jsonrpcs datagram socket, evapi), meshed with each other. Everything on 127.0.0.1.
 */
import { join } from "node:path";
import { evapiBulkToken } from "../../agent/kamailio/evapi-bulk.js";
import { READY_SHV } from "../../agent/kamailio/cfg-include-names.js";
import { createCoreRpc } from "../../agent/kamailio/core-rpc.js";
import { createFifoClient, type FifoClient } from "../../agent/kamailio/fifo-client.js";
import { createUsrlocRpc } from "../../agent/kamailio/usrloc-rpc.js";
import type { UsrlocContact } from "../../agent/kamailio/usrloc-contact.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { AgentProcess, freePort, logTail } from "./agent-process.js";
import { startKamailio, type KamailioOptions, type KamailioProcess } from "./kamailio-process.js";

/** The cluster key of every test cluster's agents (the include's bulk token derives from it). */
const CLUSTER_SECRET = "integration-cluster-secret-0123456789";

export interface ClusterNode {
  id: string;
  kamailio: KamailioProcess;
  agent: AgentProcess;
  /** ul.lookup on this node's Kamailio: the AoR's unexpired contacts. */
  lookup(aor: string, table?: string): Promise<UsrlocContact[]>;
  /** ul.dump on this node's Kamailio. */
  dump(): Promise<UsrlocContact[]>;
}

export interface KamailioClusterOptions {
  baseDir: string;
  n?: number;
  kamailio?: KamailioOptions;
  /** Merged into each agent's `kamailio` config section. */
  agentKamailio?: Record<string, unknown>;
  /** Merged into each agent's config. */
  agentConfig?: Record<string, unknown>;
  /** Per-node additions (node index from 0) on top of the options above. */
  node?: (index: number) => {
    kamailio?: KamailioOptions;
    agentKamailio?: Record<string, unknown>;
    /** Merged into this agent's config after `agentConfig`. */
    agentConfig?: Record<string, unknown>;
    /** Extra environment for this agent's process. */
    agentEnv?: Record<string, string>;
    /**
     * false: do not wait for this agent to open its Kamailio's REGISTER gate (one that never does,
     * refusing to attach). By default the cluster is returned once every gate is open: until then
     * its Kamailio answers REGISTER 503.
     */
    registerGate?: false;
  };
  /**
   * The URL agent `from` dials to reach peer `to` (default: `to`'s mesh port), e.g. a proxy the
   * failure drills can cut to partition the mesh.
   */
  peerUrl?: (from: string, to: string, meshPort: number) => string | Promise<string>;
  /** Flags for the agents' node, before the script (e.g. --cpu-prof). */
  agentNodeArgs?: readonly string[];
}

export interface KamailioCluster {
  nodes: ClusterNode[];
  close(): Promise<void>;
}

/** Runs `fn` with a FIFO client of its own on `kam`'s jsonrpcs FIFO, closed after. */
async function withFifo<T>(kam: KamailioProcess, fn: (rpc: FifoClient) => Promise<T>): Promise<T> {
  const rpc = createFifoClient({ fifoPath: kam.fifoPath, replyDir: kam.replyDir, timeoutMs: 5000, log: silentLogger(), maxInFlight: 1, autoResync: false });
  try {
    return await fn(rpc);
  } finally {
    await rpc.close();
  }
}

/** The domain test phones register in; every test Kamailio serves it (alias=). */
export const TEST_DOMAIN = "example.com";

export async function startKamailioCluster(o: KamailioClusterOptions): Promise<KamailioCluster> {
  const n = o.n ?? 3;
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const kams: KamailioProcess[] = [];
  const agents: AgentProcess[] = [];
  const close = async () => {
    await Promise.allSettled(agents.map((a) => a.stop()));
    await Promise.allSettled(kams.map((k) => k.close()));
  };
  try {
    for (let i = 0; i < n; i++) {
      const own = o.node?.(i).kamailio;
      kams.push(
        await startKamailio({
          dgramWorkers: 2,
          ...o.kamailio,
          ...own,
          extraCfg: [`alias="${TEST_DOMAIN}"`, o.kamailio?.extraCfg ?? "", own?.extraCfg ?? ""].join("\n"),
          locmesh: { aliasMode: "usrloc", bulkToken: evapiBulkToken(CLUSTER_SECRET, ids[i]!), ...o.kamailio?.locmesh, ...own?.locmesh },
        }),
      );
    }
    const ports = await Promise.all(ids.map(async () => ({ mesh: await freePort(), api: await freePort() })));
    const peerUrls = await Promise.all(
      ids.map(async (id) =>
        Promise.all(
          ids
            .filter((p) => p !== id)
            .map(async (p) => {
              const port = ports[ids.indexOf(p)]!.mesh;
              return { id: p, url: o.peerUrl ? await o.peerUrl(id, p, port) : `ws://127.0.0.1:${port}` };
            }),
        ),
      ),
    );
    ids.forEach((id, i) => {
      const kam = kams[i]!;
      const own = o.node?.(i);
      agents.push(
        new AgentProcess({
          id,
          meshPort: ports[i]!.mesh,
          apiPort: ports[i]!.api,
          dir: join(o.baseDir, id),
          secret: CLUSTER_SECRET,
          token: "integration-api-token-0123456789",
          peers: peerUrls[i]!,
          ...(own?.agentEnv ? { env: own.agentEnv } : {}),
          config: {
            ...o.agentConfig,
            ...own?.agentConfig,
            kamailio: {
              fifo: kam.fifoPath,
              replyDir: kam.replyDir,
              evapi: `127.0.0.1:${kam.evapiPort}`,
              ...(kam.dgramPort ? { dgram: `udp:127.0.0.1:${kam.dgramPort}` } : {}),
              timeoutMs: 2000,
              checkIntervalSec: 1,
              reconcileIntervalSec: 5,
              ...o.agentKamailio,
              ...own?.agentKamailio,
            },
          },
        }, o.agentNodeArgs),
      );
    });
    await Promise.all(agents.map((a) => a.start()));
    // The agent answers /healthz before its first catch-up and reconcile are done: a REGISTER
    // sent meanwhile would get 503 from the gate. Asked of Kamailio itself (the include's
    // $shv(locmesh_ready)), not of the agent's log, which benchmarks keep at warn.
    await Promise.all(agents.map(async (a, i) => {
      if (o.node?.(i)?.registerGate === false) return;
      // The agent opened its Kamailio's REGISTER gate (agent/kamailio/register-gate.ts).
      await withFifo(kams[i]!, async (rpc) => {
        const core = createCoreRpc({ rpc });
        for (const until = Date.now() + 30_000; Number(await core.getShv(READY_SHV)) !== 1;) {
          if (Date.now() > until) throw new Error(`${a.spec.id} did not open its Kamailio's REGISTER gate ($shv(${READY_SHV})) within 30 s; the end of ${a.logPath}:\n${logTail(a.logPath)}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      });
    }));
  } catch (err) {
    await close();
    throw err;
  }
  const nodes = ids.map((id, i): ClusterNode => {
    const kam = kams[i]!;
    const usrloc = <T>(fn: (u: ReturnType<typeof createUsrlocRpc>) => Promise<T>): Promise<T> => withFifo(kam, (rpc) => fn(createUsrlocRpc({ rpc })));
    return {
      id,
      kamailio: kam,
      agent: agents[i]!,
      lookup: (aor, table = "location") => usrloc((u) => u.ulLookup(table, aor)),
      dump: () => usrloc((u) => u.ulDump()),
    };
  });
  return { nodes, close };
}
