import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EventFormatError, parseKamailioEvent, registerAorOf, type RegisterEvent } from "../../agent/kamailio/register-event.js";

// What route[LOCMESH_REGISTER] prints (cfg-include.ts): strings as {s.encode.hexa}, the request's
// cseq and Expires as quoted decimals, usrloc's numbers bare, and the contact count.
const hex = (s: string | Buffer): string => Buffer.from(s).toString("hex");

interface Fields {
  aor: string;
  reqContact: string;
  reqExpires: string;
  callid: string;
  cseq: string;
  userAgent: string;
  contacts: Record<string, string | number>[];
}

const CONTACT = {
  addr: "sip:alice@127.0.0.1:47002", expires: 1795310512, q: 500, callid: "1-27174@127.0.0.1", cseq: 3, path: "<sip:edge.example.net;lr>", received: "sip:198.51.100.7:34567",
  user_agent: "sipp", ruid: "uloc-6b024374-6a05-1", socket: "udp:127.0.0.1:44897", instance: "<urn:uuid:1>", flags: 0, cflags: 2, methods: 4294967295, regid: 1,
};
const HEX_KEYS = new Set(["addr", "callid", "path", "received", "user_agent", "ruid", "socket", "instance"]);
const BASE: Fields = { aor: "sip:alice@example.com", reqContact: "<sip:alice@127.0.0.1:41713>", reqExpires: "60", callid: "1-27187@127.0.0.1", cseq: "1", userAgent: "sipp", contacts: [CONTACT] };

function format2(f: Partial<Fields> = {}, extra: Record<string, unknown> = {}): string {
  const e = { ...BASE, ...f };
  const contacts = e.contacts.map((c) => Object.fromEntries(Object.entries(c).map(([k, v]) => [k, HEX_KEYS.has(k) ? hex(String(v)) : v])));
  return JSON.stringify({
    v: 2, event: "register", rc: 1, ts: "1795310453.061210", aor: hex(e.aor), req_contact: hex(e.reqContact), req_expires: e.reqExpires,
    callid: hex(e.callid), cseq: e.cseq, user_agent: hex(e.userAgent), source: "udp:127.0.0.1:41713", count: contacts.length, contacts, ...extra,
  });
}

const withContact = (over: Record<string, unknown>): string => {
  const ev = JSON.parse(format2());
  ev.contacts[0] = { ...ev.contacts[0], ...over };
  return JSON.stringify(ev);
};

const EXPIRED = (over: Record<string, unknown> = {}): string =>
  JSON.stringify({ v: 2, event: "expired", ts: "1795304800.000999", aor: hex("yan@example.com"), addr: hex("sip:yan@127.0.0.1:7100"), ruid: hex("uloc-6b022d05-6b40-1"), callid: hex("reg-yan"), expires: 1795304772, ...over });

