import { afterEach, describe, expect, it, vi } from "vitest";
import { HLC_UNITS_PER_MS } from "../../agent/contract/records.js";
import { startPurgeTimer } from "../../agent/core/purge-timer.js";
import type { PurgeFloor, ReplicaStore } from "../../agent/core/store.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";

afterEach(() => vi.useRealTimers());

async function run(held?: () => Promise<PurgeFloor | null>) {
  vi.useFakeTimers({ now: 1_800_000_000_000 });
  const calls: unknown[][] = [];
  const store = { purge: (...args: unknown[]) => (calls.push(args), Promise.resolve(0)) } as unknown as ReplicaStore;
  const timer = startPurgeTimer({ store, retentionHours: 24, intervalSec: 60, log: silentLogger(), metrics: createMetrics(), ...(held ? { held } : {}) });
  await vi.advanceTimersByTimeAsync(60_000);
  timer.close();
  return calls;
}

describe("purge timer", () => {
  it("asks, at each run, what every peer holds of each origin, and keeps the later rows", async () => {
    let held: PurgeFloor | null = null;
    const calls = await run(async () => held);
    expect(calls).toHaveLength(1);
    const cutoffMs = 1_800_000_000_000 + 60_000 - 24 * 3600_000; // the first run is one interval in
    expect(calls[0]).toEqual([cutoffMs * HLC_UNITS_PER_MS, cutoffMs / 1000, null]);
    held = { "n1~a": 7, "n2~b": 3 };
    expect((await run(async () => held))[0]?.[2]).toEqual({ "n1~a": 7, "n2~b": 3 });
  });

  it("purges by age alone on a hub (its own rule is in its SQL)", async () => {
    expect((await run())[0]?.[2]).toBeUndefined();
  });
});
