/**
 * What a hub last said it held of this node's changes (agent/mesh/hub-acknowledged.ts), kept in the
 * journal's notes: found again after a restart, never a figure the hub no longer stands by, and
 * never one from another journal. A real SQLite journal in a temp folder, reopened as the agent
 * does after a restart.
 */
import { renameSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openSqliteStore, type SqliteStore } from "../../agent/journal/sqlite-store.js";
import { HUB_HELD_NOTE, openHubAcknowledged, hubHoldsNone } from "../../agent/mesh/hub-acknowledged.js";
import { createLogger, silentLogger } from "../../agent/ops/logger.js";
import { makeTempDirs } from "../support/fixtures.js";

const temp = makeTempDirs("locmesh-hub-acknowledged-");
const open: SqliteStore[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  temp.cleanup();
});

function journal(path: string): SqliteStore {
  const s = openSqliteStore({ path, nodeId: "n1" });
  open.push(s);
  return s;
}
const reopen = async (path: string) => {
  await open.pop()!.close(); // as kill -9 leaves it: nothing more is written
  const s = journal(path);
  return openHubAcknowledged({ notes: s, replicaId: s.replicaId, log: silentLogger() });
};

describe("what the hub last held of this node's changes", () => {
  it("is unknown in a new journal, and kept across a restart once a hub has said it, a lower figure too", async () => {
    const path = join(temp.make(), "journal.sqlite");
    const s = journal(path);
    const acked = openHubAcknowledged({ notes: s, replicaId: s.replicaId, log: silentLogger() });
    expect(acked.held()).toBeNull();
    acked.record(0);
    expect(acked.held()).toBe(0);
    acked.record(120);
    const restarted = await reopen(path);
    expect(restarted.held()).toBe(120);
    // A hub that lost data (a PostgreSQL failover) says it holds less: that is what a restart finds.
    restarted.record(80);
    expect((await reopen(path)).held()).toBe(80);
  });

  it("is unknown for a journal started afresh (a new epoch), and for a figure kept under another replica id or unreadable", async () => {
    const folder = temp.make();
    const path = join(folder, "journal.sqlite");
    const s = journal(path);
    openHubAcknowledged({ notes: s, replicaId: s.replicaId, log: silentLogger() }).record(50);
    await open.pop()!.close();
    renameSync(path, join(folder, "old.sqlite")); // the operator moves the journal aside
    const fresh = journal(path);
    expect(openHubAcknowledged({ notes: fresh, replicaId: fresh.replicaId, log: silentLogger() }).held()).toBeNull();
    fresh.writeNote(HUB_HELD_NOTE, JSON.stringify({ replica: "n1~another", held: 50 }));
    expect(openHubAcknowledged({ notes: fresh, replicaId: fresh.replicaId, log: silentLogger() }).held()).toBeNull();
    for (const bad of ["{not json", "null", JSON.stringify({ replica: fresh.replicaId, held: -1 }), JSON.stringify({ replica: fresh.replicaId, held: "7" })]) {
      fresh.writeNote(HUB_HELD_NOTE, bad);
      expect(openHubAcknowledged({ notes: fresh, replicaId: fresh.replicaId, log: silentLogger() }).held(), bad).toBeNull();
    }
  });

  it("keeps the figure for this run when it cannot be written (a full disk), and says so once", () => {
    const lines: string[] = [];
    const log = createLogger({ level: "warn", nodeId: "n1", destination: { write: (line: string) => void lines.push(line) } });
    const acked = openHubAcknowledged({
      notes: { readNote: () => null, writeNote: () => { throw new Error("the journal's disk is full"); } }, replicaId: "n1~a", log,
    });
    acked.record(10);
    acked.record(20);
    expect(acked.held()).toBe(20);
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual([expect.stringContaining("could not note in the journal how many of this node's changes the hub holds")]);
  });
});

describe("hubHoldsNone", () => {
  it("warns when a hub holds none of what a hub acknowledged, naming the figure and what to check", () => {
    expect(hubHoldsNone("hub2", 30, 0)).toBe(
      "hub hub2 holds none of this node's changes, where a hub had acknowledged 30: check that every hub's postgres.url names the same database " +
        "(a hub on another one splits the cluster, each half replicating only within its own), or whether that database was recreated empty. This node sends them again",
    );
  });

  it("stays quiet for a hub that holds some (it may learn other hubs' commits late), or with no figure before", () => {
    expect(hubHoldsNone("hub2", 50_000, 1)).toBeNull();
    expect(hubHoldsNone("hub2", 30, 30)).toBeNull();
    expect(hubHoldsNone("hub2", null, 0)).toBeNull();
    expect(hubHoldsNone("hub2", 0, 0)).toBeNull();
  });
});
