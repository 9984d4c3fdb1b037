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

/** What the cache may hold in each of its two maps, by default. */
export const RANGE_CACHE_CHANGES = 32_000;
export const RANGE_CACHE_ENTRIES = 4_096;

export function createRangeCache(opts: { ttlMs?: number; maxChanges?: number; maxEntries?: number; nowMs?: () => number } = {}): RangeCache {
  const ttl = opts.ttlMs ?? 250;
  // Bounded by changes, not ranges, so that many origins sending small batches (a hundred nodes
  // publishing a few changes each) are all shared, while a few origins' runs of up to 1,000 changes
  // stay within the same budget: at most maxChanges read and maxChanges primed (2 × 32,000 × ~1 KB
  // ≈ 64 MB at worst), plus the JSON of those sent (agent/mesh/request-frame.ts keeps it while the
  // array lives), ~0.7 KB each. A read is charged what its range can hold at most, until it is known.
  // Stale entries go as new ones come, then the oldest beyond the bounds.
  const maxChanges = opts.maxChanges ?? RANGE_CACHE_CHANGES;
  const maxEntries = opts.maxEntries ?? RANGE_CACHE_ENTRIES;
  const now = opts.nowMs ?? Date.now;
  type Entry = { at: number; weight: number };
  /** One of the cache's two maps, with the changes its entries are charged. */
  type Slot<E extends Entry> = { map: Map<string, E>; held: number };
  const reads: Slot<Entry & { value: Promise<Change[]> }> = { map: new Map(), held: 0 };
  const primed: Slot<Entry & { changes: Change[] }> = { map: new Map(), held: 0 };
  const fresh = (at: number) => now() - at < ttl;
  const drop = <E extends Entry>(slot: Slot<E>, key: string) => {
    const e = slot.map.get(key);
    if (e === undefined) return;
    slot.map.delete(key);
    slot.held -= e.weight;
  };
  const put = <E extends Entry>(slot: Slot<E>, key: string, e: E) => {
    drop(slot, key);
    slot.map.set(key, e);
    slot.held += e.weight;
    // Maps iterate in insertion order: drop the oldest entries while stale or beyond the bounds.
    for (const [k, old] of slot.map) {
      if (slot.map.size <= maxEntries && slot.held <= maxChanges && fresh(old.at)) break;
      if (old === e) break;
      drop(slot, k);
    }
  };
  return {
    read(origin, after, upTo, limit, load) {
      const whole = primed.map.get(`${origin} ${after} ${upTo}`);
      if (whole && fresh(whole.at) && whole.changes.length <= limit) return Promise.resolve(whole.changes);
      const key = `${origin} ${after} ${upTo} ${limit}`;
      const hit = reads.map.get(key);
      if (hit && fresh(hit.at)) return hit.value;
      const value = load();
      const entry = { at: now(), weight: Math.max(1, Math.min(limit, upTo - after)), value };
      put(reads, key, entry);
      value.then(
        // Charged what it holds once known (a range's rows may be fewer than its seqs).
        (changes) => {
          if (reads.map.get(key) !== entry) return;
          reads.held += Math.max(1, changes.length) - entry.weight;
          entry.weight = Math.max(1, changes.length);
        },
        // A failed read is not kept; a newer entry under the same key is left alone.
        () => {
          if (reads.map.get(key) === entry) drop(reads, key);
        },
      );
      return value;
    },
    prime(origin, after, upTo, changes) {
      put(primed, `${origin} ${after} ${upTo}`, { at: now(), weight: Math.max(1, changes.length), changes });
    },
    clear() {
      for (const slot of [reads, primed] as Slot<Entry>[]) {
        slot.map.clear();
        slot.held = 0;
      }
    },
  };
}
