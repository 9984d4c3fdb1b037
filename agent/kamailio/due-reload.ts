/**
 * The reload into Kamailio (reload.ts), wired to what makes one due: a restarted or first-seen
 * Kamailio (instance-watch.ts), or a reload the agent's last run left unfinished (reload-mark.ts,
 * which this keeps up to date as the reload goes). Once one finishes, the sink goes on at once.
 *
 * It also tells the sink which changes a reload writes, so that those are not written twice: above
 * all the ones that waited while Kamailio was away, which the reload after its restart writes.
 *
 * Its evapi bulk channels open only while the agent's event connection is open
 * (bulk-after-events.ts); without it a reload writes over jsonrpcs.
 */
import type { KamailioConfig } from "../config/agent-config.js";
import type { KamailioReloadStatus } from "../contract/kamailio-status.js";
import type { ReplicaStore } from "../core/store.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import type { PlanContext } from "./install-plan.js";
import type { JournalGate } from "./journal-gate.js";
import type { InstanceWatch } from "./instance-watch.js";
import type { KamailioLinks } from "./kamailio-links.js";
import type { KamailioSink } from "./kamailio-sink.js";
import type { LeftToReload } from "./sink-pass.js";
import { createReloader, type ReloaderDeps, type ReloadStatus } from "./reload.js";
import type { ReloadMark, UnfinishedReload } from "./reload-mark.js";
import type { OnStored } from "./stale-writes.js";
import { bulkAfterEvents } from "./bulk-after-events.js";

export interface DueReload {
  /** The agent's last run left a reload unfinished: one is due before anything else (logged). */
  redoUnfinished(): void;
  /** Runs the reload when one is due and may run (not held, journal seeded). */
  runIfDue(): Promise<void>;
  /** Writes the whole live state into Kamailio now (locmesh resync --kamailio). */
  run(reason: string): Promise<ReloadStatus>;
  status(): KamailioReloadStatus;
  /** The live records a reload writes, which the sink passes over (KamailioSinkDeps.leftToReload). */
  leftToReload(): LeftToReload;
  /** The agent is stopping: the reload running stops before its next write (Reloader.stop). */
  stop(): void;
}

