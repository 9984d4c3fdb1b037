import { describe, expect, it } from "vitest";
import type { z } from "zod";
import { batchParams, helloParams, helloResult, pullParams, pullResult } from "../../agent/contract/protocol.js";
import { changeSchema, versionVectorSchema } from "../../agent/contract/record-schemas.js";
import { aliasSetParams, bindingInput, listParams, locationEdit } from "../../agent/contract/api-protocol.js";
import { LIMITS, checkSipUri } from "../../agent/contract/sip-uri.js";
import { REPLICA_A, aliasValue, binding } from "../support/fixtures.js";

/** The messages of a failed parse, joined, so a test can look for the one it expects. */
function problems(schema: z.ZodType, input: unknown): string {
  const r = schema.safeParse(input);
  if (r.success) throw new Error(`expected ${JSON.stringify(input)} to be rejected`);
  return r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("\n");
}

const locChange = { kind: "loc", key: "alice@example.com", sub: "sip:alice@10.0.0.1", value: binding(), hlc: 5, origin: REPLICA_A, seq: 1 };

describe("bindingInput", () => {
  it("refuses a NUL or a lone surrogate in any stored field, naming the field, and keeps every other character", () => {
    const b = { aor: "sip:a@example.com", contact: "sip:a@10.0.0.1:5060", expires: 3600 };
    expect(problems(bindingInput, { ...b, userAgent: "UA\u0000x" })).toMatch(/^userAgent: contains a NUL character/);
    expect(problems(bindingInput, { ...b, callid: "c\ud800" })).toMatch(/^callid: contains a lone UTF-16 surrogate/);
    expect(problems(bindingInput, { ...b, contact: "sip:a@h;x=\u0000" })).toMatch(/^contact: .*NUL/);
    expect(problems(aliasSetParams, { alias: "sip:a@example.com", target: "sip:t@example.com;p=\u0000" })).toMatch(/^target: .*NUL/);
    const odd = "'\"\\;-- ' OR 1=1 😀 \u200f %00 \u0001";
    // A Path and a received hold URIs (checkPath, checkReceived), where the odd characters go into a parameter.
    const inUri = "';--%00😀\u200f\\";
    const path = `<sip:edge.example.net;lr;x=${inUri}>`;
    const received = `sip:198.51.100.7:5060;x=${inUri}`;
    expect(bindingInput.parse({ ...b, userAgent: odd, path, received, callid: odd, instance: odd })).toMatchObject({ userAgent: odd, path, received, callid: odd });
    expect(problems(bindingInput, { ...b, path: odd })).toMatch(/^path: path .* must be <sip:…> entries/);
  });

  it("fills Kamailio's defaults and normalises the AoR", () => {
    const b = bindingInput.parse({ aor: "sip:Alice@Example.com", contact: "sip:alice@10.0.0.1:5060", expires: 3600 });
    expect(b).toEqual({
      aor: "alice@example.com",
      contact: "sip:alice@10.0.0.1:5060",
      expires: 3600,
      q: -1,
      path: "",
      received: "",
      socket: "",
      callid: "",
      cseq: 0,
      userAgent: "",
      flags: 0,
      cflags: 0,
      methods: 4294967295,
      instance: "",
      regId: 0,
      ruid: "",
    });
  });

  it("requires expires", () => {
    expect(problems(bindingInput, { aor: "a@b", contact: "sip:a@b" })).toMatch(/^expires:/);
  });

  it("names the bad URI and what is wrong with it", () => {
    const msg = problems(bindingInput, { aor: "a@b", contact: "sip:al ice@host", expires: 0 });
    expect(msg).toContain('contact: SIP URI "sip:al ice@host" is not a sip:, sips: or tel: URI');
    expect(problems(bindingInput, { aor: "alice", contact: "sip:a@b", expires: 0 })).toContain('aor: AoR "alice" must look like user@domain');
    expect(problems(bindingInput, { aor: "a@b", contact: "sip:a@b", expires: 0, socket: "10.0.0.1" })).toContain(
      'socket: socket "10.0.0.1" must look like proto:address:port',
    );
  });

  it("rejects fields longer than Kamailio's columns", () => {
    const base = { aor: "a@b", contact: "sip:a@b", expires: 0 };
    expect(bindingInput.safeParse({ ...base, callid: "c".repeat(LIMITS.callid) }).success).toBe(true);
    expect(problems(bindingInput, { ...base, callid: "c".repeat(LIMITS.callid + 1) })).toMatch(/^callid:/);
    expect(problems(bindingInput, { ...base, path: "p".repeat(LIMITS.path + 1) })).toMatch(/^path:/);
    expect(problems(bindingInput, { ...base, userAgent: "u".repeat(LIMITS.userAgent + 1) })).toMatch(/^userAgent:/);
  });

  it("rejects out-of-range numbers", () => {
    const base = { aor: "a@b", contact: "sip:a@b" };
    expect(problems(bindingInput, { ...base, expires: -1 })).toMatch(/^expires:/);
    expect(problems(bindingInput, { ...base, expires: 1.5 })).toMatch(/^expires:/);
    expect(problems(bindingInput, { ...base, expires: 0, q: 1.1 })).toMatch(/^q:/);
    expect(problems(bindingInput, { ...base, expires: 0, cseq: 2 ** 32 })).toMatch(/^cseq:/);
  });

  it("rejects unknown keys", () => {
    expect(problems(bindingInput, { aor: "a@b", contact: "sip:a@b", expires: 0, contactt: "x" })).toContain("contactt");
  });
});

