/**
 * The hub's record counts, reused for a while. `cluster.status` asks for them on every poll (the
 * web UI every 2 s, each `locmesh status`), and on PostgreSQL they take a scan of the records
 * table: ~115 ms at 1,000,000 records, and ten times that at 10,000,000. An answer is reused for
 * `costFactor` times as long as it took to get, and at least `minTtlMs`, so counting takes at most
 * about 1/costFactor of a PostgreSQL core however many poll; callers that ask while a count runs
 * share it. Counts are therefore up to that old (5 s on a small table), writes of every hub
 * included. An answer is not reused for a clock reading further from its own than that either,
 * since bindings stop counting as they expire.
 */
import type { StoreCounts } from "../agent/core/store.js";

export interface CountsCacheOptions {
  /** Shortest time an answer is reused (ms). */
  minTtlMs?: number;
  /** An answer is reused this many times as long as it took. */
  costFactor?: number;
  nowMs?: () => number;
}

export type CachedCounts = (nowSec: number) => Promise<StoreCounts>;

export function cachedCounts(count: (nowSec: number) => Promise<StoreCounts>, opts: CountsCacheOptions = {}): CachedCounts {
  const minTtlMs = opts.minTtlMs ?? 5000;
  const costFactor = opts.costFactor ?? 20;
  const nowMs = opts.nowMs ?? Date.now;
  let last: { nowSec: number; at: number; ttlMs: number; counts: StoreCounts } | null = null;
  let running: { nowSec: number; promise: Promise<StoreCounts> } | null = null;

  return (nowSec) => {
    if (last !== null && nowMs() - last.at < last.ttlMs && Math.abs(nowSec - last.nowSec) * 1000 < last.ttlMs) return Promise.resolve({ ...last.counts });
    if (running === null || running.nowSec !== nowSec) {
      const started = nowMs();
      const promise = count(nowSec).then((counts) => {
        last = { nowSec, at: started, ttlMs: Math.max(minTtlMs, (nowMs() - started) * costFactor), counts };
        return counts;
      });
      const mine = { nowSec, promise };
      running = mine;
      const done = (): void => {
        if (running === mine) running = null;
      };
      promise.then(done, done);
    }
    return running.promise.then((c) => ({ ...c }));
  };
}
