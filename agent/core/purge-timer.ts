/**
 * Drops tombstones and expired bindings once they can no longer matter (see README "Expiry and
 * retention"), every `intervalSec`. Shared by the agent and the hub. An agent keeps its own
 * removals until every peer (or the hub) has them: purged before, during an outage longer than the
 * retention, a removal made here would never reach the cluster, and the record would stay live
 * everywhere else.
 */
import { HLC_UNITS_PER_MS } from "../contract/records.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import type { ReplicaStore } from "./store.js";

export function startPurgeTimer(deps: {
  store: ReplicaStore;
  retentionHours: number;
  intervalSec: number;
  log: Logger;
  metrics: Metrics;
  /**
   * On an agent: the highest seq of this node's own changes that every peer (or the hub) has
   * acknowledged, null while one has not said; its later tombstones are kept (store.ts purge).
   * A hub, which makes no changes of its own, leaves it out.
   */
  ownAcknowledged?: () => number | null;
}): { close(): void } {
  const retentionMs = deps.retentionHours * 3600_000;
  const timer = setInterval(() => {
    const cutoffMs = Date.now() - retentionMs;
    const keepOwnAfter = deps.ownAcknowledged?.();
    deps.store
      .purge(cutoffMs * HLC_UNITS_PER_MS, Math.floor(cutoffMs / 1000), keepOwnAfter)
      .then((n) => {
        if (n > 0) {
          deps.metrics.purged.inc(n);
          deps.log.info({ purged: n }, "purged old tombstones and expired bindings");
        }
      })
      .catch((err: unknown) => deps.log.error({ err }, "purge failed"));
  }, deps.intervalSec * 1000);
  timer.unref();
  return { close: () => clearInterval(timer) };
}
