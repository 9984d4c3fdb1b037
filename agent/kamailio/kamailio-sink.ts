/**
 * Writes what the journal holds into the local Kamailio, in journal order, and remembers how far
 * it got (install-cursor.ts). It reads the journal itself rather than a queue of notifications, so
 * nothing is lost when the agent dies between a commit and a write: on restart the cursor says
 * what is still to do, and that is also the exact `pendingWrites` figure.
 *
 * One batch at a time, each read fresh from the journal, so a key is never written out of order;
 * inside a batch every key appears once, and the writes are pipelined up to `window` at a time
 * (sink-pass.ts; this module decides when a pass runs, and retries).
 * A write that must wait (Kamailio unreachable through jsonrpcs and its database) stops the run;
 * it is retried with capped exponential back-off and reported in status and metrics. One Kamailio
 * answered it could not keep (memory full) lets the rest of its batch go on before that retry. A write
 * Kamailio refuses outright is logged, counted and skipped: retrying would not change the answer.
 * An alias alias_db's database could not take is noted in the journal and passed (sink-pass.ts), and
 * tried again on its own back-off: the sink reports it waiting meanwhile, and writes on.
 *
 * A reload into Kamailio writes every live record itself (reload.ts). The changes it covers, the
 * ones that waited while Kamailio restarted among them, are passed over here rather than written a
 * second time (leftToReload in the deps); removals and expiries still go in from here.
 */
import type { Change } from "../contract/records.js";
import { isTransient } from "../core/transient.js";
import { isAliasOp, parseRecordKey } from "./install-plan.js";
import type { WriteRoute } from "./kamailio-writer.js";
import { SinkHeld, createSinkPass, type AliasesWaiting, type SinkPass, type SinkPassDeps } from "./sink-pass.js";

/** "held": told to write nothing (this node's journal is behind, see held in the deps). */
export type SinkState = "idle" | "writing" | "waiting" | "held";

export interface SinkStatus {
  state: SinkState;
  /** How the last successful write went in. */
  lastRoute: WriteRoute | null;
  lastError: string | null;
  lastErrorAt: string | null;
  /** Writes Kamailio refused outright since start (skipped). */
  rejected: number;
  /**
   * Aliases that wait for alias_db's database (`aliases: dbaliases`), tried again on their own
   * back-off while the other writes go on: not a "waiting" state; null when none waits.
   */
  aliasesWaiting: AliasesWaiting | null;
}

/** How many waiting aliases pending() checks against the changes past the cursor, at most. */
const PENDING_KEYS_CHECKED = 2_000;

/** What status says of aliases that wait for alias_db's database. */
export function aliasesWaitingText(a: AliasesWaiting): string {
  const n = a.count === 1 ? "1 alias waits" : `${a.count} aliases wait`;
  return `${n} for alias_db's database: ${a.error ?? "tried again shortly"}`;
}

/** writtenAt and unseenByKamailio are the passes' (sink-pass.ts). */
export interface KamailioSink extends Pick<SinkPass, "writtenAt" | "unseenByKamailio"> {
  start(): void;
  /** Something was committed or applied: look again. */
  kick(): void;
  /**
   * Kamailio is back (the attachment saw it answer, or a reload into it finished): retry pending
   * writes now instead of when the retry timer fires, with the back-off started over.
   */
  retryNow(): void;
  /** Aliases were noted outside the sink (a reload, reload.ts): try them soon, as the waiting ones. */
  retryAliases(): void;
  status(): SinkStatus;
  /** Journal changes not yet written into Kamailio, the aliases that wait for alias_db's database among them. */
  pending(): Promise<number>;
  /** `pending()` as of the end of the last run (cheap; for status messages to peers). */
  lastPending(): number;
  /**
   * True when this version has not been written into Kamailio yet (the cursor is not past it; an
   * alias waiting for alias_db's database is passed, and not asked about: only the reconcile and
   * the registrar events ask, of bindings and usrloc's aliases).
   */
  isPending(change: Pick<Change, "origin" | "seq">): boolean;
  /**
   * Resolves when everything committed so far has been written (tests, shutdown), but for aliases
   * that wait for alias_db's database (status.aliasesWaiting); while held, only at close.
   */
  drained(): Promise<void>;
  close(): Promise<void>;
}

/** The store, writer, cursor and what a reload writes itself are the passes' (sink-pass.ts). */
export interface KamailioSinkDeps extends SinkPassDeps {
  batchSize?: number;
  window?: number;
  retry?: { minMs: number; maxMs: number };
  nowMs?: () => number;
  /**
   * True while nothing may be written into Kamailio (this node's journal is behind its peers, so it
   * is stale). Asked before every write; once true the sink stops and stays stopped, keeping its
   * cursor where the last finished batch left it.
   */
  held?: () => boolean;
  /**
   * Awaited before each retry after failed writes: the agent asks Kamailio which instance runs, so
   * that one restarted meanwhile is noticed, and the reload into it takes over what waits, before
   * anything is written into it (without it, in 3 of 5 runs of kamailio-restart.test.ts as first
   * written, the sink's retry came first and wrote the 40 waiting changes before the reload did).
   */
  beforeRetry?: () => Promise<void>;
  /** Back-off of the tries of aliases that wait for alias_db's database; default 1 s doubling to 60 s. */
  aliasRetry?: { minMs: number; maxMs: number };
  /**
   * Aliases go into alias_db's table (`kamailio.aliases: dbaliases`), through the database only:
   * their writes say nothing of jsonrpcs, so they leave the writer's route in status as it was.
   */
  aliasesInDatabaseOnly?: boolean;
}

