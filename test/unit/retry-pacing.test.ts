/**
 * The change feed's retry while PostgreSQL is stopped (hub/retry-pacing.ts): back-off doubling to
 * a cap, and the first failure logged, then at most one line a minute with the attempts since.
 */
import { describe, expect, it } from "vitest";
import { createRetryPacing } from "../../hub/retry-pacing.js";

describe("retry pacing", () => {
  it("doubles the wait from minMs up to maxMs, and starts over after a success", () => {
    const p = createRetryPacing({ minMs: 500, maxMs: 5000, nowMs: () => 0 });
    expect(Array.from({ length: 6 }, () => p.failed().delayMs)).toEqual([500, 1000, 2000, 4000, 5000, 5000]);
    expect(p.succeeded()).toBe(6);
    expect(p.failed().delayMs).toBe(500);
  });

  it("logs the first failure, then at most once a minute with how many failed since, not every attempt", () => {
    let now = 0;
    const p = createRetryPacing({ minMs: 500, maxMs: 5000, nowMs: () => now });
    const logged: { attempts: number; first: boolean }[] = [];
    // Ten minutes of a stopped PostgreSQL.
    while (now < 600_000) {
      const { delayMs, log } = p.failed();
      if (log) logged.push(log);
      now += delayMs;
    }
    expect(logged[0]).toEqual({ attempts: 1, first: true });
    expect(logged.length).toBeLessThanOrEqual(11);
    expect(logged.slice(1).every((l) => !l.first && l.attempts >= 11)).toBe(true);
    expect(logged.reduce((n, l) => n + l.attempts, 0)).toBeLessThan(130);
  });
});
