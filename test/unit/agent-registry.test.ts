/**
 * The hub's cluster view (hub/agent-registry.ts) against a PostgreSQL that is slow to answer:
 * statuses and scrapes share one read of hub_agents instead of piling up reads on the pool; and
 * the vectors it writes: whole when new or changed, NULL (kept) when not, and whole again for an
 * agent that came back (the vectors last written are kept for connected agents only).
 */
import type pg from "pg";
import { describe, expect, it } from "vitest";
import type { Mesh } from "../../agent/mesh/mesh.js";
import { startAgentRegistry } from "../../hub/agent-registry.js";
import { silentLogger } from "../../agent/ops/logger.js";

describe("hub agent registry", () => {
  it("shares one read of hub_agents among statuses and scrapes while PostgreSQL is slow", async () => {
    const answers: ((rows: unknown[]) => void)[] = [];
    const pool = { query: () => new Promise((r) => answers.push((rows) => r({ rows }))) } as unknown as pg.Pool;
    const mesh = { status: async () => [], gauges: async () => [] } as unknown as Mesh;
    const registry = startAgentRegistry({
      pool, hubNode: "hub1", mesh, intervalMs: 3_600_000, log: silentLogger(), includeRecorded: true, pgReachable: () => true, readWaitMs: 20,
    });
    try {
      // Each gives up waiting after readWaitMs and answers from the last rows (none yet).
      for (let i = 0; i < 5; i++) await Promise.all([registry.clusterStatus(), registry.gauges()]);
      expect(answers).toHaveLength(1);
      answers[0]!([{ node_id: "a2", replica_id: "a2~1", hub_node: "hub2", behind_changes: 0, behind_seconds: 0, pending_writes: null, fresh: true, seen_at: new Date("2026-11-22T10:00:00Z") }]);
      await new Promise((r) => setTimeout(r, 0));
      // The read answered: the next status reads again, and shows what it read.
      const next = registry.clusterStatus();
      await new Promise((r) => setTimeout(r, 0));
      expect(answers).toHaveLength(2);
      answers[1]!([{ node_id: "a2", replica_id: "a2~1", hub_node: "hub2", behind_changes: 0, behind_seconds: 0, pending_writes: null, fresh: true, seen_at: new Date("2026-11-22T10:00:00Z") }]);
      expect((await next).map((p) => [p.nodeId, p.hub])).toEqual([["a2", "hub2"]]);
    } finally {
      registry.close();
    }
  });

  it("writes an agent's vector whole when new or changed, keeps it when not, and writes it whole again after the agent was away", async () => {
    const vectorsSent: (string | null)[][] = [];
    const pool = {
      query: async (sql: string, params?: unknown[]) => {
        if (sql.startsWith("INSERT INTO hub_agents")) vectorsSent.push(params![6] as (string | null)[]);
        return { rows: [] };
      },
    } as unknown as pg.Pool;
    let connected = true;
    let vv: Record<string, number> = { "a1~1": 5 };
    const mesh = {
      status: async () => (connected ? [{ nodeId: "a1", connected: true, replicaId: "a1~1", behindChanges: 0, behindSeconds: 0, pendingWrites: 0 }] : []),
      peerVectors: () => new Map([["a1", vv]]),
      gauges: async () => [],
    } as unknown as Mesh;
    const registry = startAgentRegistry({ pool, hubNode: "hub1", mesh, intervalMs: 10, log: silentLogger(), includeRecorded: true, pgReachable: () => true });
    const ticks = async (n: number) => {
      for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 15));
    };
    try {
      const whole = JSON.stringify({ "a1~1": 5 });
      await waitForWrites(vectorsSent, 2, ticks);
      expect(vectorsSent.slice(0, 2)).toEqual([[whole], [null]]);
      vv = { "a1~1": 6 };
      const before = vectorsSent.length;
      await waitForWrites(vectorsSent, before + 1, ticks);
      expect(vectorsSent[before]).toEqual([JSON.stringify({ "a1~1": 6 })]);
      // Away (another hub may write its row meanwhile), then back with the same vector: written whole.
      connected = false;
      await ticks(3);
      const away = vectorsSent.length;
      connected = true;
      await waitForWrites(vectorsSent, away + 1, ticks);
      expect(vectorsSent[away]).toEqual([JSON.stringify({ "a1~1": 6 })]);
    } finally {
      registry.close();
    }
  });
});

async function waitForWrites(sent: unknown[], n: number, ticks: (n: number) => Promise<void>) {
  for (let i = 0; sent.length < n; i++) {
    if (i > 200) throw new Error(`only ${sent.length} of ${n} writes`);
    await ticks(1);
  }
}
