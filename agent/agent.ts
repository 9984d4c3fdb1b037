/**
 * Wires one agent together from its config: journal → replication core → peer mesh and local API.
 * No argv, env or signals here (that is main.ts); tests start agents in-process through this too.
 */
import { createHttpApi, type HttpApi } from "./api/http-server.js";
import { createLocalApi } from "./api/local-api.js";
import type { AgentConfig } from "./config/agent-config.js";
import { ApiNotification, SUMMARY_INTERVAL_MS } from "./contract/api-protocol.js";
import { createChangeSummary } from "./api/change-summary.js";
import { createHlc } from "./core/hlc.js";
import { createJournalBehind } from "./core/journal-behind.js";
import { startPurgeTimer } from "./core/purge-timer.js";
import { createReplica, type Replica } from "./core/replica.js";
import { journalPathOf } from "./journal/journal-inspect.js";
import { openSqliteStore } from "./journal/sqlite-store.js";
import { createKamailioAttachment, type KamailioAttachment } from "./kamailio/attachment.js";
import { sipPeersOf, type SipPeers } from "./kamailio/sip-peers.js";
import { bulkTokens } from "./kamailio/bulk-tokens.js";
import { openHubAcknowledged } from "./mesh/hub-acknowledged.js";
import { createMesh, type Mesh } from "./mesh/mesh.js";
import type { PeerEntry } from "./mesh/mesh-reload.js";
import type { Logger } from "./ops/logger.js";
import { createCredentials, credentialsStatus, type Credentials } from "./ops/key-ring.js";
import { createMetrics, type Metrics } from "./ops/metrics.js";
import { packageVersion } from "./ops/paths.js";
import { observeReplicationDelay } from "./ops/replication-delay.js";

/**
 * How long registrar events wait, at start, for the first session with a peer or hub: its
 * handshake finds a journal restored from an older copy before events journaled here could take
 * the sequence numbers the cluster holds (kamailio/attachment.ts eventsAfter). Kamailio holds the
 * REGISTERs meanwhile; with no peer reachable the events go ahead after this.
 */
const FIRST_SESSION_WAIT_MS = 5000;

export interface Agent {
  readonly replica: Replica;
  readonly mesh: Mesh;
  readonly http: HttpApi;
  readonly metrics: Metrics;
  /** Null when the config has no `kamailio` section. */
  readonly kamailio: KamailioAttachment | null;
  /** The cluster keys and API tokens in use, which SIGHUP replaces (applyCredentials). */
  readonly credentials: Credentials;
  setPeers(peers: readonly PeerEntry[]): void;
  /** In hub mode: replace the hub list (Mesh.setHubUrls). Says what was done. */
  setHubUrls(urls: readonly string[]): string;
  /** The other Kamailio nodes' SIP source IPs changed (SIGHUP): set in Kamailio now. No-op without `kamailio`. */
  setSipPeers(peers: SipPeers): void;
  /** In hub mode: a new hub.failbackAfterSec (Mesh.setHubFailback). Says what was done. */
  setHubFailback(afterSec: number): string;
  close(): Promise<void>;
}

