/**
 * What to send a peer, decided from version vectors alone. Transport-free so the property test can
 * drive it through any interleaving, and so the hub serves peers with the very same logic.
 */
import type { VersionVector } from "../contract/records.js";
import type { BatchParams, PullParams, PullResult } from "../contract/protocol.js";
import type { ReplicaStore } from "./store.js";

export interface SnapshotHorizon {
  /** When the peer started empty: our version vector then. Tombstones and expired bindings at or
   * below it are left out, since an empty peer has nothing they could remove. */
  vv: VersionVector | null;
}

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
  horizon: SnapshotHorizon,
  nowSec: number,
): Promise<BatchParams | null> {
  if (have <= after) return null;
  const liveOnlyUpTo = horizon.vv?.[origin];
  const changes = await store.readRange(origin, after, have, limit, { liveOnlyUpTo, nowSec });
  const upTo = changes.length < limit ? have : changes[changes.length - 1]!.seq;
  return { origin, after, upTo, changes };
}

/** Serves a peer's pull: the first origin (in a stable order) where we are ahead of its vector. */
export async function servePull(
  store: ReplicaStore,
  params: PullParams,
  horizon: SnapshotHorizon,
  nowSec: number,
): Promise<PullResult> {
  const countRemaining = params.count;
  const mine = await store.versionVector();
  const skip = new Set(params.skip);
  const origins = Object.keys(mine)
    .filter((o) => !skip.has(o) && (mine[o] ?? 0) > (params.vv[o] ?? 0))
    .sort();
  let remaining = 0;
  if (countRemaining) {
    for (const o of origins) remaining += await store.countAfter(o, params.vv[o] ?? 0);
  }
  for (const o of origins) {
    const batch = await nextBatch(store, o, params.vv[o] ?? 0, mine[o]!, params.limit, horizon, nowSec);
    if (batch) {
      if (countRemaining) remaining = Math.max(0, remaining - batch.changes.length);
      return { batch, remaining };
    }
  }
  return { batch: null, remaining: 0 };
}
