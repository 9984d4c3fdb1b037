/**
 * The hub's reused record counts (hub/counts-cache.ts): how long an answer is reused, that it
 * scales with what the count cost, that callers share a running count, and that a failure is not
 * kept.
 */
import { describe, expect, it } from "vitest";
import { cachedCounts } from "../../hub/counts-cache.js";

function harness(costMs = 10) {
  let now = 1_700_000_000_000;
  const calls: number[] = [];
  let fail = false;
  const release: (() => void)[] = [];
  const counts = cachedCounts(
    (nowSec) => {
      calls.push(nowSec);
      return new Promise((resolve, reject) => {
        release.push(() => {
          now += costMs;
          if (fail) reject(new Error("database is down"));
          else resolve({ locations: calls.length, aliases: 0, tombstones: 0 });
        });
      });
    },
    { minTtlMs: 5000, costFactor: 20, nowMs: () => now },
  );
  const ask = async (nowSec = Math.floor(now / 1000)) => {
    const p = counts(nowSec);
    for (const r of release.splice(0)) r();
    return p;
  };
  return { ask, calls, counts, release, advance: (ms: number) => (now += ms), setFail: (f: boolean) => (fail = f), nowSec: () => Math.floor(now / 1000) };
}

describe("hub record counts", () => {
  it("reuses an answer for 5 s when counting is quick, then counts again", async () => {
    const h = harness(10);
    expect((await h.ask()).locations).toBe(1);
    h.advance(4000);
    expect((await h.ask()).locations).toBe(1);
    expect(h.calls).toHaveLength(1);
    h.advance(1100);
    expect((await h.ask()).locations).toBe(2);
    expect(h.calls).toHaveLength(2);
  });

  it("reuses a slow count for 20 times as long as it took", async () => {
    const h = harness(1000);
    await h.ask();
    h.advance(18_000);
    await h.ask();
    expect(h.calls).toHaveLength(1);
    h.advance(2500);
    await h.ask();
    expect(h.calls).toHaveLength(2);
  });

  it("lets callers that ask during a count share it", async () => {
    const h = harness();
    const a = h.counts(h.nowSec());
    const b = h.counts(h.nowSec());
    for (const r of h.release.splice(0)) r();
    expect(await a).toEqual(await b);
    expect(h.calls).toHaveLength(1);
  });

  it("counts again for a clock reading further away than the answer's lifetime (expiries move)", async () => {
    const h = harness();
    await h.ask(h.nowSec());
    await h.ask(h.nowSec() - 20);
    expect(h.calls).toHaveLength(2);
  });

  it("does not keep a failed count: the next caller gets a fresh try", async () => {
    const h = harness();
    h.setFail(true);
    await expect(h.ask()).rejects.toThrow(/down/);
    h.setFail(false);
    expect((await h.ask()).locations).toBe(2);
  });
});
