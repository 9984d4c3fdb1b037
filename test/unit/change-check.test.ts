/** The fast batch check must never accept what the zod schema would refuse or change. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isWellFormedChange } from "../../agent/contract/change-check.js";
import { batchParams, changeSchema } from "../../agent/contract/protocol.js";
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

  it("never accepts anything the zod schema refuses or would change (property)", () => {
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
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(field, junk), { maxLength: 3 }), fc.boolean(), (mutations, alias) => {
        const c: Record<string, unknown> = alias ? { ...valid(), kind: "alias", sub: "", value: { target: "sip:b@x" } } : valid();
        for (const [f, v] of mutations) {
          if (["q", "expires", "socket", "owner", "cseq", "path", "target"].includes(f) && c["value"]) {
            c["value"] = { ...(c["value"] as object), [f]: v };
          } else c[f] = v;
        }
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
});
