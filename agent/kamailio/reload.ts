/**
 * Puts the whole live state back into a Kamailio that lost it: after a restart with usrloc in
 * memory (db_mode 0) Kamailio starts empty and nothing in it says so (core-rpc.ts notices).
 *
 * Every live binding (this node's own too: the phones will re-register, but until they do calls
 * must still find them) and every alias is written, `window` writes in flight, at most `rate` per
 * second when set, with progress in status. A Kamailio that preloads from its database
 * (db_mode 1/2) already holds what it had written there: then only the difference between the
 * journal and Kamailio's `location` table is written, plus the removal of rows the journal no
 * longer has live (rows of phones that registered here and that the journal never heard of stay,
 * for the reconcile to learn). What to write is planned in reload-plan.ts, while this writes it.
 */
import type { KamailioReloadStatus } from "../contract/kamailio-status.js";
import type { VersionVector } from "../contract/records.js";
import { isTransient } from "../core/transient.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import { watchChangesAfter, writeUnlessStale, type ChangeWatch, type OnStored } from "./stale-writes.js";
import type { KeySet } from "../journal/sqlite-key-set.js";
import { isAliasOp, opKey, type InstallOp } from "./install-plan.js";
import { AliasDbUnreachableError, describe, type KamailioWriter } from "./kamailio-writer.js";
import { collectOps, createBacklog, type ReloadPlanDeps } from "./reload-plan.js";

export type ReloadStatus = KamailioReloadStatus;

/**
 * Planned writes not yet started, at most. Planning runs several times faster than Kamailio takes
 * writes; unchecked, it held the event loop for the first ~0.9 s of a 100,000-record reload while
 * only a few writes went out per page, and kept every planned write in memory. Every planned write
 * outlives a few of V8's young-generation collections, and each one copies them all: with 300
 * instead of 2,000 (and 256 bulk writes in flight instead of 512, kamailio-links.ts) the bench's
 * reload of 100,000 took 2.34-2.48 s instead of 2.67-2.94 s (the agent 41,000-44,000 writes/s
 * instead of 35,000-38,000; 6 and 9 runs, alternated, on the 2-core VM).
 */
export const PLAN_AHEAD = 300;

export interface Reloader {
  /**
   * Runs one reload to its end; a second call while one runs joins it, unless it asks for the whole
   * while the one running goes by difference: then it runs after that one. `whole`: write every live
   * record, not only the difference with a preloading Kamailio's database (an operator's `locmesh
   * resync --kamailio`: that Kamailio may lack what its database has, when it did not restart).
   */
  run(reason: string, opts?: { whole?: boolean }): Promise<ReloadStatus>;
  /** Resolves once no reload runs (at once when none does), however the one running ends. */
  settled(): Promise<void>;
  status(): ReloadStatus;
  /**
   * Where the journal stood when reloads began: each writes every live record stored up to there
   * (or leaves it to the sink, should it change later), and the sink need not write those again.
   * `last`: the reload begun last (its `upTo` null until read); `done`: the last one that finished.
   */
  reach(): { last: ReloadReach | null; done: VersionVector | null };
  /**
   * The agent is stopping: the reload running stops before its next write (those in flight end or
   * time out) and fails with RELOAD_STOPPED, and none starts from now on. The reload mark keeps it
   * unfinished, so the agent's next start redoes it (reload-mark.ts).
   */
  stop(): void;
}

export interface ReloadReach {
  upTo: VersionVector | null;
  state: "running" | "done" | "failed";
}

/** A faster way in for the length of one reload (the evapi bulk channel), with its own writer. */
export interface BulkSession {
  writer: KamailioWriter;
  /** Writes in flight at once through it. */
  window: number;
  close(): Promise<void>;
}

/** The store, plan context, preload database and Kamailio's start are the planning's (reload-plan.ts). */
export interface ReloaderDeps extends ReloadPlanDeps {
  writer: KamailioWriter;
  /** Opens the bulk channel; null (or a throw) means the reload goes through `writer`. */
  openBulk?: () => Promise<BulkSession | null>;
  log: Logger;
  metrics: Metrics;
  window: number;
  /** Writes per second; 0 = unlimited. */
  rate: number;
  /** Changes stored while the reload runs are the sink's to write (stale-writes.ts). */
  onStored?: OnStored;
  /**
   * True while nothing may be written into Kamailio (this node's journal is behind its peers: what
   * it holds is stale). A reload then does not start, and one running stops before its next write.
   */
  held?: () => boolean;
  nowMs?: () => number;
  /**
   * Told the status when a run starts (before its first write), after each write, and when it
   * ends: reload-mark.ts keeps in the journal that a reload is under way.
   */
  onStatus?: (s: ReloadStatus) => void;
  /**
   * Where an alias that alias_db's database cannot take is noted for the sink to write once it can
   * (sink-pass.ts): the reload goes on without it. Without it such an alias fails the reload.
   */
  aliasesWaiting?: Pick<KeySet, "add" | "flush">;
}

