/**
 * Wires one hub together from its config: PostgreSQL pool → migrations → PgStore → the agent's
 * replication core (replica, mesh in relay mode) → PostgreSQL watch (agents are sent elsewhere
 * while it does not answer) → change feed (LISTEN) → cluster registry → local API, /metrics and
 * /healthz. No argv, env or signals here (that is hub/main.ts).
 */
import { hostname } from "node:os";
import pg from "pg";
import { createHttpApi, type HttpApi } from "../agent/api/http-server.js";
import { createLocalApi } from "../agent/api/local-api.js";
import { createHlc } from "../agent/core/hlc.js";
import { createJournalBehind } from "../agent/core/journal-behind.js";
import { startPurgeTimer } from "../agent/core/purge-timer.js";
import { createReplica, type Replica } from "../agent/core/replica.js";
import { createMesh, type Mesh } from "../agent/mesh/mesh.js";
import type { Logger } from "../agent/ops/logger.js";
import { createCredentials, credentialsStatus, type Credentials } from "../agent/ops/key-ring.js";
import { createMetrics, type Metrics } from "../agent/ops/metrics.js";
import { packageVersion } from "../agent/ops/paths.js";
import { observeReplicationDelay } from "../agent/ops/replication-delay.js";
import { startAgentRegistry } from "./agent-registry.js";
import { startChangeFeed } from "./change-feed.js";
import type { HubConfig } from "./hub-config.js";
import { migratePostgres } from "./migrate-postgres.js";
import { claimHubNode } from "./node-claim.js";
import { pgAddress, pgClientConfig, pgStartError, type PgConnectionSettings } from "./pg-connection.js";
import { withPgClient } from "./pg-client.js";
import { describeLoss, openPgStore, PG_TYPES } from "./pg-store.js";
import { startPgWatch } from "./pg-watch.js";
import { createPostgresStatus } from "./postgres-status.js";
import { valueWithin } from "./value-within.js";

export interface Hub {
  readonly replica: Replica;
  readonly mesh: Mesh;
  readonly http: HttpApi;
  readonly metrics: Metrics;
  /** The cluster keys and API tokens in use, which SIGHUP replaces (applyCredentials). */
  readonly credentials: Credentials;
  close(): Promise<void>;
}

/** Applies pending migrations (also the `locmesh hub migrate` command); returns the versions applied. */
export async function migrateHubDatabase(settings: PgConnectionSettings): Promise<number[]> {
  // The query timeout holds here too: it bounds each migration and the wait for another hub's.
  return withPgClient(settings, migratePostgres);
}

