/**
 * The journal's durable key sets (sqlite-key-set.ts), on a real journal file: changes are seen at
 * once, written by flush() in one go, kept through a reopen, and kept noted when the write fails.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { makeTempDirs } from "../support/fixtures.js";

const tmp = makeTempDirs("locmesh-keyset-");
afterEach(() => tmp.cleanup());

const rows = (path: string): string[] => {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare("SELECT key FROM kamailio_unseen ORDER BY key").all() as { key: string }[]).map((r) => r.key);
  } finally {
    db.close();
  }
};

describe("journal key set", () => {
  it("sees adds and deletes at once, writes them at flush, and keeps them through a reopen", async () => {
    const path = join(tmp.make(), "journal.db");
    const store = openSqliteStore({ path, nodeId: "n1" });
    const set = store.kamailioUnseen;
    expect(set.size()).toBe(0);
    set.delete("nothing"); // on an empty set: no change
    set.add("b");
    set.add("a");
    set.add("c");
    set.add("a");
    set.delete("c");
    expect([set.has("a"), set.has("b"), set.has("c"), set.size()]).toEqual([true, true, false, 2]);
    expect(rows(path)).toEqual([]); // noted, not written yet
    set.flush();
    expect(rows(path)).toEqual(["a", "b"]);
    // Deleting a stored key and adding it back nets nothing; a noted delete shows before its flush.
    set.delete("a");
    expect([set.has("a"), set.size()]).toEqual([false, 1]);
    set.add("a");
    set.delete("b");
    set.add("d");
    expect([set.has("a"), set.has("b"), set.has("d"), set.size()]).toEqual([true, false, true, 2]);
    // list() writes what is noted first, and pages in key order.
    expect(set.list("", 1)).toEqual(["a"]);
    expect(set.list("a", 10)).toEqual(["d"]);
    expect(rows(path)).toEqual(["a", "d"]);
    await store.close();

    const again = openSqliteStore({ path, nodeId: "n1" });
    expect([again.kamailioUnseen.size(), again.kamailioUnseen.has("d"), again.kamailioUnseen.has("b")]).toEqual([2, true, false]);
    await again.close();
  });

  it("keeps its changes noted when they cannot be written, and writes them at the next flush", async () => {
    const path = join(tmp.make(), "journal.db");
    const store = openSqliteStore({ path, nodeId: "n1" });
    const set = store.kamailioUnseen;
    // A trigger stands in for a full disk: SQLite refuses the insert as it would with SQLITE_FULL.
    const side = new Database(path);
    side.exec("CREATE TRIGGER full BEFORE INSERT ON kamailio_unseen BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END");
    set.add("x");
    expect(() => set.flush()).toThrow(/disk is full/);
    expect([set.has("x"), set.size()]).toEqual([true, 1]);
    side.exec("DROP TRIGGER full");
    side.close();
    set.flush();
    expect(rows(path)).toEqual(["x"]);
    await store.close();
  });
});
