import { describe, expect, it } from "vitest";
import type { Change } from "../../agent/contract/records.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { bindingKey, aliasKey, type InstallOp } from "../../agent/kamailio/install-plan.js";
import type { KamailioWriter } from "../../agent/kamailio/kamailio-writer.js";
import { watchChanges, writeCurrent, type OnStored } from "../../agent/kamailio/stale-writes.js";
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