describe("changeSchema", () => {
  it("accepts a binding, an alias and a tombstone", () => {
    expect(changeSchema.parse(locChange)).toEqual(locChange);
    const alias = { kind: "alias", key: "a@b", sub: "", value: aliasValue("sip:t@b"), hlc: 1, origin: REPLICA_A, seq: 2 };
    expect(changeSchema.parse(alias)).toEqual(alias);
    expect(changeSchema.parse({ ...locChange, value: null }).value).toBeNull();
  });

  it.each([
    ["a string hlc", { ...locChange, hlc: "5" }],
    ["seq 0", { ...locChange, seq: 0 }],
    ["a fractional hlc", { ...locChange, hlc: 1.5 }],
    ["an unknown kind", { ...locChange, kind: "user" }],
    ["an alias value on a binding", { ...locChange, value: aliasValue("sip:t@b") }],
    ["a binding value on an alias", { ...locChange, kind: "alias", sub: "" }],
    ["an alias with a contact", { ...locChange, kind: "alias", value: aliasValue("sip:t@b") }],
    ["a number for the key", { ...locChange, key: 42 }],
    ["an origin that is not a replica id", { ...locChange, origin: "alpha" }],
    ["an extra key", { ...locChange, extra: true }],
    ["an extra key in the value", { ...locChange, value: { ...binding(), extra: 1 } }],
    ["an array", [locChange]],
  ])("rejects %s", (_what, input) => {
    expect(changeSchema.safeParse(input).success).toBe(false);
  });
});

describe("peer messages", () => {
  it("batchParams rejects more than 5000 changes", () => {
    const changes = Array.from({ length: 5001 }, (_, i) => ({ ...locChange, seq: i + 1 }));
    expect(problems(batchParams, { origin: REPLICA_A, after: 0, upTo: 5001, changes })).toMatch(/^changes:/);
  });

  it("pullParams defaults skip to [] and bounds limit", () => {
    expect(pullParams.parse({ vv: { [REPLICA_A]: 3 }, limit: 10 })).toMatchObject({ vv: { [REPLICA_A]: 3 }, limit: 10, skip: [] });
    expect(problems(pullParams, { vv: {}, limit: 0 })).toMatch(/^limit:/);
    expect(problems(pullParams, { vv: {}, limit: 5001 })).toMatch(/^limit:/);
  });

  it("versionVectorSchema rejects bad keys and negative entries", () => {
    expect(versionVectorSchema.safeParse({ [REPLICA_A]: 1 }).success).toBe(true);
    expect(versionVectorSchema.safeParse({ "not a replica": 1 }).success).toBe(false);
    expect(versionVectorSchema.safeParse({ [REPLICA_A]: -1 }).success).toBe(false);
  });

  it("helloParams is strict and checks the MAC shape", () => {
    const hello = { protocol: 1, nodeId: "n1", replicaId: REPLICA_A, nonce: "a".repeat(32), mac: "b".repeat(64), vv: {} };
    expect(helloParams.parse(hello)).toEqual(hello);
    expect(problems(helloParams, { ...hello, mac: "short" })).toMatch(/^mac:/);
    expect(problems(helloParams, { ...hello, secret: "x" })).toContain("secret");
    expect(problems(helloParams, { ...hello, nodeId: "-bad" })).toContain("node ids are 1-63 letters");
  });

  it("a peer's answers are checked too: helloResult and pullResult", () => {
    const answer = { nodeId: "n2", replicaId: REPLICA_A, mac: "c".repeat(64), vv: { [REPLICA_A]: 3 } };
    expect(helloResult.parse(answer)).toEqual(answer);
    expect(problems(helloResult, { ...answer, vv: { [REPLICA_A]: "3" } })).toMatch(/^vv\./);
    expect(problems(helloResult, { ...answer, replicaId: "n2" })).toMatch(/^replicaId:/);

    expect(pullResult.parse({ batch: null, remaining: 0 })).toEqual({ batch: null, remaining: 0 });
    const batch = { origin: REPLICA_A, after: 0, upTo: 0, changes: [] };
    expect(pullResult.parse({ batch, remaining: 5 })).toEqual({ batch, remaining: 5 });
    expect(problems(pullResult, { batch: { ...batch, upTo: 2 ** 53 }, remaining: 0 })).toMatch(/^batch\.upTo:/);
    expect(problems(pullResult, { batch, remaining: -1 })).toMatch(/^remaining:/);
    expect(problems(pullResult, { batch, remaining: 0, more: true })).toContain("more");
  });
});

