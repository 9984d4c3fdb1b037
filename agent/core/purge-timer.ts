/**
 * Drops tombstones and expired bindings once they can no longer matter (see README "Expiry and
 * retention"), every `intervalSec`. Shared by the agent and the hub.
 */
import { HLC_UNITS_PER_MS } from "../contract/records.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import type { ReplicaStore } from "./store.js";

export function startPurgeTimer(deps: { store: ReplicaStore; retentionHours: number; intervalSec: number; log: Logger; metrics: Metrics }): { close(): void } {
  const retentionMs = deps.retentionHours * 3600_000;
  const timer = setInterval(() => {
    const cutoffMs = Date.now() - retentionMs;
    deps.store
      .purge(cutoffMs * HLC_UNITS_PER_MS, Math.floor(cutoffMs / 1000))
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
