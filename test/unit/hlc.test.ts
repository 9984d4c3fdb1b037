import { describe, expect, it, vi } from "vitest";
import { HLC_UNITS_PER_MS, hlcToMillis } from "../../agent/contract/records.js";
import { MAX_STAMP_AHEAD_MS, createHlc, farAhead } from "../../agent/core/hlc.js";

const U = HLC_UNITS_PER_MS;

/** A wall clock the test moves by hand. */
function manualClock(ms: number) {
  const clock = { ms, wallMillis: () => clock.ms };
  return clock;
}

describe("createHlc", () => {
  it("stamps with the wall clock when it moves forward", () => {
    const clock = manualClock(1_000);
    const hlc = createHlc({ wallMillis: clock.wallMillis });
    expect(hlc.now()).toBe(1_000 * U);
    clock.ms = 1_005;
    expect(hlc.now()).toBe(1_005 * U);
    expect(hlc.last()).toBe(1_005 * U);
  });

  it("stays strictly monotonic when the wall clock stands still or goes back", () => {
    const clock = manualClock(5_000);
    const hlc = createHlc({ wallMillis: clock.wallMillis });
    const stamps: number[] = [];
    for (const ms of [5_000, 5_000, 4_000, 4_999, 5_000, 3_000]) {
      clock.ms = ms;
      stamps.push(hlc.now());
    }
    for (let i = 1; i < stamps.length; i++) expect(stamps[i]).toBeGreaterThan(stamps[i - 1]!);
    expect(stamps).toEqual([0, 1, 2, 3, 4, 5].map((n) => 5_000 * U + n));
  });

  it("spills a full logical counter into the millisecond part", () => {
    const clock = manualClock(7);
    const hlc = createHlc({ wallMillis: clock.wallMillis });
    let stamp = 0;
    for (let i = 0; i <= U; i++) stamp = hlc.now();
    expect(stamp).toBe(8 * U);
    expect(hlcToMillis(stamp)).toBe(8);
    // The wall clock catching up to the spilled stamp must not produce a repeat.
    clock.ms = 8;
    expect(hlc.now()).toBe(8 * U + 1);
  });

  it("makes the next local stamp larger than an observed remote stamp", () => {
    const clock = manualClock(1_000);
    const hlc = createHlc({ wallMillis: clock.wallMillis });
    const remote = 1_030 * U + 17;
    hlc.observe(remote);
    expect(hlc.last()).toBe(remote);
    expect(hlc.now()).toBe(remote + 1);
  });

  it("ignores an observed stamp older than its own", () => {
    const clock = manualClock(2_000);
    const hlc = createHlc({ wallMillis: clock.wallMillis });
    const mine = hlc.now();
    hlc.observe(mine - 500);
    expect(hlc.last()).toBe(mine);
    expect(hlc.now()).toBe(mine + 1);
  });

  it("reports drift when a peer's stamp is far ahead of the wall clock", () => {
    const clock = manualClock(10_000);
    const onDrift = vi.fn();
    const hlc = createHlc({ wallMillis: clock.wallMillis, onDrift, maxDriftMs: 1_000 });
    hlc.observe((10_000 + 900) * U); // within tolerance
    expect(onDrift).not.toHaveBeenCalled();
    hlc.observe((10_000 + 5_000) * U);
    expect(onDrift).toHaveBeenCalledOnce();
    expect(onDrift).toHaveBeenCalledWith(5_000);
    // The stamp is still merged: causality beats the wall clock.
    expect(hlc.now()).toBeGreaterThan(15_000 * U);
  });

  it("defaults the drift tolerance to one minute", () => {
    const onDrift = vi.fn();
    const hlc = createHlc({ wallMillis: () => 0, onDrift });
    hlc.observe(59_000 * U);
    expect(onDrift).not.toHaveBeenCalled();
    hlc.observe(61_000 * U);
    expect(onDrift).toHaveBeenCalledWith(61_000);
  });

  it("restarts after `initial` when the wall clock is behind it", () => {
    const initial = 50_000 * U + 3;
    const hlc = createHlc({ wallMillis: () => 40_000, initial });
    expect(hlc.last()).toBe(initial);
    expect(hlc.now()).toBe(initial + 1);
  });

  it("uses the wall clock after a restart when it is ahead of `initial`", () => {
    const hlc = createHlc({ wallMillis: () => 60_000, initial: 50_000 * U });
    expect(hlc.now()).toBe(60_000 * U);
  });
});

describe("a peer's change stamped far ahead (the hostile dry run's F12)", () => {
  it("is refused past a year ahead of this node's clock, naming it; within a year it is taken", () => {
    const now = 1_800_000_000_000;
    const change = (ms: number) => ({ hlc: ms * U, origin: "n2~0123456789ab", seq: 7 });
    expect(farAhead([change(now + 3_600_000)], now)).toBeNull();
    expect(farAhead([change(now), { hlc: 2 ** 53 - 4, origin: "n2~0123456789ab", seq: 8 }], now))
      .toMatch(/^changes\.1\.hlc: n2~0123456789ab#8 is stamped 2\d{3}-.*, more than a year ahead of this node's clock and of the newest stamp its journal held at start: the clock of the node that made it is wrong/);
    expect(farAhead([change(now + MAX_STAMP_AHEAD_MS + 1)], now)).toMatch(/^changes\.0\.hlc/);
  });
});
