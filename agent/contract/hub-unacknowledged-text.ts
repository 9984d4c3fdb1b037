/**
 * What an agent in hub mode says of its own changes that wait in its journal for a hub
 * (`cluster.status`'s `hubUnacknowledged`), written once for `locmesh status`
 * (agent/cli/client-output.ts) and the web UI's Node card (web/src/pages/cluster-cards.tsx).
 * Pure, and free of Node: the web build imports it.
 */
import type { PeerStatus } from "./cluster-status.js";
import type { VersionVector } from "./records.js";

export function hubUnacknowledgedText(s: {
  hubUnacknowledged?: number | null; vv: VersionVector; replicaId: string; peers: readonly Pick<PeerStatus, "hub" | "connected">[];
}): string {
  const n = s.hubUnacknowledged;
  if (n === null || n === undefined) {
    // A new journal (a new node, one started afresh) has had no hub yet: all of its changes may wait.
    const own = s.vv[s.replicaId] ?? 0;
    return `unknown (no hub has answered since this node's journal was made${own > 0 ? `; up to ${own} changes of this node wait` : ""})`;
  }
  const connected = s.peers.some((p) => p.hub !== undefined && p.hub !== null && p.connected);
  if (n === 0) return "0 (every change of this node is on a hub)";
  return connected ? `${n} changes of this node (being sent)` : `${n} changes of this node wait in the journal (no hub answers; they go when one does)`;
}
