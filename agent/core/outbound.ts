/**
 * What to send a peer, decided from version vectors alone. Transport-free so the property test can
 * drive it through any interleaving, and so the hub serves peers with the very same logic.
 *
 * Tombstones are always sent, even to a peer that starts empty: that peer may later receive an
 * older live version of the same record from another peer that has not seen the removal yet, and
 * only the tombstone can win against it (found by the convergence property test).
 */
import type { BatchParams, PullParams, PullResult } from "../contract/protocol.js";
import type { Change } from "../contract/records.js";
import { LIMITS } from "../contract/sip-uri.js";
import type { ReplicaStore } from "./store.js";
import { originsAhead } from "./version-vector.js";

/**
 * An upper bound on one change's JSON in bytes: every text field at its limit, each character a
 * six-byte `\u0001` escape, plus the numbers, ids and field names (tested against such a change).
 */
export const MAX_CHANGE_BYTES = 6 * (LIMITS.aor + LIMITS.contact + LIMITS.path + LIMITS.received + LIMITS.socket +
  LIMITS.callid + LIMITS.userAgent + LIMITS.instance + 64 /* ruid */) + 1024;
/** Room in a frame for what surrounds the changes (the JSON-RPC envelope, origin, after, upTo, id). */
const FRAME_HEAD_BYTES = 1024;

/**
 * The longest prefix of `changes` whose batch frame fits in `maxBytes` (at least one change). Free
 * when even `changes.length` changes of the largest size would fit; otherwise the changes are
 * measured, which only a small `mesh.maxMessageBytes` or a large `mesh.batchSize` makes happen.
 */
export function fitting(changes: Change[], maxBytes: number): Change[] {
  const room = maxBytes - FRAME_HEAD_BYTES;
  if (changes.length * (MAX_CHANGE_BYTES + 1) <= room) return changes;
  let used = 2; // the array's brackets
  for (let i = 0; i < changes.length; i++) {
    used += Buffer.byteLength(JSON.stringify(changes[i])) + (i > 0 ? 1 : 0);
    if (used > room) return changes.slice(0, Math.max(1, i));
  }
  return changes;
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
  maxBytes = Infinity,
): Promise<BatchParams | null> {
  if (have <= after) return null;
  const read = await store.readRange(origin, after, have, limit);
  const changes = fitting(read, maxBytes);
  const upTo = read.length < limit && changes.length === read.length ? have : changes[changes.length - 1]!.seq;
  return { origin, after, upTo, changes };
}

/** Serves a peer's pull: the first origin (in a stable order) where we are ahead of its vector. */
export async function servePull(store: ReplicaStore, params: PullParams, maxBytes = Infinity): Promise<PullResult> {
  const mine = await store.versionVector();
  const origins = originsAhead(mine, params.vv, new Set(params.skip));
  let remaining = 0;
  if (params.count) {
    for (const o of origins) remaining += await store.countAfter(o, params.vv[o] ?? 0);
  }
  for (const o of origins) {
    const batch = await nextBatch(store, o, params.vv[o] ?? 0, mine[o]!, params.limit, maxBytes);
    if (batch) {
      if (params.count) remaining = Math.max(0, remaining - batch.changes.length);
      return { batch, remaining };
    }
  }
  return { batch: null, remaining: 0 };
}
