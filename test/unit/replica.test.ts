import { afterEach, describe, expect, it, vi } from "vitest";
import { HLC_UNITS_PER_MS, type Change } from "../../agent/contract/records.js";
import { createHlc } from "../../agent/core/hlc.js";
import { createReplica, type Replica } from "../../agent/core/replica.js";
import type { ReplicaStore } from "../../agent/core/store.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { REPLICA_A, aliasDraft, batchOf, binding, locDraft, remoteChange } from "../support/fixtures.js";

const WALL_MS = 1_700_000_000_000;
const replicas: Replica[] = [];
afterEach(async () => {
  for (const r of replicas.splice(0)) await r.close();
});

/** A replica over an in-memory journal whose commitLocal calls are counted. */
function setup(wallMs = WALL_MS) {
  const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
  const commitLocal = vi.spyOn(store, "commitLocal");
  const hlc = createHlc({ wallMillis: () => wallMs });
  const replica = createReplica({ store, hlc });
  replicas.push(replica);
  return { replica, store: store as ReplicaStore, commitLocal, hlc };
}

describe("createReplica: group commit", () => {
  it("gives concurrent callers their own results from one transaction, in call order", async () => {
    const { replica, commitLocal } = setup();
    const order: number[] = [];
    const calls = Array.from({ length: 20 }, (_, i) =>
      replica.commit([aliasDraft(`a${i}@x`, `sip:t${i}@x`), aliasDraft(`b${i}@x`, `sip:u${i}@x`)]).then((r) => {
        order.push(i);
        return r;
      }),
    );
    const results = await Promise.all(calls);
    expect(commitLocal).toHaveBeenCalledTimes(1);
    expect(order).toEqual([...Array(20).keys()]);
    results.forEach((r, i) => {
      expect(r.map((c) => c?.key)).toEqual([`a${i}@x`, `b${i}@x`]);
      expect(r.map((c) => c?.seq)).toEqual([2 * i + 1, 2 * i + 2]);
    });
    const hlcs = results.flat().map((c) => c!.hlc);
    expect([...hlcs].sort((a, b) => a - b)).toEqual(hlcs);
    expect(new Set(hlcs).size).toBe(hlcs.length);
  });

  it("commits callers that arrive during a flush in a later transaction", async () => {
    const { replica, commitLocal } = setup();
    const first = replica.commit([aliasDraft("a@x", "sip:t@x")]);
    await new Promise((r) => setImmediate(r));
    const second = replica.commit([aliasDraft("b@x", "sip:t@x")]);
    expect((await first)[0]?.seq).toBe(1);
    expect((await second)[0]?.seq).toBe(2);
    expect(commitLocal).toHaveBeenCalledTimes(2);
  });

  it("resolves an empty commit at once without touching the store", async () => {
    const { replica, commitLocal } = setup();
    expect(await replica.commit([])).toEqual([]);
    expect(commitLocal).not.toHaveBeenCalled();
  });

  it("rejects every caller of a group whose transaction fails", async () => {
    const { replica, commitLocal } = setup();
    commitLocal.mockRejectedValueOnce(new Error("disk full"));
    const a = replica.commit([aliasDraft("a@x", "sip:t@x")]);
    const b = replica.commit([aliasDraft("b@x", "sip:t@x")]);
    await expect(a).rejects.toThrow("disk full");
    await expect(b).rejects.toThrow("disk full");
    expect((await replica.commit([aliasDraft("c@x", "sip:t@x")]))[0]?.seq).toBe(1);
  });

  it("flushes pending commits on close and refuses new ones", async () => {
    const { replica } = setup();
    const pending = replica.commit([aliasDraft("a@x", "sip:t@x")]);
    await replica.close();
    expect((await pending)[0]?.seq).toBe(1);
    await expect(replica.commit([aliasDraft("b@x", "sip:t@x")])).rejects.toThrow(/closed/);
  });
});

describe("createReplica: serial writes", () => {
  it("never runs two store writes at once and applies batches in arrival order", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    let running = 0;
    let maxRunning = 0;
    const seen: number[] = [];
    const slow = <A extends unknown[], R>(fn: (...a: A) => Promise<R>) =>
      async (...a: A): Promise<R> => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await new Promise((r) => setTimeout(r, 2));
        try {
          return await fn(...a);
        } finally {
          running--;
        }
      };
    const applyRemote = store.applyRemote.bind(store);
    const commitLocal = store.commitLocal.bind(store);
    vi.spyOn(store, "applyRemote").mockImplementation(slow(async (b) => (seen.push(b.after), applyRemote(b))));
    vi.spyOn(store, "commitLocal").mockImplementation(slow(commitLocal));
    const replica = createReplica({ store, hlc: createHlc({ wallMillis: () => WALL_MS }) });
    replicas.push(replica);
    const batches = [0, 1, 2].map((after) =>
      batchOf(REPLICA_A, after, after + 1, [remoteChange(REPLICA_A, after + 1, after + 1, aliasDraft(`r${after}@x`, "sip:t@x"))]),
    );
    const work = [replica.apply(batches[0]!, "p"), replica.commit([aliasDraft("l@x", "sip:t@x")]), replica.apply(batches[1]!, "p"), replica.apply(batches[2]!, "p")];
    const [, , , last] = await Promise.all(work);
    expect(maxRunning).toBe(1);
    expect(seen).toEqual([0, 1, 2]);
    expect(last).toMatchObject({ have: 3 });
  });
});

