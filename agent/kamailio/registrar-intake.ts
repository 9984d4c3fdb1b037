/**
 * Registrar events in: each event becomes journal edits (registrar-input.ts), one AoR's events in
 * order and different AoRs side by side, so group commit batches them.
 *
 * Back-pressure: at most `maxQueued` events are read and not yet journaled. Past that the intake
 * asks its source to stop reading (`flow.pause()`: the evapi socket is no longer read, TCP's window
 * closes, Kamailio's evapi dispatcher waits in write(), the include's drain process in
 * evapi_relay, and once 5,000 REGISTERs are queued the SIP workers wait before queueing theirs,
 * after their reply went out); reading resumes once half of them are journaled. A
 * REGISTER storm thus costs the agent a bounded amount of memory, and Kamailio takes REGISTERs at
 * the pace the agent journals them instead of the agent hoarding events it may lose on a crash.
 * While no agent is connected the include holds REGISTERs in Kamailio (cfg-include.ts), and they
 * arrive in a burst right after the connect, each with its contacts read then and its REGISTER's
 * older `ts` (registrar-input.ts reads it that way); the same back-pressure paces the burst. What
 * Kamailio drops (past 20,000 held) is recovered by the ul.dump reconcile.
 */
import type { BindingValue, Change } from "../contract/records.js";
import { OutdatedDraftsError, type Replica } from "../core/replica.js";
import type { ReplicaStore } from "../core/store.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import { bindingKey } from "./install-plan.js";
import type { KamailioSink } from "./kamailio-sink.js";
import type { KamailioTimes } from "./kamailio-times.js";
import type { RegisterEvent } from "./register-event.js";
import { draftsFromRegister } from "./registrar-input.js";
import type { AorLookups } from "./aor-lookups.js";
import type { WildcardSockets } from "./wildcard-sockets.js";

export interface RegistrarIntakeDeps {
  nodeId: string;
  store: ReplicaStore;
  replica: Replica;
  sink: Pick<KamailioSink, "isPending" | "writtenAt" | "unseenByKamailio">;
  times: KamailioTimes;
  log: Logger;
  metrics: Metrics;
  /** Events read but not yet journaled, at most. */
  maxQueued: number;
  /** How long an event's edits may wait to share a journal commit with others (replica.ts). */
  lingerMs: number;
  /** Stops and restarts reading the event source. */
  flow: { pause(): void; resume(): void };
  /** How far the hybrid logical clock runs ahead of this host's clock now (ms, ≥ 0; registrar-input.ts). */
  clockLeadMs(): number;
  /** False while a reload into a restarted Kamailio is due or running (registrar-input.ts). */
  kamailioWhole?(): boolean;
  /** This host's clock (ms); default Date.now. */
  nowMs?(): number;
  /** False: the event is not journaled (Kamailio keys AoRs without their domain, usrloc-keys.ts). Default: every event is. */
  admit?(): Promise<boolean>;
  /** Shown the socket of each binding an event journals (wildcard-sockets.ts). */
  sockets?: Pick<WildcardSockets, "see">;
  /**
   * Told the AoR of each event that could not be journaled, or that does not say what its REGISTER
   * removed, and when one is journaled again after failures (aor-lookups.ts).
   */
  aorLookups?: Pick<AorLookups, "add" | "failed" | "journalWorks">;
}

export interface RegistrarIntakeStats {
  queued: number;
  /** Most events queued at once since start. */
  peak: number;
  /** Times reading was paused because the queue was full. */
  pauses: number;
  failed: number;
}

export interface RegistrarIntake {
  /** Journals the event; `onDone` is called once it is journaled or has failed. */
  push(ev: RegisterEvent, onDone?: () => void): void;
  stats(): RegistrarIntakeStats;
  /** Resolves once every event pushed so far is journaled (or failed). */
  settled(): Promise<void>;
  /** Stops following the journal's changes (after settled()). */
  close(): void;
}

