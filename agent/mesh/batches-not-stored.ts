/**
 * The peer's batches this node fails to store, in one session: how many failed since the last it
 * stored, since when, and why the last one failed. A hub whose PostgreSQL stops answering keeps its
 * agents' sessions until it counts PostgreSQL as unreachable (hub/pg-watch.ts); meanwhile each
 * batch an agent sends fails, and the agent resends it. Found by an operator's dry run: the agent
 * said "batch not acknowledged, retrying", while the hub's status showed the agent connected and
 * behind by nothing. So the session keeps this tally for cluster.status (PeerStatus.batchesNotStored)
 * until a batch of that peer is stored again.
 */
import type { BatchesNotStored } from "../contract/cluster-status.js";

export interface BatchesNotStoredTally {
  /** Storing a batch of the peer's failed with `err`. */
  failed(err: unknown): void;
  /** A batch of the peer's was stored: whatever failed before is behind. */
  stored(): void;
  /** Null while none failed since the last one stored. */
  current(): BatchesNotStored | null;
}

export function createBatchesNotStored(deps: { nowMs: () => number }): BatchesNotStoredTally {
  let tally: { count: number; sinceMs: number; reason: string } | null = null;
  return {
    failed(err) {
      const reason = err instanceof Error ? err.message : String(err);
      tally = { count: (tally?.count ?? 0) + 1, sinceMs: tally?.sinceMs ?? deps.nowMs(), reason };
    },
    stored() {
      tally = null;
    },
    current: () => (tally === null ? null : { count: tally.count, since: new Date(tally.sinceMs).toISOString(), reason: tally.reason }),
  };
}
