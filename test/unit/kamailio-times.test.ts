/**
 * Kamailio's own times for versions the agent learned from it (kamailio-times.ts), and the two
 * decisions that depend on them when the agent is behind Kamailio's event stream: a REGISTER that
 * follows a de-registration of the same contact is learned (registrar input), and a live
 * registration is never deleted from Kamailio because of that earlier removal (reconciler).
 * Found by the register-storm drill, where both lost acknowledged REGISTERs.
 */
import { afterEach, describe, expect, it } from "vitest";
import { HLC_UNITS_PER_MS, type Change } from "../../agent/contract/records.js";
import type { ReplicaStore } from "../../agent/core/store.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { createKamailioTimes } from "../../agent/kamailio/kamailio-times.js";
import { planReconcile } from "../../agent/kamailio/reconciler.js";
import type { EventContact, RegisterEvent } from "../../agent/kamailio/register-event.js";
import { draftsFromRegister } from "../../agent/kamailio/registrar-input.js";
import type { UsrlocContact } from "../../agent/kamailio/usrloc-contact.js";
import { binding } from "../support/fixtures.js";

const ME = "n1";
const AOR = "alice@example.com";
const CONTACT = "sip:alice@192.0.2.1:5060";
/** Kamailio's clock when the phone de-registered, and 0.9 s later when it registered again. */
const DEREG_MS = 1_800_000_000_100;
const REREG_MS = DEREG_MS + 900;
/** The agent, 1.5 s behind, journals the de-registration after the new REGISTER happened. */
const LATE_COMMIT_MS = DEREG_MS + 1500;

const hlcAt = (ms: number): number => ms * HLC_UNITS_PER_MS;
const tombstone = (ms: number, origin: string): Change => ({ kind: "loc", key: AOR, sub: CONTACT, value: null, hlc: hlcAt(ms), origin, seq: 1 });

describe("kamailio times", () => {
  it("knows Kamailio's time for exactly the version it learned, and nothing for any other version", () => {
    const times = createKamailioTimes();
    const late = tombstone(LATE_COMMIT_MS, "n1~1");
    times.learned([late, null], DEREG_MS);
    expect(times.of(late)).toBe(DEREG_MS);
    const other = { ...late, hlc: hlcAt(LATE_COMMIT_MS + 1) };
    expect(times.of(other)).toBeUndefined();
  });

  it("forgets an entry once the event stream is more than the horizon past the version's commit", () => {
    const times = createKamailioTimes({ horizonMs: 1000 });
    // Learned from events Kamailio stamped at 10,000 and 10,500 ms, committed at 10,200 and 10,600.
    const a = tombstone(10_200, "n1~1");
    const b = { ...tombstone(10_600, "n1~1"), sub: "sip:bob@192.0.2.2" };
    times.learned([a], 10_000);
    times.learned([b], 10_500);
    times.advance(11_200);
    expect(times.size()).toBe(2);
    times.advance(11_300);
    expect(times.of(a)).toBeUndefined();
    expect(times.of(b)).toBe(10_500);
    expect(times.size()).toBe(1);
  });

  it("keeps the entry of an event held long before its commit while events up to the commit may come", () => {
    const times = createKamailioTimes({ horizonMs: 10_000 });
    // Kamailio held the REGISTER 60 s while the agent was away; the agent committed it on reconnect.
    const held = tombstone(LATE_COMMIT_MS, "n1~1");
    times.learned([held], LATE_COMMIT_MS - 60_000);
    // The next event (the phone's de-registration, taken after the drain) is far past the held
    // REGISTER's time, but not past its commit.
    times.advance(LATE_COMMIT_MS - 5);
    expect(times.of(held)).toBe(LATE_COMMIT_MS - 60_000);
    times.advance(LATE_COMMIT_MS + 10_001);
    expect(times.of(held)).toBeUndefined();
  });
});

