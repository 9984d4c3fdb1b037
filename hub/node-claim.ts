/**
 * One hub process per hub nodeId on a database. Each hub claims its nodeId in `hub_nodes` at start
 * and refreshes the claim every `intervalMs`; a second process with the same nodeId is refused with
 * an error that says what to change. A claim whose process is gone (kill -9, a lost host) is taken
 * over: at once when that process ran on this host and its pid no longer runs (a crashed hub
 * restarted by its init system), else once the claim has not been refreshed for `claimStaleSeconds`
 * (a new process waits that long, watching), so a crashed hub's restart is delayed, never refused.
 *
 * At runtime a hub whose claim was taken over (it was cut off from PostgreSQL for longer than that,
 * and another process with its nodeId started meanwhile) reports it through `onLost` and must stop.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type pg from "pg";
import type { Logger } from "../agent/ops/logger.js";

export class DuplicateHubNodeError extends Error {
  override readonly name = "DuplicateHubNodeError";
}

export interface NodeClaim {
  /** Gives the nodeId up, so that a restart need not wait. */
  close(): Promise<void>;
}

export interface NodeClaimDeps {
  pool: Pick<pg.Pool, "query">;
  nodeId: string;
  /** Who we are, for the other process's error: host, pid, addresses. */
  holder: string;
  /** Defaults: this host's name and this process's pid. */
  host?: string;
  pid?: number;
  /** Whether a process of this host still runs; defaults to signal 0. */
  isRunning?: (pid: number) => boolean;
  intervalMs: number;
  log: Logger;
  /** Another process took our nodeId over while we were cut off: stop this hub. */
  onLost(err: DuplicateHubNodeError): void;
  sleep?: (ms: number) => Promise<void>;
}

/** A claim not refreshed for this long is a dead hub's. Generous: a busy hub must not look dead. */
export const claimStaleSeconds = (intervalMs: number) => Math.max(10, (intervalMs * 5) / 1000);

/** Takes the claim when nobody holds it, its holder is stale, or its holder is `$7` (known gone). */
const TAKE = `INSERT INTO hub_nodes (node_id, instance, holder, host, pid) VALUES ($1, $2, $3, $4, $5)
  ON CONFLICT (node_id) DO UPDATE SET instance = excluded.instance, holder = excluded.holder, host = excluded.host,
    pid = excluded.pid, started_at = now(), seen_at = now()
    WHERE hub_nodes.seen_at < now() - make_interval(secs => $6) OR hub_nodes.instance = $7
  RETURNING instance`;
const HOLDER = `SELECT instance, holder, host, pid, seen_at, extract(epoch FROM now() - seen_at)::float8 AS age FROM hub_nodes WHERE node_id = $1`;
const REFRESH = `UPDATE hub_nodes SET seen_at = now() WHERE node_id = $1 AND instance = $2`;
const GIVE_UP = `DELETE FROM hub_nodes WHERE node_id = $1 AND instance = $2`;

interface HolderRow {
  instance: string;
  holder: string;
  host: string;
  pid: number;
  seen_at: Date;
  age: number;
}

/** Another process (`other`: its holder text) uses `nodeId`; `what` says how we know. */
export function duplicateHubNode(nodeId: string, other: string, what: string): DuplicateHubNodeError {
  return new DuplicateHubNodeError(
    `another hub process uses nodeId "${nodeId}" on this PostgreSQL database (${other}; ${what}). ` +
      "Give every hub its own nodeId (agents list all hubs' URLs in hub.urls; mesh and postgres settings stay shared), or stop the other process.",
  );
}

/** One process's view of its claim: what it takes, reads and refreshes. */
interface Claimant {
  pool: NodeClaimDeps["pool"];
  nodeId: string;
  instance: string;
  stale: number;
  log: Logger;
  /** Takes the claim if free or stale, or held by `gone` (an instance known to be dead). */
  take(gone?: string): Promise<boolean>;
  holder(): Promise<HolderRow | undefined>;
}

export async function claimHubNode(deps: NodeClaimDeps): Promise<NodeClaim> {
  const { pool, nodeId } = deps;
  const instance = randomUUID();
  const host = deps.host ?? hostname();
  const pid = deps.pid ?? process.pid;
  const isRunning = deps.isRunning ?? processRuns;
  const stale = claimStaleSeconds(deps.intervalMs);
  const c: Claimant = {
    pool, nodeId, instance, stale, log: deps.log.child({ component: "node-claim" }),
    take: async (gone = "") => (await pool.query(TAKE, [nodeId, instance, deps.holder, host, pid, stale, gone])).rowCount === 1,
    holder: async () => (await pool.query<HolderRow>(HOLDER, [nodeId])).rows[0],
  };
  /**
   * The holder ran on this host and is gone (our own pid: a previous life of this container). Two
   * duplicates that look alike here (host-network containers, both pid 1) are still caught: the
   * one displaced hears it at its next refresh and stops.
   */
  const goneHere = (h: HolderRow) => h.host === host && (h.pid === pid || !isRunning(h.pid));
  await waitForClaim(c, goneHere, deps.intervalMs, deps.sleep ?? ((ms) => new Promise<void>((r) => setTimeout(r, ms))));
  return keepClaim(c, deps.intervalMs, deps.onLost);
}

