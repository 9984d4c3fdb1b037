/**
 * What the agent says about its reconciles with Kamailio (attachment.ts reconcileNow): the last
 * outcome, for `cluster.status` and `locmesh status`, and the logs.
 *
 * A reconcile skipped for size (kamailio.reconcileMaxContacts) must not go unnoticed: REGISTERs
 * Kamailio took while the agent was away, beyond what the include held for it (cfg-include.ts),
 * are then learned only when those phones refresh. Logging it once per process hid it for good on
 * an agent that runs for months, and logging every run (every reconcileIntervalSec) floods the
 * log, so the warning repeats hourly while the reconciles stay skipped. The same goes for a
 * Kamailio found holding contacts twice under two phones' Call-IDs (usrloc's matching_mode 1).
 */
import type { KamailioReconcileStatus } from "../contract/kamailio-status.js";
import type { Logger } from "../ops/logger.js";

const SKIPPED_WARNING_EVERY_MS = 60 * 60 * 1000;

export interface ReconcileDone {
  learned: number;
  repaired: number;
  contacts: number;
  /** Contacts Kamailio holds twice under two phones' Call-IDs (reconciler.ts keptApart). */
  keptApart?: { count: number; first: { aor: string; contact: string } | null };
}

/** What a Kamailio that keeps one contact under two Call-IDs means, and what to change. */
export function keptApartText(k: NonNullable<ReconcileDone["keptApart"]>): string {
  const example = k.first ? ` (${k.first.contact} of ${k.first.aor}${k.count > 1 ? ", and others" : ""})` : "";
  return `Kamailio holds ${k.count} contact${k.count === 1 ? "" : "s"} twice under two phones' Call-IDs${example}: usrloc's matching_mode looks like 1 ` +
    `(contact and Call-ID), which locmesh does not support: ul.rm_contact cannot find a phone's contact, so removals from other nodes do not reach this Kamailio. ` +
    `Set modparam("usrloc", "matching_mode", 0) (its default) and restart Kamailio`;
}

export interface ReconcileReport {
  done(r: ReconcileDone): void;
  skipped(live: number, limit: number): void;
  failed(err: Error): void;
  last(): KamailioReconcileStatus | null;
}

export function createReconcileReport(deps: { log: Logger; nowMs?: () => number; warnEveryMs?: number }): ReconcileReport {
  const nowMs = deps.nowMs ?? Date.now;
  const warnEveryMs = deps.warnEveryMs ?? SKIPPED_WARNING_EVERY_MS;
  let last: KamailioReconcileStatus | null = null;
  let warnedAt: number | null = null;
  let keptApartWarnedAt: number | null = null;
  const at = () => new Date(nowMs()).toISOString();
  return {
    done(r) {
      const warning = r.keptApart && r.keptApart.count > 0 ? keptApartText(r.keptApart) : null;
      last = { at: at(), outcome: "done", learned: r.learned, repaired: r.repaired, contacts: r.contacts, reason: warning };
      if (r.learned + r.repaired > 0) deps.log.info({ learned: r.learned, repaired: r.repaired, contacts: r.contacts }, "reconciled with Kamailio");
      warnedAt = null;
      if (warning === null) keptApartWarnedAt = null;
      else if (keptApartWarnedAt === null || nowMs() - keptApartWarnedAt >= warnEveryMs) {
        keptApartWarnedAt = nowMs();
        deps.log.warn({ contacts: r.keptApart!.count }, `${warning}. Repeated hourly while found`);
      }
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