export async function startHub(
  config: HubConfig,
  deps: { log: Logger; metrics?: Metrics; /** The hub must stop: another process took its nodeId over (node-claim.ts). */ onFatal?: (err: Error) => void },
): Promise<Hub> {
  const { log } = deps;
  const metrics = deps.metrics ?? createMetrics();
  const startedAtMs = Date.now();
  const applied = await migrateHubDatabase(config.postgres);
  if (applied.length > 0) log.info({ applied }, "migrated the hub database");

  const connection = pgClientConfig(config.postgres);
  const pool = new pg.Pool({ ...connection, max: config.postgres.poolSize, types: PG_TYPES });
  // Writes are applied one at a time (core/replica.ts); two connections cover one in flight and a local commit.
  const writePool = new pg.Pool({ ...connection, max: 2, types: PG_TYPES });
  // An idle pooled connection dies when PostgreSQL restarts; the pool replaces it on next use.
  for (const p of [pool, writePool]) p.on("error", (err) => log.warn({ err: err.message }, "idle PostgreSQL connection lost"));
  // On a failed start. Not awaited: ending a pool waits for its sockets to close, which a silent network never does.
  const dropPools = () => {
    for (const p of [pool, writePool]) p.end().catch(() => undefined);
  };
  const store = await openPgStore({ pool, writePool, nodeId: config.nodeId, channel: config.postgres.channel, holdForAgentsSec: config.journal.holdForAgentsDays * 86_400 }).catch((err: unknown) => {
    dropPools();
    throw pgStartError(err, config.postgres);
  });
  const hlc = createHlc({
    wallMillis: Date.now,
    initial: await store.maxHlc(),
    onDrift: (aheadMs) => log.warn({ aheadMs }, "an agent's clock is far ahead of ours; check NTP on every node"),
  });
  const replica = createReplica({ store, hlc, log });
  // On a hub, "stored here" is the agent's batch committed in PostgreSQL.
  observeReplicationDelay({ replica, metrics });
  log.info({ replica: replica.replicaId, origins: Object.keys(await replica.versionVector()).length }, "hub store open");

  // Before any agent is taken or recorded: one process per hub nodeId on this database.
  const claim = await claimHubNode({
    pool, nodeId: config.nodeId, intervalMs: config.mesh.statusIntervalMs, log,
    holder: `${hostname()} pid ${process.pid}, peer port ${config.mesh.listen.host}:${config.mesh.listen.port}, API ${config.api.listen.host}:${config.api.listen.port}`,
    onLost: (err) => deps.onFatal?.(err),
  }).catch(async (err: unknown) => {
    await replica.close();
    dropPools();
    throw err;
  });

  // The agents prove themselves with the same keys as to each other; SIGHUP replaces them (hub/main.ts).
  const credentials = createCredentials(config);
  const mesh = createMesh({
    keys: credentials.clusterKeys,
    options: { ...config.mesh, nodeId: config.nodeId, peers: [], allow: config.mesh.agents, relay: true },
    replica,
    log,
    metrics,
    // The hub's sessions run the same check; its API is read-only anyway, so only the mesh reads it.
    journalBehind: createJournalBehind(),
  });
  // A pool of one of its own: the check measures PostgreSQL, not how busy the hub's pools are.
  const watchPool = new pg.Pool({ ...connection, query_timeout: config.postgres.unreachableAfterMs, max: 1 });
  watchPool.on("error", () => undefined); // a lost idle connection fails the next check, which says why
  const watch = startPgWatch({
    check: async () => void (await watchPool.query("SELECT 1")),
    address: pgAddress(config.postgres.url),
    unreachableAfterMs: config.postgres.unreachableAfterMs,
    log,
    onChange: (s) => mesh.refuseSessions(s.reachable ? null : "this hub's PostgreSQL does not answer; try another hub, else journal locally until one answers"),
  });
  // Counts for status and /metrics, which answer while PostgreSQL does not (the last counts then).
  const pgStatus = createPostgresStatus({ store, watch, address: pgAddress(config.postgres.url), unreachableAfterMs: config.postgres.unreachableAfterMs });
  metrics.scrapeFrom({
    // Read at each scrape, once the registry below exists: this hub's links, without the agents
    // on another hub (those are that hub's links; hub/agent-placement.ts).
    peers: () => registry.gauges(),
    records: async () => {
      const { counts, postgres } = await pgStatus(Math.floor(Date.now() / 1000));
      if (postgres.countsAgeSeconds === null) throw new Error("not counted yet"); // the gauges stay as they were
      return counts;
    },
    postgresUp: () => watch.state().reachable,
  });
  const feed = startChangeFeed({
    connection, store, log, onChange: () => mesh.wakePumps(),
    onLoss: (lost) => {
      log.error({ lost }, `the hubs' PostgreSQL holds fewer changes than this hub had seen committed (${describeLoss(lost)}): ` +
        "it lost commits, most likely a failover to a replica that was behind or a restore from a backup. Every agent's session is " +
        "closed so that each handshakes again and sends what the database lost; nothing is needed from you if the agents come back");
      mesh.restartSessions("the hubs' database lost commits; handshake again");
    },
  });
  const registry = startAgentRegistry({
    pool, hubNode: config.nodeId, mesh, intervalMs: config.mesh.statusIntervalMs, log, includeRecorded: config.mesh.acceptUnlisted,
    pgReachable: () => watch.state().reachable,
  });
  const rpc = createLocalApi({
    replica, log, metrics, startedAtMs, version: packageVersion(),
    mesh: { ...mesh, status: () => registry.clusterStatus() },
    postgresStatus: pgStatus,
    readOnly: "this is a hub: it relays the agents' changes and makes none; publish on an agent",
    credentials: () => credentialsStatus(credentials),
  });
  const http = createHttpApi({
    listen: config.api.listen, tokens: credentials.apiTokens, maxMessageBytes: config.api.maxMessageBytes, trustedProxies: config.api.trustedProxies, allowedOrigins: config.api.allowedOrigins,
    rpc, metrics, log, nodeId: config.nodeId,
  });
  const purge = startPurgeTimer({ store, retentionHours: config.journal.retentionHours, intervalSec: config.journal.purgeIntervalSec, log, metrics });

  // Once: a fatal stop (a nodeId taken over) and a signal may both ask.
  let closing: Promise<void> | null = null;
  const close = () => (closing ??= closeOnce());
  const closeOnce = async () => {
    watch.close();
    purge.close();
    registry.close();
    await http.close();
    await mesh.close();
    await feed.close();
    // Giving the claim up only spares a restart the wait; behind a partition it would take queryTimeoutMs.
    await valueWithin(claim.close(), 2000);
    await replica.close();
    // Bounded: a pool ends once its sockets closed, and behind a partition they never do.
    await valueWithin(Promise.all([pool, writePool, watchPool].map((p) => p.end())), config.postgres.connectTimeoutMs);
  };
  try {
    await feed.ready;
    await mesh.start();
    await http.start();
  } catch (err) {
    await close();
    throw err;
  }
  return {
    replica, mesh, http, metrics, credentials,
    async close() {
      await close();
      log.info("hub stopped");
    },
  };
}
