import { describe, expect, it } from "vitest";
import { CHECKS_TO_MOVE, JITTER, MAX_BACKOFF, createFailbackPolicy } from "../../agent/mesh/failback.js";

const AFTER = 60_000;

describe("hub failback policy", () => {
  it("is off at 0: no check is ever scheduled", () => {
    const p = createFailbackPolicy({ afterMs: 0 });
    p.onOtherHub(0);
    expect(p.nextCheckIn()).toBeNull();
  });

  it("checks every afterMs plus at most half as much again at random", () => {
    expect(createFailbackPolicy({ afterMs: AFTER, random: () => 0 }).nextCheckIn()).toBe(AFTER);
    expect(createFailbackPolicy({ afterMs: AFTER, random: () => 0.999999 }).nextCheckIn()).toBe(Math.round(AFTER * (1 + JITTER * 0.999999)));
    const p = createFailbackPolicy({ afterMs: AFTER });
    for (let i = 0; i < 1000; i++) {
      const ms = p.nextCheckIn()!;
      expect(ms).toBeGreaterThanOrEqual(AFTER);
      expect(ms).toBeLessThanOrEqual(AFTER * (1 + JITTER));
    }
  });

  it("moves only after two checks in a row found the preferred hub up", () => {
    expect(CHECKS_TO_MOVE).toBe(2);
    const p = createFailbackPolicy({ afterMs: AFTER, random: () => 0 });
    p.onOtherHub(0);
    expect(p.checked(true)).toBe(false);
    expect(p.checked(false)).toBe(false); // down again: the run starts over
    expect(p.checked(true)).toBe(false);
    expect(p.checked(true)).toBe(true);
  });

  it("stays put and backs off, up to MAX_BACKOFF times, while the preferred hub fails checks", () => {
    const p = createFailbackPolicy({ afterMs: AFTER, random: () => 0 });
    p.onOtherHub(0);
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      expect(p.checked(false)).toBe(false);
      waits.push(p.nextCheckIn()!);
    }
    expect(waits).toEqual([2, 4, 4, 4, 4].map((k) => k * AFTER));
    expect(MAX_BACKOFF).toBe(4);
    // Once it answers, the confirming check comes after the plain interval.
    expect(p.checked(true)).toBe(false);
    expect(p.nextCheckIn()).toBe(AFTER);
  });

  it("backs off after a move that did not stick, and forgets it once a move sticks", () => {
    const p = createFailbackPolicy({ afterMs: AFTER, random: () => 0 });
    let now = 0;
    const moveAndFailAfter = (ms: number) => {
      p.checked(true);
      expect(p.checked(true)).toBe(true);
      p.moving(now);
      now += ms;
      p.onOtherHub(now);
    };
    p.onOtherHub(now);
    moveAndFailAfter(1000); // the preferred hub dropped us (or refused) at once
    expect(p.nextCheckIn()).toBe(2 * AFTER);
    // A good check does not undo a failed move's back-off (the hub answers checks but drops sessions).
    expect(p.checked(true)).toBe(false);
    expect(p.nextCheckIn()).toBe(2 * AFTER);
    p.checked(false);
    moveAndFailAfter(1000);
    expect(p.nextCheckIn()).toBe(4 * AFTER);
    moveAndFailAfter(1000);
    expect(p.nextCheckIn()).toBe(4 * AFTER);
    moveAndFailAfter(AFTER); // this move stuck for a whole interval: a later failover starts afresh
    expect(p.nextCheckIn()).toBe(AFTER);
  });

  it("keeps a failed move's back-off when the agent only reconnects to the other hub", () => {
    const p = createFailbackPolicy({ afterMs: AFTER, random: () => 0 });
    p.onOtherHub(0);
    p.checked(true);
    p.checked(true);
    p.moving(0);
    p.onOtherHub(1000); // the move did not stick
    expect(p.nextCheckIn()).toBe(2 * AFTER);
    // Its session to the other hub drops and it reconnects there (or a session is refused in its
    // handshake): no move was tried, so nothing says the preferred hub now keeps sessions.
    p.onOtherHub(5000);
    p.onOtherHub(9000);
    expect(p.nextCheckIn()).toBe(2 * AFTER);
  });

  it("a new failover starts the run of checks afresh", () => {
    const p = createFailbackPolicy({ afterMs: AFTER, random: () => 0 });
    p.onOtherHub(0);
    expect(p.checked(true)).toBe(false);
    p.onOtherHub(10);
    expect(p.checked(true)).toBe(false);
    expect(p.checked(true)).toBe(true);
  });
});
