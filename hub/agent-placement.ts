/**
 * Which hub each agent is on, from this hub's own sessions and the rows every hub keeps in
 * `hub_agents` (agent-registry.ts reads them). Pure, so the rules behind a hub's metrics and its
 * cluster status are tested without PostgreSQL.
 *
 * `locmesh_peer_connected{peer}` on a hub is this hub's link to that agent:
 * - 1 while the agent's session is on this hub;
 * - no series while the agent is on another hub of the same database (that hub exports its 1): a
 *   0 here made "a peer or hub link down" fire for every healthy agent of the other hub;
 * - 0 while the agent is on no hub at all: every hub that knows it says so, so the alert fires.
 * The agents a hub knows: those in `mesh.agents`, and with `mesh.acceptUnlisted` every agent any
 * hub has recorded, until the operator runs `locmesh hub forget` (forget-agents.ts): a stopped agent
 * reads 0 rather than losing its series, which no alert can see.
 *
 * While the rows cannot be read (PostgreSQL does not answer), the last rows read are used. The
 * status then shows every agent not connected to this hub as unknown "as of" that read (where it
 * is now and its lag cannot be known), not as connected on another hub or down. The gauges keep
 * following those rows: an agent last seen on another hub keeps no series here. Were it 0
 * ("unknown" has no gauge value), every healthy agent of a hub that still reaches PostgreSQL would
 * fire "a peer or hub link down" from a hub cut off from it. When the database is down for every
 * hub, each hub's own former agents read 0 there (its sessions are closed), so that alert still
 * fires once the outage passes its `for`, from the hub each agent was on.
 */
import type { PeerStatus } from "../agent/contract/cluster-status.js";
import type { PeerGauge } from "../agent/ops/metrics.js";

/** One agent as the hub it was last on recorded it. */
export interface AgentRow {
  nodeId: string;
  replicaId: string;
  hubNode: string;
  behindChanges: number;
  behindSeconds: number;
  pendingWrites: number | null;
  /** Recorded within the last few status intervals: the agent is on `hubNode` now. */
  fresh: boolean;
  /** When a hub last recorded it connected (ISO 8601). */
  seenAt: string;
}

/** The agent's row when it is on another hub now, else undefined. */
function onOtherHub(rows: ReadonlyMap<string, AgentRow>, nodeId: string, hubNode: string): AgentRow | undefined {
  const row = rows.get(nodeId);
  return row && row.fresh && row.hubNode !== hubNode ? row : undefined;
}

const byNodeId = (rows: readonly AgentRow[]) => new Map(rows.map((r) => [r.nodeId, r]));

export interface PlacementOptions {
  hubNode: string;
  /** mesh.acceptUnlisted: the agents recorded in hub_agents are known too, not only mesh.agents. */
  includeRecorded: boolean;
}

/** The recorded agents this hub has no row for yet (its own list and sessions come first). */
function recordedOnly<T>(rows: readonly AgentRow[], local: ReadonlyMap<string, T>, o: PlacementOptions): AgentRow[] {
  return o.includeRecorded ? rows.filter((r) => !local.has(r.nodeId)) : [];
}

/** This hub's link gauges (mesh.gauges()) without the agents that are on another hub. */
export function hubLinkGauges(local: readonly PeerGauge[], rows: readonly AgentRow[], o: PlacementOptions): PeerGauge[] {
  const recorded = byNodeId(rows);
  const out = new Map(local.map((g) => [g.peer, g]));
  for (const r of recordedOnly(rows, out, o)) out.set(r.nodeId, { peer: r.nodeId, connected: false, behindChanges: null });
  return [...out.values()].filter((g) => g.connected || onOtherHub(recorded, g.peer, o.hubNode) === undefined);
}

/**
 * This hub's sessions (mesh.status()), with each agent that is on another hub shown as connected
 * there, and every agent's hub (`hub`: this one, another, or null for none).
 */
export function clusterPeers(local: readonly PeerStatus[], rows: readonly AgentRow[], o: PlacementOptions, asOf: string | null = null): PeerStatus[] {
  const recorded = byNodeId(rows);
  const out = new Map(local.map((p) => [p.nodeId, { ...p, hub: p.connected ? o.hubNode : null }]));
  for (const r of recordedOnly(rows, out, o)) {
    out.set(r.nodeId, {
      nodeId: r.nodeId, url: null, direction: null, connected: false, replicaId: r.replicaId, behindChanges: null,
      behindSeconds: null, lastError: null, connectedSince: null, pendingWrites: null, hub: null,
    });
  }
  for (const r of rows) {
    if (out.get(r.nodeId)?.connected || onOtherHub(recorded, r.nodeId, o.hubNode) === undefined) continue;
    out.set(r.nodeId, {
      nodeId: r.nodeId, url: `via hub ${r.hubNode}`, direction: "inbound", connected: true, replicaId: r.replicaId,
      behindChanges: r.behindChanges, behindSeconds: r.behindSeconds, lastError: null, connectedSince: null,
      pendingWrites: r.pendingWrites, hub: r.hubNode,
    });
  }
  // An agent on no hub: when a hub last had it, this one (its session closed) or any (the rows).
  for (const p of out.values()) {
    if (p.connected) continue;
    const seen = latest(p.lastSeen, recorded.get(p.nodeId)?.seenAt);
    if (seen !== undefined) p.lastSeen = seen;
  }
  const peers = asOf === null ? [...out.values()] : [...out.values()].map((p) => (p.hub === o.hubNode ? p : unknownSince(p, asOf, recorded.get(p.nodeId))));
  return peers.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
}

/** The later of two ISO 8601 times (either may be missing). */
function latest(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined || b === undefined) return a ?? b;
  return Date.parse(a) >= Date.parse(b) ? a : b;
}

/**
 * An agent not on this hub, from rows read at `asOf`: where it is and its lag are not known now.
 * Its hub is the one those rows had it on then (this one, for an agent this hub has just released).
 */
function unknownSince(p: PeerStatus, asOf: string, row: AgentRow | undefined): PeerStatus {
  const hub = row?.fresh ? row.hubNode : p.hub ?? null;
  return { ...p, connected: null, asOf, hub, behindChanges: null, behindSeconds: null, pendingWrites: null };
}
