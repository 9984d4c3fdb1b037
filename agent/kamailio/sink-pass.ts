/**
 * One pass of the Kamailio sink (kamailio-sink.ts): for each origin with news, one batch read from
 * the journal after the install cursor, its ops written into Kamailio `window` at a time, and the
 * cursor advanced. It keeps what the writes tell: when each key was last written, and which keys
 * went into a database the running Kamailio does not read (`unseen`, durable in the journal).
 * Those it writes again over jsonrpcs once Kamailio answers there (resendUnseen): without that a
 * Kamailio that reads its database only at start (db_mode 1/2) lacked them until it restarted,
 * or until a reconcile (which large tables skip) found them missing. They are repeated after a
 * reload too (not forgotten): a reload writes live records only, and the Kamailio it went into
 * (first contact, a redo) may have started before a removal went into its database.
 * An alias alias_db's database could not take (`dbaliases`, no other way in) is noted the same way
 * (`aliasesWaiting`) and passed, so that its origin's bindings do not wait for that database: the
 * sink asks for it to be tried again (retryAliases) with back-off until it goes in.
 * When a pass runs, and what its failure means (retry, back-off, held), is the sink's.
 */
import type { Change, VersionVector } from "../contract/records.js";
import type { ReplicaStore } from "../core/store.js";
import { isTransient } from "../core/transient.js";
import type { KeySet } from "../journal/sqlite-key-set.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import type { InstallCursor } from "./install-cursor.js";
import { installedKind, isAliasOp, opKey, parseRecordKey, planInstall, type InstallOp, type PlanContext } from "./install-plan.js";
import { AliasDbUnreachableError, KamailioCouldNotStoreError, describe, type KamailioWriter, type WriteRoute } from "./kamailio-writer.js";

/** Thrown inside a run when writing must stop because the sink is held. */
export class SinkHeld extends Error {}

/** A set of noted keys could not be read (its notes could not be written first: a full disk). */
class NotesUnreadable extends Error {}

const RECENT_MS = 60_000;
/** After a settle of the database failed (it is away), none is tried, nor a resend asked for, for this long. */
const SETTLE_PAUSE_MS = 30_000;

export interface SinkPass {
  /**
   * One batch per origin that has news; false when there was nothing to do. Throws the first
   * transient write failure, or SinkHeld once held; a write Kamailio refuses outright is skipped.
   */
  run(): Promise<boolean>;
  /** When a write of this key finished last (ms), if within the last minute. */
  writtenAt(key: string): number | undefined;
  /** True when this key's last write went into a database the running Kamailio does not read. */
  unseenByKamailio(key: string): boolean;
  /**
   * Kamailio answers over jsonrpcs again: the next run first writes again, that way, what went
   * into its database only.
   */
  resendUnseen(): void;
  /** Aliases waiting for alias_db's database, and the last reason; null when none waits. */
  aliasesWaiting(): AliasesWaiting | null;
  /** The next pass tries the waiting aliases again, after its batches (not while a reload is due). */
  retryAliases(): void;
}

export interface AliasesWaiting {
  count: number;
  /** Why the last try failed (null when none failed since this agent started: noted before it, or by a reload). */
  error: string | null;
  /** When (ms). */
  at: number | null;
}

/** What a reload writes itself, as SinkPassDeps.leftToReload says. */
export type LeftToReload = VersionVector | "everything" | null;

/** What the sink's passes need of its deps (KamailioSinkDeps extends this). */
export interface SinkPassDeps {
  store: ReplicaStore;
  writer: KamailioWriter;
  cursor: InstallCursor;
  plan: Omit<PlanContext, "nowSec">;
  log: Logger;
  metrics: Metrics;
  /**
   * Given when Kamailio reads its database only at start (db_mode 1 or 2): true for an op that,
   * written by the fallback into that database, is not in the running Kamailio until it restarts
   * or the write is repeated over jsonrpcs (bindings, and aliases in usrloc; not alias_db's
   * `dbaliases`, which alias_db reads at every lookup and which has no jsonrpcs way in).
   */
  databaseWritesUnseen?: (op: InstallOp) => boolean;
  /**
   * Where the keys of such writes are kept (the journal's kamailio_unseen table), so that an agent
   * restarted before Kamailio answered again still repeats them. Needed with databaseWritesUnseen.
   */
  unseen?: KeySet;
  /**
   * Where the aliases alias_db's database could not take are kept (the journal's
   * kamailio_aliases_waiting table): the cursor moves past them. Without it such an alias holds back
   * its batch, and so its origin's later changes, until it goes in.
   */
  aliasesWaiting?: KeySet;
  /**
   * The live records a reload into Kamailio writes (due-reload.ts), which the sink passes over: those
   * stored up to the version vector returned, or up to where the journal stands now ("everything":
   * a reload into a restarted Kamailio is due and has not read its position yet). Removals and
   * expiries stay the sink's: a reload writes only live records. Null: none.
   */
  leftToReload?: () => LeftToReload;
}

