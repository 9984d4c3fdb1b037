/**
 * What the mesh reports of its links: each peer's (and in hub mode the hub's) state for
 * cluster.status, the metrics' gauges, and how many of this node's changes no hub has acknowledged.
 * Reads the mesh's sessions, dialers and lists; changes nothing.
 */
import type { PeerStatus } from "../contract/cluster-status.js";
import type { VersionVector } from "../contract/records.js";
import type { Replica } from "../core/replica.js";
import type { PurgeFloor } from "../core/store.js";
import { changesAhead } from "../core/version-vector.js";
import type { PeerGauge } from "../ops/metrics.js";
import { redactUrl } from "../ops/redact-url.js";
import type { Dialer } from "./dialer.js";
import type { HubAcknowledged } from "./hub-acknowledged.js";
import { HUB, type MeshLists } from "./mesh-reload.js";
import type { PeerSession } from "./peer-session.js";

export interface MeshStatus {
  status(): Promise<PeerStatus[]>;
  /** Each configured peer's link, and the hub link in hub mode, for the metrics (cheap: no journal reads past the vector). */
  gauges(): Promise<PeerGauge[]>;
  /**
   * In hub mode: how many of this node's own changes no hub has acknowledged yet (our sequence
   * number less what the current or last hub session said the hub held of our origin, the last
   * kept in the journal across restarts: hub-acknowledged.ts). Null while no hub has answered
   * since this journal was made (unknown); undefined when not in hub mode.
   */
  hubUnacknowledged(): Promise<number | null | undefined>;
  /**
   * Per origin this node holds, the highest seq that every peer it knows (configured, listed,
   * connected now or seen this run) holds, each by its live session, else by what it last said this
   * run; in hub mode what the hub holds (of this node's own, while no hub is connected, what the
   * last one held, kept across restarts). Null while a peer has not said since this agent started,
   * or no hub has answered this journal. The purge keeps every later row, whoever made it: a removal
   * made here must reach every peer, and this node relays other origins' changes to a peer whose
   * origin is down, where a range it had purged would arrive empty (purge-timer.ts).
   */
  purgeFloor(): Promise<PurgeFloor | null>;
  /**
   * What each peer with a ready session last said it holds (its version vector), by node id. A hub
   * records its agents' in PostgreSQL, and keeps a tombstone until every agent it has seen lately
   * holds it (hub/agent-registry.ts, the purge in hub/pg-sql.ts).
   */
  peerVectors(): Map<string, VersionVector>;
}

