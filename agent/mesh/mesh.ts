/**
 * The peer mesh: a WebSocket server for peers that dial us, a dialer per listed peer, and a
 * registry that keeps exactly one session per peer. When both nodes dial each other, the session
 * dialed by the lower node id wins on both sides, so they agree without talking about it.
 *
 * The hub runs the same mesh (`relay: true`, agents in `allow`, no peers to dial); an agent in hub
 * mode has one more dialer that fails over across `hubUrls` and keeps one hub session at a time.
 * Such an agent opens its peer port only while some node could use it (the listener's `wanted`).
 */
import { readFileSync } from "node:fs";
import { WebSocket } from "ws";
import type { BatchRefusal, PeerStatus, ResyncStatus } from "../contract/protocol.js";
import type { JournalBehind } from "../core/journal-behind.js";
import type { Replica } from "../core/replica.js";
import type { Logger } from "../ops/logger.js";
import { closeReason } from "./close-reason.js";
import { forgetPeerSeries, type AuthFailureReason, type Metrics, type PeerGauge } from "../ops/metrics.js";
import { redactUrl } from "../ops/redact-url.js";
import { createAuthThrottle, type AuthThrottle } from "../ops/auth-throttle.js";
import { createBatchRefusals } from "./batch-refusals.js";
import { startDialer, type Dialer } from "./dialer.js";
import { createFailbackPolicy } from "./failback.js";
import { probeHub } from "./hub-probe.js";
import { createPeerSession, type PeerSession, type SessionOptions, type Transport } from "./peer-session.js";
import { createCatchUpWatch } from "./catch-up-watch.js";
import { openHubAcknowledged, type HubAcknowledged } from "./hub-acknowledged.js";
import type { KeyRing } from "../ops/key-ring.js";
import { createPeerKeyNotes, createPeerRefusalLog } from "./peer-keys.js";
import { createNoHubWarning, type NoHubWarning } from "./no-hub-warning.js";
import { createPeerListener } from "./peer-listener.js";
import { createPullCoordinator } from "./pull-coordinator.js";
import { changesAhead } from "../core/version-vector.js";

export interface PeerEntry {
  id: string;
  url: string;
}

export interface MeshOptions extends SessionOptions {
  nodeId: string;
  listen: { host: string; port: number };
  peers: readonly PeerEntry[];
  acceptUnlisted: boolean;
  /** Node ids accepted without being dialed (a hub's agents). */
  allow?: readonly string[];
  /** Hub URLs: keep one session with one of them, failing over in turn. */
  hubUrls?: readonly string[];
  /** On a hub other than the first URL, move back to the first once it has taken sessions this long (failback.ts); 0: never on its own. */
  hubFailbackAfterMs?: number;
  /** This node is a hub: sessions push every origin held, not only our own changes. */
  relay?: boolean;
  /** Our pending Kamailio writes, reported to peers (a hub shows them for the whole cluster). */
  pendingWrites?: () => number;
  tls: { cert: string; key: string; ca: string | null } | null;
  maxMessageBytes: number;
  relayDelayMs?: number;
  pingIntervalMs?: number;
  /** Limits key guessing per address; defaults to 10 refused handshakes a minute, then 60 s refused. */
  authThrottle?: AuthThrottle;
}

