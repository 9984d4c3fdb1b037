/**
 * The registrar event intake's bounded queue: it pauses its source when full, resumes it at half,
 * and journals every event it took; a de-registration right after a REGISTER Kamailio held while
 * the agent was away is followed; and a peer's newer version that lands while an event waits for
 * its commit is not overwritten.
 */
import { afterEach, describe, expect, it, onTestFinished, vi } from "vitest";
import { createHlc } from "../../agent/core/hlc.js";
import { createReplica, type Replica } from "../../agent/core/replica.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { createKamailioTimes } from "../../agent/kamailio/kamailio-times.js";
import type { RegisterEvent } from "../../agent/kamailio/register-event.js";
import { createRegistrarIntake } from "../../agent/kamailio/registrar-intake.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { HLC_UNITS_PER_MS } from "../../agent/contract/records.js";
import { binding } from "../support/fixtures.js";
import { createMetrics } from "../../agent/ops/metrics.js";

const NOW_MS = 1_800_000_000_000;

/** Lets every callback that is due run (promises and setImmediate) without moving a fake clock. */
async function drain(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}
const replicas: Replica[] = [];
afterEach(async () => {
  for (const r of replicas.splice(0)) await r.close();
});

function registerEvent(i: number): RegisterEvent {
  const contact = `sip:u${i}@192.0.2.1:5060`;
  return {
    type: "register", rc: 1, aor: `u${i}@example.com`, requestContacts: [{ uri: contact, expires: null }], requestExpires: 3600,
    callid: `call-${i}`, cseq: 1, userAgent: "Phone/1.0", source: "udp:192.0.2.1:5060", tsMs: NOW_MS + i,
    contacts: [{
      contact, expires: NOW_MS / 1000 + 3600, q: -1, callid: `call-${i}`, cseq: 1, path: "", received: "", userAgent: "Phone/1.0",
      ruid: `r${i}`, socket: "udp:127.0.0.1:5060", flags: 0, cflags: 0, methods: 4294967295, instance: "", regId: 0,
    }],
  };
}

describe("registrar intake", () => {
  it("stops reading at maxQueued events, reads again at half, and journals them all", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    const replica = createReplica({ store, hlc: createHlc({ wallMillis: () => NOW_MS }), log: silentLogger() });
    replicas.push(replica);
    const metrics = createMetrics({ defaults: false });
    const flow: string[] = [];
    const intake = createRegistrarIntake({
      nodeId: "n1", store, replica, times: createKamailioTimes(), log: silentLogger(), metrics, maxQueued: 16, lingerMs: 0, clockLeadMs: () => 0,
      sink: { isPending: () => false, writtenAt: () => undefined, unseenByKamailio: () => false },
      flow: { pause: () => flow.push(`pause at ${intake.stats().queued}`), resume: () => flow.push(`resume at ${intake.stats().queued}`) },
    });
    // One read from the socket can carry more events than the queue has room for: all are taken.
    for (let i = 0; i < 40; i++) intake.push(registerEvent(i));
    expect(flow).toEqual(["pause at 16"]);
    expect(intake.stats()).toMatchObject({ queued: 40, peak: 40, pauses: 1 });
    await intake.settled();
    expect(flow).toEqual(["pause at 16", "resume at 8"]);
    expect(intake.stats()).toMatchObject({ queued: 0, pauses: 1, failed: 0 });
    expect((await store.counts(NOW_MS / 1000)).locations).toBe(40);
    expect((await metrics.kamailioEventPauses.get()).values[0]?.value).toBe(1);
  });

  it.each([
    [200, 1],
    [0, 2],
  ])("with lingerMs %i, two events 5 ms apart take %i journal commit(s)", async (lingerMs, commits) => {
    // The linger is a timer, on a fake clock here: "5 ms apart" and "within the linger" hold
    // however busy the machine is. setImmediate stays real: a linger of 0 commits on it.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    onTestFinished(() => void vi.useRealTimers());
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    const commitLocal = vi.spyOn(store, "commitLocal");
    const replica = createReplica({ store, hlc: createHlc({ wallMillis: () => NOW_MS }), log: silentLogger() });
    replicas.push(replica);
    const intake = createRegistrarIntake({
      nodeId: "n1", store, replica, times: createKamailioTimes(), log: silentLogger(), metrics: createMetrics({ defaults: false }),
      maxQueued: 16, lingerMs, clockLeadMs: () => 0,
      sink: { isPending: () => false, writtenAt: () => undefined, unseenByKamailio: () => false },
      flow: { pause: () => undefined, resume: () => undefined },
    });
    intake.push(registerEvent(0));
    await drain();
    // Without a linger the first event is in the journal before the second comes; with one it waits.
    expect(commitLocal).toHaveBeenCalledTimes(lingerMs > 0 ? 0 : 1);
    await vi.advanceTimersByTimeAsync(5);
    intake.push(registerEvent(1));
    await drain();
    expect(commitLocal).toHaveBeenCalledTimes(lingerMs > 0 ? 0 : 2);
    // The linger runs from the first event: both go in one commit when it ends, not before.
    await vi.advanceTimersByTimeAsync(Math.max(0, lingerMs - 5 - 1));
    await drain();
    expect(commitLocal).toHaveBeenCalledTimes(lingerMs > 0 ? 0 : 2);
    await vi.advanceTimersByTimeAsync(1);
    await intake.settled();
    expect(commitLocal).toHaveBeenCalledTimes(commits);
    expect((await store.counts(NOW_MS / 1000)).locations).toBe(2);
  });

  it.each([5_000, 60_000])("a de-registration taken after a REGISTER held %i ms, before the agent journaled it, removes the contact", async (heldMs) => {
    // The agent's clock runs on: the held REGISTER commits after the de-registration was taken.
    let now = NOW_MS;
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    const replica = createReplica({ store, hlc: createHlc({ wallMillis: () => now }), log: silentLogger() });
    replicas.push(replica);
    const intake = createRegistrarIntake({
      nodeId: "n1", store, replica, times: createKamailioTimes(), log: silentLogger(), metrics: createMetrics({ defaults: false }),
      maxQueued: 16, lingerMs: 0, clockLeadMs: () => 0, nowMs: () => now,
      sink: { isPending: () => false, writtenAt: () => undefined, unseenByKamailio: () => false },
      flow: { pause: () => undefined, resume: () => undefined },
    });
    const held = registerEvent(0);
    const contact = held.contacts[0]!.contact;
    intake.push({ ...held, tsMs: NOW_MS - heldMs });
    const dereg: RegisterEvent = {
      ...held, rc: 3, requestContacts: [{ uri: contact, expires: 0 }], requestExpires: null, cseq: 2, tsMs: NOW_MS - 1, contacts: [],
    };
    now = NOW_MS + 20;
    intake.push(dereg);
    await intake.settled();
    const c = await store.get("loc", held.aor, contact);
    expect(c).not.toBeNull();
    expect(c!.value).toBeNull();
  });

  it("a peer's newer version of the contact, stored while the event waits for its commit, stays the winner", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    const replica = createReplica({ store, hlc: createHlc({ wallMillis: () => NOW_MS + 1000 }), log: silentLogger() });
    replicas.push(replica);
    const intake = createRegistrarIntake({
      nodeId: "n1", store, replica, times: createKamailioTimes(), log: silentLogger(), metrics: createMetrics({ defaults: false }),
      maxQueued: 16, lingerMs: 50, clockLeadMs: () => 0, nowMs: () => NOW_MS + 1000,
      sink: { isPending: () => false, writtenAt: () => undefined, unseenByKamailio: () => false },
      flow: { pause: () => undefined, resume: () => undefined },
    });
    // Node 1's Kamailio took the REGISTER at NOW_MS; the event has read the journal and lingers.
    const ev = registerEvent(0);
    const contact = ev.contacts[0]!.contact;
    intake.push(ev);
    await drain();
    // The phone registered again at node 2, 500 ms later; that version arrives now.
    const peerVersion = {
      kind: "loc" as const, key: ev.aor, sub: contact, hlc: (NOW_MS + 500) * HLC_UNITS_PER_MS, origin: "n2~1", seq: 1,
      value: { ...binding({ expires: NOW_MS / 1000 + 3600, callid: "call-at-n2", cseq: 2 }), owner: "n2" },
    };
    const out = await replica.apply({ origin: "n2~1", after: 0, upTo: 1, changes: [peerVersion] }, "n2");
    expect(out.applied).toHaveLength(1);
    await intake.settled();
    const stored = await store.get("loc", ev.aor, contact);
    expect(stored).toMatchObject({ origin: "n2~1", value: { callid: "call-at-n2", owner: "n2" } });
    expect(intake.stats().failed).toBe(0);
  });
});