export function createDueReload(deps: {
  config: Pick<KamailioConfig, "window" | "reloadRate">;
  store: ReplicaStore;
  links: Pick<KamailioLinks, "writer" | "preloadDb" | "openBulk">;
  plan: Omit<PlanContext, "nowSec">;
  watch: InstanceWatch;
  mark: ReloadMark;
  sink: Pick<KamailioSink, "retryNow" | "retryAliases" | "unseenByKamailio">;
  onStored: OnStored;
  clockLeadMs: () => number;
  journal: JournalGate;
  /** Kamailio answered its last probe. */
  kamailioUp: () => boolean;
  /** The agent's evapi event connection is open: bulk channels may open (bulk-after-events.ts). */
  eventsOpen: () => boolean;
  /** How long a reload waits for the event connection before it goes over jsonrpcs (tests shorten it). */
  eventsWaitMs?: number;
  /** Where the reload notes aliases alias_db's database cannot take, for the sink (reload.ts). */
  aliasesWaiting?: ReloaderDeps["aliasesWaiting"];
  log: Logger;
  metrics: Metrics;
}): DueReload {
  const { watch, mark, sink, log } = deps;
  const reloader = createReloader({
    store: deps.store, writer: deps.links.writer, plan: deps.plan, log, metrics: deps.metrics,
    window: deps.config.window, rate: deps.config.reloadRate,
    openBulk: deps.links.openBulk && bulkAfterEvents(deps.links.openBulk, deps.eventsOpen, { waitMs: deps.eventsWaitMs }),
    preloadDb: deps.links.preloadDb,
    unseen: (key) => sink.unseenByKamailio(key),
    onStored: deps.onStored,
    kamailioStart: () => {
      const startedMs = watch.startedMs();
      return startedMs === null ? null : { startedMs, clockLeadMs: deps.clockLeadMs() };
    },
    held: () => deps.journal.held(),
    onStatus: (s) => mark.track(s),
    ...(deps.aliasesWaiting ? { aliasesWaiting: deps.aliasesWaiting } : {}),
  });
  /** runIfDue's reload is under way, until it has told the watch that Kamailio is whole. */
  let dueRunning = false;
  /**
   * The unfinished reload being redone wrote every live record (`locmesh resync --kamailio`): so
   * does the redo, until one is done. By difference, a preloading Kamailio that lacked what its
   * database holds (the reason for a whole one) would stay without it.
   */
  let redoWhole = false;

  return {
    redoUnfinished() {
      if (mark.previous === null) return;
      // Some of its writes went in, which ones is unknown: Kamailio is reloaded before anything else.
      redoWhole = mark.previous.whole === true;
      watch.redo("redo: the agent's last run left a reload unfinished");
      log.warn({ unfinished: mark.previous }, `${describeUnfinished(mark.previous)}; reloading Kamailio again`);
    },
    async runIfDue() {
      // While held the restarted Kamailio stays without the cluster's state, and its REGISTER gate
      // closed (up to LOCMESH_READY_GRACE): a node that cannot be made whole should not look whole.
      if (!watch.reloadNeeded() || deps.journal.held() || !deps.journal.waitedForSeed()) return;
      dueRunning = true;
      try {
        // A reload already under way (locmesh resync --kamailio) began before this one was due,
        // perhaps into the Kamailio before the restart, and from an older journal position than the
        // sink was told: joining it could leave changes to neither. Let it end, then run our own.
        await reloader.settled();
        const res = await reloader.run(watch.reloadReason(), { whole: redoWhole });
        if (res.state !== "done") return; // Kamailio went again; the next check retries
        redoWhole = false;
        // No ul.dump check afterwards: the reload wrote the whole live state, and a dump of a large
        // table holds Kamailio's FIFO for tens of seconds (it grows with the square of the table).
        watch.reloaded();
      } finally {
        dueRunning = false;
      }
      // Writes that failed while Kamailio was away wait for their retry timer otherwise, and what
      // went into its database only is repeated now (the sink waited for the reload).
      sink.retryNow();
    },
    // On demand (locmesh resync --kamailio) everything is written: this Kamailio may not have
    // restarted, and lack what its database holds (a fallback write while jsonrpcs failed).
    async run(reason) {
      try {
        return await reloader.run(reason, { whole: true });
      } finally {
        // Aliases it noted for alias_db's database (reload.ts) are the sink's now.
        sink.retryAliases();
      }
    },
    status: () => ({ ...reloader.status(), interrupted: unfinishedStatus(mark.previous) }),
    stop: () => reloader.stop(),
    leftToReload() {
      const { last, done } = reloader.reach();
      // A reload that can run into a Kamailio that answers is due: it writes every live record
      // stored by the time it reads its position, and, should it fail, stays due for the next one.
      // While Kamailio is down the sink goes on as before (its database fallback, pending writes).
      const due = watch.reloadNeeded() && deps.kamailioUp() && !deps.journal.held() && deps.journal.seeded();
      // Else: what the last one that finished wrote. A reload that runs but is not due (locmesh resync
      // --kamailio) is not redone should it fail: the sink writes on as before meanwhile.
      if (!due) return done;
      // Its position once read; until then (or after a failed one) all that is stored so far. One
      // done still tells its own until the watch is told that Kamailio is whole, as changes stored
      // since it began are the sink's.
      if (!dueRunning || last === null || last.state === "failed") return "everything";
      return last.upTo ?? "everything";
    },
  };
}

/** For the log: what the agent's last run left unfinished. */
function describeUnfinished(u: UnfinishedReload): string {
  const how = u.error === null ? "the agent stopped in the middle of it (restarted, killed or crashed)" : `it failed (${u.error}) and was not redone before the agent stopped`;
  return `the last reload into Kamailio (started ${u.startedAt}, ${u.reason ?? "no reason noted"}) did not finish: ${how}, after at least ${u.done} of ${u.total} writes`;
}

const unfinishedStatus = (u: UnfinishedReload | null) =>
  u === null ? null : { reason: u.reason, startedAt: u.startedAt, done: u.done, total: u.total, error: u.error, whole: u.whole === true };
