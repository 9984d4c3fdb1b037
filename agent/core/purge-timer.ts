/**
 * Drops tombstones and expired bindings once they can no longer matter (see README "Expiry and
 * retention"), every `intervalSec`. Shared by the agent and the hub. An agent keeps every removal
 * (and every expired version) until every peer (or the hub) has it: purged before, during an outage
 * longer than the retention, a removal made here would never reach the cluster, and one relayed
 * from here (another node's, while that node is down) would reach the peer as an empty range that
 * it takes for having it all; the record would stay live there.
 */
import { HLC_UNITS_PER_MS } from "../contract/records.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import type { PurgeFloor, ReplicaStore } from "./store.js";

export function startPurgeTimer(deps: {
  store: ReplicaStore;
  retentionHours: number;
  intervalSec: number;
  log: Logger;
  metrics: Metrics;
  /**
   * On an agent: per origin, the highest seq every peer (or the hub) holds, null while one has not
   * said; later rows are kept (store.ts purge). A hub, whose own rule is in its SQL, leaves it out.
   */
  held?: () => Promise<PurgeFloor | null>;
}): { close(): void } {
  const retentionMs = deps.retentionHours * 3600_000;
  const timer = setInterval(() => {
    const cutoffMs = Date.now() - retentionMs;
    (deps.held ? deps.held() : Promise.resolve(undefined))
      .then((held) => deps.store.purge(cutoffMs * HLC_UNITS_PER_MS, Math.floor(cutoffMs / 1000), held))
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
