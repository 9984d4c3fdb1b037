/**
 * What a reload into Kamailio writes (reload.ts), planned page by page from the journal: every live
 * binding and alias, less this node's own registrations the running Kamailio took itself, and for
 * a Kamailio that preloads from its database (db_mode 1/2) only the difference with its `location`
 * table, plus the removal of the rows the journal no longer has live. The writes wait in a Backlog
 * until a worker starts them.
 */
import { hlcToMillis, type BindingValue, type Change } from "../contract/records.js";
import type { ReplicaStore } from "../core/store.js";
import { bindingKey, planRestore, recordKey, ulBinding, type InstallOp, type PlanContext } from "./install-plan.js";
import type { KamailioDb } from "./kamailio-db.js";
import { UL_ADD_CALLID } from "./registrar-input.js";

/**
 * Records planned per turn of the event loop. Kamailio drains the bulk channel's 24 KB in flight
 * in about 2 ms, and a turn spent planning cannot send it more: 1,000 records took about 5 ms (and
 * garbage collection as much again), 250 take about 1.5 ms.
 */
export const RELOAD_PAGE = 250;

/** Stamps within this of Kamailio's start (its uptime has whole seconds) are taken as before it. */
const START_SLACK_MS = 2000;

export interface ReloadPlanDeps {
  store: ReplicaStore;
  plan: Omit<PlanContext, "nowSec">;
  /** Kamailio's database when it preloads from it (db_mode 1/2/4): reload by difference. */
  preloadDb: KamailioDb | null;
  /**
   * A binding this agent wrote into that database while jsonrpcs failed, which the running
   * Kamailio has not loaded (sink-pass.ts): written even when its row matches.
   */
  unseen?: (key: string) => boolean;
  /**
   * When the running Kamailio started (this host's clock, ms), and how far version stamps run
   * ahead of this host's clock. This node's own registrations stored after Kamailio started were
   * taken by that Kamailio itself: it holds them, or the phone de-registered while the agent was
   * away, so the reload leaves them to the reconcile (writing them would bring such a phone back
   * and relabel the rest as the agent's). Unknown: everything is written.
   */
  kamailioStart?: () => { startedMs: number; clockLeadMs: number } | null;
}

/**
 * Plans the writes page by page into `into`, calling `planned(examined)` after each page, so that
 * writing starts with the first page instead of after the last. Before each page it waits for
 * `room()`, which answers false when the run has failed and planning should stop. `unchanged()`:
 * a binding found already right in Kamailio's database (not written).
 */
export async function collectOps(
  deps: ReloadPlanDeps, nowSec: number, into: Backlog, planned: (examined: number) => void, room: () => Promise<boolean>, unchanged: () => void,
): Promise<void> {
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
        // Live in the journal: its row is never one to remove below, whether it is written or not.
        const id = recordKey(c);
        const row = inDb.get(id);
        inDb.delete(id);
        const op = takenSinceStart(c) ? null : planRestore(c, ctx);
        if (op === null) continue;
        if (row && kind === "loc" && deps.unseen?.(id) !== true && sameAsRow(c, row, deps.plan.nodeId)) unchanged();
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
  // Rows the live journal does not have (never one it holds live: a node's own phone registered
  // since Kamailio started is left out of the writes above, and its row was removed with it before,
  // 2026-11-23's operator dry run). One with ul.add's Call-ID was the agent's: it goes. One
  // with a phone's own Call-ID registered here; it goes only if the journal removed it after
  // Kamailio last changed it. A phone the journal never heard of (it registered while the agent
  // was away, and Kamailio restarted before a reconcile) stays, for the reconcile to learn.
  let looked = 0;
  for (const r of inDb.values()) {
    // A turn of the event loop now and then, as between pages above (evapi, the bulk channel).
    if (++looked % RELOAD_PAGE === 0) {
      await new Promise((res) => setImmediate(res));
      if (!(await room())) return;
    }
    const known = await deps.store.get("loc", r.aor, r.contact);
    // Stored live after the pages above were read (a REGISTER meanwhile): not the journal's to remove.
    if (known !== null && known.value !== null && liveAt(known.value as BindingValue, nowSec)) continue;
    if (r.callid !== UL_ADD_CALLID && (known === null || hlcToMillis(known.hlc) < r.lastModified * 1000)) continue;
    into.push({ op: "rm-contact", table: deps.plan.locationTable, aor: r.aor, contact: r.contact });
  }
  planned(examined);
}

function liveAt(b: BindingValue, nowSec: number): boolean {
  return b.expires === 0 || b.expires > nowSec;
}

/** The database row already says what the journal says (as far as Kamailio routes by it). */
function sameAsRow(c: Change, row: { expires: number; path: string; received: string; q: number }, nodeId: string): boolean {
  const want = ulBinding(c.sub, c.value as BindingValue, nodeId);
  const expiresOk = want.expires === 0 ? row.expires === 0 : Math.abs(row.expires - want.expires) <= 2;
  return expiresOk && row.path === want.path && row.received === want.received && Math.abs(row.q - want.q) < 0.001;
}

/** Writes planned and not yet started, in order. Started ones leave memory (a reload of millions). */
export interface Backlog {
  push(op: InstallOp): void;
  /** Writes waiting to start. */
  size(): number;
  /** Writes planned so far, started or not. */
  planned(): number;
  /** The next write; only when size() > 0. */
  take(): InstallOp;
}

export function createBacklog(): Backlog {
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
