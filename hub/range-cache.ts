/**
 * Shares range reads between the push pumps of one hub. After each commit every agent's pump asks
 * for the same run of the same origin at nearly the same moment; one query answers them all, and
 * its answer is kept for `ttlMs` for the pumps that ask a little later. Reusing an answer is safe:
 * every change of an origin up to its `have` is written before `have` moves, so a range below it
 * never gains rows later; at worst a reused answer carries a version that has since been
 * superseded, which the receiver's last-writer-wins ignores.
 *
 * A store may also `prime` a range it has just written whole (see pg-store.ts), so that the pumps
 * need no query at all for a batch they relay as it came. A primed range answers any read of
 * exactly that range whose limit it fits in.
 */
import type { Change } from "../agent/contract/records.js";

export interface RangeCache {
  read(origin: string, after: number, upTo: number, limit: number, load: () => Promise<Change[]>): Promise<Change[]>;
  /** `changes` are every row `origin` has in (after, upTo], as a read at this moment would return them. */
  prime(origin: string, after: number, upTo: number, changes: Change[]): void;
  /** Forgets everything (the database lost commits: what was read or primed may be gone). */
  clear(): void;
}

export function createRangeCache(opts: { ttlMs?: number; maxEntries?: number; nowMs?: () => number } = {}): RangeCache {
  const ttl = opts.ttlMs ?? 250;
  // Bounded: at most maxEntries reads and maxEntries primed ranges of up to 1,000 changes each
  // (2 × 32 × 1000 × ~1 KB ≈ 64 MB at worst), plus the JSON of those sent (agent/mesh/request-frame.ts
  // keeps it while the array lives), ~0.7 KB each; stale entries go as new ones come.
  const max = opts.maxEntries ?? 32;
  const now = opts.nowMs ?? Date.now;
  const entries = new Map<string, { at: number; value: Promise<Change[]> }>();
  const whole = new Map<string, { at: number; changes: Change[] }>();
  const fresh = (at: number) => now() - at < ttl;
  /** Maps iterate in insertion order: drop the oldest entries while stale or beyond the bound. */
  const bound = (m: Map<string, { at: number }>) => {
    for (const [k, e] of m) {
      if (m.size <= max && fresh(e.at)) break;
      m.delete(k);
    }
  };
  return {
    read(origin, after, upTo, limit, load) {
      const primed = whole.get(`${origin} ${after} ${upTo}`);
      if (primed && fresh(primed.at) && primed.changes.length <= limit) return Promise.resolve(primed.changes);
      const key = `${origin} ${after} ${upTo} ${limit}`;
      const hit = entries.get(key);
      if (hit && fresh(hit.at)) return hit.value;
      const value = load();
      const entry = { at: now(), value };
      entries.set(key, entry);
      // A failed read is not kept; a newer entry under the same key is left alone.
      value.catch(() => {
        if (entries.get(key) === entry) entries.delete(key);
      });
      bound(entries);
      return value;
    },
    prime(origin, after, upTo, changes) {
      whole.set(`${origin} ${after} ${upTo}`, { at: now(), changes });
      bound(whole);
    },
    clear() {
      entries.clear();
      whole.clear();
    },
  };
}