export interface Mesh {
  start(): Promise<void>;
  port(): number;
  status(): Promise<PeerStatus[]>;
  /** Peers that refuse batches of this node's changes for good, until they take one again (batch-refusals.ts). */
  batchRefusals(): BatchRefusal[];
  /** Each configured peer's link, and the hub link in hub mode, for the metrics (cheap: no journal reads past the vector). */
  gauges(): Promise<PeerGauge[]>;
  /**
   * Replace the peer list (config reload): new peers are dialed, removed ones disconnected. In hub
   * mode this also opens or closes the peer port as the list stops or starts being empty.
   */
  setPeers(peers: readonly PeerEntry[]): void;
  /**
   * In hub mode, replace the hub list (config reload). The session stays up while its hub is still
   * listed (failback then follows the new first URL); one with a hub no longer listed is closed and
   * the new list is dialed from its start. Says what was done. Throws outside hub mode, and for an
   * empty list: switching between hub mode and the mesh alone needs a restart.
   */
  setHubUrls(urls: readonly string[]): string;
  /** In hub mode, a new hub.failbackAfterSec (config reload, Dialer.renewFailback). Says what was done; throws outside hub mode. */
  setHubFailback(afterMs: number): string;
  /**
   * On a hub: replace the agents it accepts (mesh.agents, config reload). An agent no longer listed
   * has its session closed and its series dropped, unless `acceptUnlisted` takes it anyway.
   */
  setAllowed(ids: readonly string[]): void;
  resync(peerId?: string): Promise<void>;
  resyncStatus(): ResyncStatus;
  /**
   * In hub mode: how many of this node's own changes no hub has acknowledged yet (our sequence
   * number less what the current or last hub session said the hub held of our origin, the last
   * kept in the journal across restarts: hub-acknowledged.ts). Null while no hub has answered
   * since this journal was made (unknown); undefined when not in hub mode.
   */
  hubUnacknowledged(): Promise<number | null | undefined>;
  /** Something was stored outside our own sessions (another hub's commit): let every pump look. */
  wakePumps(): void;
  /**
   * A hub that cannot serve (its PostgreSQL does not answer, hub/pg-watch.ts): closes every session
   * and refuses new connections with 4013 and `reason` until called with null. An agent dials its
   * next hub when its session closes (dialer.ts).
   */
  refuseSessions(reason: string | null): void;
  /** In hub mode on a hub other than the first URL: move to the first now if it takes sessions. Says what was done. */
  failBackToPreferredHub(): Promise<string>;
  close(): Promise<void>;
}

const HUB = "hub";
/** Before authentication: the largest frame taken (a hello with a version vector of 10,000 origins fits), and answers left unread. */
const PRE_AUTH_MAX_FRAME = 1 << 20;
const PRE_AUTH_BUFFER_LIMIT = 1 << 20;

