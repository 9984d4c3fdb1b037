import { afterEach, describe, expect, it, vi } from "vitest";
import { HLC_UNITS_PER_MS } from "../../agent/contract/records.js";
import { startPurgeTimer } from "../../agent/core/purge-timer.js";
import type { ReplicaStore } from "../../agent/core/store.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";

afterEach(() => vi.useRealTimers());

function run(ownAcknowledged?: () => number | null) {
  vi.useFakeTimers({ now: 1_800_000_000_000 });
  const calls: unknown[][] = [];
  const store = { purge: (...args: unknown[]) => (calls.push(args), Promise.resolve(0)) } as unknown as ReplicaStore;
  const timer = startPurgeTimer({ store, retentionHours: 24, intervalSec: 60, log: silentLogger(), metrics: createMetrics(), ...(ownAcknowledged ? { ownAcknowledged } : {}) });
  vi.advanceTimersByTime(60_000);
  timer.close();
  return calls;
}

describe("purge timer", () => {
  it("asks, at each run, what the peers hold of this node's changes, and keeps its later removals", () => {
    let held: number | null = null;
    const calls = run(() => held);
    expect(calls).toHaveLength(1);
    const cutoffMs = 1_800_000_000_000 + 60_000 - 24 * 3600_000; // the first run is one interval in
    expect(calls[0]).toEqual([cutoffMs * HLC_UNITS_PER_MS, cutoffMs / 1000, null]);
    held = 7;
    expect(run(() => held)[0]?.[2]).toBe(7);
  });

  it("purges by age alone on a hub (no changes of its own)", () => {
    expect(run()[0]?.[2]).toBeUndefined();
  });
});
