/**
 * The hub's reused record counts (hub/counts-cache.ts): how long an answer is reused, that it
 * scales with what the count cost up to a cap, that callers share a running count, that a failure
 * is not kept, and that the last answer and its time can be had without waiting.
 */
import { describe, expect, it } from "vitest";
import { createCountsCache } from "../../hub/counts-cache.js";

function harness(costMs = 10) {
  let now = 1_700_000_000_000;
  const calls: number[] = [];
  let fail = false;
  const release: (() => void)[] = [];
  const counts = createCountsCache(
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
    { minTtlMs: 5000, maxTtlMs: 30_000, costFactor: 20, nowMs: () => now },
  );
  const ask = async (nowSec = Math.floor(now / 1000)) => {
    const p = counts.get(nowSec);
    for (const r of release.splice(0)) r();
    return p;
  };
  return { ask, calls, counts, release, advance: (ms: number) => (now += ms), setFail: (f: boolean) => (fail = f), now: () => now, nowSec: () => Math.floor(now / 1000) };
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

  it("reuses a count that took long (PostgreSQL stalled for 3 s) for 30 s at most, not 20 times as long", async () => {
    const h = harness(3000);
    await h.ask();
    h.advance(26_000);
    await h.ask();
    expect(h.calls).toHaveLength(1);
    h.advance(1500);
    await h.ask();
    expect(h.calls).toHaveLength(2);
  });

  it("gives the last answer and when it was counted without waiting, and keeps it through a failed count", async () => {
    const h = harness();
    expect(h.counts.last()).toBeNull();
    const countedAt = h.now();
    await h.ask();
    h.advance(6000);
    h.setFail(true);
    await expect(h.ask()).rejects.toThrow(/down/);
    expect(h.counts.last()).toEqual({ counts: { locations: 1, aliases: 0, tombstones: 0 }, countedAtMs: countedAt });
  });

  it("lets callers that ask during a count share it", async () => {
    const h = harness();
    const a = h.counts.get(h.nowSec());
    const b = h.counts.get(h.nowSec());
    for (const r of h.release.splice(0)) r();
    expect(await a).toEqual(await b);
    expect(h.calls).toHaveLength(1);
  });

  it("runs one count at a time: callers at later clock readings share the running one", async () => {
    const h = harness();
    const a = h.counts.get(h.nowSec());
    const b = h.counts.get(h.nowSec() + 1);
    const c = h.counts.get(h.nowSec() + 2);
    for (const r of h.release.splice(0)) r();
    expect(await a).toEqual(await b);
    expect(await c).toEqual(await a);
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
