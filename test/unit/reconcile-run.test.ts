/**
 * One reconcile run (agent/kamailio/reconcile-run.ts) whose repairs Kamailio refuses in part: the
 * refused one is skipped and counted, the others still go in, and the run does not fail. Before,
 * one binding with a value Kamailio cannot take (q -0.5, let in by the API) failed every reconcile,
 * and the first one after an agent's start crashed it (the hostile-input dry run).
 */
import { describe, expect, it } from "vitest";
import { createHlc } from "../../agent/core/hlc.js";
import { createReplica, type Replica } from "../../agent/core/replica.js";
import { openSqliteStore, type SqliteStore } from "../../agent/journal/sqlite-store.js";
import { bindingKey, type InstallOp } from "../../agent/kamailio/install-plan.js";
import { createKamailioTimes } from "../../agent/kamailio/kamailio-times.js";
import { KamailioWriteRejectedError, type KamailioWriter } from "../../agent/kamailio/kamailio-writer.js";
import { KamailioDumpIncompleteError, createReconcileRun, dumpIncompleteMessage } from "../../agent/kamailio/reconcile-run.js";
import type { KamailioLinks } from "../../agent/kamailio/kamailio-links.js";
import { UL_ADD_CALLID } from "../../agent/kamailio/registrar-input.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";
import { batchOf, binding, locDraft, remoteChange } from "../support/fixtures.js";

describe("a reconcile whose repairs Kamailio refuses in part", () => {
  it("skips and counts the refused one, writes the others, and finishes", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    const expires = Math.floor(Date.now() / 1000) + 3600;
    const hlc = (Date.now() - 60_000) * 1024;
    await store.applyRemote(batchOf("n2~aaaaaaaaaaaa", 0, 2, [
      remoteChange("n2~aaaaaaaaaaaa", 1, hlc, locDraft("bad@example.com", "sip:bad@192.0.2.1", binding({ owner: "n2", expires, q: -0.5 }))),
      remoteChange("n2~aaaaaaaaaaaa", 2, hlc + 1, locDraft("good@example.com", "sip:good@192.0.2.2", binding({ owner: "n2", expires }))),
    ]));
    const written: string[] = [];
    const writer: KamailioWriter = {
      async write(op: InstallOp) {
        if (op.op === "add" && op.binding.q === -0.5) throw new KamailioWriteRejectedError("Kamailio refused binding bad@example.com: ul.add q must be -1 or 0..1, got -0.5");
        written.push(op.op === "add" ? op.aor : op.op);
        return "rpc";
      },
    };
    const metrics = createMetrics({ defaults: false });
    metrics.exportKamailioSeries();
    const links = { writer, dump: async () => [], aliasTable: null, usrloc: { ulLookup: async () => [] } } as unknown as KamailioLinks;
    const run = createReconcileRun({
      config: { locationTable: "location", reconcileMaxContacts: 20_000 }, nodeId: "n1", store,
      replica: { commit: async () => [], commitChecked: async () => [] } as unknown as Replica, links,
      plan: { nodeId: "n1", replicaId: store.replicaId, locationTable: "location" },
      watch: { observe: async () => undefined, reloadNeeded: () => false },
      sink: { isPending: () => false, writtenAt: () => undefined }, times: createKamailioTimes(), onStored: () => () => undefined,
      clockLeadMs: () => 0, journal: { held: () => false, waitedForSeed: () => true, seeded: () => true }, log: silentLogger(), metrics,
    });
    await run.run();
    expect(written).toEqual(["good@example.com"]);
    expect(run.last()).toMatchObject({ outcome: "done", repaired: 1 });
    expect(await metrics.registry.metrics()).toMatch(/^locmesh_kamailio_write_failures_total\{reason="rejected"\} 1$/m);
    await store.close();
  });
});

