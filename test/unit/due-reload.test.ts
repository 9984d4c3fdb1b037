/**
 * What the due reload (agent/kamailio/due-reload.ts) tells the sink a reload writes, so that the
 * sink does not write it again: everything while a reload into a Kamailio that answers is due and
 * has not read its position, that position while it runs and until Kamailio is known whole, then
 * what the last finished reload reached; and nothing it did not cover.
 */
import { describe, expect, it } from "vitest";
import { TransientError } from "../../agent/core/transient.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { createDueReload } from "../../agent/kamailio/due-reload.js";
import type { InstanceWatch } from "../../agent/kamailio/instance-watch.js";
import type { KamailioWriter } from "../../agent/kamailio/kamailio-writer.js";
import type { BulkSession } from "../../agent/kamailio/reload.js";
import type { LeftToReload } from "../../agent/kamailio/sink-pass.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";
import type { BindingValue } from "../../agent/contract/records.js";
import { ulBinding } from "../../agent/kamailio/install-plan.js";
import type { UnfinishedReload } from "../../agent/kamailio/reload-mark.js";
import type { ReloaderDeps } from "../../agent/kamailio/reload.js";
import { UL_ADD_CALLID } from "../../agent/kamailio/registrar-input.js";
import { aliasDraft, binding, locDraft } from "../support/fixtures.js";

async function setup(o: { openBulk?: () => Promise<BulkSession>; preloadDb?: ReloaderDeps["preloadDb"]; previous?: UnfinishedReload } = {}) {
  const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
  await store.commitLocal([aliasDraft("a@example.com", "sip:t@example.com"), aliasDraft("b@example.com", "sip:t@example.com")], () => 1);
  const own = store.replicaId;
  const state = { due: false, up: true, held: false, seeded: true, failing: false, eventsOpen: true };
  /** What the sink was told after reloads: retryNow (a due one), retryAliases (one on demand). */
  const told: string[] = [];
  /** Writes wait here while set. */
  let gate: Promise<void> | null = null;
  /** The AoR or alias of each write, in order. */
  const wrote: string[] = [];
  const writer: KamailioWriter = {
    async write(op) {
      wrote.push(op.op === "add" ? op.aor : op.op === "alias-set" ? op.alias : op.op);
      await gate;
      if (state.failing) throw new TransientError("Kamailio is unreachable");
      return "rpc";
    },
  };
  /** What leftToReload said when the watch was told that Kamailio is whole. */
  const atWhole: LeftToReload[] = [];
  const watch: InstanceWatch = {
    observe: async () => undefined, current: () => null, startedMs: () => null, restarts: () => 0,
    reloadNeeded: () => state.due, reloadReason: () => "kamailio restarted",
    redo() {
      state.due = true;
    },
    reloaded() {
      atWhole.push(due.leftToReload());
      state.due = false;
    },
  };
  const due = createDueReload({
    config: { window: 1, reloadRate: 0 }, store, links: { writer, preloadDb: o.preloadDb ?? null, openBulk: o.openBulk },
    plan: { nodeId: "n1", replicaId: own, locationTable: "location" }, watch,
    mark: { previous: o.previous ?? null, track: () => undefined },
    sink: { retryNow: () => void told.push("retryNow"), retryAliases: () => void told.push("retryAliases"), unseenByKamailio: () => false },
    onStored: () => () => undefined, clockLeadMs: () => 0,
    journal: { held: () => state.held, waitedForSeed: () => state.seeded, seeded: () => state.seeded },
    kamailioUp: () => state.up, eventsOpen: () => state.eventsOpen, eventsWaitMs: 300,
    log: silentLogger(), metrics: createMetrics({ defaults: false }),
  });
  const hold = () => {
    let release = () => undefined as void;
    gate = new Promise<void>((r) => (release = r));
    return () => {
      gate = null;
      release();
    };
  };
  return { store, own, state, due, hold, atWhole, told, wrote };
}

