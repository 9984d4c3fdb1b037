/**
 * The peer mesh: a WebSocket server for peers that dial us, a dialer per listed peer, and a
 * registry that keeps exactly one session per peer. When both nodes dial each other, the session
 * dialed by the lower node id wins on both sides, so they agree without talking about it.
 *
 * The hub runs the same mesh (`relay: true`, agents in `allow`, no peers to dial); an agent in hub
 * mode has one more dialer that fails over across `hubUrls` and keeps one hub session at a time.
 * Such an agent opens its peer port only while some node could use it (the listener's `wanted`).
 *
 * Beside it: each session's WebSocket (peer-socket.ts), what the links report (mesh-status.ts) and
 * the replacement of the peer, agent and hub lists on a config reload (mesh-reload.ts).
 */
import { WebSocket } from "ws";
import type { BatchRefusal, ResyncStatus } from "../contract/cluster-status.js";
import type { VersionVector } from "../contract/records.js";
import type { JournalBehind } from "../core/journal-behind.js";
import type { Replica } from "../core/replica.js";
import type { Logger } from "../ops/logger.js";
import { closeReason } from "./close-reason.js";
import type { AuthFailureReason, Metrics } from "../ops/metrics.js";
import { redactUrl } from "../ops/redact-url.js";
import { createAuthThrottle, type AuthThrottle } from "../ops/auth-throttle.js";
import { createDuplicateSessions } from "./duplicate-sessions.js";
import { createBatchRefusals } from "./batch-refusals.js";
import { startDialer, type Dialer } from "./dialer.js";
import { createFailbackPolicy } from "./failback.js";
import { peerUrl, probeHub } from "./hub-probe.js";
import { createPeerSession, type PeerSession, type SessionOptions } from "./peer-session.js";
import { createCatchUpWatch } from "./catch-up-watch.js";
import { hubHoldsNone, openHubAcknowledged, type HubAcknowledged } from "./hub-acknowledged.js";
import type { KeyRing } from "../ops/key-ring.js";
import { createPeerKeyNotes, createPeerRefusalLog } from "./peer-keys.js";
import { createNoHubWarning, type NoHubWarning } from "./no-hub-warning.js";
import { createPeerListener, PEER_PORT_UNWANTED, peerPortWanted } from "./peer-listener.js";
import { readTlsFiles } from "./tls-files.js";
import type { ClaimedId } from "./peer-handshake.js";
import { createOwnHistoryCheck } from "./own-history.js";
import { createPullCoordinator } from "./pull-coordinator.js";
import { HUB, createMeshReload, type MeshLists, type MeshReload, type PeerEntry } from "./mesh-reload.js";
import { createMeshStatus, type MeshStatus } from "./mesh-status.js";
import { resyncSource } from "./resync-source.js";
import { PRE_AUTH_MAX_FRAME, feedSession, socketTransport } from "./peer-socket.js";

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