describe("a reconcile of what the local API just changed (runFor)", () => {
  it("looks up only the edited bindings' AoRs, writes only those, and says why when it may not run", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    const expires = Math.floor(Date.now() / 1000) + 3600;
    const [edited] = await store.commitLocal([
      locDraft("trunk@example.com", "sip:trunk@192.0.2.50", binding({ owner: "n1", expires: 0, callid: "" })),
      locDraft("phone@example.com", "sip:phone@192.0.2.9", binding({ owner: "n1", expires, callid: "reg-1" })),
    ], () => Date.now() * 1024);
    const looked: string[] = [];
    const written: string[] = [];
    const writer: KamailioWriter = { async write(op: InstallOp) { written.push(op.op === "add" ? op.binding.contact : op.op); return "rpc"; } };
    const links = {
      writer, dump: async () => { throw new Error("no ul.dump for API edits"); }, aliasTable: null,
      usrloc: { ulLookup: async (_t: string, aor: string) => (looked.push(aor), []) },
    } as unknown as KamailioLinks;
    const state = { held: false, due: false, seeded: true };
    const run = createReconcileRun({
      config: { locationTable: "location", reconcileMaxContacts: 0 }, nodeId: "n1", store,
      replica: { commit: async () => [], commitChecked: async () => [] } as unknown as Replica, links,
      plan: { nodeId: "n1", replicaId: store.replicaId, locationTable: "location" },
      watch: { observe: async () => undefined, reloadNeeded: () => state.due },
      // The sink's cursor has not passed the API's own commits: not pending for this (it never writes them).
      sink: { isPending: () => true, writtenAt: () => undefined }, times: createKamailioTimes(), onStored: () => () => undefined,
      clockLeadMs: () => 5000, journal: { held: () => state.held, waitedForSeed: () => state.seeded, seeded: () => state.seeded }, log: silentLogger(),
      metrics: createMetrics({ defaults: false }),
    });
    const edits = { keys: new Map([[bindingKey("trunk@example.com", "sip:trunk@192.0.2.50"), { aor: "trunk@example.com", hlc: edited!.hlc }]]) };
    // Past reconcileMaxContacts (0) too: it reads a few AoRs, not the table.
    expect(await run.runFor(edits)).toBeNull();
    expect(looked).toEqual(["trunk@example.com"]);
    expect(written).toEqual(["sip:trunk@192.0.2.50"]); // the phone's binding, also missing, is the full reconcile's
    expect(run.last()).toBeNull(); // not reported as a reconcile
    state.due = true;
    expect(await run.runFor(edits)).toMatch(/a reload into it is due/);
    state.seeded = false;
    // The edit waits in the journal (api-edits-waiting.ts) and is tried again once it has caught up.
    expect(await run.runFor(edits)).toBe("this node's journal has not caught up with the cluster yet: the edit is tried again once it has");
    state.held = true;
    expect(await run.runFor(edits)).toMatch(/journal is held/);
    await store.close();
  });
});

/** A full reconcile run of node n1 over a real journal and replica, with nothing pending in the sink. */
function reconcileOver(store: SqliteStore, replica: Replica, links: KamailioLinks) {
  return createReconcileRun({
    config: { locationTable: "location", reconcileMaxContacts: 20_000 }, nodeId: "n1", store, replica, links,
    plan: { nodeId: "n1", replicaId: store.replicaId, locationTable: "location" },
    watch: { observe: async () => undefined, reloadNeeded: () => false },
    sink: { isPending: () => false, writtenAt: () => undefined }, times: createKamailioTimes(),
    onStored: (listener) => replica.onApplied(listener),
    clockLeadMs: () => 0, journal: { held: () => false, waitedForSeed: () => true, seeded: () => true }, log: silentLogger(),
    metrics: createMetrics({ defaults: false }),
  });
}