describe("registrar intake: AoRs it hands to the lookups in Kamailio (aor-lookups.ts)", () => {
  it("hands over the AoR of an event it could not journal and of an AoR-only half of an oversized REGISTER, and says when the journal works again", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    const replica = createReplica({ store, hlc: createHlc({ wallMillis: () => NOW_MS }), log: silentLogger() });
    replicas.push(replica);
    const told: string[] = [];
    let full = false;
    const intake = createRegistrarIntake({
      nodeId: "n1", store, replica, times: createKamailioTimes(), log: silentLogger(), metrics: createMetrics({ defaults: false }), maxQueued: 16, lingerMs: 0, clockLeadMs: () => 0,
      sink: { isPending: () => false, writtenAt: () => undefined, unseenByKamailio: () => false },
      flow: { pause: () => undefined, resume: () => undefined },
      admit: async () => {
        if (full) throw new Error("the journal's disk is full");
        return true;
      },
      aorLookups: { add: (aor) => told.push(`add ${aor}`), failed: (aor) => told.push(`failed ${aor}`), journalWorks: () => told.push("works") },
    });
    const numbered = (i: number): RegisterEvent => ({ ...registerEvent(i), n: i });
    intake.push(numbered(1)); // journaled: nothing to look up
    await intake.settled();
    full = true;
    intake.push(numbered(2));
    intake.push(registerEvent(3)); // unnumbered (an older include, or sent whole by the SIP worker): its AoR is not looked up
    await intake.settled();
    full = false;
    // What the include queues for a REGISTER too big for its queue: rc 4, its AoR, no Call-ID.
    const aorOnly = (e: RegisterEvent): RegisterEvent => ({ ...e, rc: 4, requestContacts: [], requestExpires: null, callid: "", userAgent: "" });
    intake.push(aorOnly(numbered(4)));
    intake.push(aorOnly(registerEvent(5)));
    await intake.settled();
    expect(told).toEqual(["failed u2@example.com", "failed null", "add u4@example.com", "works"]);
    expect(intake.stats().failed).toBe(2);
  });
});
