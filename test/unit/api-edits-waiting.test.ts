/**
 * The local API's edits that wait for this node's Kamailio (api-edits-waiting.ts), on a real
 * journal: noted when they did not go in, forgotten when they did, tried again with the journal's
 * version of each binding, and kept through a reopen of the journal.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import type { ApiEdit } from "../../agent/kamailio/api-edit-batches.js";
import { createWaitingApiEdits } from "../../agent/kamailio/api-edits-waiting.js";
import { createLogger } from "../../agent/ops/logger.js";
import { binding, counterStamp, locDraft, makeTempDirs } from "../support/fixtures.js";

const tmp = makeTempDirs("locmesh-apiwait-");
afterEach(() => tmp.cleanup());

function capturingLog() {
  const lines: { level: string; msg: string }[] = [];
  const log = createLogger({ level: "info", nodeId: "n1", destination: { write: (line: string) => void lines.push(JSON.parse(line) as { level: string; msg: string }) } });
  return { log, lines };
}

describe("API edits waiting for Kamailio", () => {
  it("notes edits that did not go in, forgets them when they do, and tries them again as the journal holds them", async () => {
    const path = join(tmp.make(), "journal.db");
    const store = openSqliteStore({ path, nodeId: "n1" });
    const [a] = await store.commitLocal([locDraft("a@example.com", "sip:a@192.0.2.1", binding({ owner: "n1" }))], counterStamp(500));
    const { log, lines } = capturingLog();
    const waiting = createWaitingApiEdits({ set: store.kamailioApiWaiting, store, log, max: 100 });
    const edit = (aor: string, contact: string, hlc = 1): ApiEdit => ({ aor, contact, hlc });

    // Not now (a reason), failed (thrown), and done.
    expect(await waiting.track([edit("a@example.com", "sip:a@192.0.2.1")], async () => "a reload into it is due")).toBe("a reload into it is due");
    await expect(waiting.track([edit("gone@example.com", "sip:g@192.0.2.1")], async () => {
      throw new Error("Kamailio does not answer");
    })).rejects.toThrow(/does not answer/);
    expect(await waiting.track([edit("b@example.com", "sip:b@192.0.2.1")], async () => null)).toBeNull();
    expect(waiting.size()).toBe(2);
    await store.close();

    // Kept through a restart; a retry gives each the journal's stamp (0 for one it no longer holds).
    const again = openSqliteStore({ path, nodeId: "n1" });
    const retried = createWaitingApiEdits({ set: again.kamailioApiWaiting, store: again, log, max: 100 });
    const tried: ApiEdit[][] = [];
    let answer: string | null = "Kamailio is restarting";
    const apply = async (edits: readonly ApiEdit[]) => {
      tried.push([...edits]);
      return answer;
    };
    expect(await retried.retry(apply)).toBe(false);
    expect(await retried.retry(apply)).toBe(false);
    // Warned once for the same reason, not at every check.
    expect(lines.filter((l) => l.level === "warn").map((l) => l.msg)).toEqual(["API edits still wait for this node's Kamailio; tried again at each check"]);
    expect(tried[0]!.sort((x, y) => x.aor.localeCompare(y.aor))).toEqual([
      { aor: "a@example.com", contact: "sip:a@192.0.2.1", hlc: a!.hlc },
      { aor: "gone@example.com", contact: "sip:g@192.0.2.1", hlc: 0 },
    ]);
    answer = null;
    expect(await retried.retry(apply)).toBe(true);
    expect(retried.size()).toBe(0);
    // Nothing waits: nothing is tried.
    expect(await retried.retry(apply)).toBe(true);
    expect(tried.length).toBe(3);
    await again.close();
  });

  it("keeps an edit noted when a newer version of its binding came while it ran", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    const waiting = createWaitingApiEdits({ set: store.kamailioApiWaiting, store, log: capturingLog().log, max: 100 });
    const [v1] = await store.commitLocal([locDraft("a@example.com", "sip:a@192.0.2.1", binding({ owner: "n1" }))], counterStamp(100));
    // The run went in for v1's stamp, but another API call changed the binding meanwhile: that one's
    // own run may have been passed over for it, so the key is tried again rather than forgotten.
    expect(await waiting.track([{ aor: "a@example.com", contact: "sip:a@192.0.2.1", hlc: v1!.hlc }], async () => {
      await store.commitLocal([locDraft("a@example.com", "sip:a@192.0.2.1", null)], counterStamp(200));
      return null;
    })).toBeNull();
    expect(waiting.size()).toBe(1);
    // Tried again with the journal's stamp, it is forgotten.
    expect(await waiting.retry(async () => null)).toBe(true);
    expect(waiting.size()).toBe(0);
  });

  it("waits for the next round when its notes cannot be read (a full disk), without failing", async () => {
    const path = join(tmp.make(), "journal.db");
    const store = openSqliteStore({ path, nodeId: "n1" });
    const { log, lines } = capturingLog();
    const waiting = createWaitingApiEdits({ set: store.kamailioApiWaiting, store, log, max: 100 });
    const side = new Database(path);
    side.exec("CREATE TRIGGER full BEFORE INSERT ON kamailio_api_waiting BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END");
    await waiting.track([{ aor: "a@example.com", contact: "sip:a@192.0.2.1", hlc: 1 }], async () => "Kamailio does not answer");
    let applied = 0;
    expect(await waiting.retry(async () => {
      applied++;
      return null;
    })).toBe(false);
    expect([applied, waiting.size()]).toEqual([0, 1]);
    expect(lines.filter((l) => l.level === "error").length).toBeGreaterThan(0);
    side.exec("DROP TRIGGER full");
    side.close();
    expect(await waiting.retry(async () => {
      applied++;
      return null;
    })).toBe(true);
    expect([applied, waiting.size()]).toEqual([1, 0]);
    await store.close();
  });

  it("runs one retry at a time", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    const waiting = createWaitingApiEdits({ set: store.kamailioApiWaiting, store, log: capturingLog().log, max: 100 });
    await waiting.track([{ aor: "a@example.com", contact: "sip:a@192.0.2.1", hlc: 1 }], async () => "not now");
    let release: (v: string | null) => void = () => undefined;
    let calls = 0;
    const slow = () => {
      calls++;
      return new Promise<string | null>((r) => (release = r));
    };
    const first = waiting.retry(slow);
    await new Promise((r) => setTimeout(r, 10));
    expect(await waiting.retry(slow)).toBe(true); // skipped while the first runs
    release(null);
    expect(await first).toBe(true);
    expect([calls, waiting.size()]).toEqual([1, 0]);
  });
});