describe("a reconcile while a registrar event lingers in the journal's group commit", () => {
  it("does not overwrite it: a phone that re-registered as the dump was taken stays registered", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    const replica = createReplica({ store, hlc: createHlc({ wallMillis: Date.now }), log: silentLogger() });
    const expires = Math.floor(Date.now() / 1000) + 3600;
    const phone = (callid: string) => locDraft("carol@example.com", "sip:carol@192.0.2.7", binding({ owner: "n1", expires, callid }));
    // Registered long ago; its de-REGISTER never reached the agent, so Kamailio's dump lacks it.
    await store.commitLocal([phone("reg-1")], () => (Date.now() - 120_000) * 1024);
    let lingering: Promise<unknown> = Promise.resolve();
    const links = {
      writer: { write: async () => "rpc" },
      // As the dump is taken the phone registers again: its event's edit waits out eventLingerMs.
      dump: async () => {
        lingering = replica.commit([phone("reg-2")], { lingerMs: 50, source: "event" });
        return [];
      },
      aliasTable: null, usrloc: { ulLookup: async () => [] },
    } as unknown as KamailioLinks;
    const run = reconcileOver(store, replica, links);
    await run.run();
    await lingering;
    expect(await store.get("loc", "carol@example.com", "sip:carol@192.0.2.7")).toMatchObject({ value: { callid: "reg-2" } });
    await replica.close();
  });
});

