/**
 * Puts the whole live state back into a Kamailio that lost it: after a restart with usrloc in
 * memory (db_mode 0) Kamailio starts empty and nothing in it says so (core-rpc.ts notices).
 *
 * Every live binding (this node's own too: the phones will re-register, but until they do calls
 * must still find them) and every alias is written, `window` writes in flight, at most `rate` per
 * second when set, with progress in status. A Kamailio that preloads from its database
 * (db_mode 1/2) already holds what it had written there: then only the difference between the
 * journal and Kamailio's `location` table is written, plus the removal of rows the journal no
 * longer has live.
 */
import type { KamailioReloadStatus } from "../contract/protocol.js";
import type { BindingValue, Change } from "../contract/records.js";
import type { ReplicaStore } from "../core/store.js";
import { isTransient } from "../core/transient.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import { bindingKey, planRestore, recordKey, ulBinding, type InstallOp, type PlanContext } from "./install-plan.js";
import type { KamailioDb } from "./kamailio-db.js";
import { describe, type KamailioWriter } from "./kamailio-writer.js";

export type ReloadStatus = KamailioReloadStatus;

export interface Reloader {
  /** Runs one reload to its end; a second call while one runs joins it. */
  run(reason: string): Promise<ReloadStatus>;
  status(): ReloadStatus;
}

export interface ReloaderDeps {
  store: ReplicaStore;
  writer: KamailioWriter;
  plan: Omit<PlanContext, "nowSec">;
  /** Kamailio's database when it preloads from it (db_mode 1/2): reload by difference. */
  preloadDb: KamailioDb | null;
  log: Logger;
  metrics: Metrics;
  window: number;
  /** Writes per second; 0 = unlimited. */
  rate: number;
  nowMs?: () => number;
}

export function createReloader(deps: ReloaderDeps): Reloader {
  const nowMs = deps.nowMs ?? Date.now;
  let status: ReloadStatus = { state: "idle", reason: null, total: 0, done: 0, unchanged: 0, startedAt: null, finishedAt: null, rate: 0, error: null };
  let running: Promise<ReloadStatus> | null = null;

  async function collectOps(nowSec: number): Promise<{ ops: InstallOp[]; unchanged: number }> {
    const ctx: PlanContext = { ...deps.plan, nowSec };
    const ops: InstallOp[] = [];
    let unchanged = 0;
    const rows = deps.preloadDb ? await deps.preloadDb.listLocations(nowSec) : null;
    const inDb = new Map(rows?.map((r) => [bindingKey(r.aor, r.contact), r]) ?? []);
    for (const kind of ["loc", "alias"] as const) {
      let after = "";
      for (;;) {
        const page = await deps.store.page(kind, { search: "", after, limit: 5000, nowSec });
        for (const c of page.items) {
          const op = planRestore(c, ctx);
          if (op === null) continue;
          const id = recordKey(c);
          const row = inDb.get(id);
          inDb.delete(id);
          if (row && kind === "loc" && sameAsRow(c, row, deps.plan.nodeId)) unchanged++;
          else ops.push(op);
        }
        if (page.next === null) break;
        after = page.next;
      }
    }
    for (const r of inDb.values()) ops.push({ op: "rm-contact", table: deps.plan.locationTable, aor: r.aor, contact: r.contact });
    return { ops, unchanged };
  }

  async function reload(reason: string): Promise<ReloadStatus> {
    const started = nowMs();
    status = { state: "running", reason, total: 0, done: 0, unchanged: 0, startedAt: new Date(started).toISOString(), finishedAt: null, rate: 0, error: null };
    deps.log.info({ reason, byDifference: deps.preloadDb !== null }, "putting the live state back into Kamailio");
    try {
      const nowSec = Math.floor(started / 1000);
      const { ops, unchanged } = await collectOps(nowSec);
      status = { ...status, total: ops.length, unchanged };
      let next = 0;
      let failure: unknown = null;
      const worker = async () => {
        while (failure === null && next < ops.length) {
          const i = next++;
          if (deps.rate > 0) {
            const due = started + (i / deps.rate) * 1000;
            const wait = due - nowMs();
            if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          }
          const op = ops[i]!;
          try {
            await deps.writer.write(op, nowSec);
            deps.metrics.kamailioRepairs.inc({ source: "reload" });
          } catch (err) {
            if (isTransient(err)) {
              failure ??= err;
              return;
            }
            deps.log.error({ err: (err as Error).message }, `reload skipped ${describe(op)}`);
          }
          status.done++;
        }
      };
      await Promise.all(Array.from({ length: Math.min(deps.window, Math.max(1, ops.length)) }, worker));
      if (failure !== null) throw failure;
      const secs = Math.max(0.001, (nowMs() - started) / 1000);
      status = { ...status, state: "done", finishedAt: new Date(nowMs()).toISOString(), rate: Math.round(status.done / secs) };
      deps.log.info({ written: status.done, unchanged, seconds: secs, perSecond: status.rate }, "Kamailio is whole again");
    } catch (err) {
      status = { ...status, state: "failed", finishedAt: new Date(nowMs()).toISOString(), error: (err as Error).message };
      deps.log.warn({ err: (err as Error).message, done: status.done, total: status.total }, "putting the state back into Kamailio failed; it will be retried");
    }
    return { ...status };
  }

  return {
    run(reason) {
      running ??= reload(reason).finally(() => {
        running = null;
      });
      return running;
    },
    status: () => ({ ...status }),
  };
}

/** The database row already says what the journal says (as far as Kamailio routes by it). */
function sameAsRow(c: Change, row: { expires: number; path: string; received: string; q: number }, nodeId: string): boolean {
  const want = ulBinding(c.sub, c.value as BindingValue, nodeId);
  const expiresOk = want.expires === 0 ? row.expires === 0 : Math.abs(row.expires - want.expires) <= 2;
  return expiresOk && row.path === want.path && row.received === want.received && Math.abs(row.q - want.q) < 0.001;
}
