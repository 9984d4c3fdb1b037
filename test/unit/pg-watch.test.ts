/**
 * The hub's watch on its PostgreSQL (hub/pg-watch.ts): when a silent or refusing PostgreSQL counts
 * as unreachable, that a slow but answering one does not, what the log says, and the way back.
 */
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { startPgWatch, type PgState } from "../../hub/pg-watch.js";

type Answer = "ok" | "hang" | Error;

function harness(unreachableAfterMs = 1500) {
  let answer: Answer = "ok";
  const changes: PgState[] = [];
  const lines: string[] = [];
  const log = pino({ level: "info" }, { write: (s: string) => void lines.push(s) });
  const watch = startPgWatch({
    check: () => (answer === "ok" ? Promise.resolve() : answer === "hang" ? new Promise<void>(() => undefined) : Promise.reject(answer)),
    address: "db.example.com:5432",
    unreachableAfterMs,
    log,
    onChange: (s) => changes.push(s),
  });
  return { watch, changes, lines, answer: (a: Answer) => (answer = a) };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("hub PostgreSQL watch", () => {
  it("calls a PostgreSQL that stopped answering unreachable after unreachableAfterMs, not before, and says so naming it", async () => {
    const h = harness(1500);
    h.answer("hang");
    await vi.advanceTimersByTimeAsync(1400);
    expect(h.watch.state().reachable).toBe(true);
    expect(h.changes).toEqual([]);
    // Checks run every 500 ms: the verdict comes with the one at 1.5 s of silence.
    await vi.advanceTimersByTimeAsync(600);
    // Dated from the first check that went unanswered (at 500 ms), not from the verdict.
    expect(h.changes).toEqual([{ reachable: false, error: "no answer for 2 s", sinceMs: Date.now() - 1500, lastAnsweredMs: Date.now() - 2000, failingSinceMs: null }]);
    expect(h.watch.state().reachable).toBe(false);
    const logged = h.lines.map((l) => JSON.parse(l) as { level: number; msg: string });
    expect(logged).toHaveLength(1);
    expect(logged[0]!.level).toBe(50);
    expect(logged[0]!.msg).toMatch(/^PostgreSQL at db\.example\.com:5432 has not answered for 2 s .*closes its agents' sessions and refuses new ones until PostgreSQL answers\. Agents go to another hub whose PostgreSQL answers, if any; otherwise they keep journaling locally and send everything when one answers\./);
    // True with one shared PostgreSQL too: no promise that another hub takes them.
    expect(logged[0]!.msg).not.toMatch(/so they fail over/);
    h.watch.close();
  });

  it("gives the failed check's reason, and keeps it current while unreachable", async () => {
    const h = harness(1500);
    h.answer(new Error("connect ECONNREFUSED 10.0.0.5:5432"));
    await vi.advanceTimersByTimeAsync(2000);
    expect(h.watch.state()).toMatchObject({ reachable: false, error: "connect ECONNREFUSED 10.0.0.5:5432" });
    h.answer(new Error("the database system is starting up"));
    await vi.advanceTimersByTimeAsync(600);
    expect(h.watch.state().error).toBe("the database system is starting up");
    expect(h.changes).toHaveLength(1);
    h.watch.close();
  });

  it("before the verdict, says checks fail, since the first failed check, why, and when PostgreSQL last answered", async () => {
    const h = harness(1500);
    await vi.advanceTimersByTimeAsync(600); // the check at 500 ms answers
    const answeredAt = Date.now() - 100;
    expect(h.watch.state()).toMatchObject({ reachable: true, failingSinceMs: null, lastAnsweredMs: answeredAt, error: null });
    h.answer(new Error("connect ECONNREFUSED 10.0.0.5:5432"));
    await vi.advanceTimersByTimeAsync(500); // the check at 1000 ms is refused
    expect(h.watch.state()).toEqual({
      reachable: true, error: "connect ECONNREFUSED 10.0.0.5:5432", sinceMs: answeredAt - 500, lastAnsweredMs: answeredAt, failingSinceMs: answeredAt + 500,
    });
    await vi.advanceTimersByTimeAsync(1500);
    // Unreachable since the first refused check, not since the verdict.
    expect(h.changes).toEqual([{ reachable: false, error: "connect ECONNREFUSED 10.0.0.5:5432", sinceMs: answeredAt + 500, lastAnsweredMs: answeredAt, failingSinceMs: null }]);
    h.watch.close();
  });

  it("counts a check that hangs longer than a check interval as failing", async () => {
    const h = harness(1500);
    h.answer("hang");
    await vi.advanceTimersByTimeAsync(600);
    expect(h.watch.state().failingSinceMs).toBeNull();
    await vi.advanceTimersByTimeAsync(500);
    expect(h.watch.state()).toMatchObject({ reachable: true, failingSinceMs: Date.now() - 600, error: "no answer for 1 s" });
    h.watch.close();
  });

  it("keeps a PostgreSQL that answers reachable, however long it runs", async () => {
    const h = harness(1500);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(h.changes).toEqual([]);
    expect(h.watch.state().reachable).toBe(true);
    h.watch.close();
  });

  it("makes it reachable again at the first check that succeeds, and logs that", async () => {
    const h = harness(1500);
    h.answer(new Error("Connection terminated unexpectedly"));
    await vi.advanceTimersByTimeAsync(2000);
    h.answer("ok");
    await vi.advanceTimersByTimeAsync(500);
    expect(h.changes.map((c) => c.reachable)).toEqual([false, true]);
    expect(h.watch.state()).toEqual({ reachable: true, error: null, sinceMs: Date.now(), lastAnsweredMs: Date.now(), failingSinceMs: null });
    expect(h.lines.at(-1)).toMatch(/PostgreSQL at db\.example\.com:5432 answers again; this hub takes agents again/);
    h.watch.close();
  });
});
