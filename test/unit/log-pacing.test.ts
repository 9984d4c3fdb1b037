/**
 * The pacing of log lines about something that repeats (agent/ops/log-pacing.ts): the first at
 * once, then at most one a minute per key with how many happened since; a fake clock.
 */
import { describe, expect, it } from "vitest";
import { createLogPacing } from "../../agent/ops/log-pacing.js";

function clock() {
  let now = 5_000_000;
  return { nowMs: () => now, advance: (ms: number) => (now += ms) };
}

describe("log pacing", () => {
  it("writes the first line at once, then at most one a minute with the events since", () => {
    const c = clock();
    const p = createLogPacing({ nowMs: c.nowMs });
    const lines = [];
    // Ten minutes of an event every 50 ms.
    for (let i = 0; i < 12_000; i++) {
      const line = p.note("10.0.0.9 wrong key");
      if (line) lines.push(line);
      c.advance(50);
    }
    expect(lines[0]).toEqual({ count: 1, first: true, streak: 1, forMs: 0, sinceLastMs: null });
    expect(lines).toHaveLength(10);
    expect(lines.slice(1).every((l) => !l.first && l.count === 1200 && l.sinceLastMs === 60_000)).toBe(true);
    expect(lines.at(-1)).toMatchObject({ streak: 10_801, forMs: 540_000 });
  });

  it("paces each key alone: another source or reason gets its own first line", () => {
    const c = clock();
    const p = createLogPacing({ nowMs: c.nowMs });
    expect(p.note("a")?.first).toBe(true);
    expect(p.note("a")).toBeNull();
    expect(p.note("b")?.first).toBe(true);
    c.advance(60_000);
    expect(p.note("a")).toMatchObject({ count: 2, first: false });
    expect(p.note("b")).toMatchObject({ count: 1, first: false });
  });

  it("holds the first line until the streak reaches `from`, counting what it held", () => {
    const c = clock();
    const p = createLogPacing({ nowMs: c.nowMs });
    expect(p.note("", { from: 3 })).toBeNull();
    c.advance(1000);
    expect(p.note("", { from: 3 })).toBeNull();
    c.advance(1000);
    expect(p.note("", { from: 3 })).toEqual({ count: 3, first: true, streak: 3, forMs: 2000, sinceLastMs: null });
  });

  it("starts over after end(), saying whether the streak was logged", () => {
    const c = clock();
    const p = createLogPacing({ nowMs: c.nowMs });
    expect(p.end()).toBeNull();
    p.note("", { from: 2 });
    expect(p.end()).toEqual({ streak: 1, logged: false, forMs: 0 });
    p.note();
    c.advance(3000);
    p.note();
    expect(p.end()).toEqual({ streak: 2, logged: true, forMs: 3000 });
    expect(p.note()?.first).toBe(true);
  });

  it("remembers at most maxKeys keys, forgetting the one noted least recently", () => {
    const c = clock();
    const p = createLogPacing({ nowMs: c.nowMs, maxKeys: 2 });
    p.note("a");
    p.note("b");
    p.note("a"); // a is now the more recent
    p.note("c"); // b goes
    expect(p.note("a")).toBeNull();
    expect(p.note("b")?.first).toBe(true);
  });
});