export function createSinkPass(deps: SinkPassDeps & {
  batchSize: number;
  window: number;
  nowMs: () => number;
  held: () => boolean;
  /** A write went in, this way. */
  onWritten(route: WriteRoute, op: InstallOp): void;
  /** Kamailio refused a write outright (it is logged and skipped). */
  onRejected(message: string): void;
  /** Changes passed over because a reload writes them. */
  onPassedOver(changes: number): void;
}): SinkPass {
  const { store, writer, cursor, log, metrics, batchSize, window, nowMs, held } = deps;
  const recent = new Map<string, number>();
  /** Keys last written into a database the running Kamailio does not read (db_mode 1/2). */
  const unseen = deps.databaseWritesUnseen ? deps.unseen : undefined;
  if (deps.databaseWritesUnseen && !unseen) throw new Error("databaseWritesUnseen needs unseen, where those keys are kept");
  /** Some are left from before this agent started: repeat them once Kamailio answers. */
  let resendDue = (unseen?.size() ?? 0) > 0;
  const waitingAliases = deps.aliasesWaiting;
  /** Try the waiting aliases at the next pass (some may be left from before this agent started). */
  let aliasRetryDue = (waitingAliases?.size() ?? 0) > 0;
  let aliasFailure: { error: string; at: number } | null = null;
  /**
   * alias_db's database failed the last alias write: the aliases of later batches are noted without
   * being tried (each try may wait out a connect time-out, and the bindings beside them would wait
   * with it), until a retry finds it back. Only ever set with `aliases: dbaliases`.
   */
  let aliasDbDown = false;
  /** No settle before this (ms): the last one failed, and each try may wait out a connect time-out. */
  let settlePausedUntil = 0;

  async function pass(): Promise<boolean> {
    // A write Kamailio could not store (or an alias alias_db's database could not, when there is no
    // aliasesWaiting to note it in) holds back its origin's batch (or the resend), not the other
    // origins: they go on, and the pass fails with it at the end, to be retried.
    let stalled: KamailioCouldNotStoreError | null = null;
    // A reload due into a restarted Kamailio writes first; it is told to go on when that ends (retryNow).
    const resendNow = (): boolean => resendDue && deps.leftToReload?.() !== "everything";
    if (resendNow()) {
      try {
        await resend();
      } catch (err) {
        if (!(err instanceof KamailioCouldNotStoreError)) throw err;
        stalled = err;
      }
    }
    const vv = await store.versionVector();
    const done = cursor.get();
    const left = deps.leftToReload?.() ?? null;
    const reloadWrites = left === "everything" ? vv : left;
    let progressed = false;
    for (const [origin, have] of Object.entries(vv)) {
      const from = done[origin] ?? 0;
      if (have <= from) continue;
      if (held()) throw new SinkHeld();
      const changes = await store.readRange(origin, from, have, batchSize, installedKind(origin, deps.plan) ?? undefined);
      let passedOver: number;
      try {
        passedOver = await writeAll(changes, reloadWrites?.[origin] ?? 0);
      } catch (err) {
        if (!(err instanceof KamailioCouldNotStoreError)) throw err;
        stalled ??= err;
        continue;
      }
      deps.onPassedOver(passedOver);
      cursor.advance(origin, changes.length < batchSize ? have : changes[changes.length - 1]!.seq);
      progressed = true;
    }
    forgetGoneOrigins(vv);
    // After the batches, which a retry against a database that does not answer would hold up for
    // its time-out; not while a reload is due, which writes aliases itself (as the resend waits).
    if (aliasRetryDue && deps.leftToReload?.() !== "everything") {
      aliasRetryDue = false;
      try {
        await retryWaitingAliases();
      } catch (err) {
        aliasRetryDue = true;
        throw err;
      }
    }
    if (stalled !== null) throw stalled;
    // A write of this pass went over jsonrpcs while some wait in the database only: one more pass.
    return progressed || resendNow();
  }

  /**
   * Writes again what went into Kamailio's database only, each key as the journal holds it now, a
   * batch at a time. Stops, and waits for the next resendUnseen(), at the first write that went into
   * the database again (jsonrpcs is away again); a failed write fails the pass as any other does,
   * with the resend still due.
   */
  async function resend(): Promise<void> {
    const set = unseen!;
    let resent = 0;
    let whole: boolean;
    try {
      whole = await rewriteNoted(set, batchSize, (routes) => {
        resent += routes.rpc;
        return routes.database === 0;
      });
    } catch (err) {
      if (!(err instanceof NotesUnreadable)) throw err;
      // The notes could not be written first (the journal's disk is full): they stay noted, and
      // the resend waits for the next sign of Kamailio rather than stop the other writes.
      resendDue = false;
      log.error({ err: err.message }, "could not read the writes that went into Kamailio's database only; they are repeated at its next sign of life");
      return;
    }
    resendDue = false;
    if (!whole) log.info({ resent, left: set.size() }, "writes that went into Kamailio's database only: jsonrpcs failed again while they were repeated; the rest waits until it answers");
    else if (resent > 0) log.info({ resent }, "wrote again over jsonrpcs what had gone into Kamailio's database only, which the running Kamailio does not read");
  }

  /**
   * Writes the waiting aliases again, each as the journal holds it now, a batch at a time; stops at
   * the first batch in which alias_db's database failed again (the rest keep waiting). A write that
   * went in is forgotten by writeOps, as is one the database refused outright.
   */
  async function retryWaitingAliases(): Promise<void> {
    const set = waitingAliases!;
    let written = 0;
    const failedBefore = aliasFailure !== null;
    // One alias first: while the database is away, a retry costs one time-out, not a window of them.
    aliasDbDown = false;
    try {
      await rewriteNoted(set, 1, (routes, failedNow) => {
        written += routes.rpc + routes.database;
        return !failedNow;
      }, { recheck: true });
    } catch (err) {
      if (!(err instanceof NotesUnreadable)) throw err;
      log.error({ err: err.message }, "could not read the aliases waiting for alias_db's database; tried again later");
      aliasFailure = { error: `could not read the aliases waiting for alias_db's database: ${err.message}`, at: nowMs() };
      return;
    }
    if (set.size() === 0) {
      if (written > 0 || failedBefore) log.info({ written }, "the aliases that waited for alias_db's database went in");
      aliasFailure = null;
    }
  }

  /**
   * Writes the keys noted in `set` again, each as the journal holds it now (one with nothing to
   * write is forgotten), a batch at a time, the first of `first` keys. After each batch `goOn` is
   * told how its writes went, and whether an alias failed to go in again; resolves false when it
   * said stop, true once all were written. Throws NotesUnreadable when the set cannot be read.
   * With `recheck`, a key whose record changed while its write was on the way is noted again, to be
   * written as it is now: a reload may have written the newer version meanwhile, which this one
   * would otherwise overwrite for good (nothing reconciles alias_db's table).
   */
  async function rewriteNoted(set: KeySet, first: number, goOn: (routes: Record<WriteRoute, number>, aliasFailed: boolean) => boolean, o: { recheck?: boolean } = {}): Promise<boolean> {
    let after = "";
    for (let limit = first; ; limit = batchSize) {
      if (held()) throw new SinkHeld();
      let keys: string[];
      try {
        keys = set.list(after, limit);
      } catch (err) {
        throw new NotesUnreadable((err as Error).message, { cause: err });
      }
      if (keys.length === 0) return true;
      after = keys[keys.length - 1]!;
      const nowSec = Math.floor(nowMs() / 1000);
      const ctx: PlanContext = { ...deps.plan, nowSec };
      const ops: InstallOp[] = [];
      const planned = new Map<string, number | null>();
      for (const key of keys) {
        if (o.recheck) planned.set(key, await stampOf(key));
        const op = await currentOp(key, ctx);
        if (op === null) set.delete(key);
        else ops.push(op);
      }
      const before = aliasFailure;
      const routes = await writeOps(ops, nowSec);
      if (o.recheck) {
        for (const [key, hlc] of planned) if (!set.has(key) && (await stampOf(key)) !== hlc) set.add(key);
        set.flush();
      }
      if (!goOn(routes, aliasFailure !== before)) return false;
    }
  }

  /** The stamp of the journal's version under `key`; null when it holds none. */
  async function stampOf(key: string): Promise<number | null> {
    const { kind, key: k, sub } = parseRecordKey(key);
    return (await store.get(kind, k, sub))?.hlc ?? null;
  }

  /**
   * The write that makes Kamailio hold what the journal holds now under `key`, or null when there is
   * none to make: the record is this node's own binding, which its Kamailio took itself. A record
   * gone from the journal (purged) is removed.
   */
  async function currentOp(key: string, ctx: PlanContext): Promise<InstallOp | null> {
    const { kind, key: k, sub } = parseRecordKey(key);
    const rec = await store.get(kind, k, sub);
    if (rec !== null) return planInstall(rec, ctx);
    return kind === "alias" ? { op: "alias-rm", alias: k } : { op: "rm-contact", table: ctx.locationTable, aor: k, contact: sub };
  }

  /**
   * Writes the changes' ops, but for the live records a reload writes (stored up to
   * `reloadWritesUpTo`); resolves with how many it passed over for that.
   */
  async function writeAll(changes: readonly Change[], reloadWritesUpTo: number): Promise<number> {
    const nowSec = Math.floor(nowMs() / 1000);
    const ctx: PlanContext = { ...deps.plan, nowSec };
    const ops: InstallOp[] = [];
    let left = 0;
    for (const c of changes) {
      const op = planInstall(c, ctx);
      if (op === null) continue;
      if (c.seq <= reloadWritesUpTo && (op.op === "add" || op.op === "alias-set")) left++;
      else ops.push(op);
    }
    const routes = await writeOps(ops, nowSec);
    // jsonrpcs answered while some writes wait in the database only: repeat them at the next pass
    // (not while settling is paused: the keys written already would only be written again).
    if (routes.rpc > 0 && unseen !== undefined && unseen.size() > 0 && nowMs() >= settlePausedUntil) resendDue = true;
    return left;
  }

  /**
   * Writes `ops` (one per key), `window` at a time; resolves with how many went each way, and
   * keeps `unseen` and `aliasesWaiting` up to date, written to the journal before it resolves or
   * throws, so before the cursor moves (but `unseen` on a full disk: see saveUnseen). An alias
   * alias_db's database could not take is noted there instead of failing the writes.
   */
  async function writeOps(ops: readonly InstallOp[], nowSec: number): Promise<Record<WriteRoute, number>> {
    const routes: Record<WriteRoute, number> = { rpc: 0, database: 0 };
    let next = 0;
    let failure: unknown = null;
    /** Kamailio is not reachable: the other writes would only wait for their own time-outs. */
    let stop = false;
    const worker = async () => {
      while (!stop && next < ops.length) {
        if (held()) {
          failure = new SinkHeld();
          stop = true;
          return;
        }
        const op = ops[next++]!;
        const key = opKey(op);
        if (aliasDbDown && waitingAliases !== undefined && isAliasOp(op)) {
          waitingAliases.add(key);
          continue;
        }
        try {
          const inDatabaseOnly = unseen?.has(key) ?? false;
          const route = await writer.write(op, nowSec);
          deps.onWritten(route, op);
          metrics.kamailioWrites.inc({ route });
          routes[route]++;
          recent.set(key, nowMs());
          // Over jsonrpcs after the database: Kamailio wrote a row of its own beside the agent's.
          if (route === "rpc" && inDatabaseOnly && !(await settled(op))) continue;
          if (route === "database" && deps.databaseWritesUnseen?.(op)) unseen!.add(key);
          else unseen?.delete(key);
          waitingAliases?.delete(key);
          if (isAliasOp(op)) aliasDbDown = false;
        } catch (err) {
          if (err instanceof AliasDbUnreachableError && waitingAliases !== undefined) {
            // Noted, and passed: the cursor may move on, the bindings of this origin with it.
            waitingAliases.add(key);
            aliasFailure = { error: err.message, at: nowMs() };
            aliasDbDown = true;
            continue;
          }
          if (isTransient(err)) {
            failure ??= err;
            // Kamailio answered that it could not keep this one (say its memory is full): the
            // batch's other keys still go in, a removal among them may make room, and the batch
            // is retried as a whole. Every key appears once in a batch, so none is reordered.
            if (err instanceof KamailioCouldNotStoreError) continue;
            stop = true;
            return;
          }
          deps.onRejected((err as Error).message);
          metrics.kamailioWriteFailures.inc({ reason: "rejected" });
          // Repeating it would get the same answer.
          unseen?.delete(key);
          waitingAliases?.delete(key);
          log.error({ err: (err as Error).message }, `skipped ${describe(op)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(window, ops.length) }, worker));
    saveUnseen();
    // Unlike the unseen notes, these are the only trace of the write once the cursor has moved past
    // it: not written down, the batch fails and is written again, the cursor where it was.
    try {
      waitingAliases?.flush();
    } catch (err) {
      failure ??= err;
    }
    if (failure !== null) throw failure;
    pruneRecent();
    return routes;
  }

  /**
   * Brings Kamailio's database rows of a key it now holds in line (writer.ts settleDatabase): the
   * agent's own row of a contact Kamailio wrote under its own ruid goes. False when that failed, or
   * waits after a failure: the key stays noted, and a later resend tries again.
   */
  async function settled(op: InstallOp): Promise<boolean> {
    if (!writer.settleDatabase) return true;
    if (nowMs() < settlePausedUntil) return false;
    try {
      const dropped = await writer.settleDatabase(op);
      if (dropped > 0) log.info({ key: describe(op), rows: dropped }, "dropped the database's other rows of a write Kamailio now holds under its own ruid: it would load the contact twice at its next start");
      return true;
    } catch (err) {
      settlePausedUntil = nowMs() + SETTLE_PAUSE_MS;
      log.warn({ err: (err as Error).message, key: describe(op), retryInMs: SETTLE_PAUSE_MS }, "could not bring Kamailio's database rows of a write it now holds in line; tried again with a later resend");
      return false;
    }
  }

  /**
   * Writes down which keys are unseen. Failing (a full disk), the notes stay in memory for the next
   * try; only a crash before then forgets them, and the reconcile (below reconcileMaxContacts) or
   * Kamailio's next restart repairs what they named.
   */
  let unseenSaveFailing = false;
  function saveUnseen(): void {
    try {
      unseen?.flush();
      unseenSaveFailing = false;
    } catch (err) {
      if (!unseenSaveFailing) log.error({ err: (err as Error).message }, "could not note in the journal which writes went into Kamailio's database only; retried after the next writes");
      unseenSaveFailing = true;
    }
  }

  function forgetGoneOrigins(vv: VersionVector): void {
    const done = cursor.get();
    if (Object.keys(done).some((o) => !(o in vv))) {
      const kept: VersionVector = {};
      for (const [o, s] of Object.entries(done)) if (o in vv) kept[o] = s;
      cursor.reset(kept);
    }
  }

  function pruneRecent(): void {
    if (recent.size < 10_000) return;
    const cutoff = nowMs() - RECENT_MS;
    for (const [k, t] of recent) if (t < cutoff) recent.delete(k);
  }

  return {
    run: pass,
    writtenAt(key) {
      const t = recent.get(key);
      return t !== undefined && nowMs() - t < RECENT_MS ? t : undefined;
    },
    unseenByKamailio: (key) => unseen?.has(key) ?? false,
    resendUnseen: () => {
      if ((unseen?.size() ?? 0) > 0) resendDue = true;
    },
    aliasesWaiting() {
      const count = waitingAliases?.size() ?? 0;
      if (count === 0) {
        // Gone another way (each written by a later change): the next one starts without a reason.
        aliasFailure = null;
        return null;
      }
      return { count, error: aliasFailure?.error ?? null, at: aliasFailure?.at ?? null };
    },
    retryAliases: () => {
      if ((waitingAliases?.size() ?? 0) > 0) aliasRetryDue = true;
    },
  };
}