export function createMeshStatus(deps: {
  replica: Replica;
  lists: Readonly<Pick<MeshLists, "peers" | "allowed">>;
  hubMode: boolean;
  /** Ready sessions by node id, when each became ready (ms), and the dialers by peer id (HUB for the hub's). */
  sessions: ReadonlyMap<string, PeerSession>;
  readyAt: ReadonlyMap<PeerSession, number>;
  /** When each peer's last ready session closed (ms), by node id; HUB for the hub link's. */
  closedAt: ReadonlyMap<string, number>;
  dialers: ReadonlyMap<string, Dialer>;
  hubSession(): PeerSession | undefined;
  hubAcknowledged: Pick<HubAcknowledged, "held">;
  /** What each peer (not a hub) last said it held (its version vector), this run, by node id. */
  peerHeld: ReadonlyMap<string, VersionVector>;
}): MeshStatus {
  const { replica, lists, hubMode, sessions, readyAt, dialers, hubSession } = deps;

  /** Configured peers, a hub's agents, and whoever has a session now. */
  const knownPeerIds = () => new Set([...lists.peers.map((p) => p.id), ...lists.allowed, ...sessions.keys()]);

  async function hubUnacknowledged(): Promise<number | null | undefined> {
    if (!hubMode) return undefined;
    const own = replica.replicaId;
    const session = hubSession();
    const held = session ? (session.peerVector()[own] ?? 0) : deps.hubAcknowledged.held();
    if (held === null) return null;
    return Math.max(0, ((await replica.versionVector())[own] ?? 0) - held);
  }

  /** What every peer this node knows last said it holds; null while one has not said this run. */
  function peerVectorsHeld(): VersionVector[] | null {
    const out: VersionVector[] = [];
    // Also every peer seen this run (one admitted by mesh.acceptUnlisted that went away).
    for (const id of new Set([...knownPeerIds(), ...deps.peerHeld.keys()])) {
      const s = sessions.get(id);
      const held = s?.isReady() ? s.peerVector() : deps.peerHeld.get(id);
      if (held === undefined) return null;
      out.push(held);
    }
    return out;
  }

  /** What the hub holds: the live session's vector, else this node's own by the figure kept, else unknown. */
  function hubFloor(): PurgeFloor | null {
    const session = hubSession();
    if (session) return { ...session.peerVector() };
    const held = deps.hubAcknowledged.held();
    return held === null ? null : { [replica.replicaId]: held };
  }

  async function purgeFloor(): Promise<PurgeFloor | null> {
    const hub = hubMode ? hubFloor() : null;
    if (hubMode && (hub === null || (lists.peers.length === 0 && deps.peerHeld.size === 0))) return hub;
    // Mesh peers, beside the hubs too (a move between the two, README): each must hold it as well.
    const vectors = peerVectorsHeld();
    if (vectors === null) return null;
    const floor: Record<string, number> = {};
    for (const origin of Object.keys(await replica.versionVector())) {
      // No peer: nobody to wait for. An origin the hub's floor leaves out is kept for it.
      const least = vectors.reduce((l, v) => Math.min(l, v[origin] ?? 0), Number.MAX_SAFE_INTEGER);
      floor[origin] = hub === null ? least : Math.min(least, hub[origin] ?? 0);
    }
    return floor;
  }

  const lastSeen = (id: string): { lastSeen?: string } => {
    const at = deps.closedAt.get(id);
    return at === undefined ? {} : { lastSeen: new Date(at).toISOString() };
  };

  async function gauges(): Promise<PeerGauge[]> {
    const mine = await replica.versionVector();
    const rows: PeerGauge[] = [];
    for (const id of knownPeerIds()) {
      const s = sessions.get(id);
      const up = Boolean(s?.isReady());
      rows.push({ peer: id, connected: up, behindChanges: up ? changesAhead(mine, s!.peerVector()) : null });
    }
    // In hub mode the hub's node id is known only once connected; until then its link shows as
    // "hub", behind by what no hub acknowledged of ours (no series while no hub has answered
    // since this journal was made).
    if (hubMode && !hubSession()) rows.push({ peer: HUB, connected: false, behindChanges: (await hubUnacknowledged()) ?? null });
    return rows;
  }

  async function status(): Promise<PeerStatus[]> {
    const out: PeerStatus[] = [];
    for (const id of [...knownPeerIds()].sort()) {
      const s = sessions.get(id);
      const entry = lists.peers.find((p) => p.id === id);
      // Without a session there is no peer vector to compare with: unknown, not 0 (nothing behind).
      const lag = s?.isReady() ? await s.lag() : null;
      out.push({
        nodeId: id,
        url: entry ? redactUrl(entry.url) : s?.peerIsHub ? redactUrl(s.remote) : null,
        direction: s ? (s.role === "client" ? "outbound" : "inbound") : null,
        connected: Boolean(s?.isReady()),
        replicaId: s?.peerReplicaId() ?? null,
        behindChanges: lag?.behindChanges ?? null,
        behindSeconds: lag ? Math.round(lag.behindSeconds * 1000) / 1000 : null,
        // While the session is up, why its batches are not acknowledged (a dial that failed before
        // the peer dialed us is history then); else why dialing fails.
        lastError: s?.isReady() ? s.deliveryError() : (s?.peerIsHub ? dialers.get(HUB) : dialers.get(id))?.lastError() ?? null,
        connectedSince: s && readyAt.has(s) ? new Date(readyAt.get(s)!).toISOString() : null,
        pendingWrites: s?.peerPendingWrites() ?? null,
        ...(s?.isReady() ? {} : lastSeen(id)),
        ...(s?.peerIsHub ? { hub: id } : {}),
        // Only a session up can fail to store the peer's batches; it resends them meanwhile.
        batchesNotStored: s?.isReady() ? s.batchesNotStored() : null,
      });
    }
    const hubDialer = dialers.get(HUB);
    if (hubDialer && !hubSession()) {
      out.push({
        nodeId: HUB, url: hubDialer.url(), direction: null, connected: false, replicaId: null,
        behindChanges: (await hubUnacknowledged()) ?? null, behindSeconds: null, lastError: hubDialer.lastError(), connectedSince: null, pendingWrites: null,
        ...lastSeen(HUB), hub: null,
      });
    }
    return out;
  }

  function peerVectors(): Map<string, VersionVector> {
    const out = new Map<string, VersionVector>();
    for (const [id, s] of sessions) if (s.isReady()) out.set(id, { ...s.peerVector() });
    return out;
  }

  return { status, gauges, hubUnacknowledged, purgeFloor, peerVectors };
}
