import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseContactHeader } from "../../agent/kamailio/contact-header.js";
import { EventFormatError, parseKamailioEvent, type RegisterEvent } from "../../agent/kamailio/register-event.js";

// Captured from Kamailio 5.6.3 running the generated include (test/integration/kamailio-events.test.ts).
const REAL_REGISTER =
  '{"event":"register","rc":1,"ts":"1795310453.061210","aor":"sip:alice@example.com","req_contact":"<sip:alice@127.0.0.1:41713>","req_expires":60,' +
  '"callid":"1-27187@127.0.0.1","cseq":1,"user_agent":"sipp","source":"udp:127.0.0.1:41713","contacts":[' +
  '{"addr":"sip:alice@127.0.0.1:47002","expires":1795310512,"q":-1,"callid":"1-27174@127.0.0.1","cseq":1,"path":"","received":"","user_agent":"sipp",' +
  '"ruid":"uloc-6b024374-6a05-1","socket":"udp:127.0.0.1:44897","flags":0,"cflags":0,"methods":4294967295,"regid":0},' +
  '{"addr":"sip:alice@127.0.0.1:41713","expires":1795310513,"q":500,"callid":"1-27187@127.0.0.1","cseq":1,"path":"<sip:edge.example.net;lr>","received":"sip:198.51.100.7:34567","user_agent":"sipp",' +
  '"ruid":"uloc-6b024374-6a06-2","socket":"udp:127.0.0.1:44897","flags":0,"cflags":0,"methods":4294967295,"regid":0,"instance":"<urn:uuid:1>"}]}';
// From kamailio-5.6.md §8 (the expired event), plus the ts the include adds.
const REAL_EXPIRED = '{"event":"expired","ts":"1795304800.000999","aor":"yan@example.com","addr":"sip:yan@127.0.0.1:7100","ruid":"uloc-6b022d05-6b40-1","callid":"reg-yan","expires":1795304772}';

const register = (over: Record<string, unknown> = {}): string => JSON.stringify({ ...JSON.parse(REAL_REGISTER), ...over });
const withContact = (over: Record<string, unknown>): string => {
  const ev = JSON.parse(REAL_REGISTER);
  ev.contacts[0] = { ...ev.contacts[0], ...over };
  return JSON.stringify(ev);
};

