/**
 * agent/mesh/duplicate-sessions.ts: a peer reconnecting over a half-open connection now and then
 * is quiet; one pushing a second session in again and again (two nodes with one nodeId) is said at
 * warn, with where the sessions came from, at most once a minute.
 */
import { describe, expect, it } from "vitest";
import { createDuplicateSessions } from "../../agent/mesh/duplicate-sessions.js";

describe("duplicate sessions", () => {
  it("stays quiet for occasional reconnects", () => {
    let now = 0;
    const d = createDuplicateSessions({ nowMs: () => now });
    for (let i = 0; i < 20; i++) {
      expect(d.note("sip1", ["10.0.0.1:40000", "10.0.0.1:40001"])).toBeNull();
      now += 5_000; // one every 5 s: never 5 within 10 s
    }
  });

  it("warns when a peer keeps coming back within seconds, naming both addresses, then at most once a minute", () => {
    let now = 0;
    const d = createDuplicateSessions({ nowMs: () => now });
    const lines: (string | null)[] = [];
    for (let i = 0; i < 5; i++) {
      lines.push(d.note("sip1", [i % 2 ? "10.0.0.1:1" : "10.0.0.9:2", "10.0.0.1:1"]));
      now += 100;
    }
    expect(lines.slice(0, 4)).toEqual([null, null, null, null]);
    expect(lines[4]).toMatch(/^sip1 opened a second session 5 times in 10 s \(from 10\.0\.0\.1, 10\.0\.0\.9\): two nodes may run with nodeId sip1 .*Give every node its own nodeId/);
    for (let i = 0; i < 50; i++) {
      now += 500;
      expect(d.note("sip1", ["10.0.0.1:1"])).toBeNull();
    }
    now += 40_000;
    for (let i = 0; i < 4; i++) d.note("sip1", ["10.0.0.1:1"]);
    expect(d.note("sip1", ["10.0.0.1:1"])).toMatch(/^sip1 opened a second session/);
    // Another peer has its own count.
    expect(d.note("sip2", ["10.0.0.2:1"])).toBeNull();
  });

  it("names the hosts of the window only, however long the flap lasts and whatever ports each redial takes", () => {
    let now = 0;
    const d = createDuplicateSessions({ nowMs: () => now });
    let last: string | null = null;
    for (let i = 0; i < 3000; i++) { // 5 minutes of redials every 100 ms, each from a new port
      last = d.note("sip1", [`10.0.0.${i < 1500 ? 7 : 8}:${40000 + i}`, `[2001:db8::1]:${50000 + i}`]) ?? last;
      now += 100;
    }
    expect(last).toMatch(/^sip1 opened a second session 100 times in 10 s \(from 10\.0\.0\.8, \[2001:db8::1\]\): /);
  });
});

