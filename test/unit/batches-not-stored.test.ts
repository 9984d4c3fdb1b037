import { describe, expect, it } from "vitest";
import { peerErrorText } from "../../agent/contract/batches-not-stored-text.js";
import { createBatchesNotStored } from "../../agent/mesh/batches-not-stored.js";

describe("batches not stored (a hub failing its agent's batches)", () => {
  it("counts each failure since the first, keeps the last reason, and forgets them once a batch is stored", () => {
    let now = Date.parse("2026-11-23T05:57:20.000Z");
    const t = createBatchesNotStored({ nowMs: () => now });
    expect(t.current()).toBeNull();
    t.failed(new Error("PostgreSQL did not answer in time: Query read timeout"));
    now += 3000;
    t.failed(new Error("PostgreSQL connection lost: Connection terminated unexpectedly"));
    expect(t.current()).toEqual({ count: 2, since: "2026-11-23T05:57:20.000Z", reason: "PostgreSQL connection lost: Connection terminated unexpectedly" });
    t.stored();
    expect(t.current()).toBeNull();
    now += 1000;
    t.failed("not an Error");
    expect(t.current()).toEqual({ count: 1, since: "2026-11-23T05:57:24.000Z", reason: "not an Error" });
  });

  it("says it in the peer row's error text, before the link's own error, as `locmesh status` and the web UI show it", () => {
    const b = { count: 12, since: "2026-11-23T05:57:20.000Z", reason: "PostgreSQL connection lost: connect ECONNREFUSED 127.0.0.1:5432" };
    const at = (iso: string) => `${iso.slice(11, 19)} UTC`;
    const text = "NOT STORING ITS BATCHES: 12 failed since 05:57:20 UTC (the last: PostgreSQL connection lost: connect ECONNREFUSED 127.0.0.1:5432); " +
      "it resends them until one is stored";
    expect(peerErrorText({ lastError: null, batchesNotStored: b }, at)).toBe(text);
    expect(peerErrorText({ lastError: "batch not acknowledged, retrying: no answer", batchesNotStored: b }, at)).toBe(`${text}; batch not acknowledged, retrying: no answer`);
    expect(peerErrorText({ lastError: "dial failed", batchesNotStored: null }, at)).toBe("dial failed");
    // Older nodes send no such field.
    expect(peerErrorText({ lastError: null }, at)).toBeNull();
  });
});