/** Why a reload did not run or stopped while held. */
export const RELOAD_HELD = "stopped: this node's journal is behind its peers, so nothing of it is written into Kamailio; start the agent afresh (see `locmesh status`)";

/** Why a reload stopped, or did not start, while the agent stops. */
export const RELOAD_STOPPED = "stopped: the agent is stopping; the reload is redone when it starts again";

export function createReloader(deps: ReloaderDeps): Reloader {
  const nowMs = deps.nowMs ?? Date.now;
  let status: ReloadStatus = { state: "idle", reason: null, total: 0, done: 0, unchanged: 0, startedAt: null, finishedAt: null, rate: 0, channel: null, error: null };
  let running: Promise<ReloadStatus> | null = null;
  let last: ReloadReach | null = null;
  let doneUpTo: VersionVector | null = null;

  async function openBulk(): Promise<BulkSession | null> {
    if (!deps.openBulk) return null;
    return deps.openBulk().catch((err: unknown) => {
      deps.log.warn({ err: (err as Error).message }, "no evapi bulk channel; reloading over jsonrpcs");
      return null;
    });
  }

  const held = deps.held ?? (() => false);
  let stopping = false;
  /** Wakes the run under way's waiting workers and planner (stop()). */
  let wakeRunning: (() => void) | null = null;
  /** Why no (further) write may go in, if one may not. */
  const mayNotWrite = (): string | null => (stopping ? RELOAD_STOPPED : held() ? RELOAD_HELD : null);
  // The status itself, not a copy, on every write: the listener reads it at once and keeps nothing.
  const onStatus = (s: ReloadStatus): void => deps.onStatus?.(s);

  async function reload(reason: string, whole: boolean): Promise<ReloadStatus> {
    const plan: ReloadPlanDeps = whole ? { ...deps, preloadDb: null } : deps;
    const started = nowMs();
    const reach: ReloadReach = { upTo: null, state: "running" };
    last = reach;
    const refusal = mayNotWrite();
    if (refusal !== null) {
      reach.state = "failed";
      const at = new Date(started).toISOString();
      status = { state: "failed", reason, total: 0, whole, done: 0, unchanged: 0, startedAt: at, finishedAt: at, rate: 0, channel: null, error: refusal };
      return { ...status };
    }
    const nowSec = Math.floor(started / 1000);
    // Records to look at, counted first: until the plan is complete, `total` is the writes planned
    // plus the records not yet looked at, so progress has a denominator from the start.
    const counts = await deps.store.counts(nowSec).catch(() => ({ locations: 0, aliases: 0 }));
    const toExamine = counts.locations + counts.aliases;
    status = { state: "running", reason, total: toExamine, whole, done: 0, unchanged: 0, refused: 0, startedAt: new Date(started).toISOString(), finishedAt: null, rate: 0, channel: null, error: null };
    onStatus(status);
    deps.log.info({ reason, byDifference: plan.preloadDb !== null }, "putting the live state back into Kamailio");
    // Records changed since the journal position the reload starts from (read before its first page).
    let watch: ChangeWatch;
    try {
      ({ watch, upTo: reach.upTo } = await watchChangesAfter(deps.onStored, () => deps.store.versionVector()));
    } catch (err) {
      fail(reach, err);
      onStatus(status);
      return { ...status };
    }
    const ops = createBacklog();
    let planned = false;
    let failure: unknown = null;
    /** Writes started so far (for the rate limit). */
    let startedWrites = 0;
    // Workers that caught up with the planning wait here for its next page.
    let waiting: (() => void)[] = [];
    const wakeAll = (): void => {
      const w = waiting;
      waiting = [];
      for (const f of w) f();
      wakePlanner();
    };
    wakeRunning = wakeAll;
    // The planner, when it is PLAN_AHEAD writes ahead, waits here for the workers.
    let plannerWaits: (() => void) | null = null;
    const wakePlanner = (): void => {
      const w = plannerWaits;
      plannerWaits = null;
      w?.();
    };
    // A stop or a hold ends the planning too: a by-difference reload with nothing to write yet
    // has no worker to notice it, and would read the whole journal first.
    const room = async (): Promise<boolean> => {
      while (failure === null && mayNotWrite() === null && ops.size() >= PLAN_AHEAD) await new Promise<void>((r) => (plannerWaits = r));
      if (failure === null && mayNotWrite() !== null) failure = new Error(mayNotWrite()!);
      return failure === null;
    };
    const planning = collectOps(plan, nowSec, ops, (examined) => {
      status.total = ops.planned() + Math.max(0, toExamine - examined);
      wakeAll();
    }, room, () => status.unchanged++).then(
      () => {
        status.total = ops.planned();
      },
      (err: unknown) => {
        failure ??= err;
      },
    ).finally(() => {
      planned = true;
      wakeAll();
    });
    // The channel is opened only when there is something to write: an include without the bulk
    // route keeps the agent waiting for its hello's answer, which an empty reload need not do.
    while (ops.planned() === 0 && !planned) await new Promise<void>((r) => waiting.push(r));
    const bulk = ops.planned() > 0 ? await openBulk() : null;
    try {
      const writer = bulk?.writer ?? deps.writer;
      const fresh = { watch, writer, store: deps.store, plan: deps.plan, nowSec: () => Math.floor(nowMs() / 1000) };
      status.channel = bulk ? "evapi" : "jsonrpcs";
      /** Aliases noted for the sink because alias_db's database did not answer; once it failed, the rest are noted untried. */
      let aliasesNoted = 0;
      let aliasDbDown = false;
      const noteAlias = (op: InstallOp): void => {
        deps.aliasesWaiting!.add(opKey(op));
        aliasesNoted++;
      };
      const worker = async () => {
        while (failure === null) {
          const stop = mayNotWrite();
          if (stop !== null) {
            failure = new Error(stop);
            wakeAll();
            return;
          }
          if (ops.size() === 0) {
            if (planned) return;
            await new Promise<void>((r) => waiting.push(r));
            continue;
          }
          const i = startedWrites++;
          const op = ops.take();
          if (ops.size() < PLAN_AHEAD / 2) wakePlanner();
          if (deps.rate > 0) {
            const due = started + (i / deps.rate) * 1000;
            const wait = due - nowMs();
            if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          }
          try {
            if (aliasDbDown && deps.aliasesWaiting && isAliasOp(op)) noteAlias(op);
            // A record changed since it was planned is the sink's to write (stale-writes.ts).
            else if (await writeUnlessStale(op, fresh)) deps.metrics.kamailioRepairs.inc({ source: "reload" });
          } catch (err) {
            if (err instanceof AliasDbUnreachableError && deps.aliasesWaiting) {
              aliasDbDown = true;
              noteAlias(op);
            } else if (isTransient(err)) {
              failure ??= err;
              wakeAll();
              return;
            } else {
              deps.log.error({ err: (err as Error).message }, `reload skipped ${describe(op)}`);
              deps.metrics.kamailioWriteFailures.inc({ reason: "rejected" });
              status.refused = (status.refused ?? 0) + 1;
            }
          }
          status.done++;
          onStatus(status);
        }
      };
      const window = bulk?.window ?? deps.window;
      await Promise.all([planning, ...Array.from({ length: window }, worker)]);
      if (failure !== null) throw failure;
      if (aliasesNoted > 0) {
        // Written down before the reload counts as done: nothing else would write them.
        deps.aliasesWaiting!.flush();
        status.aliasesWaiting = aliasesNoted;
        deps.log.warn({ aliases: aliasesNoted }, "aliases wait for alias_db's database: the reload went on without them, and they are written once it answers");
      }
      const secs = Math.max(0.001, (nowMs() - started) / 1000);
      status = { ...status, state: "done", finishedAt: new Date(nowMs()).toISOString(), rate: Math.round(status.done / secs) };
      reach.state = "done";
      doneUpTo = reach.upTo;
      deps.log.info({ written: status.done, unchanged: status.unchanged, refused: status.refused, aliasesWaiting: status.aliasesWaiting, seconds: secs, perSecond: status.rate, channel: status.channel }, "Kamailio is whole again");
    } catch (err) {
      fail(reach, err);
    } finally {
      wakeRunning = null;
      watch.close();
      await bulk?.close().catch(() => undefined);
    }
    onStatus(status);
    return { ...status };
  }

  function fail(reach: ReloadReach, err: unknown): void {
    reach.state = "failed";
    status = { ...status, state: "failed", finishedAt: new Date(nowMs()).toISOString(), error: (err as Error).message };
    if (stopping) deps.log.warn({ done: status.done, total: status.total }, "stopped putting the state back into Kamailio: the agent is stopping; it is redone when the agent starts again");
    else if (held()) deps.log.warn({ done: status.done, total: status.total }, "stopped putting the state back into Kamailio: this node's journal is behind its peers");
    else deps.log.warn({ err: (err as Error).message, done: status.done, total: status.total }, "putting the state back into Kamailio failed; it will be retried");
  }

  /** The run under way writes every live record. */
  let runningWhole = false;
  const reloader: Reloader = {
    run(reason, opts) {
      const whole = opts?.whole === true;
      // A whole one asked for while one by difference runs would not get what it asked for by
      // joining it (a preloading Kamailio lacking what its database holds): it runs after it.
      if (running !== null && whole && !runningWhole) return running.then(() => undefined, () => undefined).then(() => reloader.run(reason, opts));
      if (running === null) {
        runningWhole = whole;
        running = reload(reason, whole).finally(() => {
          running = null;
        });
      }
      return running;
    },
    settled: () => (running === null ? Promise.resolve() : running.then(() => undefined, () => undefined)),
    status: () => ({ ...status }),
    reach: () => ({ last: last === null ? null : { ...last }, done: doneUpTo }),
    stop() {
      stopping = true;
      wakeRunning?.();
    },
  };
  return reloader;
}
