import { silentLogger } from "../../agent/ops/logger.js";
import { afterEach, describe, expect, it, vi } from "vitest";
import { HLC_UNITS_PER_MS, type Change } from "../../agent/contract/records.js";
import { createHlc } from "../../agent/core/hlc.js";
import { OutdatedDraftsError, createReplica, type Replica } from "../../agent/core/replica.js";
import { InvalidBatchError, type ReplicaStore } from "../../agent/core/store.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { REPLICA_A, REPLICA_B, aliasDraft, batchOf, binding, locDraft, remoteChange } from "../support/fixtures.js";

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
  const replica = createReplica({ store, hlc, log: silentLogger() });
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

  it("leaves out a caller whose drafts a write made outdated, asked in the write turn; the rest of its group commits", async () => {
    const { replica, store, commitLocal } = setup();
    let moved = false;
    const kept = replica.commit([aliasDraft("a@x", "sip:t@x")]);
    const dropped = replica.commit([aliasDraft("b@x", "sip:t@x")], { outdated: () => moved });
    // Set before the flush's write turn (the flush runs on the next turn of the event loop).
    moved = true;
    await expect(dropped).rejects.toBeInstanceOf(OutdatedDraftsError);
    expect((await kept)[0]?.seq).toBe(1);
    expect(commitLocal).toHaveBeenCalledTimes(1);
    expect(await store.get("alias", "a@x", "")).not.toBeNull();
    expect(await store.get("alias", "b@x", "")).toBeNull();
    // A group that is all outdated commits nothing.
    await expect(replica.commit([aliasDraft("c@x", "sip:t@x")], { outdated: () => true })).rejects.toBeInstanceOf(OutdatedDraftsError);
    expect(commitLocal).toHaveBeenCalledTimes(1);
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
    const applyRemoteGroup = store.applyRemoteGroup.bind(store);
    const commitLocal = store.commitLocal.bind(store);
    vi.spyOn(store, "applyRemote").mockImplementation(slow(async (b) => (seen.push(b.after), applyRemote(b))));
    vi.spyOn(store, "applyRemoteGroup").mockImplementation(slow(async (bs) => (seen.push(...bs.map((b) => b.after)), applyRemoteGroup(bs))));
    vi.spyOn(store, "commitLocal").mockImplementation(slow(commitLocal));
    const replica = createReplica({ store, hlc: createHlc({ wallMillis: () => WALL_MS }), log: silentLogger() });
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

describe("createReplica: checked commits", () => {
  const addIfAbsent = (replica: Replica, target: string) =>
    replica.commitChecked(async (store) => {
      if ((await store.get("alias", "a@x", ""))?.value) throw new Error(`a@x exists; not adding ${target}`);
      return [aliasDraft("a@x", target)];
    });

  it("checks in the write turn: of concurrent adds that each check absence, one lands", async () => {
    const { replica, store } = setup();
    const heard: string[] = [];
    replica.onApplied((changes) => heard.push(...changes.map((c) => c.key)));
    const outcomes = await Promise.allSettled([
      addIfAbsent(replica, "sip:1@x"),
      replica.commit([aliasDraft("b@x", "sip:b@x")]),
      addIfAbsent(replica, "sip:2@x"),
      addIfAbsent(replica, "sip:3@x"),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "fulfilled", "rejected", "rejected"]);
    expect((await store.get("alias", "a@x", ""))?.value).toEqual({ target: "sip:1@x" });
    // A refused check writes nothing and tells nobody.
    expect(heard.sort()).toEqual(["a@x", "b@x"]);
    expect(await store.versionVector()).toEqual({ [store.replicaId]: 2 });
  });

  it("lets no remote batch in between its check and its commit", async () => {
    const { replica, store } = setup();
    const order: string[] = [];
    replica.onApplied((_c, source) => order.push(source.peer ?? "local"));
    const checked = replica.commitChecked(async (s) => {
      const before = await s.get("alias", "a@x", "");
      await new Promise((r) => setTimeout(r, 20)); // a slow check: the batch arrives meanwhile
      expect(await s.get("alias", "a@x", "")).toEqual(before);
      return [aliasDraft("a@x", "sip:local@x")];
    });
    await new Promise((r) => setTimeout(r, 5));
    const later = (WALL_MS + 60_000) * HLC_UNITS_PER_MS;
    const remote = replica.apply(batchOf(REPLICA_A, 0, 1, [remoteChange(REPLICA_A, 1, later, aliasDraft("a@x", "sip:remote@x"))]), "p2");
    await Promise.all([checked, remote]);
    // The batch waited for the checked commit, then won by its newer stamp.
    expect(order).toEqual(["local", "p2"]);
    expect((await store.get("alias", "a@x", ""))?.value).toEqual({ target: "sip:remote@x" });
  });
});

describe("createReplica: grouped applies", () => {
  const alias = (origin: string, seq: number, key: string) => batchOf(origin, seq - 1, seq, [remoteChange(origin, seq, seq * 10, aliasDraft(key, "sip:t@x"))]);

  it("applies the batches that arrived before the store was free as one group, each caller getting its own outcome", async () => {
    const { replica, store } = setup();
    const group = vi.spyOn(store, "applyRemoteGroup");
    const single = vi.spyOn(store, "applyRemote");
    const heard: [string[], string | null][] = [];
    replica.onApplied((changes, { peer }) => heard.push([changes.map((c) => c.key), peer]));
    const first = replica.apply(alias(REPLICA_A, 1, "a1@x"), "pa");
    // Batches that arrive before the store is free (here: in the same turn) go in together.
    const rest = [replica.apply(alias(REPLICA_A, 2, "a2@x"), "pa"), replica.apply(alias(REPLICA_B, 1, "b1@x"), "pb"), replica.apply(alias(REPLICA_A, 3, "a3@x"), "pa")];
    await first;
    const outcomes = await Promise.all(rest);
    expect(single).toHaveBeenCalledTimes(0);
    expect(group).toHaveBeenCalledTimes(1);
    expect(group.mock.calls[0]![0].map((b) => b.changes[0]!.key)).toEqual(["a1@x", "a2@x", "b1@x", "a3@x"]);
    expect(outcomes.map((o) => o.have)).toEqual([2, 1, 3]);
    expect(heard).toEqual([[["a1@x"], "pa"], [["a2@x"], "pa"], [["b1@x"], "pb"], [["a3@x"], "pa"]]);
  });

  it("applies a batch that arrives alone by itself, and a later one in a new group", async () => {
    const { replica, store } = setup();
    const single = vi.spyOn(store, "applyRemote");
    await replica.apply(alias(REPLICA_A, 1, "a1@x"), "pa");
    await replica.apply(alias(REPLICA_A, 2, "a2@x"), "pa");
    expect(single).toHaveBeenCalledTimes(2);
    expect(await store.versionVector()).toMatchObject({ [REPLICA_A]: 2 });
  });

  it("refuses a batch that breaks the protocol alone; the rest of its group is applied", async () => {
    const { replica, store } = setup();
    const bad = batchOf(REPLICA_B, 0, 1, [remoteChange(REPLICA_B, 5, 50, aliasDraft("bad@x", "sip:t@x"))]);
    const results = await Promise.allSettled([replica.apply(alias(REPLICA_A, 1, "a1@x"), "pa"), replica.apply(bad, "pb"), replica.apply(alias(REPLICA_A, 2, "a2@x"), "pa")]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(InvalidBatchError);
    expect(await store.get("alias", "bad@x", "")).toBeNull();
    expect(await store.versionVector()).toEqual({ [REPLICA_A]: 2 });
  });

  it("rejects every batch of a group whose transaction fails, and takes the next ones", async () => {
    const { replica, store } = setup();
    vi.spyOn(store, "applyRemoteGroup").mockRejectedValueOnce(new Error("disk full"));
    const results = await Promise.allSettled([replica.apply(alias(REPLICA_A, 1, "a1@x"), "pa"), replica.apply(alias(REPLICA_A, 2, "a2@x"), "pa")]);
    expect(results.map((r) => r.status === "rejected" && (r.reason as Error).message)).toEqual(["disk full", "disk full"]);
    expect((await replica.apply(alias(REPLICA_A, 1, "a1@x"), "pa")).have).toBe(1);
  });
});

describe("createReplica: lingering commits", () => {
  it("holds a lingering commit for its linger, then commits it", async () => {
    const { replica, commitLocal } = setup();
    const lingering = replica.commit([aliasDraft("a@x", "sip:t@x")], { lingerMs: 40 });
    await new Promise((r) => setTimeout(r, 10));
    expect(commitLocal).not.toHaveBeenCalled();
    expect((await lingering)[0]?.seq).toBe(1);
    expect(commitLocal).toHaveBeenCalledTimes(1);
  });

  it("gathers lingering commits into one transaction", async () => {
    const { replica, commitLocal } = setup();
    const a = replica.commit([aliasDraft("a@x", "sip:t@x")], { lingerMs: 20 });
    await new Promise((r) => setTimeout(r, 5));
    const b = replica.commit([aliasDraft("b@x", "sip:t@x")], { lingerMs: 20 });
    expect([(await a)[0]?.seq, (await b)[0]?.seq]).toEqual([1, 2]);
    expect(commitLocal).toHaveBeenCalledTimes(1);
  });

  it("commits lingering edits at once when an edit someone waits on arrives", async () => {
    const { replica, commitLocal } = setup();
    const started = performance.now();
    const lingering = replica.commit([aliasDraft("a@x", "sip:t@x")], { lingerMs: 10_000 });
    const now = replica.commit([aliasDraft("b@x", "sip:t@x")]);
    expect([(await lingering)[0]?.seq, (await now)[0]?.seq]).toEqual([1, 2]);
    expect(commitLocal).toHaveBeenCalledTimes(1);
    expect(performance.now() - started).toBeLessThan(5_000);
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

  it("settles every caller and tells the other listeners when one listener throws", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    const errors: unknown[] = [];
    const replica = createReplica({ store, hlc: createHlc({ wallMillis: () => WALL_MS }), log: { error: (o: unknown) => void errors.push(o) } as never });
    replicas.push(replica);
    const after = vi.fn();
    replica.onApplied(() => {
      throw new Error("listener bug");
    });
    replica.onApplied(after);
    const remote = replica.apply(batchOf(REPLICA_A, 0, 1, [remoteChange(REPLICA_A, 1, 5, aliasDraft("r@x", "sip:t@x"))]), "peer-a");
    const local = replica.commit([aliasDraft("l@x", "sip:t@x")]);
    await expect(remote).resolves.toMatchObject({ have: 1 });
    await expect(local).resolves.toHaveLength(1);
    expect(after).toHaveBeenCalledTimes(2);
    expect(errors).toHaveLength(2);
  });

  it("refuses a peer's batch after close, saying so", async () => {
    const { replica } = setup();
    replicas.splice(replicas.indexOf(replica), 1);
    await replica.close();
    await expect(replica.apply(batchOf(REPLICA_A, 0, 1, [remoteChange(REPLICA_A, 1, 5, aliasDraft("r@x", "sip:t@x"))]), "peer-a")).rejects.toThrow("the journal is closed");
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
