/**
 * What the agent says about its reconciles with Kamailio (attachment.ts reconcileNow): the last
 * outcome, for `cluster.status` and `locmesh status`, and the logs.
 *
 * A reconcile skipped for size (kamailio.reconcileMaxContacts) must not go unnoticed: REGISTERs
 * Kamailio took while the agent was away, beyond what the include held for it (cfg-include.ts),
 * are then learned only when those phones refresh. Logging it once per process hid it for good on
 * an agent that runs for months, and logging every run (every reconcileIntervalSec) floods the
 * log, so the warning repeats hourly while the reconciles stay skipped.
 */
import type { KamailioReconcileStatus } from "../contract/kamailio-status.js";
import type { Logger } from "../ops/logger.js";

const SKIPPED_WARNING_EVERY_MS = 60 * 60 * 1000;

export interface ReconcileReport {
  done(r: { learned: number; repaired: number; contacts: number }): void;
  skipped(live: number, limit: number): void;
  failed(err: Error): void;
  last(): KamailioReconcileStatus | null;
}

export function createReconcileReport(deps: { log: Logger; nowMs?: () => number; warnEveryMs?: number }): ReconcileReport {
  const nowMs = deps.nowMs ?? Date.now;
  const warnEveryMs = deps.warnEveryMs ?? SKIPPED_WARNING_EVERY_MS;
  let last: KamailioReconcileStatus | null = null;
  let warnedAt: number | null = null;
  const at = () => new Date(nowMs()).toISOString();
  return {
    done(r) {
      last = { at: at(), outcome: "done", ...r, reason: null };
      if (r.learned + r.repaired > 0) deps.log.info({ learned: r.learned, repaired: r.repaired, contacts: r.contacts }, "reconciled with Kamailio");
      warnedAt = null;
    },
    skipped(live, limit) {
      last = { at: at(), outcome: "skipped", learned: 0, repaired: 0, contacts: 0, reason: `${live} live bindings above kamailio.reconcileMaxContacts (${limit})` };
      if (warnedAt !== null && nowMs() - warnedAt < warnEveryMs) return;
      warnedAt = nowMs();
      deps.log.warn(
        { live, limit },
        "too many bindings to reconcile with ul.dump; skipping (kamailio.reconcileMaxContacts). REGISTERs Kamailio took while the agent was away, " +
          "beyond the 20,000 it holds for it, are learned only when those phones refresh. Repeated hourly while skipped",
      );
    },
    failed(err) {
      last = { at: at(), outcome: "failed", learned: 0, repaired: 0, contacts: 0, reason: err.message };
    },
    last: () => last,
  };
}