export function createRegistrarIntake(deps: RegistrarIntakeDeps): RegistrarIntake {
  const { nodeId, store, replica, sink, times, log, metrics, maxQueued, flow } = deps;
  const resumeAt = Math.floor(maxQueued / 2);
  const aorQueues = new Map<string, Promise<void>>();
  const stats: RegistrarIntakeStats = { queued: 0, peak: 0, pauses: 0, failed: 0 };
  let paused = false;
  /** Events that failed in a row (disk full, journal gone). */
  let failing = 0;

  /**
   * The AoRs whose event is between its read of the journal and its commit. A change of one that
   * lands meanwhile (a peer's, the API's, the reconcile's) makes the event's drafts old: stamped
   * now, they would overwrite a newer registration made on another node with what Kamailio held
   * before it. The group commit then leaves them out, and the event is decided again in a write
   * turn of its own (Replica.commitChecked). Rare: the window is the linger and the write queue.
   */
  const reading = new Map<string, { moved: boolean }>();
  const unwatch = replica.onApplied((changes) => {
    // Every batch a peer or hub sends passes here: nothing to look up while no event waits.
    if (reading.size === 0) return;
    for (const c of changes) {
      if (c.kind !== "loc") continue;
      const w = reading.get(c.key);
      if (w) w.moved = true;
    }
  });

  /** Journals the event; false when it was not admitted. */
  async function journal(ev: RegisterEvent, clockLeadMs: number, readMs: number): Promise<boolean> {
    if (deps.admit && !(await deps.admit())) {
      metrics.kamailioEvents.inc({ outcome: "refused" });
      return false;
    }
    times.advance(ev.tsMs);
    const draftsFrom = (current: readonly Change[]) => {
      const drafts = draftsFromRegister(ev, {
        nodeId, current, clockLeadMs,
        isPending: (c: Change) => sink.isPending(c),
        writtenAt: (aor, contact) => sink.writtenAt(bindingKey(aor, contact)),
        kamailioMs: times.of,
        kamailioWhole: deps.kamailioWhole?.() ?? true,
        unseenByKamailio: (aor, contact) => sink.unseenByKamailio(bindingKey(aor, contact)),
        nowMs: readMs,
      });
      if (deps.sockets) for (const d of drafts) if (d.value !== null) deps.sockets.see((d.value as BindingValue).socket);
      return drafts;
    };
    const watch = { moved: false };
    reading.set(ev.aor, watch);
    let written: (Change | null)[];
    try {
      const drafts = draftsFrom(await store.listKey("loc", ev.aor));
      if (drafts.length === 0) written = [];
      else {
        written = await replica.commit(drafts, { lingerMs: deps.lingerMs, source: "event", outdated: () => watch.moved }).catch(async (err: unknown) => {
          if (!(err instanceof OutdatedDraftsError)) throw err;
          return replica.commitChecked(async (s) => draftsFrom(await s.listKey("loc", ev.aor)), { source: "event" });
        });
      }
    } finally {
      if (reading.get(ev.aor) === watch) reading.delete(ev.aor);
    }
    if (written.length > 0) {
      times.learned(written, ev.tsMs);
      metrics.kamailioLearned.inc({ source: "event" }, written.filter((c) => c !== null).length);
    }
    metrics.kamailioEvents.inc({ outcome: "applied" });
    return true;
  }

  function done(): void {
    stats.queued--;
    metrics.kamailioEventsQueued.set(stats.queued);
    if (paused && stats.queued <= resumeAt) {
      paused = false;
      flow.resume();
    }
  }

  return {
    push(ev, onDone) {
      stats.queued++;
      stats.peak = Math.max(stats.peak, stats.queued);
      metrics.kamailioEventsQueued.set(stats.queued);
      if (!paused && stats.queued >= maxQueued) {
        paused = true;
        stats.pauses++;
        metrics.kamailioEventPauses.inc();
        flow.pause();
      }
      // Taken on arrival: commits made while the event waits must not move it.
      const leadMs = deps.clockLeadMs();
      const readMs = (deps.nowMs ?? Date.now)();
      const prev = aorQueues.get(ev.aor) ?? Promise.resolve();
      const next = prev
        .then(async () => {
          const admitted = await journal(ev, leadMs, readMs);
          // The AoR-only half of a REGISTER too big for the include's queue: it gives the AoR's
          // contacts, not what the request removed (every real REGISTER has a Call-ID). Numbered
          // events only (aor-lookups.ts says why).
          if (admitted && ev.rc === 4 && ev.callid === "" && ev.n !== undefined) deps.aorLookups?.add(ev.aor);
          if (failing > 0) {
            log.info({ failed: failing }, "registrar events are journaled again");
            deps.aorLookups?.journalWorks();
          }
          failing = 0;
        })
        .catch((err: unknown) => {
          stats.failed++;
          metrics.kamailioEvents.inc({ outcome: "failed" });
          deps.aorLookups?.failed(ev.n !== undefined ? ev.aor : null);
          // One line per run of failures (and every 1000th), not one per REGISTER: a full disk fails them all.
          if (failing++ % 1000 === 0) {
            log.error(
              { err: (err as Error).message, aor: ev.aor, failed: failing },
              "could not journal a registrar event; once the journal takes writes again the agent looks the AoR up in Kamailio and brings the journal in line with it",
            );
          }
        })
        .finally(() => {
          onDone?.();
          done();
          if (aorQueues.get(ev.aor) === next) aorQueues.delete(ev.aor);
        });
      aorQueues.set(ev.aor, next);
    },
    stats: () => ({ ...stats }),
    async settled() {
      await Promise.allSettled([...aorQueues.values()]);
    },
    close: unwatch,
  };
}
