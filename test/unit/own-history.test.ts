/**
 * A journal restored from an older copy while no peer could be reached, then written past what
 * the peers hold: its new changes took the numbers the peers hold for the lost ones, which the
 * handshake's count cannot see (agent/mesh/own-history.ts). Real journals, copied as a restore
 * copies them; the peer's side is what it serves to a pull.
 */
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Change } from "../../agent/contract/records.js";
import { nextBatch, servePull } from "../../agent/core/outbound.js";
import { openSqliteStore, type SqliteStore } from "../../agent/journal/sqlite-store.js";
import { OWN_HISTORY_WINDOW, ownHistoryConflict, type OwnJournal } from "../../agent/mesh/own-history.js";
import { aliasDraft, makeTempDirs } from "../support/fixtures.js";

const temp = makeTempDirs("locmesh-own-history-");
const open: SqliteStore[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  temp.cleanup();
});

function journalOf(s: SqliteStore): OwnJournal {
  return {
    atSeq: async (seq) => (await s.readRange(s.replicaId, seq - 1, seq, 1))[0] ?? null,
    get: (kind, key, sub) => s.get(kind, key, sub),
  };
}

/** Node a, its peer p, and a restore of a's journal as it was after `before` (the restored journal is `a` again). */
async function cluster() {
  const dir = temp.make();
  const openStore = (name: string) => {
    const s = openSqliteStore({ path: join(dir, `${name}.sqlite`), nodeId: name === "p" ? "p" : "a" });
    open.push(s);
    return s;
  };
  let a = openStore("a");
  const p = openStore("p");
  let t = 1_000_000 * 1024;
  const stamp = () => (t += 1024);
  const send = async () => {
    const b = await nextBatch(a, a.replicaId, (await p.versionVector())[a.replicaId] ?? 0, (await a.versionVector())[a.replicaId] ?? 0, 1000);
    if (b) await p.applyRemote(b);
  };
  const copy = async () => {
    await a.close();
    open.splice(open.indexOf(a), 1);
    copyFileSync(join(dir, "a.sqlite"), join(dir, "copy.sqlite"));
    a = openStore("a");
  };
  const restore = async () => {
    await a.close();
    open.splice(open.indexOf(a), 1);
    copyFileSync(join(dir, "copy.sqlite"), join(dir, "a.sqlite"));
    a = openStore("a");
  };
  /** What the mesh compares: the peer's changes of a's origin served to a pull, and a's journal. */
  const verdict = async (): Promise<string | null> => {
    const held = (await p.versionVector())[a.replicaId] ?? 0;
    const res = await servePull(p, { vv: { [a.replicaId]: Math.max(0, held - OWN_HISTORY_WINDOW) }, limit: OWN_HISTORY_WINDOW, skip: [p.replicaId], count: false });
    const theirs: Change[] = res.batch?.changes ?? [];
    return ownHistoryConflict(theirs, journalOf(a), a.replicaId, (await a.versionVector())[a.replicaId] ?? 0);
  };
  return {
    get a() {
      return a;
    },
    p, send, copy, restore, verdict,
    commit: (alias: string, target: string | null) => a.commitLocal([aliasDraft(alias, target)], stamp),
    /** The restored node's clock, set back: its next stamps are older than the lost changes'. */
    clockBack: (by: number) => (t -= by * 1024),
  };
}

describe("a peer's copy of this node's own changes against the journal", () => {
  it("agrees when nothing was restored, whatever the peer has or lacks", async () => {
    const c = await cluster();
    await c.commit("one@x", "sip:1@x");
    await c.commit("two@x", "sip:2@x");
    await c.send();
    await c.commit("one@x", "sip:1b@x"); // supersedes change 1 here; the peer does not have it yet
    await c.commit("three@x", null);
    expect(await c.verdict()).toBeNull();
    await c.send();
    expect(await c.verdict()).toBeNull();
  });

  it("finds a restored journal's new change under the number the peer holds for a lost one", async () => {
    const c = await cluster();
    await c.commit("kept@x", "sip:k@x");
    await c.send();
    await c.copy();
    await c.commit("lost@x", "sip:l@x"); // change 2, on the peer, then lost with the journal
    await c.send();
    await c.restore();
    await c.commit("new1@x", "sip:n@x"); // change 2 again, another one
    await c.commit("new2@x", "sip:n@x"); // past what the peer holds: the handshake's count sees nothing
    expect((await c.a.versionVector())[c.a.replicaId]).toBe(3);
    expect(await c.verdict()).toMatch(/^this node's change 2 is alias lost@x set at HLC \d+ on the peer, but alias new1@x set at HLC \d+ in the journal$/);
  });

  it("finds it by the record when the journal's change under that number was itself superseded", async () => {
    const c = await cluster();
    await c.commit("k@x", "sip:old@x"); // 1
    await c.send();
    await c.copy();
    await c.commit("k@x", "sip:lost@x"); // 2: the peer's current version of k
    await c.send();
    await c.restore();
    await c.commit("z@x", "sip:z@x"); // 2 again
    await c.commit("z@x", "sip:z2@x"); // 3: supersedes the journal's 2, so that number holds nothing here
    expect(await c.verdict()).toMatch(/^the peer holds this node's change 2 \(alias k@x set at HLC \d+\); the journal, which holds this node's changes up to 3, has its older change 1 of that record$/);
  });

  it("finds a newer number stamped before the peer's older one (the restored node's clock was behind)", async () => {
    const c = await cluster();
    await c.commit("a@x", "sip:a@x"); // 1
    await c.send();
    await c.copy();
    await c.commit("k@x", "sip:lost@x"); // 2
    await c.send();
    await c.restore();
    c.clockBack(1_000_000);
    await c.commit("z@x", "sip:z@x"); // 2 again
    await c.commit("k@x", "sip:new@x"); // 3, stamped before the peer's 2
    await c.commit("z@x", null); // 4: supersedes the journal's 2
    expect(await c.verdict()).toMatch(/^this node's change 3 \(alias k@x set at HLC \d+\) in the journal is stamped before its change 2 on the peer \(alias k@x set at HLC \d+\)$/);
  });

  it("takes nothing the journal no longer holds, or holds from another origin, for a fork", async () => {
    const c = await cluster();
    await c.commit("gone@x", "sip:g@x");
    await c.send();
    const theirs = (await servePull(c.p, { vv: {}, limit: 10, skip: [c.p.replicaId], count: false })).batch!.changes;
    const journal = journalOf(c.a);
    // As if purged here: nothing under that number, no current version.
    expect(await ownHistoryConflict(theirs, { atSeq: async () => null, get: async () => null }, c.a.replicaId, 1)).toBeNull();
    // Another origin's version in the journal, older or not: a purged tombstone lets an older one in.
    const other: Change = { ...theirs[0]!, origin: "q~00000000000f", seq: 9, hlc: 1 };
    expect(await ownHistoryConflict(theirs, { atSeq: async () => null, get: async () => other }, c.a.replicaId, 1)).toBeNull();
    // Changes past the journal's count are the handshake's to judge.
    expect(await ownHistoryConflict(theirs, journal, c.a.replicaId, 0)).toBeNull();
    expect(await ownHistoryConflict(theirs, journal, c.a.replicaId, 1)).toBeNull();
  });
});
