/**
 * What to send a peer, decided from version vectors alone. Transport-free so the property test can
 * drive it through any interleaving, and so the hub serves peers with the very same logic.
 *
 * Tombstones are always sent, even to a peer that starts empty: that peer may later receive an
 * older live version of the same record from another peer that has not seen the removal yet, and
 * only the tombstone can win against it (found by the convergence property test).
 */
import type { BatchParams, PullParams, PullResult } from "../contract/protocol.js";
import type { ReplicaStore } from "./store.js";
import { originsAhead } from "./version-vector.js";

/**
 * The next run of `origin`'s changes after `after`, up to what we hold without gaps. Returns null
 * when there is nothing beyond `after`. `upTo` is the last seq returned, or our whole range when
 * the run ends before `limit`, so the receiver can skip over superseded versions.
 */
export async function nextBatch(
  store: ReplicaStore,
  origin: string,
  after: number,
  have: number,
  limit: number,
): Promise<BatchParams | null> {
  if (have <= after) return null;
  const changes = await store.readRange(origin, after, have, limit);
  const upTo = changes.length < limit ? have : changes[changes.length - 1]!.seq;
  return { origin, after, upTo, changes };
}

/** Serves a peer's pull: the first origin (in a stable order) where we are ahead of its vector. */
export async function servePull(store: ReplicaStore, params: PullParams): Promise<PullResult> {
  const mine = await store.versionVector();
  const origins = originsAhead(mine, params.vv, new Set(params.skip));
  let remaining = 0;
  if (params.count) {
    for (const o of origins) remaining += await store.countAfter(o, params.vv[o] ?? 0);
  }
  for (const o of origins) {
    const batch = await nextBatch(store, o, params.vv[o] ?? 0, mine[o]!, params.limit);
    if (batch) {
      if (params.count) remaining = Math.max(0, remaining - batch.changes.length);
      return { batch, remaining };
    }
  }
  return { batch: null, remaining: 0 };
}