describe("parseKamailioEvent", () => {
  it("parses a real register event: bare AoR, q scaled, ms timestamp, request contacts", () => {
    const ev = parseKamailioEvent(REAL_REGISTER) as RegisterEvent;
    expect(ev).toMatchObject({
      type: "register", rc: 1, aor: "alice@example.com", requestExpires: 60, callid: "1-27187@127.0.0.1", cseq: 1, userAgent: "sipp",
      source: "udp:127.0.0.1:41713", tsMs: 1795310453061, requestContacts: [{ uri: "sip:alice@127.0.0.1:41713", expires: null }],
    });
    expect(ev.contacts[0]).toEqual({
      contact: "sip:alice@127.0.0.1:47002", expires: 1795310512, q: -1, callid: "1-27174@127.0.0.1", cseq: 1, path: "", received: "", userAgent: "sipp",
      ruid: "uloc-6b024374-6a05-1", socket: "udp:127.0.0.1:44897", flags: 0, cflags: 0, methods: 4294967295, instance: "", regId: 0,
    });
    expect(ev.contacts[1]).toMatchObject({ q: 0.5, path: "<sip:edge.example.net;lr>", received: "sip:198.51.100.7:34567", instance: "<urn:uuid:1>" });
    expect(ev.contacts[0]).not.toHaveProperty("modified");
    expect((parseKamailioEvent(withContact({ modified: 1795310452 })) as RegisterEvent).contacts[0]?.modified).toBe(1795310452);
    expect(() => parseKamailioEvent(withContact({ modified: "yesterday" }))).toThrow(EventFormatError);
  });

  it("parses the expired event", () => {
    expect(parseKamailioEvent(REAL_EXPIRED)).toEqual({
      type: "expired", aor: "yan@example.com", contact: "sip:yan@127.0.0.1:7100", ruid: "uloc-6b022d05-6b40-1", callid: "reg-yan", expires: 1795304772, tsMs: 1795304800000,
    });
    const { ts: _ts, ...noTs } = JSON.parse(REAL_EXPIRED);
    expect(parseKamailioEvent(JSON.stringify(noTs))).toMatchObject({ tsMs: null });
  });

  it("takes an expired event whose AoR is the user part alone (usrloc db_mode 3 in Kamailio 5.6.3), and still refuses a malformed one", () => {
    const expired = (aor: string) => JSON.stringify({ ...JSON.parse(REAL_EXPIRED), aor });
    expect(parseKamailioEvent(expired("yan"))).toMatchObject({ type: "expired", aor: "yan", contact: "sip:yan@127.0.0.1:7100" });
    expect(parseKamailioEvent(expired("Yan@Example.com"))).toMatchObject({ aor: "yan@example.com" });
    for (const bad of ["", "yan@", "sip:"]) expect(() => parseKamailioEvent(expired(bad)), bad).toThrow(EventFormatError);
  });

  it("derives the AoR from $tu like usrloc: scheme, port and parameters dropped, lower-cased", () => {
    expect((parseKamailioEvent(register({ aor: "SIPS:Alice@Example.COM:5061;transport=tls" })) as RegisterEvent).aor).toBe("alice@example.com");
  });

  it("unescapes the user part and drops a password, as the registrar's extract_aor does", () => {
    const aorOf = (tu: string) => (parseKamailioEvent(register({ aor: tu })) as RegisterEvent).aor;
    expect(aorOf("sip:%2B4930123@example.com")).toBe("+4930123@example.com");
    expect(aorOf("sip:Alice:secret@Example.com")).toBe("alice@example.com");
    expect(aorOf("sip:bob@[2001:DB8::1]:5060")).toBe("bob@[2001:db8::1]");
    expect(() => parseKamailioEvent(register({ aor: "sip:example.com" }))).toThrow(/register\.aor/);
  });

  it("handles rc 3 with no contacts left, a query without Contact, and a missing Expires/User-Agent", () => {
    const { req_contact: _c, req_expires: _e, user_agent: _u, ...rest } = JSON.parse(register({ rc: 4, contacts: [] }));
    expect(parseKamailioEvent(JSON.stringify(rest))).toMatchObject({ rc: 4, requestContacts: [], requestExpires: null, userAgent: "", contacts: [] });
    expect(parseKamailioEvent(register({ rc: 3, req_contact: "*", req_expires: 0, contacts: [] }))).toMatchObject({ rc: 3, requestContacts: "*" });
  });

  it("cuts a user agent over 255 characters instead of dropping the REGISTER (Kamailio answered it 200; the hostile dry run's F10)", () => {
    const long = `Phone/1.0 ${"x".repeat(300)}`;
    const ev = parseKamailioEvent(JSON.stringify({ ...JSON.parse(withContact({ user_agent: long })), user_agent: long })) as RegisterEvent;
    expect(ev.userAgent).toBe(long.slice(0, 255));
    expect(ev.contacts[0]?.userAgent).toBe(long.slice(0, 255));
    // Never half a surrogate pair at the cut.
    const emoji = `${"y".repeat(254)}😀tail`;
    expect((parseKamailioEvent(register({ user_agent: emoji })) as RegisterEvent).userAgent).toBe("y".repeat(254));
  });

  it("reads a signed all-methods mask as unsigned", () => {
    expect((parseKamailioEvent(withContact({ methods: -1 })) as RegisterEvent).contacts[0]?.methods).toBe(4294967295);
  });

  it.each([
    ["not JSON", "{", /not JSON/],
    ["an array", "[]", /must be a JSON object, got array/],
    ["an unknown event", '{"event":"publish"}', /unknown "event"/],
    ["rc 0", register({ rc: 0 }), /rc 0 is outside 1..4/],
    ["rc as a string", register({ rc: "1" }), /rc must be an integer, got string/],
    ["a fractional cseq", register({ cseq: 1.5 }), /cseq must be an integer/],
    ["contacts as an object", register({ contacts: {} }), /contacts must be an array/],
    ["a bad AoR", register({ aor: "sip:nodomain" }), /register.aor/],
    ["a NUL in the call-id", register({ callid: "a\u0000b" }), /NUL/],
    ["an oversized Call-ID", register({ callid: "x".repeat(256) }), /callid is longer than 255/],
    ["a bad timestamp", register({ ts: 1795310453 }), /seconds.microseconds/],
    ["a deeply nested timestamp", register({ ts: "\u0001deep" }).replace('"\\u0001deep"', "[".repeat(30_000) + "]".repeat(30_000)), /seconds.microseconds.*deeply nested array/],
    ["a deeply nested event kind", `{"event":${"[".repeat(30_000)}${"]".repeat(30_000)}}`, /unknown "event" a deeply nested/],
    ["a lone surrogate in the user agent", register({ user_agent: "x\ud800" }), /lone UTF-16 surrogate/],
    ["a bad source", register({ source: "udp:1.2.3.4" }), /proto:ip:port/],
    ["q above 1000", withContact({ q: 1001 }), /q 1001 is outside/],
    ["a negative expires", withContact({ expires: -5 }), /expires -5 is outside/],
    ["a contact with spaces", withContact({ addr: "sip:a b@h" }), /addr/],
    ["an oversized path", withContact({ path: "x".repeat(513) }), /path is longer than 512/],
    ["a bad socket", withContact({ socket: "udp:1.2.3.4:99999" }), /socket/],
    ["a string flags", withContact({ flags: "0" }), /flags must be an integer/],
    ["null received", withContact({ received: null }), /received must be a string, got null/],
    ["too many contacts", register({ contacts: Array.from({ length: 1025 }, () => ({})) }), /over 1024/],
  ])("rejects %s", (_name, payload, message) => {
    expect(() => parseKamailioEvent(payload)).toThrow(EventFormatError);
    expect(() => parseKamailioEvent(payload)).toThrow(message);
  });

  it("throws nothing but EventFormatError on arbitrary JSON and text", () => {
    const check = (payload: string): void => {
      try {
        parseKamailioEvent(payload);
      } catch (err) {
        expect(err).toBeInstanceOf(EventFormatError);
      }
    };
    fc.assert(fc.property(fc.string(), check));
    fc.assert(fc.property(fc.json(), check));
    fc.assert(fc.property(fc.dictionary(fc.constantFrom("rc", "aor", "contacts", "ts", "source", "callid", "cseq", "__proto__"), fc.jsonValue()), (o) => {
      check(JSON.stringify({ ...JSON.parse(REAL_REGISTER), ...o }));
      check(JSON.stringify({ ...JSON.parse(REAL_EXPIRED), ...o, event: "expired" }));
    }));
  });
});