describe("due reload: what the sink leaves to it", () => {
  it("everything while it is due and has not read its position; that position while it runs and until Kamailio is whole; then what it reached", async () => {
    const { store, own, state, due, hold, atWhole } = await setup();
    expect(due.leftToReload()).toBeNull(); // no reload yet
    state.due = true;
    expect(due.leftToReload()).toBe("everything");
    const release = hold();
    const run = due.runIfDue();
    await expect.poll(() => due.status().state).toBe("running");
    await expect.poll(() => due.leftToReload()).toEqual({ [own]: 2 });
    // Stored while it runs: the sink's, so the position stays.
    await store.commitLocal([aliasDraft("c@example.com", "sip:t@example.com")], () => 2);
    expect(due.leftToReload()).toEqual({ [own]: 2 });
    release();
    await run;
    // Done, and Kamailio not yet known whole: still its position, not "everything" (c is the sink's).
    expect(atWhole).toEqual([{ [own]: 2 }]);
    expect(due.leftToReload()).toEqual({ [own]: 2 });
  });

  it("after a failed one that stays due, everything again; while Kamailio is down or no reload may run, only what a finished one reached", async () => {
    const { own, state, due } = await setup();
    state.due = true;
    await due.runIfDue();
    state.due = true; // Kamailio restarted again
    state.failing = true;
    await due.runIfDue();
    expect(due.status().state).toBe("failed");
    expect(due.leftToReload()).toBe("everything");
    state.up = false;
    expect(due.leftToReload()).toEqual({ [own]: 2 });
    state.up = true;
    state.seeded = false;
    expect(due.leftToReload()).toEqual({ [own]: 2 });
  });

  it("a reload that is not due (locmesh resync --kamailio) covers nothing while it runs, since a failed one is not redone", async () => {
    const { state, due, hold } = await setup();
    const release = hold();
    const run = due.run("resync");
    await expect.poll(() => due.status().state).toBe("running");
    expect(due.leftToReload()).toBeNull();
    state.failing = true;
    release();
    expect(await run).toMatchObject({ state: "failed" });
    expect(due.leftToReload()).toBeNull();
  });

  it("tells the sink to go on after each reload: a due one with retryNow, one on demand with retryAliases (aliases it may have noted)", async () => {
    const { state, due, told } = await setup();
    expect(await due.run("resync")).toMatchObject({ state: "done" });
    expect(told).toEqual(["retryAliases"]);
    state.due = true;
    await due.runIfDue();
    expect(told).toEqual(["retryAliases", "retryNow"]);
  });

  it("one that comes due while a not-due one runs lets it end, then runs its own from where the journal stands", async () => {
    const { store, own, state, due, hold, atWhole } = await setup();
    const release = hold();
    const manual = due.run("resync"); // read its position: 2 changes
    await expect.poll(() => due.status().state).toBe("running");
    await store.commitLocal([aliasDraft("c@example.com", "sip:t@example.com")], () => 1);
    state.due = true; // Kamailio restarted meanwhile
    const dueRun = due.runIfDue();
    release();
    await manual;
    await dueRun;
    // Joining the manual run would have told the sink it covered only the first 2: the third to neither.
    expect(atWhole).toEqual([{ [own]: 3 }]);
  });

  it("redoes an unfinished reload as it ran: by difference with a preloading Kamailio's database, or, cut short from locmesh resync --kamailio, every live record", async () => {
    // The bindings are in Kamailio's database as the agent would write them (db_mode 1/2).
    const locStore = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    await locStore.commitLocal([locDraft("u@example.com", "sip:u@192.0.2.1:5060", binding({ expires: Math.floor(Date.now() / 1000) + 600, owner: "n2" }))], () => 1);
    const c = (await locStore.get("loc", "u@example.com", "sip:u@192.0.2.1:5060"))!;
    const want = ulBinding(c.sub, c.value as BindingValue, "n1");
    const row = { aor: c.key, contact: c.sub, callid: UL_ADD_CALLID, lastModified: 0, expires: want.expires, q: want.q, path: want.path, received: want.received,
      socket: "", flags: 0, cflags: 0, methods: 0, cseq: 1, userAgent: "", instance: "", regId: 0, ruid: "r-1" };
    await locStore.close();
    const preloadDb = { listLocations: async () => [row] } as unknown as ReloaderDeps["preloadDb"];
    const previous = (whole: boolean): UnfinishedReload => ({ reason: "requested through the API", startedAt: "2026-11-23T03:00:00.000Z", done: 10, total: 50, error: null, whole, instance: null });
    const redo = async (whole: boolean) => {
      const t = await setup({ preloadDb, previous: previous(whole) });
      await t.store.commitLocal([c], () => 2);
      t.due.redoUnfinished();
      await t.due.runIfDue();
      return t;
    };

    const cut = await redo(true);
    expect(cut.due.status()).toMatchObject({ state: "done", whole: true, unchanged: 0, interrupted: { whole: true } });
    expect(cut.wrote).toContain("u@example.com");
    // Once done, the next one (Kamailio restarting) goes by difference again.
    cut.state.due = true;
    cut.wrote.length = 0;
    await cut.due.runIfDue();
    expect(cut.due.status()).toMatchObject({ state: "done", whole: false, unchanged: 1 });
    expect(cut.wrote).not.toContain("u@example.com");

    const byDifference = await redo(false);
    expect(byDifference.due.status()).toMatchObject({ state: "done", whole: false, unchanged: 1 });
    expect(byDifference.wrote).not.toContain("u@example.com");
  });

  /** A bulk session that counts how often it was opened and what it wrote. */
  function bulk() {
    const counts = { opened: 0, writes: 0 };
    const session: BulkSession = { writer: { async write() { counts.writes++; return "rpc"; } }, window: 4, close: async () => undefined };
    return { counts, open: async () => (counts.opened++, session) };
  }

  it("opens its evapi bulk channels only while the agent's event connection is open, and else writes over jsonrpcs", async () => {
    // Until a channel's hello the include sends it registrar events, which it drops (bulk-after-events.ts).
    const b = bulk();
    const { state, due } = await setup({ openBulk: b.open });
    state.eventsOpen = false;
    state.due = true;
    await due.runIfDue();
    expect(due.status()).toMatchObject({ state: "done", channel: "jsonrpcs", done: 2 });
    expect(b.counts.opened).toBe(0);

    // The event connection comes back while the reload waits for it: the channels open then.
    state.due = true;
    const run = due.runIfDue();
    await new Promise((r) => setTimeout(r, 50));
    expect(b.counts.opened).toBe(0);
    state.eventsOpen = true;
    await run;
    expect(due.status()).toMatchObject({ state: "done", channel: "evapi", done: 2 });
    expect(b.counts).toEqual({ opened: 1, writes: 2 });

    // locmesh resync --kamailio goes through the same gate.
    state.eventsOpen = false;
    expect(await due.run("resync")).toMatchObject({ state: "done", channel: "jsonrpcs" });
    expect(b.counts.opened).toBe(1);
  });
});