describe("a dump that lacks contacts Kamailio holds (usrloc db_mode 3 read with ul.dump)", () => {
  /**
   * Dave registered at this node and Erin at n2 (written into Kamailio by the agent), both a while
   * ago; the dump lists nothing. ul.lookup answers `held(aor)` (Kamailio's Last-Modified in ms).
   */
  async function setup(o: { held: (aor: string) => { contact: string; lastModifiedMs: number }[]; own?: boolean; fromDb?: boolean }) {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    const replica = createReplica({ store, hlc: createHlc({ wallMillis: Date.now }), log: silentLogger() });
    const expires = Math.floor(Date.now() / 1000) + 3600;
    await store.commitLocal([
      ...(o.own === false ? [] : [locDraft("dave@example.com", "sip:dave@192.0.2.8", binding({ owner: "n1", expires, callid: "reg-1" }))]),
      locDraft("erin@example.com", "sip:erin@192.0.2.9", binding({ owner: "n2", expires, callid: "reg-9" })),
    ], () => (Date.now() - 120_000) * 1024);
    const looked: string[] = [];
    const written: string[] = [];
    const links = {
      writer: { write: async (op: InstallOp) => (written.push(op.op === "add" ? op.aor : op.op), "rpc") }, dump: async () => [], dumpReadsDatabase: o.fromDb === true, aliasTable: null,
      usrloc: {
        ulLookup: async (_t: string, aor: string) => {
          looked.push(aor);
          return o.held(aor).map((h) => ({ table: "location", aor, contact: h.contact, lastModified: Math.floor(h.lastModifiedMs / 1000) }));
        },
      },
    } as unknown as KamailioLinks;
    const run = reconcileOver(store, replica, links);
    const live = async () => (await store.get("loc", "dave@example.com", "sip:dave@192.0.2.8"))?.value !== null;
    return { run, looked, written, live, close: () => replica.close() };
  }
  const longAgo = () => Date.now() - 60_000;

  it("removes and writes nothing, and fails saying that ul.dump lacks what ul.lookup finds and what to configure", async () => {
    const t = await setup({ held: (aor) => (aor === "dave@example.com" ? [{ contact: "sip:dave@192.0.2.8", lastModifiedMs: longAgo() }] : []) });
    await expect(t.run.run()).rejects.toBeInstanceOf(KamailioDumpIncompleteError);
    expect(t.looked).toEqual(["dave@example.com"]); // the first found is enough
    expect(await t.live()).toBe(true);
    expect(t.written).toEqual([]);
    expect(t.run.last()).toMatchObject({ outcome: "failed", reason: dumpIncompleteMessage("dave@example.com", "sip:dave@192.0.2.8", "ul.dump") });
    expect(t.run.last()?.reason).toMatch(/give the agent kamailio\.db \(its url, and dbMode: 3\)/);
    await t.close();
  });

  it("on a node with none of its own phones: another node's binding Kamailio holds and the dump lacks fails it too", async () => {
    const t = await setup({ own: false, held: (aor) => (aor === "erin@example.com" ? [{ contact: "sip:erin@192.0.2.9", lastModifiedMs: longAgo() }] : []) });
    await expect(t.run.run()).rejects.toBeInstanceOf(KamailioDumpIncompleteError);
    expect(t.written).toEqual([]);
    await t.close();
  });

  it("read through kamailio.db, says to check kamailio.db rather than to set it", async () => {
    const t = await setup({ fromDb: true, held: (aor) => (aor === "dave@example.com" ? [{ contact: "sip:dave@192.0.2.8", lastModifiedMs: longAgo() }] : []) });
    await expect(t.run.run()).rejects.toThrow(/Kamailio's location table, as the agent reads it through kamailio\.db, did not list dave@example\.com's contact .*Check that kamailio\.db's url/);
    await t.close();
  });

  it("goes on when Kamailio holds only other contacts of those AoRs, or ones it last changed after the dump began (their REGISTER's event is on its way)", async () => {
    for (const held of [
      (aor: string) => [{ contact: `sip:${aor.split("@")[0]}@203.0.113.1`, lastModifiedMs: longAgo() }],
      (aor: string) => [{ contact: aor === "dave@example.com" ? "sip:dave@192.0.2.8" : "sip:erin@192.0.2.9", lastModifiedMs: Date.now() + 5000 }],
    ]) {
      const t = await setup({ held });
      await t.run.run();
      expect(t.looked.sort()).toEqual(["dave@example.com", "erin@example.com"]);
      expect(await t.live()).toBe(false); // the missed de-registration
      expect(t.written).toEqual(["erin@example.com"]); // n2's binding written in again
      expect(t.run.last()).toMatchObject({ outcome: "done" });
      await t.close();
    }
  });
});

describe("a reconcile that finds a contact Kamailio holds twice", () => {
  it("removes the second copy over jsonrpcs, counts it, writes no database row for it, and repairs the copy left in the next run", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    const now = Math.floor(Date.now() / 1000);
    const hlc = (Date.now() - 60_000) * 1024;
    // Another node's binding, whose expiry Kamailio holds wrong (a repair), held twice.
    await store.applyRemote(batchOf("n2~aaaaaaaaaaaa", 0, 1, [
      remoteChange("n2~aaaaaaaaaaaa", 1, hlc, locDraft("carol@example.com", "sip:carol@192.0.2.3", binding({ owner: "n2", expires: now + 3600 }))),
    ]));
    const copy = (ruid: string) => ({
      ...binding({ owner: "n2", expires: now + 600, callid: UL_ADD_CALLID, cseq: 1 }),
      table: "location", aor: "carol@example.com", contact: "sip:carol@192.0.2.3", ruid, status: "active", serverId: 0, tcpconnId: -1, lastModified: now - 120, state: "CS_SYNC",
    });
    const calls: string[] = [];
    const writer: KamailioWriter = { async write(op: InstallOp) { calls.push(`write ${op.op}`); return "rpc"; } };
    let held = [copy("agent-row"), copy("kamailio-row")];
    const links = {
      writer, dump: async () => held, aliasTable: null,
      usrloc: { ulLookup: async () => held, ulRmContact: async (_t: string, aor: string, contact: string) => (calls.push(`ul.rm_contact ${aor} ${contact}`), true) },
    } as unknown as KamailioLinks;
    const replica = createReplica({ store, hlc: createHlc({ wallMillis: Date.now }), log: silentLogger() });
    const run = reconcileOver(store, replica, links);
    await run.run();
    // Not the repair in the same run: in db_mode 2 its ul.add would find the copy just removed (only marked expired) and bring it back.
    expect(calls).toEqual(["ul.rm_contact carol@example.com sip:carol@192.0.2.3"]);
    expect(run.last()).toMatchObject({ outcome: "done", repaired: 1 });
    held = [copy("kamailio-row")];
    await run.run();
    expect(calls).toEqual(["ul.rm_contact carol@example.com sip:carol@192.0.2.3", "write add"]);
    expect(run.last()).toMatchObject({ outcome: "done", repaired: 1 });
    await replica.close();
  });

  it("leaves the copies to the next run when Kamailio's first copy changed since the dump (a refresh whose event has not reached the journal)", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    const now = Math.floor(Date.now() / 1000);
    await store.applyRemote(batchOf("n2~aaaaaaaaaaaa", 0, 1, [
      remoteChange("n2~aaaaaaaaaaaa", 1, (Date.now() - 60_000) * 1024, locDraft("carol@example.com", "sip:carol@192.0.2.3", binding({ owner: "n2", expires: now + 3600 }))),
    ]));
    const copy = (ruid: string, over: object = {}) => ({
      ...binding({ owner: "n2", expires: now + 3600, callid: UL_ADD_CALLID, cseq: 1 }),
      table: "location", aor: "carol@example.com", contact: "sip:carol@192.0.2.3", ruid, status: "active", serverId: 0, tcpconnId: -1, lastModified: now - 120, state: "CS_SYNC", ...over,
    });
    const calls: string[] = [];
    // The phone refreshed the first copy after the dump: its Call-ID, CSeq and time are the REGISTER's now.
    const refreshed = [copy("agent-row", { callid: "carol-phone", cseq: 9, lastModified: now }), copy("kamailio-row")];
    const links = {
      writer: { write: async () => "rpc" }, dump: async () => [copy("agent-row"), copy("kamailio-row")], aliasTable: null,
      usrloc: { ulLookup: async () => refreshed, ulRmContact: async (_t: string, aor: string) => (calls.push(aor), true) },
    } as unknown as KamailioLinks;
    const replica = createReplica({ store, hlc: createHlc({ wallMillis: Date.now }), log: silentLogger() });
    const run = reconcileOver(store, replica, links);
    await run.run();
    expect(calls).toEqual([]);
    expect(run.last()).toMatchObject({ outcome: "done", repaired: 0 });
    await replica.close();
  });

  it("leaves the copies of a binding that changed since the plan to the next run", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    const now = Math.floor(Date.now() / 1000);
    const hlc = (Date.now() - 60_000) * 1024;
    const users = ["carol", "dave"];
    await store.applyRemote(batchOf("n2~aaaaaaaaaaaa", 0, 2, users.map((u, i) =>
      remoteChange("n2~aaaaaaaaaaaa", i + 1, hlc + i, locDraft(`${u}@example.com`, `sip:${u}@192.0.2.3`, binding({ owner: "n2", expires: now + 3600 }))))));
    const copy = (u: string) => ({
      ...binding({ owner: "n2", expires: now + 3600, callid: UL_ADD_CALLID, cseq: 1 }),
      table: "location", aor: `${u}@example.com`, contact: `sip:${u}@192.0.2.3`, ruid: `r-${u}`, status: "active", serverId: 0, tcpconnId: -1, lastModified: now - 120, state: "CS_SYNC",
    });
    const replica = createReplica({ store, hlc: createHlc({ wallMillis: Date.now }), log: silentLogger() });
    const removed: string[] = [];
    const links = {
      writer: { write: async () => "rpc" }, dump: async () => users.flatMap((u) => [copy(u), copy(u)]), aliasTable: null,
      usrloc: {
        ulLookup: async (_t: string, aor: string) => users.filter((u) => `${u}@example.com` === aor).flatMap((u) => [copy(u), copy(u)]),
        ulRmContact: async (_t: string, aor: string) => {
          removed.push(aor);
          // Meanwhile this node's own binding of dave's contact is journaled (a REGISTER at this node).
          await replica.commit([locDraft("dave@example.com", "sip:dave@192.0.2.3", binding({ owner: "n1", expires: now + 3600, callid: "dave-phone" }))]);
          return true;
        },
      },
    } as unknown as KamailioLinks;
    const run = reconcileOver(store, replica, links);
    await run.run();
    expect(removed).toEqual(["carol@example.com"]);
    expect(run.last()).toMatchObject({ outcome: "done", repaired: 1 });
    await replica.close();
  });
});