export async function startAgent(
  config: AgentConfig,
  deps: { log: Logger; metrics?: Metrics; /** Changes not yet written into Kamailio (reported to peers and hubs). */ pendingWrites?: () => number },
): Promise<Agent> {
  const log = deps.log;
  const metrics = deps.metrics ?? createMetrics();
  metrics.exportAgentSeries();
  const startedAtMs = Date.now();
  const journalPath = journalPathOf(config.dataDir);
  const store = openSqliteStore({
    path: journalPath,
    nodeId: config.nodeId,
    synchronous: config.journal.synchronous,
    cacheMiB: config.journal.cacheMiB,
  });
  const hlc = createHlc({
    wallMillis: Date.now,
    initial: await store.maxHlc(),
    onDrift: (aheadMs) => log.warn({ aheadMs }, "a peer's clock is far ahead of ours; check NTP on every node"),
  });
  const replica = createReplica({ store, hlc, log, metrics });
  log.info({ replica: replica.replicaId, vv: await replica.versionVector(), path: journalPath }, "journal open");
  // A new journal on a node that had one means dataDir points elsewhere than before (a relative
  // default resolved from another working directory): say where it is, once, when it is made.
  if (store.created) log.warn({ path: journalPath }, "created a new journal (a new node, or dataDir points elsewhere than before): this node starts a new epoch and gets a snapshot from its peers");

  // Set by a peer session that finds this journal behind; read by the API and the Kamailio side.
  const journalBehind = createJournalBehind();
  let kamailio: KamailioAttachment | null = null;
  // A journal started empty knows nothing of the cluster until it has caught up with a peer or
  // hub once. A node with neither configured is the cluster (or its first node): seeded as it is.
  if (!store.seeded() && config.mesh.peers.length === 0 && config.hub.urls.length === 0) store.markSeeded();
  const onCaughtUp = store.seeded() ? undefined : (peer: string) => {
    try {
      store.markSeeded();
    } catch (err) {
      log.warn({ err: (err as Error).message }, "could not note in the journal that it caught up; after a restart it waits for a peer again");
    }
    log.info({ peer }, "the new journal has caught up with the cluster");
    kamailio?.journalSeeded();
  };
  const credentials = createCredentials(config);
  const mesh = createMesh({
    keys: credentials.clusterKeys,
    options: {
      ...config.mesh, nodeId: config.nodeId, peers: config.mesh.peers, hubUrls: config.hub.urls, hubFailbackAfterMs: config.hub.failbackAfterSec * 1000,
      pendingWrites: () => kamailio?.pendingWrites() ?? deps.pendingWrites?.() ?? 0,
    },
    replica,
    log,
    metrics,
    ...(onCaughtUp ? { onCaughtUp } : {}),
    journalBehind,
    checkOwnHistory: true,
    hubAcknowledged: openHubAcknowledged({ notes: store, replicaId: store.replicaId, log }),
  });
  metrics.scrapeFrom({
    peers: () => mesh.gauges(),
    records: () => replica.store.counts(Math.floor(Date.now() / 1000)),
  });
  kamailio = config.kamailio
    ? await createKamailioAttachment({
      config: config.kamailio, nodeId: config.nodeId, dataDir: config.dataDir, replica, hlc, store, log, metrics, seeded: () => store.seeded(),
      bulkTokens: () => bulkTokens(credentials.clusterKeys, config.nodeId), journalBehind, notes: store, unseen: store.kamailioUnseen, apiWaiting: store.kamailioApiWaiting, aliasesWaiting: store.kamailioAliasesWaiting, sipPeers: sipPeersOf(config),
      eventsAfter: () => mesh.firstSession(FIRST_SESSION_WAIT_MS),
    })
    : null;
  const rpc = createLocalApi({
    replica, mesh, log, metrics, startedAtMs, version: packageVersion(), kamailio, journalBehind, credentials: () => credentialsStatus(credentials),
    journalSeeded: () => store.seeded(),
  });
  const http = createHttpApi({
    listen: config.api.listen,
    tokens: credentials.apiTokens,
    maxMessageBytes: config.api.maxMessageBytes,
    trustedProxies: config.api.trustedProxies,
    allowedOrigins: config.api.allowedOrigins,
    rpc,
    metrics,
    log,
    nodeId: config.nodeId,
  });

  const summary = createChangeSummary({
    intervalMs: SUMMARY_INTERVAL_MS,
    wanted: () => http.hasSubscribers("summary"),
    send: (params) => http.broadcast(ApiNotification.ChangesApplied, params, "summary"),
  });
  replica.onApplied((changes) => {
    http.broadcast(ApiNotification.ChangesApplied, { changes });
    summary.add(changes);
  });
  observeReplicationDelay({ replica, metrics });

  const purge = startPurgeTimer({
    store, retentionHours: config.journal.retentionHours, intervalSec: config.journal.purgeIntervalSec, log, metrics,
    held: () => mesh.purgeFloor(),
  });

  try {
    await kamailio?.start();
    await mesh.start();
    await http.start();
  } catch (err) {
    purge.close();
    summary.close();
    await kamailio?.close();
    await mesh.close();
    await http.close();
    await replica.close();
    throw err;
  }

  /**
   * In hub mode, this node's changes that no hub has acknowledged are in its journal alone while it
   * is stopped: said at warn, so that nobody deletes its dataDir (removing the node) before they go.
   */
  async function warnUnacknowledged(): Promise<void> {
    const known = await mesh.hubUnacknowledged().catch(() => undefined);
    if (known === undefined) return; // not in hub mode
    // Null: no hub has answered this journal yet, so none of its own changes is acknowledged.
    const unacknowledged = known ?? ((await replica.versionVector())[replica.replicaId] ?? 0);
    if (unacknowledged === 0) return;
    log.warn(
      { changes: unacknowledged },
      `stopping with ${unacknowledged} change(s) of this node that no hub has acknowledged${known === null ? " (no hub has answered this journal yet)" : ""}: ` +
        "they are only in this node's journal, and go to a hub when the agent runs again. Keep its dataDir; before removing the node for good, " +
        "start it until `locmesh status` shows `unacknowledged by hub` at 0",
    );
  }

  return {
    replica,
    mesh,
    http,
    metrics,
    kamailio,
    credentials,
    setPeers: (peers) => mesh.setPeers(peers),
    setHubUrls: (urls) => mesh.setHubUrls(urls),
    setSipPeers: (peers) => kamailio?.setSipPeers(peers),
    setHubFailback: (afterSec) => mesh.setHubFailback(afterSec * 1000),
    async close() {
      purge.close();
      summary.close();
      await http.close();
      await warnUnacknowledged();
      await mesh.close();
      await kamailio?.close();
      await replica.close();
      log.info("agent stopped");
    },
  };
}
