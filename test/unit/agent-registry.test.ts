/**
 * The hub's cluster view (hub/agent-registry.ts) against a PostgreSQL that is slow to answer:
 * statuses and scrapes share one read of hub_agents instead of piling up reads on the pool.
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
});