describe("event format 2", () => {
  it("gives the same event as format 1 (jansson) for the same registration", () => {
    const v1 = JSON.stringify({
      event: "register", rc: 1, ts: "1795310453.061210", aor: BASE.aor, req_contact: BASE.reqContact, req_expires: 60, callid: BASE.callid, cseq: 1,
      user_agent: "sipp", source: "udp:127.0.0.1:41713", contacts: [CONTACT],
    });
    const ev = parseKamailioEvent(format2());
    expect(ev).toEqual(parseKamailioEvent(v1));
    expect(ev).toMatchObject({ type: "register", aor: "alice@example.com", requestExpires: 60, cseq: 1, requestContacts: [{ uri: "sip:alice@127.0.0.1:41713", expires: null }] });
    expect((ev as RegisterEvent).contacts[0]).toMatchObject({ q: 0.5, cflags: 2, regId: 1, instance: "<urn:uuid:1>", path: "<sip:edge.example.net;lr>" });
  });

  it("parses the expired event", () => {
    expect(parseKamailioEvent(EXPIRED())).toEqual({
      type: "expired", aor: "yan@example.com", contact: "sip:yan@127.0.0.1:7100", ruid: "uloc-6b022d05-6b40-1", callid: "reg-yan", expires: 1795304772, tsMs: 1795304800000,
    });
    expect(parseKamailioEvent(EXPIRED({ ruid: "", callid: "" }))).toMatchObject({ ruid: "", callid: "" });
  });

  it("reads unset values ($null prints nothing through {s.encode.hexa}) as empty, and no Expires header as null", () => {
    const ev = parseKamailioEvent(format2({ reqContact: "", reqExpires: "", userAgent: "", contacts: [{ ...CONTACT, path: "", received: "", user_agent: "", instance: "", socket: "" }] })) as RegisterEvent;
    expect(ev).toMatchObject({ requestContacts: [], requestExpires: null, userAgent: "" });
    expect(ev.contacts[0]).toMatchObject({ path: "", received: "", userAgent: "", instance: "", socket: "" });
    expect(parseKamailioEvent(format2({ reqContact: "*", reqExpires: "0", contacts: [] }, { rc: 3 }))).toMatchObject({ rc: 3, requestContacts: "*", requestExpires: 0, contacts: [] });
  });

  it("carries quotes, backslashes, control characters, separators and any Unicode through unchanged", () => {
    const hostile = fc.string({ unit: "grapheme", maxLength: 60 }).map((s) => s.split("\u0000").join(""));
    fc.assert(fc.property(hostile, hostile, fc.constantFrom('"', "\\", '","', "}],", "\t\r\n", "\u2028", "😀", "<null>"), (ua, callid, sep) => {
      const ev = parseKamailioEvent(format2({ userAgent: ua + sep, callid: sep + callid, contacts: [{ ...CONTACT, user_agent: sep + ua, callid: callid + sep, instance: sep }] })) as RegisterEvent;
      expect([ev.userAgent, ev.callid]).toEqual([ua + sep, sep + callid]);
      expect(ev.contacts[0]).toMatchObject({ userAgent: sep + ua, callid: callid + sep, instance: sep });
    }));
  });

  it("reads bytes that are not UTF-8 with U+FFFD, as the agent reads ul.dump", () => {
    const ev = JSON.parse(format2());
    ev.user_agent = hex(Buffer.from([0x55, 0xff, 0x41]));
    expect((parseKamailioEvent(JSON.stringify(ev)) as RegisterEvent).userAgent).toBe("U\ufffdA");
  });

  it.each([
    ["a NUL in the user agent", format2({ userAgent: "a\u0000b" }), /user_agent contains a NUL/],
    ["a NUL in a contact's call-id", format2({ contacts: [{ ...CONTACT, callid: "\u0000" }] }), /contacts\[0\]\.callid contains a NUL/],
    ["an unknown format", format2({}, { v: 3 }), /event format 3 is not one this agent reads/],
    ["a format as a string", format2({}, { v: "2" }), /event format "2"/],
    ["upper-case hex", format2({}, { aor: hex(BASE.aor).toUpperCase() }), /aor must be a hex string/],
    ["odd-length hex", format2({}, { callid: "616" }), /callid must be a hex string/],
    ["plain text where hex belongs", format2({}, { user_agent: "sipp" }), /user_agent must be a hex string/],
    ["a missing hex field", withContact({ ruid: undefined }), /contacts\[0\]\.ruid must be a hex string/],
    ["a hex field as a number", withContact({ socket: 12 }), /socket must be a hex string/],
    ["a contact that is not an object", format2({}, { contacts: ["x"], count: 1 }), /contacts\[0\] must be a JSON object/],
    ["fewer contacts than usrloc counted (loop cut short)", format2({}, { count: 2 }), /has 1 entries but usrloc holds 2/],
    ["a missing count", format2({}, { count: undefined }), /count must be an integer/],
    ["a cseq that is not decimal", format2({ cseq: "" }), /cseq must be a decimal string/],
    ["a bare cseq", format2({}, { cseq: 1 }), /cseq must be a decimal string/],
    ["a negative Expires", format2({ reqExpires: "-5" }), /req_expires must be a decimal string/],
    ["a bare usrloc number that did not print", withContact({ expires: "" }), /expires must be an integer/],
    ["a contact address that is not a SIP URI", format2({ contacts: [{ ...CONTACT, addr: "sip:a b@h" }] }), /addr/],
    ["an AoR without a domain", format2({ aor: "sip:nodomain" }), /register.aor/],
    ["an over-long Call-ID", format2({ callid: "é".repeat(256) }), /callid is longer than 255/],
    ["an expired event with a bad address", EXPIRED({ addr: "zz" }), /expired.addr must be a hex string/],
  ])("rejects %s", (_name, payload, message) => {
    expect(() => parseKamailioEvent(payload)).toThrow(EventFormatError);
    expect(() => parseKamailioEvent(payload)).toThrow(message);
  });

  it("cuts an over-long user agent to 255 characters (the REGISTER was answered 200: it must not be dropped)", () => {
    expect((parseKamailioEvent(format2({ userAgent: "é".repeat(256) })) as RegisterEvent).userAgent).toBe("é".repeat(255));
  });

  it("throws nothing but EventFormatError on arbitrary format-2 input", () => {
    const check = (payload: string): void => {
      try {
        parseKamailioEvent(payload);
      } catch (err) {
        expect(err).toBeInstanceOf(EventFormatError);
      }
    };
    const keys = fc.constantFrom("aor", "callid", "cseq", "req_expires", "count", "contacts", "user_agent", "req_contact", "__proto__", "v");
    fc.assert(fc.property(fc.dictionary(keys, fc.jsonValue()), (o) => {
      check(JSON.stringify({ ...JSON.parse(format2()), ...o }));
      check(JSON.stringify({ ...JSON.parse(EXPIRED()), ...o }));
    }));
    fc.assert(fc.property(fc.dictionary(fc.constantFrom(...Object.keys(CONTACT), "__proto__"), fc.jsonValue()), (o) => check(withContact(o))));
  });
});

describe("the AoR of a register event the agent cannot read (registerAorOf)", () => {
  it("reads it from an event refused for its contact list, so the agent can look the AoR up in Kamailio instead", () => {
    // The include's loop stopped early (max_while_loops): the list is shorter than usrloc's count.
    const cut = JSON.stringify({ ...JSON.parse(format2({ aor: "sip:Alice@Example.COM;transport=udp" })), count: 101 });
    expect(() => parseKamailioEvent(cut)).toThrow(EventFormatError);
    expect(registerAorOf(cut)).toBe("alice@example.com");
    expect(registerAorOf(withContact({ q: "high" }))).toBe("alice@example.com");
  });

  it("reads format 1's plain AoR too", () => {
    expect(registerAorOf(JSON.stringify({ event: "register", aor: "sip:bob@example.com", contacts: "no" }))).toBe("bob@example.com");
  });

  it("gives null for what is no register event, or an AoR that does not read", () => {
    expect(registerAorOf("not json")).toBeNull();
    expect(registerAorOf(EXPIRED())).toBeNull();
    expect(registerAorOf(JSON.stringify([1, 2]))).toBeNull();
    expect(registerAorOf(format2({ aor: "tel:+15551234" }))).toBeNull();
    expect(registerAorOf(JSON.stringify({ ...JSON.parse(format2()), aor: "zz-not-hex" }))).toBeNull();
    expect(registerAorOf(JSON.stringify({ ...JSON.parse(format2()), aor: hex(`sip:${"a".repeat(600)}@example.com`) }))).toBeNull();
  });
});
