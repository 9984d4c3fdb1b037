import { describe, expect, it } from "vitest";
import type { Change } from "../../agent/contract/records.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { bindingKey, aliasKey, type InstallOp } from "../../agent/kamailio/install-plan.js";
import type { KamailioWriter } from "../../agent/kamailio/kamailio-writer.js";
import { watchChanges, watchChangesAfter, writeCurrent, type OnStored } from "../../agent/kamailio/stale-writes.js";
import { binding, counterStamp } from "../support/fixtures.js";

function feed() {
  const listeners = new Set<(changes: readonly Change[]) => void>();
  const onStored: OnStored = (l) => {
    listeners.add(l);
    return () => listeners.delete(l);
  };
  const store = (changes: Partial<Change>[]) => {
    for (const l of listeners) l(changes as Change[]);
  };
  return { onStored, store, listening: () => listeners.size };
}

describe("watchChanges", () => {
  it("tells which records changed since it began, and since a mark; stops listening when closed", () => {
    const f = feed();
    const w = watchChanges(f.onStored);
    f.store([{ kind: "loc", key: "a@x", sub: "sip:a@1" }]);
    const mark = w.now();
    f.store([{ kind: "alias", key: "b@x", sub: "" }]);
    expect(w.changedAfter(bindingKey("a@x", "sip:a@1"), 0)).toBe(true);
    expect(w.changedAfter(bindingKey("a@x", "sip:a@1"), mark)).toBe(false);
    expect(w.changedAfter(aliasKey("b@x"), mark)).toBe(true);
    expect(w.changedAfter(bindingKey("c@x", "sip:c@1"), 0)).toBe(false);
    w.close();
    expect(f.listening()).toBe(0);
  });
});

describe("watchChangesAfter", () => {
  const loc = (user: string, origin: string, seq: number): Partial<Change> => ({ kind: "loc", key: `${user}@x`, sub: `sip:${user}@1`, origin, seq });

  it("counts only what was stored after the position it read once listening, also what it heard before it had read it", async () => {
    const f = feed();
    let read: (vv: Record<string, number>) => void = () => undefined;
    const begun = watchChangesAfter(f.onStored, () => new Promise((r) => (read = r)));
    expect(f.listening()).toBe(1);
    // Heard while the position is read: a (stored before it, seq 3) and b (after it, seq 4). A
    // commit and its notice are two steps, so a change stored before the position can come after.
    f.store([loc("a", "p", 3), loc("b", "p", 4)]);
    read({ p: 3 });
    const { watch, upTo } = await begun;
    expect(upTo).toEqual({ p: 3 });
    f.store([loc("c", "p", 2), loc("d", "p", 5), loc("e", "q", 1)]);
    const changed = (user: string) => watch.changedAfter(bindingKey(`${user}@x`, `sip:${user}@1`), 0);
    expect(["a", "b", "c", "d", "e"].filter(changed)).toEqual(["b", "d", "e"]);
    const mark = watch.now();
    f.store([loc("a", "p", 6)]);
    expect(watch.changedAfter(bindingKey("a@x", "sip:a@1"), mark)).toBe(true);
    expect(watch.changedAfter(bindingKey("d@x", "sip:d@1"), mark)).toBe(false);
    watch.close();
    expect(f.listening()).toBe(0);
  });

  it("stops listening when the position cannot be read", async () => {
    const f = feed();
    await expect(watchChangesAfter(f.onStored, () => Promise.reject(new Error("disk I/O error")))).rejects.toThrow("disk I/O error");
    expect(f.listening()).toBe(0);
  });
});

describe("writeCurrent", () => {
  const plan = { nodeId: "n1", replicaId: "", locationTable: "location" };
  const recorder = () => {
    const ops: InstallOp[] = [];
    const writer: KamailioWriter = { write: async (op) => (ops.push(op), "rpc") };
    return { ops, writer };
  };

  it("writes the journal's live version, a removal for a tombstone, and nothing for a record it never had", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    const stamp = counterStamp(1);
    const expires = Math.floor(Date.now() / 1000) + 600;
    await store.commitLocal([
      { kind: "loc", key: "a@x", sub: "sip:a@1", value: binding({ expires, owner: "n2" }) },
      { kind: "loc", key: "b@x", sub: "sip:b@1", value: binding({ expires, owner: "n2" }) },
    ], stamp);
    await store.commitLocal([{ kind: "loc", key: "b@x", sub: "sip:b@1", value: null }], stamp);
    const { ops, writer } = recorder();
    const stale = (aor: string, contact: string): InstallOp => ({ op: "rm-contact", table: "location", aor, contact });
    const now = Math.floor(Date.now() / 1000);
    await writeCurrent(store, writer, stale("a@x", "sip:a@1"), plan, now);
    await writeCurrent(store, writer, stale("b@x", "sip:b@1"), plan, now);
    await writeCurrent(store, writer, stale("c@x", "sip:c@1"), plan, now);
    expect(ops).toEqual([
      expect.objectContaining({ op: "add", aor: "a@x", binding: expect.objectContaining({ contact: "sip:a@1", expires }) }),
      { op: "rm-contact", table: "location", aor: "b@x", contact: "sip:b@1" },
    ]);
    await store.close();
  });
});
