/**
 * The whole cluster as any hub sees it. Each hub writes what it knows of its own agents (lag,
 * pending writes) into `hub_agents` every `intervalMs`; a hub's status then lists its own
 * sessions live and the agents of the other hubs from that table (fresh within `staleMs`).
 */
import type pg from "pg";
import type { PeerStatus } from "../agent/contract/protocol.js";
import type { Mesh } from "../agent/mesh/mesh.js";
import type { Logger } from "../agent/ops/logger.js";
import { valueWithin } from "./value-within.js";

export interface AgentRegistry {
  /** This hub's sessions, and every agent connected to another hub. */
  clusterStatus(): Promise<PeerStatus[]>;
  close(): void;
}

/** A session's status whose replica and lag are known. */
type Known = PeerStatus & { replicaId: string; behindChanges: number; behindSeconds: number };

interface AgentRow {
  node_id: string;
  replica_id: string;
  hub_node: string;
  behind_changes: number;
  behind_seconds: number;
  pending_writes: number | null;
  seen_at: Date;
}

const UPSERT = `INSERT INTO hub_agents (node_id, replica_id, hub_node, behind_changes, behind_seconds, pending_writes, seen_at)
  SELECT *, now() FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::float8[], $6::int[])
  ON CONFLICT (node_id) DO UPDATE SET replica_id = excluded.replica_id, hub_node = excluded.hub_node,
    behind_changes = excluded.behind_changes, behind_seconds = excluded.behind_seconds,
    pending_writes = excluded.pending_writes, seen_at = excluded.seen_at`;
const OTHERS = `SELECT * FROM hub_agents WHERE hub_node <> $1 AND seen_at > now() - make_interval(secs => $2)`;

export interface AgentRegistryDeps {
  pool: pg.Pool;
  hubNode: string;
  mesh: Mesh;
  intervalMs: number;
  log: Logger;
  /** False while PostgreSQL does not answer (pg-watch.ts): the status then lists this hub's sessions only. */
  pgReachable(): boolean;
  /** How long a status waits for the other hubs' agents (ms). */
  readWaitMs?: number;
}

export function startAgentRegistry(deps: AgentRegistryDeps): AgentRegistry {
  const { pool, mesh } = deps;
  const log = deps.log.child({ component: "agent-registry" });
  const staleSec = Math.max(3, (deps.intervalMs * 3) / 1000);
  let writing = false;

  async function publish(): Promise<void> {
    if (writing || !deps.pgReachable()) return;
    writing = true;
    try {
      // Connected sessions only: their lag is known (null otherwise), and the row says "connected".
      const mine = (await mesh.status()).filter((p): p is Known => p.connected && p.replicaId !== null && p.behindChanges !== null && p.behindSeconds !== null);
      if (mine.length === 0) return;
      await pool.query(UPSERT, [
        mine.map((p) => p.nodeId), mine.map((p) => p.replicaId), mine.map(() => deps.hubNode),
        mine.map((p) => p.behindChanges), mine.map((p) => p.behindSeconds), mine.map((p) => p.pendingWrites ?? null),
      ]);
    } catch (err) {
      log.debug({ err: (err as Error).message }, "cannot record agent status (PostgreSQL away?)");
    } finally {
      writing = false;
    }
  }
  const timer = setInterval(() => void publish(), deps.intervalMs);
  timer.unref();

  return {
    async clusterStatus() {
      const local = await mesh.status();
      // A status answers while PostgreSQL does not: then it shows this hub's sessions alone.
      const read = deps.pgReachable() ? pool.query<AgentRow>(OTHERS, [deps.hubNode, staleSec]) : null;
      read?.catch((err: unknown) => log.debug({ err: (err as Error).message }, "cannot read other hubs' agents"));
      const others = (read ? await valueWithin(read, deps.readWaitMs ?? 2000) : undefined)?.rows ?? [];
      const byId = new Map(local.map((p) => [p.nodeId, p]));
      for (const r of others) {
        if (byId.get(r.node_id)?.connected) continue;
        byId.set(r.node_id, {
          nodeId: r.node_id, url: `via hub ${r.hub_node}`, direction: "inbound", connected: true, replicaId: r.replica_id,
          behindChanges: r.behind_changes, behindSeconds: r.behind_seconds, lastError: null, connectedSince: null,
          pendingWrites: r.pending_writes ?? null,
        });
      }
      return [...byId.values()].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
    },
    close: () => clearInterval(timer),
  };
}
