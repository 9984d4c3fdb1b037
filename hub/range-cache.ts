/**
 * Shares range reads between the push pumps of one hub. After each commit every agent's pump asks
 * for the same run of the same origin at nearly the same moment; one query answers them all, and
 * its answer is kept for `ttlMs` for the pumps that ask a little later. Reusing an answer is safe:
 * every change of an origin up to its `have` is written before `have` moves, so a range below it
 * never gains rows later; at worst a reused answer carries a version that has since been
 * superseded, which the receiver's last-writer-wins ignores.
 */
import type { Change } from "../agent/contract/records.js";

export interface RangeCache {
  read(origin: string, after: number, upTo: number, limit: number, load: () => Promise<Change[]>): Promise<Change[]>;
}

export function createRangeCache(opts: { ttlMs?: number; maxEntries?: number; nowMs?: () => number } = {}): RangeCache {
  const ttl = opts.ttlMs ?? 250;
  // Bounded: at most maxEntries × batchSize changes held (32 × 1000 × ~1 KB ≈ 32 MB at worst), plus
  // the JSON of those sent (agent/mesh/request-frame.ts keeps it while the array lives), ~0.7 KB each.
  const max = opts.maxEntries ?? 32;
  const now = opts.nowMs ?? Date.now;
  const entries = new Map<string, { at: number; value: Promise<Change[]> }>();
  return {
    read(origin, after, upTo, limit, load) {
      const key = `${origin} ${after} ${upTo} ${limit}`;
      const hit = entries.get(key);
      if (hit && now() - hit.at < ttl) return hit.value;
      const value = load();
      entries.set(key, { at: now(), value });
      value.catch(() => entries.delete(key));
      // Maps iterate in insertion order: drop the oldest entries beyond the bound.
      for (const k of entries.keys()) {
        if (entries.size <= max) break;
        entries.delete(k);
      }
      return value;
    },
  };
}