describe("a reconcile of the AoRs whose registrar events could not be journaled (runForAors)", () => {
  it("looks up only those AoRs, past reconcileMaxContacts too, learns what Kamailio holds of them and drops what it lost, and leaves other AoRs alone", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    const replica = createReplica({ store, hlc: createHlc({ wallMillis: Date.now }), log: silentLogger() });
    const nowSec = Math.floor(Date.now() / 1000);
    const phone = (aor: string, contact: string, callid: string) => locDraft(aor, contact, binding({ owner: "n1", expires: nowSec + 3600, callid }));
    // Journaled long ago. Then, with the journal full, frank's phone 1 de-registered and phone 2
    // registered; gina's binding is gone from Kamailio too, but none of her events failed.
    await store.commitLocal([
      phone("frank@example.com", "sip:frank@192.0.2.1", "f-1"),
      phone("gina@example.com", "sip:gina@192.0.2.3", "g-1"),
    ], () => (Date.now() - 120_000) * 1024);
    const looked: string[] = [];
    const links = {
      writer: { write: async () => "rpc" },
      dump: async () => { throw new Error("no ul.dump for these"); },
      aliasTable: null,
      usrloc: {
        ulLookup: async (_t: string, aor: string) => {
          looked.push(aor);
          return aor !== "frank@example.com" ? [] : [{
            ...binding({ expires: nowSec + 3600, callid: "f-2", cseq: 3 }),
            table: "location", aor, contact: "sip:frank@192.0.2.2", status: "active", serverId: 0, tcpconnId: -1, lastModified: nowSec - 5, state: "CS_NEW",
          }];
        },
      },
    } as unknown as KamailioLinks;
    const metrics = createMetrics({ defaults: false });
    metrics.exportKamailioSeries();
    const run = createReconcileRun({
      config: { locationTable: "location", reconcileMaxContacts: 0 }, nodeId: "n1", store, replica, links,
      plan: { nodeId: "n1", replicaId: store.replicaId, locationTable: "location" },
      watch: { observe: async () => undefined, reloadNeeded: () => false },
      sink: { isPending: () => false, writtenAt: () => undefined }, times: createKamailioTimes(),
      onStored: (listener) => replica.onApplied(listener),
      clockLeadMs: () => 0, journal: { held: () => false, waitedForSeed: () => true, seeded: () => true }, log: silentLogger(), metrics,
    });
    expect(await run.runForAors(new Set(["frank@example.com"]))).toBeNull();
    expect(looked).toEqual(["frank@example.com"]);
    expect((await store.get("loc", "frank@example.com", "sip:frank@192.0.2.1"))?.value).toBeNull();
    expect(await store.get("loc", "frank@example.com", "sip:frank@192.0.2.2")).toMatchObject({ value: { callid: "f-2", cseq: 3, owner: "n1" } });
    // gina's is the full reconcile's (and her next REGISTER's).
    expect(await store.get("loc", "gina@example.com", "sip:gina@192.0.2.3")).toMatchObject({ value: { callid: "g-1" } });
    expect(run.last()).toBeNull(); // not reported as a reconcile
    expect(await metrics.registry.metrics()).toMatch(/^locmesh_kamailio_learned_total\{source="retry"\} 2$/m);
    await replica.close();
  });
});
