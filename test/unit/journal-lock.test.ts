/**
 * One agent per journal (agent/journal/journal-lock.ts): a second opener is refused at once,
 * saying what to do, and the journal opens again once the first lets go. In the second case a child
 * process takes the lock file as lockJournal does, as a second agent would; it is killed with
 * SIGKILL, as a crash leaves it.
 */
import { spawn } from "node:child_process";
import Database from "better-sqlite3";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { JournalInUseError } from "../../agent/journal/journal-lock.js";
import { openSqliteStore, type SqliteStore } from "../../agent/journal/sqlite-store.js";
import { aliasDraft, counterStamp, makeTempDirs } from "../support/fixtures.js";

const temp = makeTempDirs("locmesh-journal-lock-");
const open: SqliteStore[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  temp.cleanup();
});

describe("the journal's lock", () => {
  it("refuses a second opener at once while the first has it, and lets it in once closed", async () => {
    const path = join(temp.make(), "journal.sqlite");
    const first = openSqliteStore({ path, nodeId: "n1" });
    open.push(first);
    await first.commitLocal([aliasDraft("a@x", "sip:a@x")], counterStamp());
    const started = Date.now();
    expect(() => openSqliteStore({ path, nodeId: "n1" })).toThrow(JournalInUseError);
    expect(Date.now() - started).toBeLessThan(1000); // no busy wait
    expect(() => openSqliteStore({ path, nodeId: "n1" })).toThrow(/^another process holds the journal at .*journal\.sqlite: an agent with this dataDir is running already .* Stop it first, or give this one its own dataDir/);
    // The journal itself stays open to readers meanwhile.
    const reader = new Database(path, { readonly: true });
    expect(reader.prepare("SELECT count(*) AS n FROM records").get()).toEqual({ n: 1 });
    reader.close();
    await first.close();
    open.splice(0);
    const second = openSqliteStore({ path, nodeId: "n1" });
    open.push(second);
    expect(await second.get("alias", "a@x", "")).toMatchObject({ seq: 1 });
  });

  it("is held by another process until it dies, killed or not", async () => {
    const path = join(temp.make(), "journal.sqlite");
    const holder = spawn(process.execPath, ["-e", `
      const Database = require(${JSON.stringify(require.resolve("better-sqlite3"))});
      const lock = new Database(${JSON.stringify(`${path}.lock`)});
      lock.pragma("locking_mode = EXCLUSIVE"); lock.exec("BEGIN EXCLUSIVE; COMMIT");
      process.stdout.write("held\\n"); setInterval(() => undefined, 1000);
    `], { stdio: ["ignore", "pipe", "inherit"] });
    try {
      await new Promise<void>((resolve) => holder.stdout.once("data", () => resolve()));
      expect(() => openSqliteStore({ path, nodeId: "n1" })).toThrow(JournalInUseError);
    } finally {
      holder.kill("SIGKILL");
      await new Promise((r) => holder.once("exit", r));
    }
    const after = openSqliteStore({ path, nodeId: "n1" });
    open.push(after);
    expect(after.replicaId).toMatch(/^n1~/);
  });
});
