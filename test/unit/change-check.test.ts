/** The fast batch check must never accept what the zod schema would refuse or change. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isWellFormedChange, recordProblem } from "../../agent/contract/change-check.js";
import { batchParams } from "../../agent/contract/protocol.js";
import { changeSchema, recordSchema } from "../../agent/contract/record-schemas.js";
import type { Draft } from "../../agent/core/store.js";
import { fastBatch } from "../../agent/mesh/fast-batch.js";
import { binding } from "../support/fixtures.js";

const valid = () => ({
  kind: "loc",
  key: "alice@example.com",
  sub: "sip:alice@192.0.2.1:5060",
  value: binding({ socket: "udp:[2001:db8::1]:5060" }),
  hlc: 123456,
  origin: "n1~0123456789ab",
  seq: 7,
});

describe("isWellFormedChange", () => {
  it("accepts well-formed locations, aliases and tombstones, so the fast path is used", () => {
    expect(isWellFormedChange(valid())).toBe(true);
    expect(isWellFormedChange({ ...valid(), value: null })).toBe(true);
    expect(isWellFormedChange({ ...valid(), kind: "alias", sub: "", value: { target: "sip:bob@example.com" } })).toBe(true);
  });

  it("refuses what needs normalising or is out of bounds", () => {
    expect(isWellFormedChange({ ...valid(), key: "sip:Alice@example.com" })).toBe(false);
    expect(isWellFormedChange({ ...valid(), extra: 1 })).toBe(false);
    expect(isWellFormedChange({ ...valid(), value: { ...binding(), cseq: -1 } })).toBe(false);
    expect(isWellFormedChange({ ...valid(), value: { ...binding(), q: Number.NaN } })).toBe(false);
    expect(isWellFormedChange({ ...valid(), kind: "alias", sub: "", value: { target: "not a uri" } })).toBe(false);
  });

  it("refuses what Kamailio cannot store as it is: a NUL or a lone surrogate in any text field", () => {
    for (const bad of ["a\u0000b", "x\ud800", "\udc00y"]) {
      expect(isWellFormedChange({ ...valid(), value: { ...binding(), userAgent: bad } }), JSON.stringify(bad)).toBe(false);
      expect(isWellFormedChange({ ...valid(), value: { ...binding(), path: bad } })).toBe(false);
      expect(isWellFormedChange({ ...valid(), sub: `sip:a@h;p=${bad}` })).toBe(false);
      expect(isWellFormedChange({ ...valid(), kind: "alias", sub: "", value: { target: `sip:b@x;p=${bad}` } })).toBe(false);
      expect(changeSchema.safeParse({ ...valid(), value: { ...binding(), callid: bad } }).success).toBe(false);
    }
    expect(isWellFormedChange({ ...valid(), value: { ...binding(), userAgent: "o'brien \"😀\" \\ ;-- \u200f %00" } })).toBe(true);
  });

  it("never accepts anything the zod schema refuses or would change (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(field, junk), { maxLength: 3 }), fc.boolean(), (mutations, alias) => {
        const c = mutated(mutations, alias);
        if (isWellFormedChange(c)) {
          const parsed = changeSchema.safeParse(c);
          expect(parsed.success).toBe(true);
          expect(parsed.data).toEqual(c);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe("recordProblem (local changes, agent/core/local-check.ts)", () => {
  it("finds a problem exactly when a peer would refuse the record or keep it under another key (property)", () => {
    const recordField = fc.constantFrom("kind", "key", "sub", "value", "q", "expires", "socket", "owner", "cseq", "path", "target");
    fc.assert(
      fc.property(fc.array(fc.tuple(recordField, junk), { maxLength: 3 }), fc.boolean(), (mutations, alias) => {
        const c = mutated(mutations, alias);
        const record = { kind: c["kind"], key: c["key"], sub: c["sub"], value: c["value"] } as Draft;
        const parsed = recordSchema.safeParse(record);
        expect(recordProblem(record) === null).toBe(parsed.success && parsed.data.key === record.key);
      }),
      { numRuns: 3000 },
    );
  });
});

const field = fc.constantFrom("kind", "key", "sub", "value", "hlc", "origin", "seq", "q", "expires", "socket", "owner", "cseq", "path", "target");
const junk = fc.oneof(
      fc.string(),
      fc.integer(),
      fc.double(),
      fc.constant(null),
      fc.constant(undefined),
      fc.boolean(),
      fc.constant("sip:x@y"),
      fc.constant("UDP:[::1]:99999"),
      fc.constant("A@B.com"),
      fc.constant(2 ** 53),
      fc.constant(-1),
      fc.string({ minLength: 250, maxLength: 600 }),
      fc.string({ unit: "binary" }),
      fc.constantFrom("a\u0000b", "sip:a@b;x=\u0000", "\ud800", "sip:a@b;\udc00", "😀", "alice", "Alice@x"),
);

/** A valid location (or alias) change with up to three fields replaced by junk. */
function mutated(mutations: [string, unknown][], alias: boolean): Record<string, unknown> {
  const c: Record<string, unknown> = alias ? { ...valid(), kind: "alias", sub: "", value: { target: "sip:b@x" } } : valid();
  for (const [f, v] of mutations) {
    if (["q", "expires", "socket", "owner", "cseq", "path", "target"].includes(f) && c["value"]) {
      c["value"] = { ...(c["value"] as object), [f]: v };
    } else c[f] = v;
  }
  return c;
}

describe("fastBatch", () => {
  it("passes a good batch through untouched and leaves a bad one to zod", () => {
    const good = { origin: "n1~0123456789ab", after: 6, upTo: 7, changes: [valid()] };
    expect(fastBatch(good)).toBe(good);
    expect(batchParams.parse(good)).toEqual(good);
    const bad = { ...good, changes: [{ ...valid(), seq: "7" }] };
    expect(fastBatch(bad)).toBeNull();
    expect(() => batchParams.parse(bad)).toThrow(/seq/);
    expect(fastBatch({ ...good, extra: true })).toBeNull();
  });

  it("never accepts a batch envelope the zod schema refuses (property): e.g. upTo 2^53", () => {
    const good = { origin: "n1~0123456789ab", after: 6, upTo: 7, changes: [valid()] };
    expect(fastBatch({ ...good, upTo: 2 ** 53 })).toBeNull();
    const count = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(2 ** 53, 2 ** 53 - 1, 2 ** 60, 1e300, -0, -1, 0), fc.string(), fc.constant(null));
    fc.assert(
      fc.property(count, count, (after, upTo) => {
        const b = { ...good, after, upTo };
        if (fastBatch(b) !== null) expect(batchParams.safeParse(b).success).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});
