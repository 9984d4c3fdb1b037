/**
 * The note that a reload into Kamailio is under way (agent/kamailio/reload-mark.ts), kept in the
 * journal's meta table: what the next start finds after a run that never finished, and that a
 * finished run leaves nothing behind. A real SQLite journal in a temp folder, reopened as the agent
 * does after a restart.
 */
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { KamailioReloadStatus } from "../../agent/contract/kamailio-status.js";
import { openSqliteStore, type SqliteStore } from "../../agent/journal/sqlite-store.js";
import { RELOAD_NOTE, openReloadMark, type ReloadNotes } from "../../agent/kamailio/reload-mark.js";
import { createLogger, silentLogger } from "../../agent/ops/logger.js";
import { makeTempDirs } from "../support/fixtures.js";

const temp = makeTempDirs("locmesh-reload-mark-");
const open: SqliteStore[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  temp.cleanup();
});

const INSTANCE = { mainPid: 4242, upSince: "Sun Nov 22 00:24:14 2026", uptimeSec: 10 };
const running: KamailioReloadStatus = {
  state: "running", reason: "requested through the API", total: 1500, done: 0, unchanged: 0, startedAt: "2026-11-22T10:00:00.000Z",
  finishedAt: null, rate: 0, channel: "evapi", error: null,
};

function journal(path: string): SqliteStore {
  const s = openSqliteStore({ path, nodeId: "n1" });
  open.push(s);
  return s;
}

describe("reload mark", () => {
  it("keeps a reload under way across a restart, with its progress saved about once a second, and forgets it once one finishes", async () => {
    const path = join(temp.make(), "journal.sqlite");
    let now = 0;
    const first = openReloadMark({ notes: journal(path), instance: () => INSTANCE, log: silentLogger(), nowMs: () => now });
    expect(first.previous).toBeNull();
    first.track(running);
    for (let done = 1; done <= 300; done++) first.track({ ...running, done }); // the same second: not saved
    now = 1500;
    first.track({ ...running, done: 301 });
    now = 1700;
    first.track({ ...running, done: 350 });
    await open.pop()!.close(); // as kill -9 leaves it: nothing more is written

    const second = openReloadMark({ notes: journal(path), instance: () => INSTANCE, log: silentLogger() });
    expect(second.previous).toEqual({ reason: "requested through the API", startedAt: running.startedAt, done: 301, total: 1500, error: null, whole: false, instance: INSTANCE });
    // The redo runs, and finishes.
    const redo = { ...running, reason: "redo", startedAt: "2026-11-22T10:01:00.000Z" };
    second.track(redo);
    second.track({ ...redo, state: "done", done: 1500 });
    // Still said for this run (status shows what this start found), but gone from the journal.
    expect(second.previous).not.toBeNull();
    expect(open[0]!.readNote(RELOAD_NOTE)).toBeNull();
    await open.pop()!.close();
    expect(openReloadMark({ notes: journal(path), instance: () => null, log: silentLogger() }).previous).toBeNull();
  });

  it("saves the progress of a fast reload every 5,000 writes too, not only once a second", async () => {
    const path = join(temp.make(), "journal.sqlite");
    const mark = openReloadMark({ notes: journal(path), instance: () => INSTANCE, log: silentLogger(), nowMs: () => 0 });
    const fast = { ...running, total: 18_000 };
    mark.track(fast);
    for (let done = 1; done <= 12_000; done++) mark.track({ ...fast, done }); // all within the first second
    await open.pop()!.close();
    expect(openReloadMark({ notes: journal(path), instance: () => INSTANCE, log: silentLogger() }).previous).toMatchObject({ done: 10_000, total: 18_000 });
  });

  it("keeps that the reload wrote every live record (locmesh resync --kamailio), so that its redo does too", async () => {
    const path = join(temp.make(), "journal.sqlite");
    const mark = openReloadMark({ notes: journal(path), instance: () => INSTANCE, log: silentLogger() });
    mark.track({ ...running, whole: true });
    mark.track({ ...running, whole: true, done: 700 });
    await open.pop()!.close();
    expect(openReloadMark({ notes: journal(path), instance: () => INSTANCE, log: silentLogger() }).previous).toMatchObject({ done: 0, whole: true });
  });

  it("keeps a failed reload with its error, and a note it cannot read as a reload that did not finish", () => {
    const notes = new Map<string, string>();
    const store: ReloadNotes = { readNote: (n) => notes.get(n) ?? null, writeNote: (n, v) => (v === null ? notes.delete(n) : notes.set(n, v)) };
    const mark = openReloadMark({ notes: store, instance: () => null, log: silentLogger() });
    mark.track(running);
    mark.track({ ...running, state: "failed", done: 40, error: "Kamailio is unreachable" });
    expect(openReloadMark({ notes: store, instance: () => null, log: silentLogger() }).previous).toMatchObject({ done: 40, error: "Kamailio is unreachable" });
    notes.set(RELOAD_NOTE, "{not json");
    expect(openReloadMark({ notes: store, instance: () => null, log: silentLogger() }).previous).toEqual({
      reason: null, startedAt: "unknown", done: 0, total: 0, error: null, instance: null,
    });
    // The journal's own names and the notes do not meet.
    const s = journal(":memory:");
    s.writeNote("node_id", "x");
    expect(s.readNote("node_id")).toBe("x");
    expect(s.nodeId).toBe("n1");
  });

  it("lets the reload go on when the note cannot be written (a full disk)", () => {
    const lines: string[] = [];
    const log = createLogger({ level: "warn", nodeId: "n1", destination: { write: (line: string) => void lines.push(line) } });
    const mark = openReloadMark({
      notes: { readNote: () => null, writeNote: () => { throw new Error("the journal's disk is full"); } },
      instance: () => null, log, nowMs: () => 0,
    });
    expect(() => mark.track(running)).not.toThrow();
    expect(() => mark.track({ ...running, state: "failed" })).not.toThrow();
    // Once per run, not once per write.
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(["could not note the reload's progress in the journal"]);
  });
});
