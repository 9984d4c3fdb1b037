/**
 * The whole cluster as any hub sees it. Each hub writes what it knows of its own agents (lag,
 * pending writes, what each holds: the purge reads that) into `hub_agents` every `intervalMs`; a hub's status then lists its own
 * sessions live and the agents of the other hubs from that table (fresh within `staleMs`), and its
 * link gauges leave out the agents that are on another hub (agent-placement.ts).
 */
import type pg from "pg";
import type { PeerStatus } from "../agent/contract/cluster-status.js";
import type { Mesh } from "../agent/mesh/mesh.js";
import type { Logger } from "../agent/ops/logger.js";
import type { PeerGauge } from "../agent/ops/metrics.js";
import { clusterPeers, hubLinkGauges, type AgentRow } from "./agent-placement.js";
import { valueWithin } from "./value-within.js";

export interface AgentRegistry {
  /** This hub's sessions, and every agent connected to another hub. */
  clusterStatus(): Promise<PeerStatus[]>;
  /** locmesh_peer_connected and _behind_changes on a hub: its own links, none for agents on another hub. */
  gauges(): Promise<PeerGauge[]>;
  close(): void;
}

/** A session's status whose replica and lag are known. */
type Known = PeerStatus & { replicaId: string; behindChanges: number; behindSeconds: number };

interface AgentTableRow {
  node_id: string;
  replica_id: string;
  hub_node: string;
  behind_changes: number;
  behind_seconds: number;
  pending_writes: number | null;
  fresh: boolean;
  seen_at: Date;
}

const UPSERT = `INSERT INTO hub_agents (node_id, replica_id, hub_node, behind_changes, behind_seconds, pending_writes, vv, seen_at)
  SELECT *, now() FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::float8[], $6::int[], $7::jsonb[])
  ON CONFLICT (node_id) DO UPDATE SET replica_id = excluded.replica_id, hub_node = excluded.hub_node,
    behind_changes = excluded.behind_changes, behind_seconds = excluded.behind_seconds,
    pending_writes = excluded.pending_writes, vv = coalesce(excluded.vv, hub_agents.vv), seen_at = excluded.seen_at`;
const ROWS = `SELECT node_id, replica_id, hub_node, behind_changes, behind_seconds, pending_writes,
  seen_at > now() - make_interval(secs => $1) AS fresh, seen_at FROM hub_agents`;

/** A row not written for this long means its agent is no longer on that hub. */
export const agentRowStaleSeconds = (statusIntervalMs: number) => Math.max(3, (statusIntervalMs * 3) / 1000);

export interface AgentRegistryDeps {
  pool: pg.Pool;
  hubNode: string;
  mesh: Mesh;
  intervalMs: number;
  log: Logger;
  /** mesh.acceptUnlisted: every agent a hub recorded is known, not only mesh.agents (agent-placement.ts). */
  includeRecorded: boolean;
  /** False while PostgreSQL does not answer (pg-watch.ts): the rows are not read then. */
  pgReachable(): boolean;
  /** How long a status or scrape waits for the rows (ms); past it, the last rows read. */
  readWaitMs?: number;
}

export function startAgentRegistry(deps: AgentRegistryDeps): AgentRegistry {
  const { pool, mesh } = deps;
  const log = deps.log.child({ component: "agent-registry" });
  const staleSec = agentRowStaleSeconds(deps.intervalMs);
  const placement = { hubNode: deps.hubNode, includeRecorded: deps.includeRecorded };
  let writing = false;
  /**
   * The vector last written for each agent: an unchanged one is sent as NULL (kept as it is).
   * Rewritten every interval, a vector of many replica ids (every agent epoch) bloated the table.
   * Only for the agents connected at the last write.
   */
  const written = new Map<string, string>();

  async function publish(): Promise<void> {
    if (writing || !deps.pgReachable()) return;
    writing = true;
    try {
      // Connected sessions only: their lag is known (null otherwise), and the row says "connected".
      const mine = (await mesh.status()).filter((p): p is Known => p.connected === true && p.replicaId !== null && p.behindChanges !== null && p.behindSeconds !== null);
      // Only connected agents are kept: memory stays bounded by the agents this hub serves, and
      // one that comes back (perhaps from another hub, which wrote its row meanwhile) is written whole.
      const connected = new Set(mine.map((p) => p.nodeId));
      for (const id of written.keys()) if (!connected.has(id)) written.delete(id);
      if (mine.length === 0) return;
      // What each holds: the purge keeps a tombstone until every agent seen lately has it.
      const vectors = mesh.peerVectors();
      const json = mine.map((p) => {
        const vv = vectors.get(p.nodeId);
        return vv === undefined ? null : JSON.stringify(vv);
      });
      await pool.query(UPSERT, [
        mine.map((p) => p.nodeId), mine.map((p) => p.replicaId), mine.map(() => deps.hubNode),
        mine.map((p) => p.behindChanges), mine.map((p) => p.behindSeconds), mine.map((p) => p.pendingWrites ?? null),
        json.map((v, i) => (v !== null && written.get(mine[i]!.nodeId) === v ? null : v)),
      ]);
      // Only once written: after a failed write the next one sends them whole again.
      json.forEach((v, i) => {
        if (v !== null) written.set(mine[i]!.nodeId, v);
      });
    } catch (err) {
      log.debug({ err: (err as Error).message }, "cannot record agent status (PostgreSQL away?)");
    } finally {
      writing = false;
    }
  }
  const timer = setInterval(() => void publish(), deps.intervalMs);
  timer.unref();

  /**
   * Every agent's row. While PostgreSQL is away (or slower than readWaitMs), the last rows read:
   * the other hubs cannot record anything new meanwhile either, and without them this hub would
   * report their agents as down. A status or scrape never waits on a PostgreSQL that is away.
   */
  let lastRows: AgentRow[] = [];
  let lastReadAtMs = Date.now();
  /**
   * The read under way: statuses and scrapes share it. Against a PostgreSQL slow to answer (before
   * the watch calls it unreachable) a read per poll would pile up on the pool the push pumps use.
   */
  let reading: Promise<boolean> | null = null;
  /** The rows, and null when read now, else when the rows used were read (ISO 8601). */
  async function agentRows(): Promise<{ rows: AgentRow[]; asOf: string | null }> {
    const stale = () => ({ rows: lastRows, asOf: new Date(lastReadAtMs).toISOString() });
    if (!deps.pgReachable()) return stale();
    reading ??= pool.query<AgentTableRow>(ROWS, [staleSec])
      .then(({ rows }) => {
        lastRows = rows.map((r) => ({
          nodeId: r.node_id, replicaId: r.replica_id, hubNode: r.hub_node, behindChanges: r.behind_changes,
          behindSeconds: r.behind_seconds, pendingWrites: r.pending_writes ?? null, fresh: r.fresh,
          seenAt: new Date(r.seen_at).toISOString(),
        }));
        lastReadAtMs = Date.now();
        return true;
      })
      .catch((err: unknown) => {
        log.debug({ err: (err as Error).message }, "cannot read which hub each agent is on; using the last rows read");
        return false;
      })
      .finally(() => (reading = null));
    return (await valueWithin(reading, deps.readWaitMs ?? 2000)) ? { rows: lastRows, asOf: null } : stale();
  }

  return {
    async clusterStatus() {
      const local = await mesh.status();
      const { rows, asOf } = await agentRows();
      return clusterPeers(local, rows, placement, asOf);
    },
    async gauges() {
      const local = await mesh.gauges();
      return hubLinkGauges(local, (await agentRows()).rows, placement);
    },
    close: () => clearInterval(timer),
  };
}
