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
 * for the reconcile to learn).
 */
import type { KamailioReloadStatus } from "../contract/protocol.js";
import { hlcToMillis, type BindingValue, type Change, type VersionVector } from "../contract/records.js";
import type { ReplicaStore } from "../core/store.js";
import { isTransient } from "../core/transient.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import { bindingKey, planRestore, recordKey, ulBinding, type InstallOp, type PlanContext } from "./install-plan.js";
import { watchChangesAfter, writeUnlessStale, type ChangeWatch, type OnStored } from "./stale-writes.js";
import type { KamailioDb } from "./kamailio-db.js";
import { describe, type KamailioWriter } from "./kamailio-writer.js";
import { UL_ADD_CALLID } from "./registrar-input.js";

export type ReloadStatus = KamailioReloadStatus;

/**
 * Records planned per turn of the event loop. Kamailio drains the bulk channel's 24 KB in flight
 * in about 2 ms, and a turn spent planning cannot send it more: 1,000 records took about 5 ms (and
 * garbage collection as much again), 250 take about 1.5 ms.
 */
export const RELOAD_PAGE = 250;
/**
 * Planned writes not yet started, at most. Planning runs several times faster than Kamailio takes
 * writes; unchecked, it held the event loop for the first ~0.9 s of a 100,000-record reload while
 * only a few writes went out per page, and kept every planned write in memory.
 */
export const PLAN_AHEAD = 2000;

