/**
 * One pass of the Kamailio sink (kamailio-sink.ts): for each origin with news, one batch read from
 * the journal after the install cursor, its ops written into Kamailio `window` at a time, and the
 * cursor advanced. It keeps what the writes tell: when each key was last written, and which keys
 * went into a database the running Kamailio does not read. When a pass runs, and what its failure
 * means (retry, back-off, held), is the sink's.
 */
import type { Change, VersionVector } from "../contract/records.js";
import type { ReplicaStore } from "../core/store.js";
import { isTransient } from "../core/transient.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import type { InstallCursor } from "./install-cursor.js";
import { installedKind, opKey, planInstall, type InstallOp, type PlanContext } from "./install-plan.js";
import { KamailioCouldNotStoreError, describe, type KamailioWriter, type WriteRoute } from "./kamailio-writer.js";

/** Thrown inside a run when writing must stop because the sink is held. */
export class SinkHeld extends Error {}

const RECENT_MS = 60_000;

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
  /** Kamailio restarted and read its database: what was written there is in it now. */
  kamailioLoadedItsDatabase(): void;
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
   * True when Kamailio reads its database only at start (db_mode 1 or 2): what the fallback writes
   * there is not in the running Kamailio until it restarts or the write is repeated over jsonrpcs.
   */
  databaseWritesUnseen?: boolean;
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
  onWritten(route: WriteRoute): void;
  /** Kamailio refused a write outright (it is logged and skipped). */
  onRejected(message: string): void;
  /** Changes passed over because a reload writes them. */
  onPassedOver(changes: number): void;
}): SinkPass {
  const { store, writer, cursor, log, metrics, batchSize, window, nowMs, held } = deps;
  const recent = new Map<string, number>();
  /** Bindings last written into a database the running Kamailio does not read (db_mode 1/2). */
  const unseen = new Set<string>();

  async function pass(): Promise<boolean> {
    const vv = await store.versionVector();
    const done = cursor.get();
    const left = deps.leftToReload?.() ?? null;
    const reloadWrites = left === "everything" ? vv : left;
    let progressed = false;
    // A write Kamailio (or alias_db's database) could not store holds back its origin's batch, not
    // the other origins: they go on, and the pass fails with it at the end, to be retried.
    let stalled: KamailioCouldNotStoreError | null = null;
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
    if (stalled !== null) throw stalled;
    return progressed;
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
        try {
          const route = await writer.write(op, nowSec);
          deps.onWritten(route);
          metrics.kamailioWrites.inc({ route });
          recent.set(opKey(op), nowMs());
          if (route === "database" && deps.databaseWritesUnseen) unseen.add(opKey(op));
          else unseen.delete(opKey(op));
        } catch (err) {
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
          log.error({ err: (err as Error).message }, `skipped ${describe(op)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(window, ops.length) }, worker));
    if (failure !== null) throw failure;
    pruneRecent();
    return left;
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
    unseenByKamailio: (key) => unseen.has(key),
    kamailioLoadedItsDatabase: () => unseen.clear(),
  };
}