function registerEvent(tsMs: number): RegisterEvent {
  const c: EventContact = {
    contact: CONTACT, expires: Math.floor(tsMs / 1000) + 3600, q: -1, callid: "rereg-call", cseq: 1, path: "", received: "",
    userAgent: "Phone/1.0", ruid: "uloc-2", socket: "udp:127.0.0.1:5060", flags: 0, cflags: 0, methods: 4294967295, instance: "", regId: 0,
  };
  return {
    type: "register", rc: 1, aor: AOR, requestContacts: [{ uri: CONTACT, expires: null }], requestExpires: 3600,
    callid: "rereg-call", cseq: 1, userAgent: "Phone/1.0", source: "udp:192.0.2.1:5060", tsMs, contacts: [c],
  };
}

describe("a REGISTER right after a de-registration, while the agent is behind", () => {
  it("is learned: the removal is as old as its event, not as its late commit", () => {
    const times = createKamailioTimes();
    const removed = tombstone(LATE_COMMIT_MS, "n1~1");
    times.learned([removed], DEREG_MS);
    const ctx = { nodeId: ME, current: [removed], clockLeadMs: 0, isPending: () => false, writtenAt: () => undefined };
    expect(draftsFromRegister(registerEvent(REREG_MS), { ...ctx, kamailioMs: times.of })).toMatchObject([{ sub: CONTACT, value: { callid: "rereg-call" } }]);
    // A removal from elsewhere that really is newer than the event still wins.
    expect(draftsFromRegister(registerEvent(REREG_MS), { ...ctx, current: [tombstone(LATE_COMMIT_MS, "n2~2")], kamailioMs: times.of })).toEqual([]);
  });
});

describe("reconciling a registration Kamailio holds against a removal in the journal", () => {
  let store: ReplicaStore | null = null;
  afterEach(async () => {
    await store?.close();
    store = null;
  });

  async function plan(learnedFromKamailio: boolean) {
    store = openSqliteStore({ path: ":memory:", nodeId: ME });
    const times = createKamailioTimes();
    await store.commitLocal([{ kind: "loc", key: AOR, sub: CONTACT, value: binding({ owner: ME, expires: Math.floor(DEREG_MS / 1000) + 3600 }) }], () => hlcAt(DEREG_MS - 60_000));
    const [removed] = await store.commitLocal([{ kind: "loc", key: AOR, sub: CONTACT, value: null }], () => hlcAt(LATE_COMMIT_MS));
    expect(removed).toMatchObject({ value: null, hlc: hlcAt(LATE_COMMIT_MS) });
    if (learnedFromKamailio) times.learned([removed!], DEREG_MS);
    const held: UsrlocContact = {
      ...binding({ callid: "rereg-call", expires: Math.floor(REREG_MS / 1000) + 3600, socket: "udp:127.0.0.1:5060" }),
      table: "location", aor: AOR, contact: CONTACT, status: "active", serverId: 0, tcpconnId: -1,
      // usrloc's last_modified has whole seconds: it reads as before the late commit.
      lastModified: Math.floor(REREG_MS / 1000), state: "CS_NEW",
    };
    return planReconcile(store, {
      nodeId: ME, dump: [held], dumpStartMs: LATE_COMMIT_MS + 2000, clockLeadMs: 0, nowSec: Math.floor(REREG_MS / 1000) + 5,
      locationTable: "location", aliasTable: null, isPending: () => false, writtenAt: () => undefined, kamailioTime: times.of,
    });
  }

  it("learns it when the removal came from this Kamailio: it was registered again since", async () => {
    const p = await plan(true);
    expect(p.repairs).toEqual([]);
    expect(p.drafts).toMatchObject([{ key: AOR, sub: CONTACT, value: { callid: "rereg-call", owner: ME } }]);
  });

  it("still removes it from Kamailio when the newer removal did not come from Kamailio", async () => {
    const p = await plan(false);
    expect(p.drafts).toEqual([]);
    expect(p.repairs).toEqual([{ op: "rm-contact", table: "location", aor: AOR, contact: CONTACT }]);
  });
});
