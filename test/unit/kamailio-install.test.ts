/**
 * The pure halves of the Kamailio side: what a journal record becomes in Kamailio (install-plan)
 * and what a registrar event becomes in the journal (registrar-input).
 */
import { describe, expect, it } from "vitest";
import { HLC_UNITS_PER_MS, type Change } from "../../agent/contract/records.js";
import { ownerRoute, parseSocket, planInstall, planRestore } from "../../agent/kamailio/install-plan.js";
import type { EventContact, RegisterEvent } from "../../agent/kamailio/register-event.js";
import { UL_ADD_CALLID, draftsFromRegister } from "../../agent/kamailio/registrar-input.js";
import { parseContactHeader } from "../../agent/kamailio/contact-header.js";
import { binding } from "../support/fixtures.js";

const ME = "n2";
const MY_REPLICA = "n2~0000000000000002";
const OTHER = "n1~0000000000000001";
const NOW = 1_800_000_000;
const ctx = { nodeId: ME, replicaId: MY_REPLICA, locationTable: "location", nowSec: NOW };

function loc(over: Partial<Change> & { value: Change["value"] }): Change {
  return { kind: "loc", key: "alice@example.com", sub: "sip:alice@192.0.2.1:5060", hlc: NOW * 1000 * HLC_UNITS_PER_MS, origin: OTHER, seq: 1, ...over };
}

describe("install plan", () => {
  it("installs another node's UDP binding as it is, without that node's socket", () => {
    const op = planInstall(loc({ value: binding({ owner: "n1", expires: NOW + 60, received: "sip:198.51.100.7:4000", socket: "udp:10.0.0.1:5060", path: "<sip:edge;lr>" }) }), ctx);
    expect(op).toMatchObject({ op: "add", table: "location", aor: "alice@example.com" });
    if (op?.op !== "add") throw new Error("expected add");
    expect(op.binding).toMatchObject({ contact: "sip:alice@192.0.2.1:5060", received: "sip:198.51.100.7:4000", path: "<sip:edge;lr>", socket: "", expires: NOW + 60 });
  });

  it("routes another node's TCP binding through that node with the phone's connection in received=", () => {
    const v = binding({ owner: "n1", expires: NOW + 60, received: "sip:198.51.100.7:4000;transport=tcp", socket: "tcp:10.0.0.1:5060" });
    const op = planInstall(loc({ value: v }), ctx);
    if (op?.op !== "add") throw new Error("expected add");
    expect(op.binding.path).toBe("<sip:10.0.0.1:5060;transport=tcp;lr;received=sip:198.51.100.7:4000%3Btransport%3Dtcp>");
    expect(op.binding.received).toBe("");
  });

  it("keeps an existing Path behind the owner's route, and TLS/WSS stay on TLS", () => {
    expect(ownerRoute({ socket: "tls:[2001:db8::1]:5061", received: "" })).toBe("<sip:[2001:db8::1]:5061;transport=tls;lr>");
    expect(ownerRoute({ socket: "wss:10.0.0.1:443", received: "" })).toBe("<sip:10.0.0.1:443;transport=tls;lr>");
    expect(ownerRoute({ socket: "udp:10.0.0.1:5060", received: "x" })).toBeNull();
    expect(ownerRoute({ socket: "", received: "x" })).toBeNull();
    const op = planInstall(loc({ value: binding({ owner: "n1", expires: 0, socket: "ws:10.0.0.1:80", path: "<sip:edge;lr>" }) }), ctx);
    if (op?.op !== "add") throw new Error("expected add");
    expect(op.binding.path).toBe("<sip:10.0.0.1:80;transport=tcp;lr>,<sip:edge;lr>");
  });

  it("parses sockets including IPv6", () => {
    expect(parseSocket("udp:127.0.0.1:5060")).toEqual({ proto: "udp", host: "127.0.0.1", port: "5060" });
    expect(parseSocket("tcp:[::1]:5060")).toEqual({ proto: "tcp", host: "[::1]", port: "5060" });
    expect(parseSocket("nonsense")).toBeNull();
  });

  it("removes tombstoned and expired bindings, and never writes back this node's own", () => {
    expect(planInstall(loc({ value: null }), ctx)).toEqual({ op: "rm-contact", table: "location", aor: "alice@example.com", contact: "sip:alice@192.0.2.1:5060" });
    expect(planInstall(loc({ value: binding({ expires: NOW - 1 }) }), ctx)?.op).toBe("rm-contact");
    expect(planInstall(loc({ origin: MY_REPLICA, value: binding({ owner: ME }) }), ctx)).toBeNull();
    // ...except when Kamailio lost everything and its own bindings must go back too.
    expect(planRestore(loc({ origin: MY_REPLICA, value: binding({ owner: ME, socket: "udp:127.0.0.1:5060" }) }), ctx)).toMatchObject({ op: "add", binding: { socket: "udp:127.0.0.1:5060" } });
    expect(planRestore(loc({ value: null }), ctx)).toBeNull();
  });

  it("leaves this node's own registrations from an earlier epoch of its journal to the reconcile", () => {
    const EARLIER = "n2~00000000000000e1";
    expect(planInstall(loc({ origin: EARLIER, value: binding({ owner: ME, expires: NOW + 60 }) }), ctx)).toBeNull();
    // Its removals, another owner's binding from that epoch, and a binding published elsewhere with this node as owner are written.
    expect(planInstall(loc({ origin: EARLIER, value: null }), ctx)?.op).toBe("rm-contact");
    expect(planInstall(loc({ origin: EARLIER, value: binding({ owner: "n1", expires: NOW + 60 }) }), ctx)?.op).toBe("add");
    expect(planInstall(loc({ origin: OTHER, value: binding({ owner: ME, expires: NOW + 60 }) }), ctx)?.op).toBe("add");
    // A node whose id starts the same is another node.
    expect(planInstall(loc({ origin: "n2x~00000000000000e1", value: binding({ owner: ME, expires: NOW + 60 }) }), ctx)?.op).toBe("add");
    expect(planRestore(loc({ origin: EARLIER, value: binding({ owner: ME, expires: NOW + 60 }) }), ctx)?.op).toBe("add");
  });

  it("writes aliases from any origin, this node's own included", () => {
    const alias: Change = { kind: "alias", key: "nick@example.com", sub: "", value: { target: "sip:alice@example.com" }, hlc: 1, origin: MY_REPLICA, seq: 1 };
    expect(planInstall(alias, ctx)).toEqual({ op: "alias-set", alias: "nick@example.com", target: "sip:alice@example.com" });
    expect(planInstall({ ...alias, value: null }, ctx)).toEqual({ op: "alias-rm", alias: "nick@example.com" });
  });
});

