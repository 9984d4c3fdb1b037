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
import { aliasDraft } from "../support/fixtures.js";

async function setup(o: { openBulk?: () => Promise<BulkSession> } = {}) {
  const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
  await store.commitLocal([aliasDraft("a@example.com", "sip:t@example.com"), aliasDraft("b@example.com", "sip:t@example.com")], () => 1);
  const own = store.replicaId;
  const state = { due: false, up: true, held: false, seeded: true, failing: false, eventsOpen: true };
  /** What the sink was told after reloads: retryNow (a due one), retryAliases (one on demand). */
  const told: string[] = [];
  /** Writes wait here while set. */
  let gate: Promise<void> | null = null;
  const writer: KamailioWriter = {
    async write() {
      await gate;
      if (state.failing) throw new TransientError("Kamailio is unreachable");
      return "rpc";
    },
  };
  /** What leftToReload said when the watch was told that Kamailio is whole. */
  const atWhole: LeftToReload[] = [];
  const watch: InstanceWatch = {
    observe: async () => undefined, current: () => null, startedMs: () => null, restarts: () => 0,
    reloadNeeded: () => state.due, reloadReason: () => "kamailio restarted", redo: () => undefined,
    reloaded() {
      atWhole.push(due.leftToReload());
      state.due = false;
    },
  };
  const due = createDueReload({
    config: { window: 1, reloadRate: 0 }, store, links: { writer, preloadDb: null, openBulk: o.openBulk },
    plan: { nodeId: "n1", replicaId: own, locationTable: "location" }, watch,
    mark: { previous: null, track: () => undefined },
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
  return { store, own, state, due, hold, atWhole, told };
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