describe("parseContactHeader", () => {
  it("parses name-addr and addr-spec forms with parameters", () => {
    expect(parseContactHeader('<sip:a@h>;expires=0, sip:b@h;q=0.5;expires=30, "Bob, Jr. <x>" <sip:c@h;transport=tcp>;+sip.instance="<urn:uuid:1>"')).toEqual([
      { uri: "sip:a@h", expires: 0 },
      { uri: "sip:b@h", expires: 30 },
      { uri: "sip:c@h;transport=tcp", expires: null, instance: "urn:uuid:1" },
    ]);
  });

  it("keeps commas and semicolons inside <...> and quoted display names", () => {
    expect(parseContactHeader('"a\\"b,c" <sip:x@h;p=1,2>;EXPIRES=5')).toEqual([{ uri: "sip:x@h;p=1,2", expires: 5 }]);
    expect(parseContactHeader("Alice <sip:alice@h>")).toEqual([{ uri: "sip:alice@h", expires: null }]);
  });

  it("recognises the wildcard", () => {
    expect(parseContactHeader(" * ")).toBe("*");
  });

  it.each([
    ["*, <sip:a@h>", /mixed/],
    ['"unterminated <sip:a@h>', /unterminated/],
    ["<sip:a@h", /without '>'/],
    ["<sip:a@h>;expires=-1", /bad expires/],
    ["<sip:a@h>;expires=99999999999", /bad expires/],
    ["<http://x>", /is not a sip:/],
    ["<sip:a@h>\u0000", /NUL/],
  ])("rejects %j", (value, message) => {
    expect(() => parseContactHeader(value)).toThrow(message);
  });
});