describe("local API params", () => {
  it("locationEdit dispatches on op and rejects unknown ops", () => {
    expect(locationEdit.parse({ op: "remove-aor", aor: "SIP:A@B" })).toEqual({ op: "remove-aor", aor: "a@b" });
    expect(locationEdit.safeParse({ op: "purge", aor: "a@b" }).success).toBe(false);
    expect(locationEdit.safeParse({ op: "remove", aor: "a@b" }).success).toBe(false);
  });

  it("listParams fills defaults and bounds the search", () => {
    expect(listParams.parse({})).toEqual({ search: "", after: "", limit: 100 });
    expect(problems(listParams, { search: "s".repeat(257) })).toMatch(/^search:/);
  });

  it("listParams takes the cursor after any storable row, and nothing bigger", () => {
    // A legal contact of 512 characters, most of them control characters: 6 characters each in JSON.
    const contact = `sip:${"\u0001".repeat(500)}@h`;
    expect(checkSipUri(contact)).toBeNull();
    const after = JSON.stringify([`${"a".repeat(120)}@example.com`.slice(0, LIMITS.aor), contact.padEnd(LIMITS.contact, "x")]);
    expect(after.length).toBeGreaterThan(3000);
    expect(listParams.parse({ after }).after).toBe(after);
    expect(listParams.parse({ after: JSON.stringify(["a@b", ""]) }).after).toBe('["a@b",""]');
    expect(problems(listParams, { after: JSON.stringify(["a".repeat(LIMITS.aor + 1), ""]) })).toMatch(/^after: is not a cursor/);
    expect(problems(listParams, { after: JSON.stringify(["a@b", "x".repeat(LIMITS.contact + 1)]) })).toMatch(/^after: is not a cursor/);
    expect(problems(listParams, { after: JSON.stringify(["a@b", "c", "d"]) })).toMatch(/^after: is not a cursor/);
    expect(problems(listParams, { after: " ".repeat(5000) })).toMatch(/^after:/);
  });

  it("aliasSetParams validates both ends", () => {
    expect(aliasSetParams.parse({ alias: "sip:Sales@B", target: "sip:bob@b" })).toEqual({ alias: "sales@b", target: "sip:bob@b" });
    expect(problems(aliasSetParams, { alias: "sales@b", target: "bob" })).toContain('target: SIP URI "bob"');
    expect(aliasSetParams.parse({ alias: "a@b", target: "sip:t@b", ifAbsent: true })).toEqual({ alias: "a@b", target: "sip:t@b", ifAbsent: true });
    expect(problems(aliasSetParams, { alias: "a@b", target: "sip:t@b", expectTarget: "nope" })).toMatch(/^expectTarget: SIP URI "nope"/);
    expect(problems(aliasSetParams, { alias: "a@b", target: "sip:t@b", ifAbsent: true, expectTarget: "sip:u@b" })).toMatch(/exclude each other/);
  });

  it("refuses an alias to itself also by another port or an escape: Kamailio's lookup keys the AoR without them", () => {
    for (const target of ["sip:alice@example.com", "sip:alice@example.com:5060", "sip:%61lice@example.com", "sips:Alice@Example.com;transport=tls"]) {
      expect(problems(aliasSetParams, { alias: "alice@example.com", target })).toMatch(/^target: an alias cannot forward to itself/);
    }
    expect(aliasSetParams.parse({ alias: "alice@example.com", target: "sip:alice@example.net:5060" })).toMatchObject({ alias: "alice@example.com" });
  });
});
