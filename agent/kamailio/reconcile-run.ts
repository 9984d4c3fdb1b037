/**
 * One reconcile with Kamailio: reads what it holds (ul.dump, or its database in db_mode 3),
 * journals what it learned (planReconcile, reconciler.ts) and repairs what Kamailio lacks, and
 * reports how it went (reconcile-report.ts). Skipped until the journal is seeded, while it is held,
 * and past reconcileMaxContacts.
 */
import type { KamailioConfig } from "../config/agent-config.js";
import type { KamailioReconcileStatus } from "../contract/kamailio-status.js";
import type { Replica } from "../core/replica.js";
import type { ReplicaStore } from "../core/store.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import type { PlanContext } from "./install-plan.js";
import type { JournalGate } from "./journal-gate.js";
import type { InstanceWatch } from "./instance-watch.js";
import type { KamailioLinks } from "./kamailio-links.js";
import type { KamailioSink } from "./kamailio-sink.js";
import type { KamailioTimes } from "./kamailio-times.js";
import { planReconcile } from "./reconciler.js";
import { createReconcileReport } from "./reconcile-report.js";
import { watchChanges, writeUnlessStale, type OnStored } from "./stale-writes.js";
import { UsrlocKeysError } from "./usrloc-keys.js";

export interface ReconcileRun {
  /** Reconciles now, unless it must wait or be skipped; throws when it failed (reported too). */
  run(): Promise<void>;
  /** The last reconcile; null before the first. */
  last(): KamailioReconcileStatus | null;
}

export function createReconcileRun(deps: {
  config: Pick<KamailioConfig, "locationTable" | "reconcileMaxContacts">;
  nodeId: string;
  store: ReplicaStore;
  replica: Replica;
  links: Pick<KamailioLinks, "writer" | "dump" | "aliasTable">;
  plan: Omit<PlanContext, "nowSec">;
  watch: Pick<InstanceWatch, "observe" | "reloadNeeded">;
  sink: Pick<KamailioSink, "isPending" | "writtenAt">;
  times: KamailioTimes;
  onStored: OnStored;
  clockLeadMs: () => number;
  journal: JournalGate;
  log: Logger;
  metrics: Metrics;
  /** The dump showed that Kamailio keys AoRs without their domain (usrloc-keys.ts refuse()). */
  onDomainless?: (reason: string) => void;
}): ReconcileRun {
  const { config, nodeId, store, replica, links, plan, watch, sink, times, metrics } = deps;
  const held = (): boolean => deps.journal.held();
  const reconciles = createReconcileReport({ log: deps.log });

  async function compareAndRepair(): Promise<void> {
    const dumpStartMs = Date.now();
    const leadMs = deps.clockLeadMs();
    const dump = await links.dump();
    const dumpEndMs = Date.now();
    // A restart during the dump would make its emptiness look like removals.
    await watch.observe();
    if (watch.reloadNeeded()) return;
    const nowSec = Math.floor(Date.now() / 1000);
    // Repairs go out one by one after the plan: one for a record changed meanwhile would be older
    // than the journal (the sink writes the newer version), and is skipped or followed by it.
    const changes = watchChanges(deps.onStored);
    try {
      const p = await planReconcile(store, {
        nodeId, dump, dumpStartMs, dumpSec: (dumpEndMs - dumpStartMs) / 1000, clockLeadMs: leadMs, nowSec,
        locationTable: config.locationTable, aliasTable: links.aliasTable,
        isPending: (c) => sink.isPending(c), writtenAt: (k) => sink.writtenAt(k), kamailioTime: times.of,
      });
      // The dump takes seconds: the journal may have been found behind meanwhile.
      if (held()) return;
      const written = p.drafts.length > 0 ? await replica.commit(p.drafts, { source: "reconcile" }) : [];
      times.learned(written, dumpStartMs);
      const learned = written.filter((c) => c !== null).length;
      let repaired = 0;
      const fresh = { watch: changes, writer: links.writer, store, plan, nowSec: () => Math.floor(Date.now() / 1000) };
      for (const op of p.repairs) if (!held() && (await writeUnlessStale(op, fresh))) repaired++;
      metrics.kamailioLearned.inc({ source: "reconcile" }, learned);
      metrics.kamailioRepairs.inc({ source: "reconcile" }, repaired);
      reconciles.done({ learned, repaired, contacts: dump.length });
    } finally {
      changes.close();
    }
  }

  return {
    async run() {
      if (!deps.journal.waitedForSeed()) return;
      // Against a stale journal the plan would "learn" removals of what Kamailio holds and "repair"
      // aliases back to old targets (both seen on a restored node): nothing is reconciled while held.
      if (held()) return;
      // ul.dump's cost grows with the square of the table (32,000 contacts: ~8 s, all of it in
      // Kamailio's single FIFO process): past the limit, reconciling would hurt more than help.
      const live = (await store.counts(Math.floor(Date.now() / 1000))).locations;
      if (live > config.reconcileMaxContacts) {
        reconciles.skipped(live, config.reconcileMaxContacts);
        return;
      }
      try {
        await compareAndRepair();
      } catch (err) {
        reconciles.failed(err as Error);
        if (err instanceof UsrlocKeysError) deps.onDomainless?.(err.message);
        throw err;
      }
    },
    last: () => reconciles.last(),
  };
}