/** Returns once the claim is ours; throws DuplicateHubNodeError when its holder is alive. */
async function waitForClaim(c: Claimant, goneHere: (h: HolderRow) => boolean, intervalMs: number, sleep: (ms: number) => Promise<void>): Promise<void> {
  /** The claim we found, while we wait to see whether its process still refreshes it. */
  let watched: HolderRow | undefined;
  while (!(await c.take())) {
    const now = await c.holder();
    if (now === undefined) continue; // given up meanwhile: take it
    if (goneHere(now)) {
      if (await c.take(now.instance)) {
        c.log.warn({ previous: now.holder }, "took over the nodeId of a hub process on this host that no longer runs");
        return;
      }
      continue;
    }
    if (watched && (now.instance !== watched.instance || now.seen_at.getTime() !== watched.seen_at.getTime())) {
      throw duplicateHubNode(c.nodeId, now.holder, "it is running: it refreshed its claim while this one waited");
    }
    if (!watched) {
      c.log.warn({ holder: now.holder, seenSecondsAgo: Math.round(now.age) },
        `another hub process claimed this nodeId; waiting up to ${c.stale} s to see whether it still runs (a hub that died holds its claim that long)`);
    }
    watched ??= now;
    await sleep(intervalMs);
  }
  if (watched) c.log.warn({ previous: watched.holder }, "took over the nodeId of a hub that stopped refreshing its claim");
}

/** Refreshes the claim until close(), and tells onLost if another process took it over. */
function keepClaim(c: Claimant, intervalMs: number, onLost: (err: DuplicateHubNodeError) => void): NodeClaim {
  /** The refresh under way: close() waits for it, or its take() could claim the nodeId again after the give-up. */
  let refreshing: Promise<void> | null = null;
  let lost = false;
  let closed = false;
  async function refresh(): Promise<void> {
    try {
      if ((await c.pool.query(REFRESH, [c.nodeId, c.instance])).rowCount === 1 || closed || (await c.take())) return;
      const now = await c.holder();
      if (closed) return;
      lost = true;
      onLost(duplicateHubNode(c.nodeId, now?.holder ?? "holder unknown", "it took this nodeId over while this hub could not refresh its claim"));
    } catch (err) {
      c.log.debug({ err: (err as Error).message }, "cannot refresh the nodeId claim (PostgreSQL away?); trying again");
    }
  }
  const timer = setInterval(() => {
    if (refreshing || lost || closed) return;
    refreshing = refresh().finally(() => (refreshing = null));
  }, intervalMs);
  timer.unref();
  return {
    async close() {
      closed = true;
      clearInterval(timer);
      await refreshing;
      if (lost) return;
      try {
        await c.pool.query(GIVE_UP, [c.nodeId, c.instance]);
      } catch (err) {
        c.log.warn({ err: (err as Error).message }, `could not give up the nodeId claim; a hub restarted with this nodeId waits up to ${c.stale} s`);
      }
    },
  };
}

/** A hub's claim as `locmesh hub check` reads it: who holds which nodeId, and how long ago it was refreshed. */
export interface HubNodeClaimRow {
  nodeId: string;
  holder: string;
  host: string;
  pid: number;
  ageSec: number;
}

/** Every claim on the database (none before the hub's first start made the table). Reads only. */
export async function listHubNodeClaims(client: Pick<pg.ClientBase, "query">): Promise<HubNodeClaimRow[]> {
  const { rows } = await client.query<{ exists: boolean }>("SELECT to_regclass('hub_nodes') IS NOT NULL AS exists");
  if (!rows[0]?.exists) return [];
  const claims = await client.query<{ node_id: string; holder: string; host: string; pid: number; age: number }>(
    "SELECT node_id, holder, host, pid, extract(epoch FROM now() - seen_at)::float8 AS age FROM hub_nodes ORDER BY node_id",
  );
  return claims.rows.map((r) => ({ nodeId: r.node_id, holder: r.holder, host: r.host, pid: r.pid, ageSec: r.age }));
}

/** Signal 0 checks that a process exists; EPERM means it does, as another user's. */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