function contact(over: Partial<EventContact> = {}): EventContact {
  return {
    contact: "sip:alice@192.0.2.1:5060", expires: NOW + 300, q: -1, callid: "phone-call-1", cseq: 7, path: "", received: "",
    userAgent: "Phone/1.0", ruid: "uloc-1", socket: "udp:127.0.0.1:5060", flags: 0, cflags: 0, methods: 4294967295, instance: "", regId: 0,
    ...over,
  };
}

function event(over: Partial<RegisterEvent> = {}): RegisterEvent {
  return {
    type: "register", rc: 1, aor: "alice@example.com", requestContacts: [{ uri: "sip:alice@192.0.2.1:5060", expires: null }],
    requestExpires: 300, callid: "phone-call-1", cseq: 7, userAgent: "Phone/1.0", source: "udp:192.0.2.1:5060", tsMs: NOW * 1000, contacts: [contact()],
    ...over,
  };
}

const noPending = { isPending: () => false, writtenAt: () => undefined, clockLeadMs: 0 };

describe("registrar input", () => {
  it("learns a new registration as this node's binding", () => {
    const drafts = draftsFromRegister(event(), { nodeId: ME, current: [], ...noPending });
    expect(drafts).toHaveLength(1);
    expect(drafts[0]).toMatchObject({ kind: "loc", key: "alice@example.com", sub: "sip:alice@192.0.2.1:5060", value: { owner: ME, cseq: 7, ruid: "uloc-1" } });
  });

  it("writes nothing for a contact that did not change, and a refresh for one that did", () => {
    const [d] = draftsFromRegister(event(), { nodeId: ME, current: [], ...noPending });
    const current = [loc({ origin: MY_REPLICA, hlc: (NOW - 10) * 1000 * HLC_UNITS_PER_MS, value: d!.value })];
    expect(draftsFromRegister(event(), { nodeId: ME, current, ...noPending })).toEqual([]);
    const refresh = event({ rc: 2, cseq: 8, contacts: [contact({ cseq: 8, expires: NOW + 600 })] });
    expect(draftsFromRegister(refresh, { nodeId: ME, current, ...noPending })[0]?.value).toMatchObject({ cseq: 8, expires: NOW + 600 });
  });

  it("never learns a contact the agent installed itself (ul.add's Call-ID)", () => {
    const ev = event({ contacts: [contact(), contact({ contact: "sip:alice@10.9.9.9", callid: UL_ADD_CALLID, cseq: 1 })] });
    const drafts = draftsFromRegister(ev, { nodeId: ME, current: [], ...noPending });
    expect(drafts.map((d) => d.sub)).toEqual(["sip:alice@192.0.2.1:5060"]);
  });

  it("removes a de-registered contact, even one another node owns, when the request named it", () => {
    const other = loc({ sub: "sip:alice@10.9.9.9", hlc: (NOW - 10) * 1000 * HLC_UNITS_PER_MS, value: binding({ owner: "n1", expires: NOW + 100 }) });
    const ev = event({ rc: 3, requestContacts: [{ uri: "sip:alice@10.9.9.9", expires: 0 }], contacts: [] });
    // Pretend the sink has not written it yet: a named de-registration still removes it.
    const drafts = draftsFromRegister(ev, { nodeId: ME, current: [other], isPending: () => true, writtenAt: () => undefined, clockLeadMs: 0 });
    expect(drafts).toEqual([{ kind: "loc", key: "alice@example.com", sub: "sip:alice@10.9.9.9", value: null }]);
    expect(draftsFromRegister(event({ rc: 3, requestContacts: "*", contacts: [] }), { nodeId: ME, current: [other], isPending: () => true, writtenAt: () => undefined, clockLeadMs: 0 })).toHaveLength(1);
  });

  it("removes a binding de-registered by its +sip.instance from another address, as usrloc matches it", () => {
    const instance = "<urn:uuid:00000000-0000-1000-8000-000a95a0e128>";
    const old = loc({ sub: "sip:alice@10.0.0.5:5060", hlc: (NOW - 10) * 1000 * HLC_UNITS_PER_MS, value: binding({ owner: ME, expires: NOW + 100, instance, regId: 1 }) });
    const dereg = (header: string) =>
      event({ rc: 3, requestContacts: parseContactHeader(header), requestExpires: null, contacts: [] });
    // The phone moved to 10.0.0.9 and de-registers its instance from there.
    expect(draftsFromRegister(dereg(`<sip:alice@10.0.0.9:5060>;+sip.instance="${instance}";reg-id=1;expires=0`), { nodeId: ME, current: [old], ...noPending }))
      .toEqual([{ kind: "loc", key: "alice@example.com", sub: "sip:alice@10.0.0.5:5060", value: null }]);
    // Another instance, or the new address without one, names nothing here.
    expect(draftsFromRegister(dereg(`<sip:alice@10.0.0.9:5060>;+sip.instance="<urn:uuid:other>";expires=0`), { nodeId: ME, current: [old], ...noPending })).toEqual([]);
    expect(draftsFromRegister(dereg("<sip:alice@10.0.0.9:5060>;expires=0"), { nodeId: ME, current: [old], ...noPending })).toEqual([]);
  });

  it("removes contacts save() dropped (max_contacts, 0x04) only if Kamailio held them when the event was made", () => {
    const other = loc({ sub: "sip:alice@10.9.9.9", hlc: (NOW - 10) * 1000 * HLC_UNITS_PER_MS, value: binding({ owner: "n1", expires: NOW + 100 }) });
    const ev = event({ contacts: [contact()] });
    expect(draftsFromRegister(ev, { nodeId: ME, current: [other], ...noPending })).toContainEqual({ kind: "loc", key: "alice@example.com", sub: "sip:alice@10.9.9.9", value: null });
    // Still waiting in the sink: Kamailio never had it, so its absence means nothing.
    expect(draftsFromRegister(ev, { nodeId: ME, current: [other], isPending: () => true, writtenAt: () => undefined, clockLeadMs: 0 }).filter((d) => d.value === null)).toEqual([]);
    // Written after the snapshot was taken: same.
    expect(draftsFromRegister(ev, { nodeId: ME, current: [other], isPending: () => false, writtenAt: () => NOW * 1000 + 5, clockLeadMs: 0 }).filter((d) => d.value === null)).toEqual([]);
  });

  it("takes no binding that expired between a held REGISTER and the reading of its contacts for one save() dropped", () => {
    // The include held the REGISTER (ts NOW) while the agent was away; its contacts were read when
    // the agent came back, 200 s later. Another node's binding expired in between, so Kamailio
    // no longer had it (a refresh of it may still be on its way from that node).
    const other = loc({ sub: "sip:alice@10.9.9.9", hlc: (NOW - 10) * 1000 * HLC_UNITS_PER_MS, value: binding({ owner: "n1", expires: NOW + 100 }) });
    const held = event({ contacts: [contact()] });
    expect(draftsFromRegister(held, { nodeId: ME, current: [other], ...noPending, nowMs: (NOW + 200) * 1000 })).toEqual([
      { kind: "loc", key: "alice@example.com", sub: contact().contact, value: expect.objectContaining({ owner: ME }) as unknown },
    ]);
    // Read at once, the same snapshot still says save() dropped it.
    expect(draftsFromRegister(held, { nodeId: ME, current: [other], ...noPending, nowMs: NOW * 1000 + 5 }).filter((d) => d.value === null)).toHaveLength(1);
  });

  it("takes no contact as dropped while a reload into a restarted Kamailio is due or running; named removals still count", () => {
    const mine = loc({ origin: MY_REPLICA, sub: "sip:alice@10.1.1.1", hlc: (NOW - 10) * 1000 * HLC_UNITS_PER_MS, value: binding({ owner: ME, expires: NOW + 100 }) });
    const other = loc({ sub: "sip:alice@10.9.9.9", hlc: (NOW - 10) * 1000 * HLC_UNITS_PER_MS, value: binding({ owner: "n1", expires: NOW + 100 }) });
    // Kamailio came back empty and the reload has not put these two back yet: the new phone's
    // event lists only itself.
    const ev = event({ contacts: [contact()] });
    expect(draftsFromRegister(ev, { nodeId: ME, current: [mine, other], ...noPending }).filter((d) => d.value === null)).toHaveLength(2);
    const drafts = draftsFromRegister(ev, { nodeId: ME, current: [mine, other], ...noPending, kamailioWhole: false });
    expect(drafts.filter((d) => d.value === null)).toEqual([]);
    expect(drafts.map((d) => d.sub)).toEqual([contact().contact]);
    const dereg = event({ rc: 3, requestContacts: [{ uri: "sip:alice@10.9.9.9", expires: 0 }], contacts: [] });
    expect(draftsFromRegister(dereg, { nodeId: ME, current: [mine, other], ...noPending, kamailioWhole: false })).toEqual([
      { kind: "loc", key: "alice@example.com", sub: "sip:alice@10.9.9.9", value: null },
    ]);
  });

  it("removes only the named contact when a request that added nothing reports others gone (db_mode 3, database down)", () => {
    const mine = loc({ origin: MY_REPLICA, sub: "sip:alice@10.1.1.1", hlc: (NOW - 10) * 1000 * HLC_UNITS_PER_MS, value: binding({ owner: ME, expires: NOW + 100 }) });
    const other = loc({ sub: "sip:alice@10.9.9.9", hlc: (NOW - 10) * 1000 * HLC_UNITS_PER_MS, value: binding({ owner: "n1", expires: NOW + 100 }) });
    const named = loc({ origin: MY_REPLICA, sub: "sip:alice@10.2.2.2", hlc: (NOW - 10) * 1000 * HLC_UNITS_PER_MS, value: binding({ owner: ME, expires: NOW + 100 }) });
    const dereg = event({ rc: 1, requestContacts: [{ uri: "sip:alice@10.2.2.2", expires: null }], requestExpires: 0, contacts: [] });
    expect(draftsFromRegister(dereg, { nodeId: ME, current: [mine, other, named], ...noPending })).toEqual([
      { kind: "loc", key: "alice@example.com", sub: "sip:alice@10.2.2.2", value: null },
    ]);
    // A query (no Contact) says nothing about contacts that are missing either.
    expect(draftsFromRegister(event({ rc: 4, requestContacts: [], contacts: [] }), { nodeId: ME, current: [mine, other], ...noPending })).toEqual([]);
    // A registration the snapshot does not even show: Kamailio's view of the AoR was not read.
    expect(draftsFromRegister(event({ contacts: [] }), { nodeId: ME, current: [mine, other], ...noPending })).toEqual([]);
  });

  it("does not learn back a contact the journal removed after Kamailio last changed it", () => {
    // Registered at NOW-60, de-registered (acknowledged) at NOW-30, yet still in the snapshot at NOW:
    // a db_mode 3 Kamailio whose database was down acked the de-registration and kept the row.
    const removed = loc({ origin: MY_REPLICA, sub: "sip:alice@10.1.1.1", hlc: (NOW - 30) * 1000 * HLC_UNITS_PER_MS, value: null });
    const stale = contact({ contact: "sip:alice@10.1.1.1", modified: NOW - 60 });
    const ev = event({ contacts: [contact(), stale] });
    expect(draftsFromRegister(ev, { nodeId: ME, current: [removed], ...noPending }).map((d) => d.sub)).toEqual(["sip:alice@192.0.2.1:5060"]);
    // Registered again after the removal (or within its second): learned.
    const again = event({ contacts: [contact(), { ...stale, modified: NOW - 30 }] });
    expect(draftsFromRegister(again, { nodeId: ME, current: [removed], ...noPending }).map((d) => d.sub)).toEqual(["sip:alice@192.0.2.1:5060", "sip:alice@10.1.1.1"]);
  });

  it("never overwrites a version newer than the event", () => {
    const newer = loc({ origin: OTHER, hlc: (NOW + 5) * 1000 * HLC_UNITS_PER_MS, value: binding({ owner: "n1", cseq: 99, expires: NOW + 100 }) });
    expect(draftsFromRegister(event(), { nodeId: ME, current: [newer], ...noPending })).toEqual([]);
    expect(draftsFromRegister(event({ contacts: [] }), { nodeId: ME, current: [newer], ...noPending })).toEqual([]);
  });

  it("judges 'newer' in the hybrid clock's frame when the clock runs ahead of this host's", () => {
    // The cluster's clock runs 5 s ahead of this host's (a peer's clock is fast), so this node
    // stamped its own registration at NOW + 5 s although Kamailio registered it at NOW.
    const lead = 5000;
    const registered = draftsFromRegister(event(), { nodeId: ME, current: [], ...noPending })[0]!;
    const mine = loc({ origin: MY_REPLICA, hlc: (NOW + 5) * 1000 * HLC_UNITS_PER_MS, value: registered.value });
    // De-registered 1.5 s later by this host's clock: behind the stamp, ahead of it once moved.
    const dereg = event({ rc: 3, tsMs: NOW * 1000 + 1500, requestContacts: [{ uri: mine.sub, expires: 0 }], contacts: [] });
    expect(draftsFromRegister(dereg, { nodeId: ME, current: [mine], ...noPending, clockLeadMs: lead })).toEqual([{ kind: "loc", key: mine.key, sub: mine.sub, value: null }]);
    const refresh = event({ rc: 2, tsMs: NOW * 1000 + 1500, cseq: 8, contacts: [contact({ cseq: 8, expires: NOW + 600 })] });
    expect(draftsFromRegister(refresh, { nodeId: ME, current: [mine], ...noPending, clockLeadMs: lead })[0]?.value).toMatchObject({ cseq: 8, expires: NOW + 600 });
    // A version stamped after the event in that frame still wins.
    const later = { ...mine, hlc: (NOW + 7) * 1000 * HLC_UNITS_PER_MS };
    expect(draftsFromRegister(dereg, { nodeId: ME, current: [later], ...noPending, clockLeadMs: lead })).toEqual([]);
  });
});