describe("createReplica: listeners", () => {
  it("tells onCommitted and onApplied about written local changes only", async () => {
    const { replica } = setup();
    const committed = vi.fn();
    const applied = vi.fn();
    replica.onCommitted(committed);
    replica.onApplied(applied);
    const [written, nothing] = await replica.commit([aliasDraft("a@x", "sip:t@x"), aliasDraft("gone@x", null)]);
    expect(nothing).toBeNull();
    expect(committed).toHaveBeenCalledExactlyOnceWith([written], { peer: null });
    expect(applied).toHaveBeenCalledExactlyOnceWith([written], { peer: null });
    await replica.commit([aliasDraft("gone@x", null)]);
    expect(committed).toHaveBeenCalledTimes(1);
  });

  it("tells onApplied, not onCommitted, about the remote changes that won", async () => {
    const { replica } = setup();
    const [mine] = await replica.commit([aliasDraft("a@x", "sip:mine@x")]);
    const committed = vi.fn();
    const applied = vi.fn();
    replica.onCommitted(committed);
    replica.onApplied(applied);
    const loser = remoteChange(REPLICA_A, 1, mine!.hlc - 1, aliasDraft("a@x", "sip:old@x"));
    const winner = remoteChange(REPLICA_A, 2, mine!.hlc - 1, aliasDraft("b@x", "sip:new@x"));
    const outcome = await replica.apply(batchOf(REPLICA_A, 0, 2, [loser, winner]), "peer-a");
    expect(outcome).toEqual({ applied: [winner], have: 2 });
    expect(applied).toHaveBeenCalledExactlyOnceWith([winner], { peer: "peer-a" });
    expect(committed).not.toHaveBeenCalled();
  });

  it("stops calling a listener once it unsubscribes", async () => {
    const { replica } = setup();
    const applied = vi.fn();
    const off = replica.onApplied(applied);
    await replica.commit([aliasDraft("a@x", "sip:t@x")]);
    off();
    await replica.commit([aliasDraft("b@x", "sip:t@x")]);
    expect(applied).toHaveBeenCalledTimes(1);
  });
});

describe("createReplica: clocks and keys", () => {
  it("stamps the next local change after a remote one from a clock far ahead", async () => {
    const { replica } = setup();
    const ahead = (WALL_MS + 3_600_000) * HLC_UNITS_PER_MS;
    const remote = remoteChange(REPLICA_A, 1, ahead, aliasDraft("a@x", "sip:remote@x"));
    await replica.apply(batchOf(REPLICA_A, 0, 1, [remote]), "peer-a");
    const [mine] = await replica.commit([aliasDraft("a@x", "sip:local@x")]);
    expect(mine!.hlc).toBeGreaterThan(ahead);
    expect((await replica.store.get("alias", "a@x", ""))?.value).toEqual({ target: "sip:local@x" });
  });

  it("expands a key removal into one tombstone per live contact", async () => {
    const { replica } = setup();
    await replica.commit([
      locDraft("a@x", "sip:a@1", binding()),
      locDraft("a@x", "sip:a@2", binding()),
      locDraft("a@x", "sip:a@3", binding()),
      locDraft("b@x", "sip:b@1", binding()),
    ]);
    await replica.commit([locDraft("a@x", "sip:a@2", null)]);
    const drafts = await replica.draftsForKeyRemoval("loc", "a@x");
    expect(drafts).toEqual([locDraft("a@x", "sip:a@1", null), locDraft("a@x", "sip:a@3", null)]);
    const written = await replica.commit(drafts);
    expect(written.every((c: Change | null) => c?.value === null)).toBe(true);
    expect((await replica.store.listKey("loc", "a@x")).filter((c) => c.value !== null)).toEqual([]);
    expect(await replica.store.get("loc", "b@x", "sip:b@1")).not.toBeNull();
    expect(await replica.draftsForKeyRemoval("loc", "nobody@x")).toEqual([]);
  });

  it("exposes the store's ids and version vector", async () => {
    const { replica, store } = setup();
    expect(replica.replicaId).toBe(store.replicaId);
    expect(replica.nodeId).toBe("n1");
    await replica.commit([aliasDraft("a@x", "sip:t@x")]);
    expect(await replica.versionVector()).toEqual({ [store.replicaId]: 1 });
  });
});
