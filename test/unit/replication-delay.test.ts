import { silentLogger } from "../../agent/ops/logger.js";
import { afterEach, describe, expect, it } from "vitest";
import { HLC_UNITS_PER_MS } from "../../agent/contract/records.js";
import { createHlc } from "../../agent/core/hlc.js";
import { createReplica, type Replica } from "../../agent/core/replica.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { createMetrics } from "../../agent/ops/metrics.js";
import { observeReplicationDelay } from "../../agent/ops/replication-delay.js";
import { REPLICA_A, aliasDraft, batchOf, remoteChange } from "../support/fixtures.js";

const WALL_MS = 1_700_000_000_000;
const replicas: Replica[] = [];
afterEach(async () => {
  for (const r of replicas.splice(0)) await r.close();
});

function setup(nowMs: () => number) {
  const replica = createReplica({ store: openSqliteStore({ path: ":memory:", nodeId: "n1" }), hlc: createHlc({ wallMillis: nowMs }), log: silentLogger() });
  replicas.push(replica);
  const metrics = createMetrics({ defaults: false });
  const stop = observeReplicationDelay({ replica, metrics, nowMs });
  const histogram = async () => {
    const { values } = await metrics.replicationDelay.get();
    const of = (name: string, le?: number) => values.find((v) => v.metricName === name && (le === undefined || v.labels["le"] === le))?.value;
    return { count: of("locmesh_replication_delay_seconds_count"), sum: of("locmesh_replication_delay_seconds_sum"), le: (s: number) => of("locmesh_replication_delay_seconds_bucket", s) };
  };
  return { replica, histogram, stop };
}

const stamp = (ms: number) => ms * HLC_UNITS_PER_MS + 3;

describe("observeReplicationDelay", () => {
  it("observes each change a peer brought that won, as this clock minus its stamp's wall time", async () => {
    let now = WALL_MS;
    const { replica, histogram } = setup(() => now);
    now = WALL_MS + 30;
    await replica.apply(batchOf(REPLICA_A, 0, 2, [
      remoteChange(REPLICA_A, 1, stamp(WALL_MS), aliasDraft("a@x", "sip:t@x")),
      remoteChange(REPLICA_A, 2, stamp(WALL_MS + 25), aliasDraft("b@x", "sip:t@x")),
    ]), "hub1");
    const h = await histogram();
    expect(h.count).toBe(2);
    expect(h.sum).toBeCloseTo(0.035, 6);
    expect(h.le(0.005)).toBe(1);
    expect(h.le(0.02)).toBe(1);
    expect(h.le(0.05)).toBe(2);
  });

  it("leaves out local commits and changes that lost, and counts a stamp ahead of this clock as 0", async () => {
    let now = WALL_MS;
    const { replica, histogram, stop } = setup(() => now);
    await replica.commit([aliasDraft("mine@x", "sip:t@x")]);
    expect((await histogram()).count).toBe(0);

    // Ahead of our clock by 40 ms (a peer with a fast clock): 0, not negative.
    await replica.apply(batchOf(REPLICA_A, 0, 1, [remoteChange(REPLICA_A, 1, stamp(WALL_MS + 40), aliasDraft("c@x", "sip:t@x"))]), "hub1");
    // An older version of the same record loses and is not stored: not observed.
    now = WALL_MS + 1000;
    await replica.apply(batchOf(REPLICA_A, 1, 2, [remoteChange(REPLICA_A, 2, stamp(WALL_MS - 5), aliasDraft("c@x", "sip:old@x"))]), "hub1");
    let h = await histogram();
    expect(h.count).toBe(1);
    expect(h.sum).toBe(0);

    stop();
    await replica.apply(batchOf(REPLICA_A, 2, 3, [remoteChange(REPLICA_A, 3, stamp(WALL_MS), aliasDraft("d@x", "sip:t@x"))]), "hub1");
    h = await histogram();
    expect(h.count).toBe(1);
  });
});
