/**
 * Wires one hub together from its config: PostgreSQL pool → migrations → PgStore → the agent's
 * replication core (replica, mesh in relay mode) → change feed (LISTEN) → cluster registry →
 * local API, /metrics and /healthz. No argv, env or signals here (that is hub/main.ts).
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
import { createMetrics, type Metrics } from "../agent/ops/metrics.js";
import { packageVersion } from "../agent/ops/paths.js";
import { observeReplicationDelay } from "../agent/ops/replication-delay.js";
import { startAgentRegistry } from "./agent-registry.js";
import { startChangeFeed } from "./change-feed.js";
import type { HubConfig } from "./hub-config.js";
import { migratePostgres } from "./migrate-postgres.js";
import { claimHubNode } from "./node-claim.js";
import { withPgClient } from "./pg-client.js";
import { openPgStore, PG_TYPES } from "./pg-store.js";

export interface Hub {
  readonly replica: Replica;
  readonly mesh: Mesh;
  readonly http: HttpApi;
  readonly metrics: Metrics;
  close(): Promise<void>;
}

/** Applies pending migrations (also the `locmesh hub migrate` command); returns the versions applied. */
export async function migrateHubDatabase(url: string): Promise<number[]> {
  return withPgClient(url, migratePostgres);
}

export async function startHub(
  config: HubConfig,
  deps: { log: Logger; metrics?: Metrics; /** The hub must stop: another process took its nodeId over (node-claim.ts). */ onFatal?: (err: Error) => void },
): Promise<Hub> {
  const { log } = deps;
  const metrics = deps.metrics ?? createMetrics();
  const startedAtMs = Date.now();
  const applied = await migrateHubDatabase(config.postgres.url);
  if (applied.length > 0) log.info({ applied }, "migrated the hub database");

  const pool = new pg.Pool({ connectionString: config.postgres.url, max: config.postgres.poolSize, types: PG_TYPES });
  // Writes are applied one at a time (core/replica.ts); two connections cover one in flight and a local commit.
  const writePool = new pg.Pool({ connectionString: config.postgres.url, max: 2, types: PG_TYPES });
  // An idle pooled connection dies when PostgreSQL restarts; the pool replaces it on next use.
  for (const p of [pool, writePool]) p.on("error", (err) => log.warn({ err: err.message }, "idle PostgreSQL connection lost"));
  const store = await openPgStore({ pool, writePool, nodeId: config.nodeId, channel: config.postgres.channel });
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
    await Promise.all([pool.end(), writePool.end()]);
    throw err;
  });

  const mesh = createMesh({
    options: { ...config.mesh, nodeId: config.nodeId, peers: [], allow: config.mesh.agents, relay: true },
    replica,
    log,
    metrics,
    // The hub's sessions run the same check; its API is read-only anyway, so only the mesh reads it.
    journalBehind: createJournalBehind(),
  });
  metrics.scrapeFrom({
    // Read at each scrape, once the registry below exists: this hub's links, without the agents
    // on another hub (those are that hub's links; hub/agent-placement.ts).
    peers: () => registry.gauges(),
    records: () => replica.store.counts(Math.floor(Date.now() / 1000)),
  });
  const feed = startChangeFeed({ url: config.postgres.url, store, log, onChange: () => mesh.wakePumps() });
  const registry = startAgentRegistry({
    pool, hubNode: config.nodeId, mesh, intervalMs: config.mesh.statusIntervalMs, log, includeRecorded: config.mesh.acceptUnlisted,
  });
  const rpc = createLocalApi({
    replica, log, metrics, startedAtMs, version: packageVersion(),
    mesh: { ...mesh, status: () => registry.clusterStatus() },
    readOnly: "this is a hub: it relays the agents' changes and makes none; publish on an agent",
  });
  const http = createHttpApi({
    listen: config.api.listen, token: config.api.token, maxMessageBytes: config.api.maxMessageBytes,
    rpc, metrics, log, nodeId: config.nodeId,
  });
  const purge = startPurgeTimer({ store, retentionHours: config.journal.retentionHours, intervalSec: config.journal.purgeIntervalSec, log, metrics });

  const close = async () => {
    purge.close();
    registry.close();
    await http.close();
    await mesh.close();
    await feed.close();
    await claim.close();
    await replica.close();
    await pool.end();
    await writePool.end();
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
    replica, mesh, http, metrics,
    async close() {
      await close();
      log.info("hub stopped");
    },
  };
}