/** The peer list, agent list and hub list setters are in mesh-reload.ts, status and gauges in mesh-status.ts. */
export interface Mesh extends MeshReload, MeshStatus {
  start(): Promise<void>;
  port(): number;
  /**
   * Resolves once a session with a peer or hub is ready (its handshake has compared what the peer
   * holds of this node's changes with the journal: journal-behind.ts), or after `timeoutMs`; at
   * once when no peer or hub is configured.
   */
  firstSession(timeoutMs: number): Promise<void>;
  /** Peers that refuse batches of this node's changes for good, until they take one again (batch-refusals.ts). */
  batchRefusals(): BatchRefusal[];
  /**
   * Starts a full resync from `peerId` (default: one the agent picks), or joins the one under way
   * (`joined`); throws when there is no such peer to pull from. `done` settles when it ends.
   */
  resync(peerId?: string): { joined: boolean; done: Promise<void> };
  resyncStatus(): ResyncStatus;
  /** Something was stored outside our own sessions (another hub's commit): let every pump look. */
  wakePumps(): void;
  /**
   * A hub that cannot serve (its PostgreSQL does not answer, hub/pg-watch.ts): closes every session
   * and refuses new connections with 4013 and `reason` until called with null. An agent dials its
   * next hub when its session closes (dialer.ts).
   */
  refuseSessions(reason: string | null): void;
  /**
   * A hub whose database lost commits: closes every session (1012) so that each agent handshakes
   * again from what the database now holds and sends what it lost; new sessions are taken at once.
   */
  restartSessions(reason: string): void;
  /** In hub mode on a hub other than the first URL: move to the first now if it takes sessions. Says what was done. */
  failBackToPreferredHub(): Promise<string>;
  close(): Promise<void>;
}

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
  /**
   * Compare each peer's copy of this node's own changes with the journal once per run
   * (own-history.ts): on agents, whose journal may be restored from an older copy; not on hubs.
   */
  checkOwnHistory?: boolean;
}): Mesh {
  const { options: o, replica, metrics } = deps;
  const log = deps.log.child({ component: "mesh" });
  const onCaughtUp = deps.onCaughtUp;
  const catchUp = onCaughtUp
    ? createCatchUpWatch({ replica, onCaughtUp, onError: (err) => log.warn({ err: (err as Error).message }, "could not compare the journal with a peer's") })
    : null;
  const sessions = new Map<string, PeerSession>();
  const readyAt = new Map<PeerSession, number>();
  /** When each peer's last ready session closed, for the status (HUB: the last hub session's). */
  const closedAt = new Map<string, number>();
  /** The hubs this node has had a session with, by node id: a resync names them (resync-source.ts). */
  const hubIds = new Set<string>();
  const pending = new Set<PeerSession>();
  const dialers = new Map<string, Dialer>();
  /** The peers, a hub's agents (mesh.agents) and the hubs, which SIGHUP may replace (mesh-reload.ts). */
  const lists: MeshLists = { peers: [...o.peers], allowed: o.allow ?? [], hubUrls: [...(o.hubUrls ?? [])], hubFailbackAfterMs: o.hubFailbackAfterMs ?? 0 };
  const hubMode = lists.hubUrls.length > 0;
  let closing = false;
  let refusal: string | null = null;
  /** Set once a peer held more of our own changes than our journal: no session replicates after. */
  const journalBehind = deps.journalBehind;
  const stopOnJournalBehind = journalBehind.onSet(() => {
    metrics.journalBehind.set(1);
    for (const s of [...sessions.values(), ...pending]) s.close(4010, "journal behind peer: restored or lost commits; see the agent log");
  });
  const ownHistory = deps.checkOwnHistory ? createOwnHistoryCheck({ replica, journalBehind, log }) : null;
  /**
   * What dials check peers against: mesh.tls.ca, which a SIGHUP may read again (setTls). The files
   * are checked here as a SIGHUP checks them (readTlsFiles throws a TlsFilesError naming the file),
   * certificate and key too: the peer port reads them only when it opens, and an agent in hub mode
   * with no mesh.peers never opens it, its mesh.tls only the CA of its wss:// hubs. Unchecked, a CA
   * that is not PEM started fine and failed every dial as "self-signed certificate".
   */
  let ca: Buffer | undefined = o.tls ? readTlsFiles(o.tls).ca : undefined;

  const isAllowed = (id: string) => o.acceptUnlisted || lists.peers.some((p) => p.id === id) || lists.allowed.includes(id);
  const hubSession = () => [...sessions.values()].find((s) => s.peerIsHub && s.isReady());
  /** What the last hub session said the hub held of our changes: a hub that is away gains nothing of ours. */
  const hubAcknowledged = deps.hubAcknowledged ?? openHubAcknowledged({ notes: null, replicaId: replica.replicaId, log });
  /** The first session with a peer or hub became ready (firstSession). */
  let firstReadyNow: () => void = () => undefined;
  const firstReady = new Promise<void>((resolve) => (firstReadyNow = resolve));
  /** What each peer last said it held, this run (mesh-status.ts purgeFloor). */
  const peerHeld = new Map<string, VersionVector>();
  const notePeerHolds = (s: PeerSession) => {
    if (s.peerIsHub) hubAcknowledged.record(s.peerVector()[replica.replicaId] ?? 0);
    else if (s.peerNodeId() !== null) peerHeld.set(s.peerNodeId()!, { ...s.peerVector() });
  };
  let noHub: NoHubWarning | null = null;
  const dialerOf = (s: PeerSession) => (s.role === "client" ? o.nodeId : s.peerNodeId()!);

  const coordinator = createPullCoordinator({
    replica, log, metrics, batchSize: o.batchSize, relayDelayMs: o.relayDelayMs ?? 1000,
    sessions: () => [...sessions.values()],
    readySince: (s) => readyAt.get(s) ?? 0,
  });

  const throttle = o.authThrottle ?? createAuthThrottle({ keyBy: "address" });
  /** A peer that keeps opening second sessions: two nodes with one nodeId, most likely. */
  const duplicates = createDuplicateSessions();
  const onPeerKey = createPeerKeyNotes({ keys: deps.keys, metrics, log });
  const logRefusal = createPeerRefusalLog({ log });
  const refusals = createBatchRefusals({ log });
  /** The connecting address of a server-side session, told how its handshake went; one that did not try in time does not count toward its limit. */
  const handshakeOutcome = (address: string) => ({
    onAuthFailed(reason: AuthFailureReason, nodeId: string | null, claim?: ClaimedId) {
      logRefusal(address, reason, nodeId, claim);
      if (reason !== "timeout" && throttle.failed(address)) {
        log.warn({ remote: address }, "too many refused peer handshakes from this address; refusing its connections for a while");
      }
    },
    onAuthenticated: () => throttle.succeeded(address),
  });

  function attach(ws: WebSocket, role: "client" | "server", remote: string, expectedPeer?: string, peerIsHub = false, address?: string): PeerSession {
    let made: PeerSession | null = null;
    const transport = socketTransport(ws, remote, log, () => made?.isReady() ?? false);
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
          const flapping = duplicates.note(id, [s.remote, existing.remote]);
          if (flapping) log.warn({ peer: id }, flapping);
          if (!keepNew) {
            loser.close(4009, "duplicate session");
            return;
          }
          sessions.delete(id);
          loser.close(4009, "duplicate session");
        }
        sessions.set(id, s);
        readyAt.set(s, Date.now());
        firstReadyNow();
        if (s.peerIsHub) hubIds.add(id);
        // At once: a hub that lost data (a PostgreSQL failover) holds less than it said before.
        if (s.peerIsHub) {
          const warning = hubHoldsNone(id, hubAcknowledged.held(), s.peerVector()[replica.replicaId] ?? 0);
          if (warning) log.warn({ hub: id }, warning);
        }
        notePeerHolds(s);
        if (s.peerIsHub) noHub?.answered();
        catchUp?.peerReady(id, s.peerVector());
        ownHistory?.peerReady(s);
        coordinator.evaluate();
      },
      onPeerVector(s) {
        if (sessions.get(s.peerNodeId() ?? "") === s) notePeerHolds(s);
        coordinator.vectorChanged();
      },
      onClosed(s, reason) {
        pending.delete(s);
        readyAt.delete(s);
        const id = s.peerNodeId();
        if (id && sessions.get(id) === s) {
          notePeerHolds(s);
          sessions.delete(id);
          closedAt.set(id, Date.now());
          if (s.peerIsHub) closedAt.set(HUB, Date.now());
          catchUp?.peerGone(id);
          log.info({ peer: id, reason }, "peer session closed");
          for (const d of dialers.values()) d.wake();
        }
      },
    });
    made = session;
    pending.add(session);
    feedSession(ws, session, { remote, log, pingIntervalMs: o.pingIntervalMs ?? 5000 });
    return session;
  }

  // ---- dialing ------------------------------------------------------------------------------

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
        // The message reaches the dialer's log lines and the link's lastError (cluster.status, the
        // web UI): never the password of a URL written user:password@.
        reject(Object.assign(new Error(`HTTP ${res.statusCode} from ${redactUrl(url)}`), { transient: true }));
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
    noHub = createNoHubWarning({ urls: () => lists.hubUrls, log });
    return startDialer({
      target: { id: null, urls }, label: HUB, nodeId: o.nodeId, retry: o.retry, log, metrics, onUnanswered: noHub.failed,
      connect: (url, track) => connect(url, undefined, track),
      isConnected: () => hubSession() !== undefined,
      failback: {
        newPolicy: () => createFailbackPolicy({ afterMs: lists.hubFailbackAfterMs }),
        probe: (url) => probeHub(peerUrl(url), { ca, timeoutMs: 5000, maxFrameBytes: PRE_AUTH_MAX_FRAME }),
      },
    });
  }

  // ---- the peer port -------------------------------------------------------------------------

  const listener = createPeerListener({
    listen: o.listen, tls: o.tls, maxMessageBytes: o.maxMessageBytes, log,
    wanted: () => peerPortWanted({ hubMode, peers: lists.peers.length, acceptUnlisted: o.acceptUnlisted }),
    unwantedBecause: PEER_PORT_UNWANTED,
    logFields: () => ({ peers: lists.peers.map((p) => p.id), ...(hubMode ? { hubs: lists.hubUrls.map(redactUrl) } : {}) }),
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

  // What the links report (mesh-status.ts), and the lists' replacement on SIGHUP (mesh-reload.ts).
  const report = createMeshStatus({ replica, lists, hubMode, sessions, readyAt, closedAt, dialers, hubSession, hubAcknowledged, peerHeld });
  const reload = createMeshReload({ lists, acceptUnlisted: o.acceptUnlisted, dialers, sessions, dial, refusals, listener, metrics, log, setCa: (c) => (ca = c) });

  return {
    firstSession(timeoutMs) {
      if (lists.peers.length === 0 && !hubMode) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        timer.unref();
        void firstReady.then(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
    async start() {
      await listener.sync();
      for (const p of lists.peers) dialers.set(p.id, dial(p));
      if (hubMode) dialers.set(HUB, dialHubs(lists.hubUrls));
    },
    port: () => listener.port(),
    ...report,
    ...reload,
    batchRefusals: () => refusals.list(),
    resync(peerId) {
      const ready = [...sessions.values()].filter((s) => s.isReady());
      const id = resyncSource(peerId, {
        ready: ready.map((s) => ({ nodeId: s.peerNodeId()!, isHub: s.peerIsHub })),
        peers: [...new Set([...lists.peers.map((p) => p.id), ...lists.allowed, ...[...sessions].filter(([, s]) => !s.peerIsHub).map(([id]) => id)])],
        hubs: [...hubIds],
        hubMode,
      });
      return coordinator.resync(ready.find((s) => s.peerNodeId() === id)!);
    },
    resyncStatus: () => coordinator.status(),
    wakePumps() {
      for (const s of sessions.values()) s.wake();
    },
    refuseSessions(reason) {
      refusal = reason;
      if (reason !== null) for (const s of [...sessions.values(), ...pending]) s.close(4013, closeReason(reason));
    },
    restartSessions(reason) {
      for (const s of [...sessions.values(), ...pending]) s.close(1012, closeReason(reason));
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
