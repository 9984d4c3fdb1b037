/**
 * An agent whose hubs all fail or refuse it (agent/mesh/no-hub-warning.ts): it warns once every
 * hub URL failed in a row, then at most once a minute with the attempts since, and says when a
 * hub answers again.
 */
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { createNoHubWarning } from "../../agent/mesh/no-hub-warning.js";

function harness() {
  let now = 1_000_000;
  const lines: { level: number; msg: string; attempts?: number }[] = [];
  const log = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s) as (typeof lines)[number]) });
  const w = createNoHubWarning({ urls: () => ["ws://hub1:7200", "ws://hub2:7200"], log, nowMs: () => now });
  return { w, lines, advance: (ms: number) => (now += ms) };
}

describe("no hub answers", () => {
  it("warns only once every hub URL failed in a row, saying the changes wait in the journal", () => {
    const h = harness();
    h.w.failed("ws://hub1:7200: disconnected: 4013 this hub's PostgreSQL does not answer");
    expect(h.lines).toEqual([]);
    h.w.failed("ws://hub2:7200: connect ECONNREFUSED");
    expect(h.lines).toHaveLength(1);
    expect(h.lines[0]).toMatchObject({ level: 40, attempts: 2 });
    expect(h.lines[0]!.msg).toMatch(/^no hub answers: 2 attempts on 2 hub URL\(s\) failed or were refused \(last: ws:\/\/hub2:7200: connect ECONNREFUSED\); this node's changes wait in the journal/);
  });

  it("repeats at most once a minute while none answers, with the attempts since the last warning", () => {
    const h = harness();
    for (let i = 0; i < 120; i++) {
      h.w.failed("refused");
      h.advance(1000);
    }
    expect(h.lines.map((l) => l.attempts)).toEqual([2, 60]);
  });

  it("does not warn for a failover that found a hub, and says when a hub answers after a warning", () => {
    const h = harness();
    h.w.failed("refused");
    h.w.answered();
    h.w.failed("refused");
    expect(h.lines).toEqual([]);
    h.w.failed("refused");
    h.w.answered();
    expect(h.lines.map((l) => l.level)).toEqual([40, 30]);
    expect(h.lines[1]!.msg).toMatch(/^a hub answers again/);
  });
});