export function createMesh(deps: {
  options: MeshOptions;
  replica: Replica;
  log: Logger;
  metrics: Metrics;
  /** Called once this node holds everything some peer or hub held when their session began (catch-up-watch.ts). */
  onCaughtUp?: (peer: string) => void;
  /** Shared with the local API and the Kamailio side (agent.ts); set by a session's handshake. */
  journalBehind: JournalBehind;
  /** In hub mode: what the hub last said it held of our changes, kept in the journal (agent.ts); default: kept for this run only. */
  hubAcknowledged?: HubAcknowledged;
  /** The cluster keys (mesh.secret and mesh.acceptedSecrets), which SIGHUP may replace; read at each handshake. */
  keys: KeyRing;
}): Mesh {
  const { options: o, replica, metrics } = deps;
  const log = deps.log.child({ component: "mesh" });
  const onCaughtUp = deps.onCaughtUp;
  const catchUp = onCaughtUp
    ? createCatchUpWatch({ replica, onCaughtUp, onError: (err) => log.warn({ err: (err as Error).message }, "could not compare the journal with a peer's") })
    : null;
  const sessions = new Map<string, PeerSession>();
  const readyAt = new Map<PeerSession, number>();
  const pending = new Set<PeerSession>();
  const dialers = new Map<string, Dialer>();
  let peers = [...o.peers];
  const hubMode = (o.hubUrls?.length ?? 0) > 0;
  let hubUrls = [...(o.hubUrls ?? [])];
  let hubFailbackAfterMs = o.hubFailbackAfterMs ?? 0;
  let closing = false;
  let refusal: string | null = null;
  /** Set once a peer held more of our own changes than our journal: no session replicates after. */
  const journalBehind = deps.journalBehind;
  const stopOnJournalBehind = journalBehind.onSet(() => {
    for (const s of [...sessions.values(), ...pending]) s.close(4010, "journal behind peer: restored or lost commits; see the agent log");
  });
  const ca = o.tls?.ca ? readFileSync(o.tls.ca) : undefined;

  /** A hub's agents (mesh.agents), which SIGHUP may replace (setAllowed). */
  let allowed: readonly string[] = o.allow ?? [];
  const isAllowed = (id: string) => o.acceptUnlisted || peers.some((p) => p.id === id) || allowed.includes(id);
  const hubSession = () => [...sessions.values()].find((s) => s.peerIsHub && s.isReady());
  /** What the last hub session said the hub held of our changes: a hub that is away gains nothing of ours. */
  const hubAcknowledged = deps.hubAcknowledged ?? openHubAcknowledged({ notes: null, replicaId: replica.replicaId, log });
  const noteHubHolds = (s: PeerSession) => {
    if (s.peerIsHub) hubAcknowledged.record(s.peerVector()[replica.replicaId] ?? 0);
  };
  let noHub: NoHubWarning | null = null;
  const dialerOf = (s: PeerSession) => (s.role === "client" ? o.nodeId : s.peerNodeId()!);

  const coordinator = createPullCoordinator({
    replica, log, metrics, batchSize: o.batchSize, relayDelayMs: o.relayDelayMs ?? 1000,
    sessions: () => [...sessions.values()],
    readySince: (s) => readyAt.get(s) ?? 0,
  });

  const throttle = o.authThrottle ?? createAuthThrottle({ keyBy: "address" });
  const onPeerKey = createPeerKeyNotes({ keys: deps.keys, metrics, log });
  const logRefusal = createPeerRefusalLog({ log });
  const refusals = createBatchRefusals({ log });
  /** The connecting address of a server-side session, told how its handshake went; one that did not try in time does not count toward its limit. */
  const handshakeOutcome = (address: string) => ({
    onAuthFailed(reason: AuthFailureReason, nodeId: string | null) {
      logRefusal(address, reason, nodeId);
      if (reason !== "timeout" && throttle.failed(address)) {
        log.warn({ remote: address }, "too many refused peer handshakes from this address; refusing its connections for a while");
      }
    },
    onAuthenticated: () => throttle.succeeded(address),
  });

  function attach(ws: WebSocket, role: "client" | "server", remote: string, expectedPeer?: string, peerIsHub = false, address?: string): PeerSession {
    let made: PeerSession | null = null;
    const transport: Transport = {
      remote,
      send: (frame) => {
        if (ws.readyState !== WebSocket.OPEN) return;
        ws.send(frame, { binary: false });
        // Before the handshake anyone can connect: one who sends requests and never reads the
        // answers is dropped before they pile up.
        // (The server's challenge goes out while the session is being made: not ready then either.)
        if (!(made?.isReady() ?? false) && ws.bufferedAmount > PRE_AUTH_BUFFER_LIMIT) {
          log.warn({ remote, buffered: ws.bufferedAmount }, "an unauthenticated peer connection does not read its answers; dropping it");
          ws.terminate();
        }
      },
      close: (code, reason) => ws.close(code, reason),
    };
    const session = createPeerSession({
      role, nodeId: o.nodeId, keys: deps.keys, onPeerKey, expectedPeer, isAllowed, replica, transport, log, metrics, options: o,
      relay: o.relay ?? false, peerIsHub, pendingWrites: o.pendingWrites, journalBehind,
      onBatchRefused: (peer, origin, reason, changes) => refusals.refused(peer, origin, reason, changes),
      onBatchAcknowledged: (peer, origin) => refusals.acknowledged(peer, origin),
      ...(address === undefined ? {} : handshakeOutcome(address)),
      onReady(s) {
        pending.delete(s);
        const id = s.peerNodeId()!;
        const existing = sessions.get(id);
        if (existing && existing.isReady()) {
          // The lower dialer's session wins on both ends. Two sessions from the same dialer mean it
          // reconnected while its old connection was still half-open here: the new one is live.
          const keepNew = dialerOf(s) <= dialerOf(existing);
          const loser = keepNew ? existing : s;
          log.info({ peer: id, keep: keepNew ? "new" : "existing" }, "two sessions with the same peer; closing one");
          if (!keepNew) {
            loser.close(4009, "duplicate session");
            return;
          }
          sessions.delete(id);
          loser.close(4009, "duplicate session");
        }
        sessions.set(id, s);
        readyAt.set(s, Date.now());
        // At once: a hub that lost data (a PostgreSQL failover) holds less than it said before.
        noteHubHolds(s);
        if (s.peerIsHub) noHub?.answered();
        catchUp?.peerReady(id, s.peerVector());
        coordinator.evaluate();
      },
      onPeerVector(s) {
        if (sessions.get(s.peerNodeId() ?? "") === s) noteHubHolds(s);
        coordinator.evaluate();
      },
      onClosed(s, reason) {
        pending.delete(s);
        readyAt.delete(s);
        const id = s.peerNodeId();
        if (id && sessions.get(id) === s) {
          noteHubHolds(s);
          sessions.delete(id);
          catchUp?.peerGone(id);
          log.info({ peer: id, reason }, "peer session closed");
          for (const d of dialers.values()) d.wake();
        }
      },
    });
    made = session;
    pending.add(session);
    let alive = true;
    const ping = setInterval(() => {
      if (!alive) {
        log.warn({ remote }, "peer stopped answering pings; dropping the connection");
        ws.terminate();
        return;
      }
      alive = false;
      ws.ping();
    }, o.pingIntervalMs ?? 5000);
    ws.on("pong", () => (alive = true));
    ws.on("message", (data, isBinary) => {
      alive = true;
      if (isBinary) {
        ws.close(1003, "text frames only");
        return;
      }
      const size = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : (data as Buffer | ArrayBuffer).byteLength;
      if (!session.isReady() && size > PRE_AUTH_MAX_FRAME) {
        ws.close(1009, "frame too large before authentication");
        return;
      }
      session.receive(data.toString());
    });
    ws.on("close", (code, reason) => {
      clearInterval(ping);
      session.closed(`${code} ${reason.toString() || "closed"}`);
    });
    ws.on("error", (err) => log.debug({ remote, err: err.message }, "peer socket error"));
    return session;
  }

  // ---- dialing ------------------------------------------------------------------------------

  const peerUrl = (url: string) => (new URL(url).pathname === "/" ? new URL("/peer", url).toString() : url);

  function connect(url: string, expectedPeer: string | undefined, track: (ws: WebSocket) => void): Promise<WebSocket | null> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(peerUrl(url), { maxPayload: o.maxMessageBytes, ca, handshakeTimeout: 5000 });
      track(ws);
      // Attach in the open handler itself: the server's challenge may arrive in the same tick.
      ws.once("open", () => {
        attach(ws, "client", redactUrl(url), expectedPeer, expectedPeer === undefined);
        resolve(ws);
      });
      ws.once("error", (err) => reject(Object.assign(err, { transient: true })));
      ws.once("unexpected-response", (_req, res) => {
        reject(Object.assign(new Error(`HTTP ${res.statusCode} from ${url}`), { transient: true }));
        ws.terminate();
      });
    });
  }

  function dial(entry: PeerEntry): Dialer {
    return startDialer({
      target: { id: entry.id, urls: [entry.url] }, label: entry.id, nodeId: o.nodeId, retry: o.retry, log, metrics,
      connect: (url, track) => connect(url, entry.id, track),
      isConnected: () => Boolean(sessions.get(entry.id)?.isReady()),
    });
  }

  function dialHubs(urls: readonly string[]): Dialer {
    noHub = createNoHubWarning({ urls: () => hubUrls, log });
    return startDialer({
      target: { id: null, urls }, label: HUB, nodeId: o.nodeId, retry: o.retry, log, metrics, onUnanswered: noHub.failed,
      connect: (url, track) => connect(url, undefined, track),
      isConnected: () => hubSession() !== undefined,
      failback: {
        newPolicy: () => createFailbackPolicy({ afterMs: hubFailbackAfterMs }),
        probe: (url) => probeHub(peerUrl(url), { ca, timeoutMs: 5000, maxFrameBytes: PRE_AUTH_MAX_FRAME }),
      },
    });
  }

  // ---- status -------------------------------------------------------------------------------

  /** Configured peers, a hub's agents, and whoever has a session now. */
  const knownPeerIds = () => new Set([...peers.map((p) => p.id), ...allowed, ...sessions.keys()]);

  async function hubUnacknowledged(): Promise<number | null | undefined> {
    if (!hubMode) return undefined;
    const own = replica.replicaId;
    const session = hubSession();
    const held = session ? (session.peerVector()[own] ?? 0) : hubAcknowledged.held();
    if (held === null) return null;
    return Math.max(0, ((await replica.versionVector())[own] ?? 0) - held);
  }

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
      const entry = peers.find((p) => p.id === id);
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
        ...(s?.peerIsHub ? { hub: id } : {}),
      });
    }
    const hubDialer = dialers.get(HUB);
    if (hubDialer && !hubSession()) {
      out.push({
        nodeId: HUB, url: hubDialer.url(), direction: null, connected: false, replicaId: null,
        behindChanges: (await hubUnacknowledged()) ?? null, behindSeconds: null, lastError: hubDialer.lastError(), connectedSince: null, pendingWrites: null, hub: null,
      });
    }
    return out;
  }

  // ---- the peer port -------------------------------------------------------------------------

  const listener = createPeerListener({
    listen: o.listen, tls: o.tls, maxMessageBytes: o.maxMessageBytes, log,
    // Outside hub mode the other nodes dial this one (or will, once they list it). In hub mode with
    // no mesh.peers and mesh.acceptUnlisted off, isAllowed refuses every node that dials it at the
    // handshake: an open port would only be one more to firewall.
    wanted: () => !hubMode || peers.length > 0 || o.acceptUnlisted,
    unwantedBecause: "in hub mode with no mesh.peers and mesh.acceptUnlisted off, no node could hold a session there (the agent dials its hubs); a SIGHUP that adds mesh.peers opens it",
    logFields: () => ({ peers: peers.map((p) => p.id), ...(hubMode ? { hubs: hubUrls.map(redactUrl) } : {}) }),
    onConnection(ws, req) {
      if (closing) return ws.close(1001, "shutting down");
      if (refusal !== null) return ws.close(4013, closeReason(refusal));
      const address = req.socket.remoteAddress ?? "unknown";
      const heldMs = throttle.blockedFor(address);
      if (heldMs > 0) {
        metrics.authFailures.inc({ reason: "peer locked out" });
        return ws.close(4029, `too many refused handshakes from ${address}; retry in ${Math.ceil(heldMs / 1000)} s`);
      }
      attach(ws, "server", `${address}:${req.socket.remotePort}`, undefined, false, address);
    },
  });

  return {
    async start() {
      await listener.sync();
      for (const p of peers) dialers.set(p.id, dial(p));
      if (hubMode) dialers.set(HUB, dialHubs(hubUrls));
    },
    port: () => listener.port(),
    status,
    batchRefusals: () => refusals.list(),
    gauges,
    hubUnacknowledged,
    setPeers(next) {
      const nextIds = new Set(next.map((p) => p.id));
      for (const [id, d] of dialers) {
        if (id === HUB) continue;
        if (!nextIds.has(id) || next.find((p) => p.id === id)!.url !== d.target.urls[0]) {
          d.stop("peer removed from config");
          dialers.delete(id);
          if (!nextIds.has(id)) refusals.forget(id);
          if (!nextIds.has(id) && !o.acceptUnlisted) {
            sessions.get(id)?.close(1000, "peer removed from config");
            forgetPeerSeries(metrics, id);
          }
        }
      }
      peers = [...next];
      for (const p of peers) if (!dialers.has(p.id)) dialers.set(p.id, dial(p));
      log.info({ peers: peers.map((p) => p.id) }, "peer list updated");
      // The new peers dial this node too; without the port they would only be dialed.
      listener.sync().catch((err: unknown) => log.error({ err: (err as Error).message }, "could not open the peer port for the new mesh.peers: they cannot dial this node (it still dials them); fix it and send SIGHUP again"));
    },
    setAllowed(ids) {
      const next = new Set(ids);
      for (const id of allowed) {
        if (next.has(id) || o.acceptUnlisted || peers.some((p) => p.id === id)) continue;
        sessions.get(id)?.close(1000, "agent removed from mesh.agents");
        forgetPeerSeries(metrics, id);
        refusals.forget(id);
      }
      allowed = [...ids];
      log.info({ agents: allowed }, "agent list updated");
    },
    setHubUrls(urls) {
      const d = dialers.get(HUB);
      if (!d || urls.length === 0) throw new Error("switching between hub mode and the mesh alone needs a restart");
      hubUrls = [...urls];
      const outcome = d.setUrls(urls);
      log.info({ hubs: urls.map(redactUrl), outcome }, "hub list updated");
      return outcome;
    },
    setHubFailback(afterMs) {
      const d = dialers.get(HUB);
      if (!d) throw new Error("not in hub mode");
      hubFailbackAfterMs = afterMs;
      return d.renewFailback();
    },
    async resync(peerId) {
      const candidates = [...sessions.values()].filter((s) => s.isReady() && (!peerId || s.peerNodeId() === peerId));
      const s = candidates[0];
      if (!s) throw new Error(peerId ? `peer ${peerId} is not connected` : "no peer is connected");
      await coordinator.resync(s);
    },
    resyncStatus: () => coordinator.status(),
    wakePumps() {
      for (const s of sessions.values()) s.wake();
    },
    refuseSessions(reason) {
      refusal = reason;
      if (reason !== null) for (const s of [...sessions.values(), ...pending]) s.close(4013, closeReason(reason));
    },
    failBackToPreferredHub: () => dialers.get(HUB)?.failBackNow() ?? Promise.resolve("not in hub mode (no hub.urls)"),
    async close() {
      closing = true;
      catchUp?.close();
      stopOnJournalBehind();
      coordinator.close();
      for (const d of dialers.values()) d.stop("shutting down");
      for (const s of [...sessions.values(), ...pending]) s.close(1001, "shutting down");
      await listener.close();
    },
  };
}
