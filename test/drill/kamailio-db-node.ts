/**
 * One drill node whose Kamailio keeps usrloc in PostgreSQL (db_mode 1 or 3) and whose agent has
 * the database fallback configured (`kamailio.db`), for the writer drills. Its agent gets no
 * jsonrpcs datagram socket (`dgram: null`), so the FIFO is its only RPC path and removing the FIFO
 * file cuts RPC off.
 *
 * Reading that Kamailio back: with db_mode 3 usrloc has no cache and `ul.dump` is always empty
 * (kamailio-5.6.md surprise 7), so the drill asks `ul.lookup`, which reads the database as SIP
 * routing does, for every AoR the ledger or the tables name.
 */
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { createFifoClient } from "../../agent/kamailio/fifo-client.js";
import { createUsrlocRpc } from "../../agent/kamailio/usrloc-rpc.js";
import type { UsrlocContact } from "../../agent/kamailio/usrloc-contact.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { kamailioDbCfg } from "../support/kamailio-cfg.js";
import type { ClusterNode } from "../support/kamailio-cluster.js";
import { createKamailioPostgres } from "../support/kamailio-schema.js";
import { startPostgres, type PostgresProcess } from "../support/postgres-process.js";
import type { DrillClusterOptions } from "./drill-cluster.js";
import type { Ledger } from "./ledger.js";

/** The node with the database (index 1 in the cluster). */
export const DB_NODE = "n2";

export interface KamailioDbNode {
  pg: PostgresProcess;
  url: string;
  mode: 1 | 3;
  /** Cluster options that put DB_NODE's Kamailio and agent on this database. */
  cluster: Omit<DrillClusterOptions, "dir">;
  close(): Promise<void>;
}

export async function startKamailioDbNode(mode: 1 | 3): Promise<KamailioDbNode> {
  const pg = await startPostgres();
  try {
    const url = await createKamailioPostgres(await pg.createDatabase("kamailio"));
    return {
      pg,
      url,
      mode,
      cluster: {
        node: (i) =>
          i === 1
            ? {
                // Both in UTC: PostgreSQL timestamps are Kamailio-local (surprise 9).
                kamailio: { extraCfg: kamailioDbCfg({ url, mode }), env: { TZ: "UTC" } },
                agentKamailio: { dgram: null, db: { url, dbMode: mode, timeZone: "UTC" }, timeoutMs: 1000 },
              }
            : {},
        ...(mode === 3 ? { kamailioContacts: (n: ClusterNode, ledger: Ledger) => (n.id === DB_NODE ? lookupAll(n, pg, ledger) : Promise.resolve(null)) } : {}),
      },
      close: () => pg.close(),
    };
  } catch (err) {
    await pg.close();
    throw err;
  }
}

/** `ul.lookup` of every AoR and alias the ledger wrote or the tables hold. */
async function lookupAll(n: ClusterNode, pg: PostgresProcess, ledger: Ledger): Promise<UsrlocContact[]> {
  const keys = { location: new Set<string>(), aliases: new Set<string>() };
  for (const op of ledger.all) keys[op.kind === "loc" ? "location" : "aliases"].add(op.key);
  for (const table of ["location", "aliases"] as const) {
    const rows = await pg.query<{ aor: string }>(`SELECT DISTINCT username || '@' || domain AS aor FROM ${table}`, [], "kamailio");
    for (const r of rows) keys[table].add(r.aor);
  }
  const rpc = createFifoClient({ fifoPath: n.kamailio.fifoPath, replyDir: n.kamailio.replyDir, timeoutMs: 5000, log: silentLogger(), maxInFlight: 8, autoResync: false });
  const ul = createUsrlocRpc({ rpc });
  try {
    const jobs: [string, string][] = [...keys.location].map((k): [string, string] => ["location", k]).concat([...keys.aliases].map((k): [string, string] => ["aliases", k]));
    const out: UsrlocContact[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < jobs.length) {
          const [table, aor] = jobs[next++]!;
          out.push(...(await ul.ulLookup(table, aor)));
        }
      }),
    );
    return out;
  } finally {
    await rpc.close();
  }
}

/** What a node's Kamailio writer did while a fault lasted, sampled from cluster.status. */
export interface WriterWatch {
  stop(): Promise<{ sawPending: boolean; maxPending: number; sawDatabase: boolean; lastError: string | null }>;
}

export function watchWriter(n: ClusterNode, everyMs = 200): WriterWatch {
  const seen = { sawPending: false, maxPending: 0, sawDatabase: false, lastError: null as string | null };
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const s = await n.agent.call<ClusterStatus>("cluster.status");
        const k = s.kamailio;
        if (k?.writer === "pending" && k.pendingWrites > 0) seen.sawPending = true;
        if (k?.writer === "database") seen.sawDatabase = true;
        seen.maxPending = Math.max(seen.maxPending, s.pendingWrites);
        if (k?.lastError) seen.lastError = k.lastError;
      } catch {
        // the agent is busy or restarting: sample again
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { ...seen };
    },
  };
}
