/**
 * The AoRs to look up in Kamailio, such as those whose registrar events could not be journaled
 * (agent/kamailio/aor-lookups.ts): kept until a reconcile of them is done, a chunk a turn, only a
 * few a turn while the journal fails, backing off while turns fail, never dropping an AoR that
 * came again while a turn was under way.
 */
import { describe, expect, it } from "vitest";
import { TransientError } from "../../agent/core/transient.js";
import { CHUNK, PROBE, createAorLookups } from "../../agent/kamailio/aor-lookups.js";
import { createLogger } from "../../agent/ops/logger.js";

function setUp(max?: number) {
  const lines: { level: string; msg: string }[] = [];
  const log = createLogger({ level: "info", nodeId: "n1", destination: { write: (line: string) => void lines.push(JSON.parse(line) as { level: string; msg: string }) } });
  let now = 1_000_000;
  let overflows = 0;
  const u = createAorLookups({ log, onOverflow: () => overflows++, nowMs: () => now, ...(max === undefined ? {} : { max }) });
  const runs: string[][] = [];
  /** A run that records the AoRs it was given and answers `outcome`. */
  const run = (outcome: null | string | Error = null) => async (aors: ReadonlySet<string>) => {
    runs.push([...aors].sort());
    if (outcome instanceof Error) throw outcome;
    return outcome;
  };
  return { u, lines, runs, run, advance: (ms: number) => (now += ms), overflows: () => overflows };
}

const full = new TransientError("the journal's disk is full");

describe("AoRs to look up in Kamailio", () => {
  it("reconciles each AoR once however often it came, and logs once when all are done", async () => {
    const t = setUp();
    t.u.add("a@x");
    t.u.add("b@x");
    t.u.add("a@x");
    expect(t.u.size()).toBe(2);
    expect(t.u.due()).toBe(true);
    await t.u.repair(t.run());
    expect(t.runs).toEqual([["a@x", "b@x"]]);
    expect(t.u.size()).toBe(0);
    expect(t.u.due()).toBe(false);
    await t.u.repair(t.run());
    expect(t.runs).toHaveLength(1);
    expect(t.lines.filter((l) => /brought the journal in line/.test(l.msg))).toHaveLength(1);
  });

  it("takes CHUNK AoRs a turn, and the next chunk at once", async () => {
    const t = setUp();
    for (let i = 0; i < CHUNK + 10; i++) t.u.add(`u${i}@x`);
    await t.u.repair(t.run());
    expect(t.runs[0]).toHaveLength(CHUNK);
    expect(t.u.size()).toBe(10);
    expect(t.u.due()).toBe(true);
    await t.u.repair(t.run());
    expect(t.runs[1]).toHaveLength(10);
    expect(t.u.size()).toBe(0);
  });

  it("while the journal fails, tries PROBE AoRs a turn, backing off 2 s, 4 s, … up to 60 s; a chunk again once it works", async () => {
    const t = setUp();
    for (let i = 0; i < 100; i++) t.u.failed(`u${i}@x`);
    t.u.failed(null); // an unnumbered event's failure: nothing to look up, the journal is failing all the same
    expect(t.u.size()).toBe(100);
    await t.u.repair(t.run(full));
    expect(t.runs[0]).toHaveLength(PROBE);
    expect(t.u.due()).toBe(false);
    t.advance(1999);
    expect(t.u.due()).toBe(false);
    t.advance(1);
    await t.u.repair(t.run(full));
    t.advance(3999);
    expect(t.u.due()).toBe(false); // 4 s now
    for (let i = 0; i < 10; i++) {
      t.advance(60_000);
      await t.u.repair(t.run(full));
    }
    t.advance(59_999);
    expect(t.u.due()).toBe(false); // capped at 60 s
    expect(t.runs.every((r) => r.length === PROBE)).toBe(true);
    // One warning for the whole run of failures, not one per turn.
    expect(t.lines.filter((l) => l.level === "warn")).toHaveLength(1);
    t.u.journalWorks();
    expect(t.u.due()).toBe(true);
    await t.u.repair(t.run());
    expect(t.runs.at(-1)).toHaveLength(100);
    expect(t.u.size()).toBe(0);
  });

  it("a turn that commits while the journal was taken for failing (no event came since) takes a chunk next", async () => {
    const t = setUp();
    for (let i = 0; i < 20; i++) t.u.failed(`u${i}@x`);
    await t.u.repair(t.run());
    expect(t.runs[0]).toHaveLength(PROBE);
    expect(t.u.due()).toBe(true);
    await t.u.repair(t.run());
    expect(t.runs[1]).toHaveLength(20 - PROBE);
  });

  it("keeps them while the reconcile may not run (held journal, a reload due), backing off", async () => {
    const t = setUp();
    t.u.add("a@x");
    await t.u.repair(t.run("a reload into it is due"));
    expect(t.u.size()).toBe(1);
    expect(t.u.due()).toBe(false);
    t.advance(2000);
    await t.u.repair(t.run());
    expect(t.u.size()).toBe(0);
  });

  it("drops a chunk, with an error, when its reconcile fails in a way a retry would repeat", async () => {
    const t = setUp();
    t.u.add("a@x");
    await t.u.repair(t.run(new Error("Kamailio refused the lookup")));
    expect(t.u.size()).toBe(0);
    expect(t.lines.find((l) => l.level === "error")?.msg).toMatch(/the reconcile does, if it runs/);
  });

  it("keeps an AoR that came again while its turn was under way", async () => {
    const t = setUp();
    t.u.add("a@x");
    t.u.add("b@x");
    await t.u.repair(async () => {
      t.u.add("a@x"); // a later REGISTER of a@x failed too, after the lookup
      t.u.add("c@x");
      return null;
    });
    expect(t.u.size()).toBe(2);
    await t.u.repair(t.run());
    expect(t.runs).toEqual([["a@x", "c@x"]]);
  });

  it("past its limit counts what it cannot keep and asks for a full reconcile once the kept ones are done", async () => {
    const t = setUp(2);
    for (const aor of ["a@x", "b@x", "c@x", "d@x", "a@x"]) t.u.add(aor);
    expect(t.u.size()).toBe(2);
    await t.u.repair(t.run("not now"));
    expect(t.overflows()).toBe(0);
    t.advance(2000);
    await t.u.repair(t.run());
    expect(t.runs.at(-1)).toEqual(["a@x", "b@x"]);
    expect(t.overflows()).toBe(1);
    expect(t.u.due()).toBe(false);
    expect(t.lines.map((l) => l.msg)).toContainEqual(expect.stringMatching(/a full reconcile brings the rest in line/));
  });
});
