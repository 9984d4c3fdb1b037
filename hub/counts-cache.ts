/**
 * The hub's record counts, reused for a while. `cluster.status` asks for them on every poll (the
 * web UI every 2 s, each `locmesh status`), and on PostgreSQL they take a scan of the records
 * table: ~115 ms at 1,000,000 records, and ten times that at 10,000,000. An answer is reused for
 * `costFactor` times as long as it took to get, and at least `minTtlMs`, so counting takes at most
 * about 1/costFactor of a PostgreSQL core however many poll; callers that ask while a count runs
 * share it. An answer is not reused for a clock reading further from its own than that either,
 * since bindings stop counting as they expire.
 *
 * The time a count took is not all scanning: it includes waiting for a pooled connection and for
 * a PostgreSQL that stalled. Uncapped, a count that waited out a minute's stall was reused for 20
 * minutes; reuse is therefore capped at `maxTtlMs` (30 s, above the 22 s a 10,000,000-record count
 * earns). `last()` gives the last answer and when it was counted, so a status can show how old its
 * counts are, or show them while PostgreSQL does not answer (hub/postgres-status.ts).
 */
import type { StoreCounts } from "../agent/core/store.js";

export interface CountsCacheOptions {
  /** Shortest time an answer is reused (ms). */
  minTtlMs?: number;
  /** Longest time an answer is reused (ms), however long it took. */
  maxTtlMs?: number;
  /** An answer is reused this many times as long as it took. */
  costFactor?: number;
  nowMs?: () => number;
}

export interface CountedAt {
  counts: StoreCounts;
  /** When the count that gave them began (ms since the epoch). */
  countedAtMs: number;
}

export interface CountsCache {
  /** The counts at clock reading `nowSec`: the last answer while it may be reused, else a new count. */
  get(nowSec: number): Promise<StoreCounts>;
  /** The last answer, or null before the first; never waits. */
  last(): CountedAt | null;
}

/** The longest an answer is reused by default: a status shows older counts as stale (postgres-status.ts). */
export const COUNTS_MAX_REUSE_MS = 30_000;

export function createCountsCache(count: (nowSec: number) => Promise<StoreCounts>, opts: CountsCacheOptions = {}): CountsCache {
  const minTtlMs = opts.minTtlMs ?? 5000;
  const maxTtlMs = opts.maxTtlMs ?? COUNTS_MAX_REUSE_MS;
  const costFactor = opts.costFactor ?? 20;
  const nowMs = opts.nowMs ?? Date.now;
  let last: { nowSec: number; at: number; ttlMs: number; counts: StoreCounts } | null = null;
  let running: { promise: Promise<StoreCounts> } | null = null;

  return {
    get(nowSec) {
      if (last !== null && nowMs() - last.at < last.ttlMs && Math.abs(nowSec - last.nowSec) * 1000 < last.ttlMs) return Promise.resolve({ ...last.counts });
      // One count at a time, whatever clock reading it was for (they differ by the seconds it
      // runs): against a slow PostgreSQL, a count per second of polling would pile up on the pool
      // the push pumps read from, each waiting out the query timeout.
      if (running === null) {
        const started = nowMs();
        const promise = count(nowSec).then((counts) => {
          last = { nowSec, at: started, ttlMs: Math.min(maxTtlMs, Math.max(minTtlMs, (nowMs() - started) * costFactor)), counts };
          return counts;
        });
        const mine = { promise };
        running = mine;
        const done = (): void => {
          if (running === mine) running = null;
        };
        promise.then(done, done);
      }
      return running.promise.then((c) => ({ ...c }));
    },
    last: () => (last === null ? null : { counts: { ...last.counts }, countedAtMs: last.at }),
  };
}
