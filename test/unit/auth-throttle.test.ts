import { describe, expect, it } from "vitest";
import { createAuthThrottle, throttleKey } from "../../agent/ops/auth-throttle.js";

function clock() {
  let now = 1_000_000;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

describe("auth throttle", () => {
  it("locks an address out after maxFailures wrong tokens within the window, for lockMs", () => {
    const c = clock();
    const t = createAuthThrottle({ maxFailures: 3, windowMs: 10_000, lockMs: 5_000, nowMs: c.now });
    expect(t.failed("10.0.0.9")).toBe(false);
    expect(t.failed("10.0.0.9")).toBe(false);
    expect(t.blockedFor("10.0.0.9")).toBe(0);
    expect(t.failed("10.0.0.9")).toBe(true);
    expect(t.blockedFor("10.0.0.9")).toBe(5_000);
    expect(t.blockedFor("10.0.0.10")).toBe(0);
    c.advance(4_000);
    expect(t.blockedFor("10.0.0.9")).toBe(1_000);
    c.advance(1_000);
    expect(t.blockedFor("10.0.0.9")).toBe(0);
    // After the lock, the count starts again from zero.
    expect(t.failed("10.0.0.9")).toBe(false);
    expect(t.blockedFor("10.0.0.9")).toBe(0);
  });

  it("forgets failures older than the window", () => {
    const c = clock();
    const t = createAuthThrottle({ maxFailures: 3, windowMs: 10_000, lockMs: 5_000, nowMs: c.now });
    t.failed("10.0.0.9");
    t.failed("10.0.0.9");
    c.advance(10_000);
    expect(t.failed("10.0.0.9")).toBe(false);
    expect(t.failed("10.0.0.9")).toBe(false);
    expect(t.blockedFor("10.0.0.9")).toBe(0);
    expect(t.failed("10.0.0.9")).toBe(true);
  });

  it("clears an address's count when it signs in", () => {
    const c = clock();
    const t = createAuthThrottle({ maxFailures: 3, windowMs: 10_000, lockMs: 5_000, nowMs: c.now });
    t.failed("10.0.0.9");
    t.failed("10.0.0.9");
    t.succeeded("10.0.0.9");
    expect(t.failed("10.0.0.9")).toBe(false);
    expect(t.failed("10.0.0.9")).toBe(false);
    expect(t.blockedFor("10.0.0.9")).toBe(0);
  });

  it("never limits the host's own clients", () => {
    const t = createAuthThrottle({ maxFailures: 1 });
    for (const own of ["127.0.0.1", "::1", "::ffff:127.0.0.1"]) {
      for (let i = 0; i < 5; i++) expect(t.failed(own)).toBe(false);
      expect(t.blockedFor(own)).toBe(0);
    }
    expect(t.failed("127.0.0.2")).toBe(true);
  });

  it("remembers at most maxTracked addresses: stale ones go first, then those not locked out, then the oldest", () => {
    const c = clock();
    const t = createAuthThrottle({ maxFailures: 2, windowMs: 1_000, lockMs: 60_000, maxTracked: 3, nowMs: c.now });
    t.failed("10.0.0.1");
    t.failed("10.0.0.1"); // locked for 60 s
    t.failed("10.0.0.2");
    t.failed("10.0.0.3");
    c.advance(2_000); // 10.0.0.2 and .3 are stale now
    t.failed("10.0.0.4");
    t.failed("10.0.0.5");
    expect(t.blockedFor("10.0.0.1")).toBe(58_000);
    // Full of live entries: the ones guessing but not locked go before a locked one.
    t.failed("10.0.0.6");
    t.failed("10.0.0.7");
    expect(t.blockedFor("10.0.0.1")).toBe(58_000);
    // Many addresses locked at once: only then does the oldest lock go.
    for (const a of ["10.0.0.8", "10.0.0.9"]) {
      t.failed(a);
      t.failed(a);
    }
    expect(t.blockedFor("10.0.0.1")).toBe(58_000);
    t.failed("10.0.0.10");
    expect(t.blockedFor("10.0.0.1")).toBe(0);
    expect(t.blockedFor("10.0.0.8")).toBe(60_000);
    expect(t.blockedFor("10.0.0.9")).toBe(60_000);
  });

  it("counts an IPv6 client by its /64, and an IPv4-mapped address as the IPv4 one", () => {
    expect(throttleKey("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(throttleKey("2001:0db8:0001:0002:0000:0000:0000:0009")).toBe("2001:db8:1:2::/64");
    expect(throttleKey("2001:db8::5")).toBe("2001:db8:0:0::/64");
    expect(throttleKey("::ffff:192.0.2.7")).toBe("192.0.2.7");
    expect(throttleKey("192.0.2.7")).toBe("192.0.2.7");
    const t = createAuthThrottle({ maxFailures: 3 });
    t.failed("2001:db8:1:2::a");
    t.failed("2001:db8:1:2::b");
    expect(t.failed("2001:db8:1:2::c")).toBe(true);
    expect(t.blockedFor("2001:db8:1:2:ffff::1")).toBeGreaterThan(0);
    expect(t.blockedFor("2001:db8:1:3::a")).toBe(0);
  });

  it("for the peer port, counts each IPv6 address alone: one misconfigured server does not hold off its /64 neighbours", () => {
    const t = createAuthThrottle({ maxFailures: 2, keyBy: "address" });
    t.failed("2001:db8:1:2::a");
    expect(t.failed("2001:db8:1:2::a")).toBe(true);
    expect(t.blockedFor("2001:db8:1:2::a")).toBeGreaterThan(0);
    expect(t.blockedFor("2001:db8:1:2::b")).toBe(0);
  });

  it("a right token clears only a count kept for that very address, not a /64's", () => {
    const t = createAuthThrottle({ maxFailures: 3 });
    t.failed("2001:db8:1:2::a");
    t.failed("2001:db8:1:2::a");
    t.succeeded("2001:db8:1:2::b"); // a neighbour signing in does not wipe the guesser's count
    expect(t.failed("2001:db8:1:2::a")).toBe(true);
    t.failed("192.0.2.7");
    t.failed("192.0.2.7");
    t.succeeded("192.0.2.7");
    expect(t.failed("192.0.2.7")).toBe(false);
  });
});

