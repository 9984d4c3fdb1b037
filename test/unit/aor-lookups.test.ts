/**
 * The AoRs to look up in Kamailio, such as those whose registrar events could not be journaled
 * (agent/kamailio/aor-lookups.ts): kept until a reconcile of them is done, backing off while it
 * fails, never dropping an AoR that failed again while a try was under way.
 */
import { describe, expect, it } from "vitest";
import { TransientError } from "../../agent/core/transient.js";
import { createAorLookups } from "../../agent/kamailio/aor-lookups.js";
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

describe("AoRs to look up in Kamailio", () => {
  it("reconciles the AoRs of failed events once, each once however many of its events failed", async () => {
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
    expect(t.lines.map((l) => l.msg)).toContainEqual(expect.stringMatching(/brought the journal in line/));
  });

  it("keeps them while the journal still fails, backing off 2 s, 4 s, … up to 60 s, and from the start once the journal works again", async () => {
    const t = setUp();
    t.u.add("a@x");
    const full = new TransientError("the journal's disk is full");
    await t.u.repair(t.run(full));
    expect(t.u.size()).toBe(1);
    expect(t.u.due()).toBe(false);
    t.advance(1999);
    expect(t.u.due()).toBe(false);
    t.advance(1);
    expect(t.u.due()).toBe(true);
    await t.u.repair(t.run(full));
    t.advance(3999);
    expect(t.u.due()).toBe(false); // 4 s now
    for (let i = 0; i < 10; i++) {
      t.advance(60_000);
      await t.u.repair(t.run(full));
    }
    t.advance(59_999);
    expect(t.u.due()).toBe(false); // capped at 60 s
    // One warning for the whole run of failures, not one per try.
    expect(t.lines.filter((l) => l.level === "warn")).toHaveLength(1);
    t.u.journalWorks();
    expect(t.u.due()).toBe(true);
    await t.u.repair(t.run());
    expect(t.u.size()).toBe(0);
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

  it("drops them, with an error, when the reconcile fails in a way a retry would repeat", async () => {
    const t = setUp();
    t.u.add("a@x");
    await t.u.repair(t.run(new Error("Kamailio refused the lookup")));
    expect(t.u.size()).toBe(0);
    expect(t.lines.find((l) => l.level === "error")?.msg).toMatch(/periodic reconcile/);
  });

  it("keeps an AoR that failed again while its reconcile was under way", async () => {
    const t = setUp();
    t.u.add("a@x");
    t.u.add("b@x");
    await t.u.repair(async (aors) => {
      t.u.add("a@x"); // a later REGISTER of a@x failed too, after the lookup
      t.u.add("c@x");
      return aors.size > 0 ? null : "nothing";
    });
    expect(t.u.size()).toBe(2);
    await t.u.repair(t.run());
    expect(t.runs).toEqual([["a@x", "c@x"]]);
  });

  it("past its limit counts the events it cannot keep and asks for a full reconcile once the kept ones are done", async () => {
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
