import { describe, expect, it } from "vitest";
import { createClientSlots } from "../../agent/api/client-slots.js";
import { apiExempt } from "../../agent/ops/auth-throttle.js";

describe("createClientSlots", () => {
  it("admits perClient per client (an IPv6 /64 is one client) and total in all", () => {
    const s = createClientSlots({ perClient: 2, total: 5 });
    expect([s.admit("10.0.0.1"), s.admit("10.0.0.1"), s.admit("10.0.0.1")]).toEqual([true, true, false]);
    expect([s.admit("2001:db8::1"), s.admit("2001:db8::2"), s.admit("2001:db8::3")]).toEqual([true, true, false]);
    expect(s.admit("10.0.0.2")).toBe(true);
    expect(s.count()).toBe(5);
    expect(s.admit("10.0.0.3")).toBe(false); // the total is reached
    s.release("10.0.0.1");
    expect(s.admit("10.0.0.3")).toBe(true);
    expect(s.admit("10.0.0.1")).toBe(false); // the total again, though 10.0.0.1 has room
  });

  it("counts the host's own addresses toward the total only", () => {
    const s = createClientSlots({ perClient: 1, total: 3 });
    expect([s.admit("127.0.0.1"), s.admit("::1"), s.admit("127.0.0.1"), s.admit("127.0.0.1")]).toEqual([true, true, true, false]);
    s.release("127.0.0.1");
    expect(s.admit("10.0.0.1")).toBe(true);
    expect(s.count()).toBe(3);
  });

  it("counts the clients it is told to exempt (api.trustedProxies) toward the total only, in any form of their address", () => {
    const s = createClientSlots({ perClient: 1, total: 4 }, apiExempt(["10.0.0.5", "2001:DB8:0::7"]));
    expect([s.admit("::ffff:10.0.0.5"), s.admit("10.0.0.5"), s.admit("2001:db8::7")]).toEqual([true, true, true]);
    expect([s.admit("10.0.0.6"), s.admit("10.0.0.6")]).toEqual([true, false]);
    expect(s.admit("10.0.0.5")).toBe(false); // the total
    expect([apiExempt([])("127.0.0.1"), apiExempt([])("10.0.0.5"), apiExempt(["10.0.0.5"])("10.0.0.50")]).toEqual([true, false, false]);
  });

  it("frees a client's place when its socket is released", () => {
    const s = createClientSlots({ perClient: 1, total: 10 });
    expect(s.admit("::ffff:10.0.0.9")).toBe(true);
    expect(s.admit("10.0.0.9")).toBe(false); // the same IPv4 client, written as a mapped address
    s.release("10.0.0.9");
    expect(s.admit("10.0.0.9")).toBe(true);
  });
});
