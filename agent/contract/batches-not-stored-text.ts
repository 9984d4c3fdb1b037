/**
 * What a node says of a peer whose batches it fails to store (PeerStatus.batchesNotStored: a hub
 * whose PostgreSQL fails, before it releases its agents), written once for `locmesh status`
 * (agent/cli/client-output.ts) and the web UI's peer table (web/src/pages/cluster-cards.tsx).
 * Pure, and free of Node: the web build imports it. Times are written by the caller, as each
 * surface writes them.
 */
import type { PeerStatus } from "./cluster-status.js";

/**
 * The peer row's error text: the batches not stored, then the link's own last error, e.g.
 * `NOT STORING ITS BATCHES: 12 failed since 05:57:20 UTC (the last: PostgreSQL connection lost: …);
 * it resends them until one is stored`. Null when there is neither.
 */
export function peerErrorText(p: Pick<PeerStatus, "lastError" | "batchesNotStored">, at: (iso: string) => string): string | null {
  const b = p.batchesNotStored;
  const notStored = b ? `NOT STORING ITS BATCHES: ${b.count} failed since ${at(b.since)} (the last: ${b.reason}); it resends them until one is stored` : null;
  const both = [notStored, p.lastError].filter((t): t is string => t !== null && t !== "");
  return both.length === 0 ? null : both.join("; ");
}
