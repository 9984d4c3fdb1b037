/**
 * One hub process per hub nodeId on a database (hub/node-claim.ts), against a real PostgreSQL 15:
 * a second process is refused saying what to change, a hub that stopped gives its nodeId up at
 * once, one that died is taken over (at once on its own host, else once its claim is stale), and
 * a hub whose claim was taken over learns it at its next refresh.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../agent/ops/logger.js";
import { migrateHubDatabase } from "../../hub/hub.js";
import { DuplicateHubNodeError, claimHubNode, type NodeClaim } from "../../hub/node-claim.js";
import { waitFor } from "../support/agent-process.js";
import { startPostgres, type PostgresProcess } from "../support/postgres-process.js";

let server: PostgresProcess;
let pool: pg.Pool;
const claims: NodeClaim[] = [];

beforeAll(async () => {
  server = await startPostgres();
  const url = await server.createDatabase("claims");
  await migrateHubDatabase({ url, connectTimeoutMs: 10_000, queryTimeoutMs: 30_000, keepAliveIdleMs: 10_000 });
  pool = new pg.Pool({ connectionString: url, max: 4 });
  // pool.end() resolves before its clients' sockets have closed; the server's shutdown in afterAll
  // can reach one still closing, and a pool without a listener rethrows that FATAL 57P01 as an
  // uncaught error (CI failed on it on 2026-11-23, as hub-store.test.ts once did).
  pool.on("error", () => undefined);
});
afterAll(async () => {
  for (const c of claims.splice(0)) await c.close();
  await pool?.end();
  await server?.close();
});

const lostClaims: Error[] = [];
/** The pids "running" on host-a, the host every claim below is made from. */
const running = new Set<number>();
async function claim(nodeId: string, pid: number): Promise<NodeClaim> {
  running.add(pid);
  const c = await claimHubNode({
    pool, nodeId, holder: `host-a pid ${pid}`, host: "host-a", pid, isRunning: (p) => running.has(p),
    intervalMs: 50, log: silentLogger(), onLost: (err) => void lostClaims.push(err),
  });
  claims.push(c);
  return c;
}

describe("hub nodeId claims", () => {
  it("refuses a second process with the same nodeId while the first runs, naming it and what to change", async () => {
    await claim("hub1", 1);
    const second = claim("hub1", 2);
    await expect(second).rejects.toThrow(DuplicateHubNodeError);
    await expect(second).rejects.toThrow(/another hub process uses nodeId "hub1" on this PostgreSQL database \(host-a pid 1; it is running.*Give every hub its own nodeId/);
    // Another nodeId is no conflict.
    await claim("hub2", 2);
  });

  it("lets a restart take the nodeId at once after a graceful stop", async () => {
    const first = await claim("hub3", 3);
    await first.close();
    await claim("hub3", 4);
  });

  it("gives the nodeId up on a stop that meets a refresh under way, rather than the refresh claiming it again", async () => {
    // The refresh's UPDATE held until the test lets it go, as over a slow link to PostgreSQL.
    let held: (() => void) | null = null;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slowPool = {
      query: (async (sql: string, params: unknown[]) => {
        if (sql.startsWith("UPDATE hub_nodes SET seen_at")) {
          held?.();
          await gate;
        }
        return pool.query(sql, params);
      }) as unknown as pg.Pool["query"],
    };
    const refreshing = new Promise<void>((r) => (held = r));
    const c = await claimHubNode({ pool: slowPool, nodeId: "hub7", holder: "host-a pid 11", host: "host-a", pid: 11, intervalMs: 20, log: silentLogger(), onLost: (err) => void lostClaims.push(err) });
    await refreshing;
    const closing = c.close();
    await new Promise((r) => setTimeout(r, 100));
    release();
    await closing;
    await new Promise((r) => setTimeout(r, 100));
    expect((await pool.query("SELECT holder FROM hub_nodes WHERE node_id = 'hub7'")).rows).toEqual([]);
    expect(lostClaims).toEqual([]);
  });

  it("takes over the claim of a hub on another host that died without giving it up, once the claim is stale", async () => {
    // A claim last refreshed an hour ago: its process is gone (kill -9, a lost host).
    await pool.query("INSERT INTO hub_nodes (node_id, instance, holder, host, pid, seen_at) VALUES ('hub4', 'dead', 'host-c pid 5', 'host-c', 5, now() - interval '1 hour')");
    await claim("hub4", 6);
    const rows = await pool.query<{ holder: string }>("SELECT holder FROM hub_nodes WHERE node_id = 'hub4'");
    expect(rows.rows).toEqual([{ holder: "host-a pid 6" }]);
  });

  it("takes over at once the fresh claim of a process on this host that no longer runs (a crash, then a restart)", async () => {
    // Killed with -9 a moment ago: its claim is fresh, but pid 9 no longer runs on host-a.
    await pool.query("INSERT INTO hub_nodes (node_id, instance, holder, host, pid) VALUES ('hub6', 'crashed', 'host-a pid 9', 'host-a', 9)");
    await claim("hub6", 10);
    const rows = await pool.query<{ holder: string }>("SELECT holder FROM hub_nodes WHERE node_id = 'hub6'");
    expect(rows.rows).toEqual([{ holder: "host-a pid 10" }]);
  });

  it("tells a running hub that another process took its nodeId over", async () => {
    await claim("hub5", 7);
    expect(lostClaims).toEqual([]);
    // What a second process does when this one's claim went stale (it was cut off from PostgreSQL).
    await pool.query("UPDATE hub_nodes SET instance = 'other', holder = 'host-e pid 8', seen_at = now() WHERE node_id = 'hub5'");
    const lost = await waitFor("the hub hears its nodeId was taken over", async () => lostClaims[0]);
    expect(lost).toBeInstanceOf(DuplicateHubNodeError);
    expect(lost.message).toMatch(/another hub process uses nodeId "hub5" on this PostgreSQL database \(host-e pid 8; it took this nodeId over/);
  });
});