export interface Reloader {
  /** Runs one reload to its end; a second call while one runs joins it. */
  run(reason: string): Promise<ReloadStatus>;
  /** Resolves once no reload runs (at once when none does), however the one running ends. */
  settled(): Promise<void>;
  status(): ReloadStatus;
  /**
   * Where the journal stood when reloads began: each writes every live record stored up to there
   * (or leaves it to the sink, should it change later), and the sink need not write those again.
   * `last`: the reload begun last (its `upTo` null until read); `done`: the last one that finished.
   */
  reach(): { last: ReloadReach | null; done: VersionVector | null };
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

export interface ReloaderDeps {
  store: ReplicaStore;
  writer: KamailioWriter;
  /** Opens the bulk channel; null (or a throw) means the reload goes through `writer`. */
  openBulk?: () => Promise<BulkSession | null>;
  plan: Omit<PlanContext, "nowSec">;
  /** Kamailio's database when it preloads from it (db_mode 1/2): reload by difference. */
  preloadDb: KamailioDb | null;
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
   * When the running Kamailio started (this host's clock, ms), and how far version stamps run
   * ahead of this host's clock. This node's own registrations stored after Kamailio started were
   * taken by that Kamailio itself: it holds them, or the phone de-registered while the agent was
   * away, so the reload leaves them to the reconcile (writing them would bring such a phone back
   * and relabel the rest as the agent's). Unknown: everything is written.
   */
  kamailioStart?: () => { startedMs: number; clockLeadMs: number } | null;
  /**
   * Told the status when a run starts (before its first write), after each write, and when it
   * ends: reload-mark.ts keeps in the journal that a reload is under way.
   */
  onStatus?: (s: ReloadStatus) => void;
}

/** Stamps within this of Kamailio's start (its uptime has whole seconds) are taken as before it. */
const START_SLACK_MS = 2000;

/** Why a reload did not run or stopped while held. */
export const RELOAD_HELD = "stopped: this node's journal is behind its peers, so nothing of it is written into Kamailio; start the agent afresh (see `locmesh status`)";

export function createReloader(deps: ReloaderDeps): Reloader {
  const nowMs = deps.nowMs ?? Date.now;
  let status: ReloadStatus = { state: "idle", reason: null, total: 0, done: 0, unchanged: 0, startedAt: null, finishedAt: null, rate: 0, channel: null, error: null };
  let running: Promise<ReloadStatus> | null = null;
  let last: ReloadReach | null = null;
  let doneUpTo: VersionVector | null = null;

  /**
   * Plans the writes page by page into `into`, calling `planned(examined)` after each page, so that
   * writing starts with the first page instead of after the last. Before each page it waits for
   * `room()`, which answers false when the run has failed and planning should stop.
   */
  async function collectOps(nowSec: number, into: Backlog, planned: (examined: number) => void, room: () => Promise<boolean>): Promise<void> {
    const ctx: PlanContext = { ...deps.plan, nowSec };
    const start = deps.kamailioStart?.() ?? null;
    /** Taken by the running Kamailio itself (see kamailioStart). */
    const takenSinceStart = (c: Change): boolean =>
      start !== null && c.kind === "loc" && c.value !== null && (c.value as BindingValue).owner === deps.plan.nodeId &&
      hlcToMillis(c.hlc) - start.clockLeadMs > start.startedMs + START_SLACK_MS;
    const rows = deps.preloadDb ? await deps.preloadDb.listLocations(nowSec) : null;
    const inDb = new Map(rows?.map((r) => [bindingKey(r.aor, r.contact), r]) ?? []);
    let examined = 0;
    for (const kind of ["loc", "alias"] as const) {
      let after = "";
      for (;;) {
        if (!(await room())) return;
        const page = await deps.store.page(kind, { search: "", after, limit: RELOAD_PAGE, nowSec, countTotal: false });
        for (const c of page.items) {
          examined++;
          const op = takenSinceStart(c) ? null : planRestore(c, ctx);
          if (op === null) continue;
          const id = recordKey(c);
          const row = inDb.get(id);
          inDb.delete(id);
          if (row && kind === "loc" && sameAsRow(c, row, deps.plan.nodeId)) status.unchanged++;
          else into.push(op);
        }
        planned(examined);
        // better-sqlite3 answers synchronously: without a turn of the event loop here, the writes
        // queued for this page would wait for the next page too.
        await new Promise((r) => setImmediate(r));
        if (page.next === null) break;
        after = page.next;
      }
    }
    // Rows the live journal does not have. One with ul.add's Call-ID was the agent's: it goes. One
    // with a phone's own Call-ID registered here; it goes only if the journal removed it after
    // Kamailio last changed it. A phone the journal never heard of (it registered while the agent
    // was away, and Kamailio restarted before a reconcile) stays, for the reconcile to learn.
    for (const r of inDb.values()) {
      if (r.callid !== UL_ADD_CALLID) {
        const known = await deps.store.get("loc", r.aor, r.contact);
        if (known === null || hlcToMillis(known.hlc) < r.lastModified * 1000) continue;
      }
      into.push({ op: "rm-contact", table: deps.plan.locationTable, aor: r.aor, contact: r.contact });
    }
    planned(examined);
  }

  async function openBulk(): Promise<BulkSession | null> {
    if (!deps.openBulk) return null;
    return deps.openBulk().catch((err: unknown) => {
      deps.log.warn({ err: (err as Error).message }, "no evapi bulk channel; reloading over jsonrpcs");
      return null;
    });
  }

  const held = deps.held ?? (() => false);
  // The status itself, not a copy, on every write: the listener reads it at once and keeps nothing.
  const onStatus = (s: ReloadStatus): void => deps.onStatus?.(s);

  async function reload(reason: string): Promise<ReloadStatus> {
    const started = nowMs();
    const reach: ReloadReach = { upTo: null, state: "running" };
    last = reach;
    if (held()) {
      reach.state = "failed";
      const at = new Date(started).toISOString();
      status = { state: "failed", reason, total: 0, done: 0, unchanged: 0, startedAt: at, finishedAt: at, rate: 0, channel: null, error: RELOAD_HELD };
      return { ...status };
    }
    const nowSec = Math.floor(started / 1000);
    // Records to look at, counted first: until the plan is complete, `total` is the writes planned
    // plus the records not yet looked at, so progress has a denominator from the start.
    const counts = await deps.store.counts(nowSec).catch(() => ({ locations: 0, aliases: 0 }));
    const toExamine = counts.locations + counts.aliases;
    status = { state: "running", reason, total: toExamine, done: 0, unchanged: 0, startedAt: new Date(started).toISOString(), finishedAt: null, rate: 0, channel: null, error: null };
    onStatus(status);
    deps.log.info({ reason, byDifference: deps.preloadDb !== null }, "putting the live state back into Kamailio");
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
    // The planner, when it is PLAN_AHEAD writes ahead, waits here for the workers.
    let plannerWaits: (() => void) | null = null;
    const wakePlanner = (): void => {
      const w = plannerWaits;
      plannerWaits = null;
      w?.();
    };
    const room = async (): Promise<boolean> => {
      while (failure === null && ops.size() >= PLAN_AHEAD) await new Promise<void>((r) => (plannerWaits = r));
      return failure === null;
    };
    const planning = collectOps(nowSec, ops, (examined) => {
      status.total = ops.planned() + Math.max(0, toExamine - examined);
      wakeAll();
    }, room).then(
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
      const worker = async () => {
        while (failure === null) {
          if (held()) {
            failure = new Error(RELOAD_HELD);
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
            // A record changed since it was planned is the sink's to write (stale-writes.ts).
            if (await writeUnlessStale(op, fresh)) deps.metrics.kamailioRepairs.inc({ source: "reload" });
          } catch (err) {
            if (isTransient(err)) {
              failure ??= err;
              wakeAll();
              return;
            }
            deps.log.error({ err: (err as Error).message }, `reload skipped ${describe(op)}`);
          }
          status.done++;
          onStatus(status);
        }
      };
      const window = bulk?.window ?? deps.window;
      await Promise.all([planning, ...Array.from({ length: window }, worker)]);
      if (failure !== null) throw failure;
      const secs = Math.max(0.001, (nowMs() - started) / 1000);
      status = { ...status, state: "done", finishedAt: new Date(nowMs()).toISOString(), rate: Math.round(status.done / secs) };
      reach.state = "done";
      doneUpTo = reach.upTo;
      deps.log.info({ written: status.done, unchanged: status.unchanged, seconds: secs, perSecond: status.rate, channel: status.channel }, "Kamailio is whole again");
    } catch (err) {
      fail(reach, err);
    } finally {
      watch.close();
      await bulk?.close().catch(() => undefined);
    }
    onStatus(status);
    return { ...status };
  }

  function fail(reach: ReloadReach, err: unknown): void {
    reach.state = "failed";
    status = { ...status, state: "failed", finishedAt: new Date(nowMs()).toISOString(), error: (err as Error).message };
    if (held()) deps.log.warn({ done: status.done, total: status.total }, "stopped putting the state back into Kamailio: this node's journal is behind its peers");
    else deps.log.warn({ err: (err as Error).message, done: status.done, total: status.total }, "putting the state back into Kamailio failed; it will be retried");
  }

  return {
    run(reason) {
      running ??= reload(reason).finally(() => {
        running = null;
      });
      return running;
    },
    settled: () => (running === null ? Promise.resolve() : running.then(() => undefined, () => undefined)),
    status: () => ({ ...status }),
    reach: () => ({ last: last === null ? null : { ...last }, done: doneUpTo }),
  };
}

/** The database row already says what the journal says (as far as Kamailio routes by it). */
function sameAsRow(c: Change, row: { expires: number; path: string; received: string; q: number }, nodeId: string): boolean {
  const want = ulBinding(c.sub, c.value as BindingValue, nodeId);
  const expiresOk = want.expires === 0 ? row.expires === 0 : Math.abs(row.expires - want.expires) <= 2;
  return expiresOk && row.path === want.path && row.received === want.received && Math.abs(row.q - want.q) < 0.001;
}

/** Writes planned and not yet started, in order. Started ones leave memory (a reload of millions). */
interface Backlog {
  push(op: InstallOp): void;
  /** Writes waiting to start. */
  size(): number;
  /** Writes planned so far, started or not. */
  planned(): number;
  /** The next write; only when size() > 0. */
  take(): InstallOp;
}

function createBacklog(): Backlog {
  let items: InstallOp[] = [];
  let head = 0;
  let planned = 0;
  return {
    push(op) {
      items.push(op);
      planned++;
    },
    size: () => items.length - head,
    planned: () => planned,
    take() {
      const op = items[head++]!;
      if (head >= 1024 && head * 2 >= items.length) {
        items = items.slice(head);
        head = 0;
      }
      return op;
    },
  };
}
