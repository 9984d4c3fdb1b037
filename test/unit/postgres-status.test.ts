/**
 * What a hub's cluster.status says of its PostgreSQL and its counts (hub/postgres-status.ts): it
 * answers whether PostgreSQL does or not, with the last counts and their age.
 */
import { describe, expect, it } from "vitest";
import type { StoreCounts } from "../../agent/core/store.js";
import type { CountedAt } from "../../hub/counts-cache.js";
import type { PgState } from "../../hub/pg-watch.js";
import { createPostgresStatus } from "../../hub/postgres-status.js";

const NOW = 1_700_000_100_000;
const counted: CountedAt = { counts: { locations: 5, aliases: 2, tombstones: 1 }, countedAtMs: NOW - 42_000 };

function source(o: { state: PgState; last: CountedAt | null; count: () => Promise<StoreCounts> }) {
  let asked = 0;
  const status = createPostgresStatus({
    store: { counts: () => (asked++, o.count()), lastCounts: () => o.last },
    watch: { state: () => o.state },
    address: "db.example.com:5432",
    unreachableAfterMs: 15_000,
    waitMs: 50,
    nowMs: () => NOW,
  });
  return { status, asked: () => asked };
}

const down: PgState = { reachable: false, error: "Query read timeout", sinceMs: NOW - 30_000, lastAnsweredMs: NOW - 31_000, failingSinceMs: null };
const up: PgState = { reachable: true, error: null, sinceMs: NOW - 3_600_000, lastAnsweredMs: NOW - 2000, failingSinceMs: null };
const failing: PgState = { ...up, error: "connect ECONNREFUSED 10.0.0.5:5432", failingSinceMs: NOW - 9000, lastAnsweredMs: NOW - 11_000 };

describe("a hub's PostgreSQL status", () => {
  it("while PostgreSQL does not answer: says so and why, does not ask it, and shows the last counts with their age", async () => {
    const s = source({ state: down, last: counted, count: () => new Promise(() => undefined) });
    expect(await s.status(NOW / 1000)).toEqual({
      counts: counted.counts,
      postgres: {
        address: "db.example.com:5432", reachable: false, error: "Query read timeout", since: new Date(NOW - 30_000).toISOString(), countsAgeSeconds: 42,
        lastAnswered: new Date(NOW - 31_000).toISOString(), lastAnsweredAgeSeconds: 31, failingForSeconds: null, releaseAfterSeconds: 15, countsStale: "PostgreSQL does not answer",
      },
    });
    expect(s.asked()).toBe(0);
  });

  it("with no counts yet: zeros and an unknown age", async () => {
    const s = source({ state: down, last: null, count: () => Promise.reject(new Error("unreachable")) });
    const r = await s.status(NOW / 1000);
    expect(r.counts).toEqual({ locations: 0, aliases: 0, tombstones: 0 });
    expect(r.postgres.countsAgeSeconds).toBeNull();
  });

  it("answers within waitMs when a count hangs before PostgreSQL counts as unreachable", async () => {
    const s = source({ state: up, last: counted, count: () => new Promise(() => undefined) });
    const started = Date.now();
    const r = await s.status(NOW / 1000);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r.postgres).toMatchObject({ reachable: true, countsAgeSeconds: 42 });
    expect(s.asked()).toBe(1);
  });

  it("counts while PostgreSQL answers", async () => {
    const fresh: CountedAt = { counts: { locations: 9, aliases: 0, tombstones: 0 }, countedAtMs: NOW };
    const o = { state: up, last: counted as CountedAt | null, count: async () => ((o.last = fresh), fresh.counts) };
    const r = await source(o).status(NOW / 1000);
    expect(r.counts).toEqual(fresh.counts);
    expect(r.postgres).toEqual({
      address: "db.example.com:5432", reachable: true, error: null, since: new Date(up.sinceMs).toISOString(), countsAgeSeconds: 0,
      lastAnswered: new Date(NOW - 2000).toISOString(), lastAnsweredAgeSeconds: 2, failingForSeconds: null, releaseAfterSeconds: 15, countsStale: null,
    });
  });

  it("before PostgreSQL counts as unreachable: how long checks have failed, when it last answered, and the counts stale", async () => {
    const s = source({ state: failing, last: counted, count: () => Promise.reject(new Error("connect ECONNREFUSED")) });
    const r = await s.status(NOW / 1000);
    expect(r.postgres).toMatchObject({ reachable: true, error: "connect ECONNREFUSED 10.0.0.5:5432", failingForSeconds: 9, lastAnsweredAgeSeconds: 11, countsStale: "PostgreSQL does not answer" });
    // Nor is it asked for counts then: each would wait out the query timeout on the hub's pool.
    expect(s.asked()).toBe(0);
  });

  it("marks counts stale when the recount failed, or when older than counts are ever reused for, though PostgreSQL answers", async () => {
    const fresh: CountedAt = { counts: counted.counts, countedAtMs: NOW - 3000 };
    const failed = await source({ state: up, last: fresh, count: () => Promise.reject(new Error("canceling statement due to statement timeout")) }).status(NOW / 1000);
    expect(failed.postgres.countsStale).toBe("the recount failed");
    // 42 s old, past the 30 s bound: a recount that does not end within waitMs leaves them stale.
    const slow = await source({ state: up, last: counted, count: () => new Promise(() => undefined) }).status(NOW / 1000);
    expect(slow.postgres.countsStale).toMatch(/^older than the 30 s counts are reused for/);
  });
});
