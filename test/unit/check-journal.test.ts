/**
 * `locmesh check`'s look at the journal (agent/check/journal-check.ts) on real journals: none yet,
 * this node's with and without an agent on it, another node's, one from a newer locmesh, and one
 * that is not a journal. The look must change nothing: the journal opens afterwards as before.
 */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { checkJournal } from "../../agent/check/journal-check.js";
import { journalInUse } from "../../agent/journal/journal-lock.js";
import { journalPathOf } from "../../agent/journal/journal-inspect.js";
import { openSqliteStore, type SqliteStore } from "../../agent/journal/sqlite-store.js";
import { aliasDraft, counterStamp, makeTempDirs } from "../support/fixtures.js";

const temp = makeTempDirs("locmesh-check-journal-");
const open: SqliteStore[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  temp.cleanup();
});

async function journalOf(nodeId: string, dataDir: string): Promise<SqliteStore> {
  const store = openSqliteStore({ path: journalPathOf(dataDir), nodeId });
  open.push(store);
  await store.commitLocal([aliasDraft("a@x", "sip:a@x")], counterStamp());
  return store;
}

describe("locmesh check: the journal", () => {
  it("none yet: ok, and says the agent makes it; nothing is made by the look", () => {
    const dataDir = join(temp.make(), "data", "n1");
    const r = checkJournal({ dataDir, nodeId: "n1" });
    expect(r).toEqual({ agentRunning: false, result: { subject: "journal", state: "ok", detail: expect.stringMatching(/^none yet at .*journal\.sqlite: the agent makes it at its start/) } });
    expect(existsSync(dataDir)).toBe(false);
  });

  it("this node's, held by an agent: running, with its epoch; let go, not running, and no lock file made where none was", async () => {
    const dataDir = temp.make();
    const store = await journalOf("n1", dataDir);
    const held = checkJournal({ dataDir, nodeId: "n1" });
    expect(held.agentRunning).toBe(true);
    expect(held.result.state).toBe("ok");
    expect(held.result.detail).toContain(`node n1's, epoch ${store.replicaId}`);
    expect(held.result.detail).toContain("in use by the running agent");
    expect(held.result.detail).toContain("it started empty and has not caught up with the cluster yet");
    store.markSeeded();
    await store.close();
    open.splice(0);
    const free = checkJournal({ dataDir, nodeId: "n1" });
    expect(free.agentRunning).toBe(false);
    expect(free.result.detail).toContain("no agent runs on it");
    expect(free.result.detail).not.toContain("caught up");
    // The agent opens it afterwards as before, the record kept.
    const again = openSqliteStore({ path: journalPathOf(dataDir), nodeId: "n1" });
    open.push(again);
    expect(await again.get("alias", "a@x", "")).toMatchObject({ seq: 1 });
    // No lock file where no agent ever ran.
    const other = temp.make();
    writeFileSync(journalPathOf(other), "");
    expect(journalInUse(journalPathOf(other))).toBe(false);
    expect(existsSync(`${journalPathOf(other)}.lock`)).toBe(false);
  });

  it("another node's: fails with the words the agent's start refuses it with", async () => {
    const dataDir = temp.make();
    await (await journalOf("n1", dataDir)).close();
    open.splice(0);
    const r = checkJournal({ dataDir, nodeId: "n2" });
    expect(r.result.state).toBe("fail");
    expect(r.result.detail).toBe(`the journal at ${journalPathOf(dataDir)} belongs to node "n1", not "n2"; point dataDir at this node's own journal, or move it aside to start empty`);
    expect(() => openSqliteStore({ path: journalPathOf(dataDir), nodeId: "n2" })).toThrow(r.result.detail);
  });

  it("one written by a newer locmesh: fails as the start would", async () => {
    const dataDir = temp.make();
    const store = await journalOf("n1", dataDir);
    await store.close();
    open.splice(0);
    const db = new Database(journalPathOf(dataDir));
    db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 'x')").run();
    db.close();
    const r = checkJournal({ dataDir, nodeId: "n1" });
    expect(r.result).toMatchObject({ state: "fail", detail: expect.stringMatching(/^the journal is at schema version 999 but this locmesh only knows up to \d+; run the newer locmesh/) });
  });

  it("a file that is no journal: fails saying it cannot be read", () => {
    const dataDir = temp.make();
    writeFileSync(journalPathOf(dataDir), "not a database at all, but long enough to have a header of sorts.".repeat(10));
    const r = checkJournal({ dataDir, nodeId: "n1" });
    expect(r.result).toMatchObject({ state: "fail", detail: expect.stringMatching(/^cannot read the journal at .*: file is not a database\. Run this check as the agent's user/) });
  });
});
