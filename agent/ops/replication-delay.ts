/**
 * `locmesh_replication_delay_seconds`: for every change a peer (or hub) brought here and that won,
 * how long after its origin stamped it it was stored here: this node's clock at the commit minus
 * the wall-clock part of the change's HLC stamp (contract/records.ts hlcToMillis).
 *
 * It compares two nodes' clocks, so it is as good as NTP keeps them: a stamp can run ahead of its
 * origin's clock after that node saw a faster one (core/hlc.ts), and a negative difference counts
 * as 0. Changes fetched in a catch-up after an outage show how stale they were when they arrived,
 * which is what an operator watching replication wants to see.
 */
import { hlcToMillis } from "../contract/records.js";
import type { Replica } from "../core/replica.js";
import type { Metrics } from "./metrics.js";

export function observeReplicationDelay(deps: { replica: Replica; metrics: Metrics; nowMs?: () => number }): () => void {
  const nowMs = deps.nowMs ?? Date.now;
  const histogram = deps.metrics.replicationDelay;
  return deps.replica.onApplied((changes, { peer }) => {
    if (peer === null) return;
    const now = nowMs();
    for (const c of changes) histogram.observe(Math.max(0, now - hlcToMillis(c.hlc)) / 1000);
  });
}