export function createKamailioSink(deps: KamailioSinkDeps): KamailioSink {
  const { store, writer, cursor, log, metrics } = deps;
  const batchSize = deps.batchSize ?? 500;
  const window = deps.window ?? 32;
  const retry = deps.retry ?? { minMs: 100, maxMs: 5000 };
  // Longer than the writes' own: a try against a database host that does not answer waits out
  // its connect time-out, and the sink's other writes wait behind it.
  const aliasRetry = deps.aliasRetry ?? { minMs: 1000, maxMs: 60_000 };
  const nowMs = deps.nowMs ?? Date.now;
  let status: Omit<SinkStatus, "aliasesWaiting"> = { state: "idle", lastRoute: null, lastError: null, lastErrorAt: null, rejected: 0 };
  let running: Promise<void> | null = null;
  let again = false;
  let closed = false;
  let attempt = 0;
  let retryTimer: NodeJS.Timeout | null = null;
  /** The next try of the aliases that wait for alias_db's database, and how many tries failed. */
  let aliasTimer: NodeJS.Timeout | null = null;
  let aliasAttempt = 0;
  let saveTimer: NodeJS.Timeout | null = null;
  let waiters: (() => void)[] = [];
  /** Changes passed over because a reload writes them, since the last run that finished. */
  let passedOver = 0;
  /** retryNow() calls so far: Kamailio answered again, or a reload into it finished. */
  let comebacks = 0;

  const held = deps.held ?? (() => false);
  const passes = createSinkPass({
    store, writer, cursor, plan: deps.plan, log, metrics, batchSize, window, nowMs, held,
    databaseWritesUnseen: deps.databaseWritesUnseen, unseen: deps.unseen, aliasesWaiting: deps.aliasesWaiting, leftToReload: deps.leftToReload,
    onWritten: (route, op) => {
      if (!(deps.aliasesInDatabaseOnly && isAliasOp(op))) status.lastRoute = route;
    },
    onRejected: (message) => {
      status = { ...status, rejected: status.rejected + 1, lastError: message, lastErrorAt: new Date(nowMs()).toISOString() };
    },
    onPassedOver: (changes) => (passedOver += changes),
  });

  function kick(): void {
    if (closed) return;
    if (held()) return; // status() reports "held"
    if (running) {
      again = true;
      return;
    }
    if (retryTimer) return; // a retry is already scheduled
    running = run().finally(() => {
      running = null;
      if (again && !retryTimer) {
        again = false;
        kick();
      }
    });
  }

  async function run(): Promise<void> {
    const comebacksBefore = comebacks;
    try {
      status.state = "writing";
      for (;;) {
        again = false;
        const progressed = await passes.run();
        if (!progressed) break;
      }
      if (passedOver > 0) log.info({ changes: passedOver }, "waiting changes left to the reload into Kamailio, which writes every live record: not written twice");
      passedOver = 0;
      attempt = 0;
      status.state = "idle";
      const aliases = passes.aliasesWaiting();
      if (aliases === null) aliasAttempt = 0;
      else aliasesWait(aliases);
      scheduleSave();
      await updateGauge();
      if (!again) for (const w of waiters.splice(0)) w();
    } catch (err) {
      if (err instanceof SinkHeld) {
        saveCursor();
        await updateGauge().catch(() => undefined);
        return;
      }
      if (!isTransient(err)) log.error({ err }, "kamailio sink failed unexpectedly; retrying");
      metrics.kamailioWriteFailures.inc({ reason: "unavailable" });
      if (isTransient(err) && comebacks !== comebacksBefore) {
        // Kamailio came back while this run's writes failed (one may have waited out its time-out):
        // the failure is from before, and reported now it said that Kamailio died or did not run
        // seconds after it was back and reloaded. retryNow() asked for the run again: it comes at once
        // (`again` too, as a retryNow() during an earlier pass of this run was reset by the next).
        again = true;
        saveCursor();
        await updateGauge().catch(() => undefined);
        return;
      }
      status = { ...status, state: "waiting", lastError: (err as Error).message, lastErrorAt: new Date(nowMs()).toISOString() };
      const delay = Math.min(retry.maxMs, retry.minMs * 2 ** attempt++);
      if (attempt === 1 || attempt % 20 === 0) log.warn({ err: (err as Error).message, retryInMs: delay }, "kamailio writes are pending");
      saveCursor();
      await updateGauge().catch(() => undefined);
      retryTimer = setTimeout(() => {
        // Still set while it waits, so that new changes do not start a run before it.
        void (deps.beforeRetry?.() ?? Promise.resolve()).catch(() => undefined).then(() => {
          retryTimer = null;
          kick();
        });
      }, delay);
      retryTimer.unref();
    }
  }

  /**
   * Aliases wait for alias_db's database (status says so, from the passes): they are tried again on
   * their own back-off, and the other writes go on meanwhile.
   */
  function aliasesWait(aliases: AliasesWaiting): void {
    if (aliasTimer || closed) return;
    const delay = Math.min(aliasRetry.maxMs, aliasRetry.minMs * 2 ** aliasAttempt++);
    if (aliases.error !== null) {
      metrics.kamailioWriteFailures.inc({ reason: "unavailable" });
      if (aliasAttempt === 1 || aliasAttempt % 20 === 0) log.warn({ err: aliases.error, aliases: aliases.count, retryInMs: delay }, "aliases wait for alias_db's database; bindings are written meanwhile");
    }
    aliasTimer = setTimeout(() => {
      aliasTimer = null;
      passes.retryAliases();
      kick();
    }, delay);
    aliasTimer.unref();
  }

  /**
   * Saves the cursor; a failure (e.g. a full disk) only means writes repeat after a restart, so it
   * is logged once per run of failures and never thrown: thrown from the retry path it would crash
   * the agent (found by the disk-full drill).
   */
  let saveFailing = false;
  function saveCursor(): void {
    try {
      cursor.save();
      if (saveFailing) log.info("the kamailio write cursor is saved again");
      saveFailing = false;
    } catch (err) {
      if (!saveFailing) log.error({ err: (err as Error).message }, "could not save the kamailio write cursor; writes may repeat after a restart");
      saveFailing = true;
    }
  }

  function scheduleSave(): void {
    if (saveTimer) return;
    saveTimer = setTimeout(() => {
      saveTimer = null;
      saveCursor();
    }, 200);
    saveTimer.unref();
  }

  /**
   * The changes past the cursor, and the aliases that wait for alias_db's database. A waiting alias
   * whose journal record is itself past the cursor (its batch failed after it was noted, or a newer
   * change of it came since) is one write, counted once; past PENDING_KEYS_CHECKED waiting aliases,
   * the rest are counted without that check, and all of them when the check cannot read the notes
   * (a full disk keeps new ones from being written down): a gauge, not worth failing status for.
   */
  async function pending(): Promise<number> {
    const vv = await store.versionVector();
    const done = cursor.get();
    let n = 0;
    const behind = new Set<string>();
    for (const [origin, have] of Object.entries(vv)) {
      const from = done[origin] ?? 0;
      if (have <= from) continue;
      n += await store.countAfter(origin, from);
      behind.add(origin);
    }
    const waiting = deps.aliasesWaiting;
    let left = waiting?.size() ?? 0;
    if (waiting === undefined || left === 0 || behind.size === 0) return n + left;
    const all = left;
    try {
      let after = "";
      let checked = 0;
      while (checked < PENDING_KEYS_CHECKED) {
        const keys = waiting.list(after, 500);
        if (keys.length === 0) break;
        for (const key of keys) {
          const { kind, key: k, sub } = parseRecordKey(key);
          const rec = await store.get(kind, k, sub);
          if (rec !== null && behind.has(rec.origin) && rec.seq > (done[rec.origin] ?? 0)) left--;
        }
        checked += keys.length;
        after = keys[keys.length - 1]!;
      }
    } catch {
      left = all;
    }
    return n + left;
  }

  let lastPending = 0;
  async function updateGauge(): Promise<void> {
    lastPending = await pending();
    metrics.pendingWrites.set(lastPending);
  }

  function retryNow(): void {
    if (closed) return;
    // Kamailio answers again: the next write goes through jsonrpcs. A last write that went into
    // its database must not keep status saying "jsonrpcs unavailable" until then.
    if (status.lastRoute === "database") status.lastRoute = "rpc";
    // ...and what went into its database only is written again, that way (and the aliases that wait
    // for alias_db's database are tried: it is often the database Kamailio's usrloc uses too).
    passes.resendUnseen();
    passes.retryAliases();
    comebacks++;
    attempt = 0;
    if (retryTimer) {
      clearTimeout(retryTimer);
      retryTimer = null;
    }
    kick();
  }

  return {
    start: kick,
    kick,
    retryNow,
    retryAliases() {
      passes.retryAliases();
      kick();
    },
    status: () => ({ ...status, aliasesWaiting: passes.aliasesWaiting(), ...(held() ? { state: "held" as const } : {}) }),
    pending,
    lastPending: () => lastPending,
    isPending: (c) => c.seq > (cursor.get()[c.origin] ?? 0),
    writtenAt: passes.writtenAt,
    unseenByKamailio: passes.unseenByKamailio,
    drained: () => new Promise<void>((resolve) => {
      waiters.push(resolve);
      kick();
    }),
    async close() {
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      if (aliasTimer) clearTimeout(aliasTimer);
      if (saveTimer) clearTimeout(saveTimer);
      await running?.catch(() => undefined);
      saveCursor();
      for (const w of waiters.splice(0)) w();
      waiters = [];
    },
  };
}
