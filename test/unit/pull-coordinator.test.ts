/**
 * The pull coordinator (agent/mesh/pull-coordinator.ts) over a real in-memory journal and a fake
 * peer session that answers pulls from fixed runs of changes.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { PullParams, PullResult } from "../../agent/contract/protocol.js";
import type { Change } from "../../agent/contract/records.js";
import { MAX_STAMP_AHEAD_MS, createHlc } from "../../agent/core/hlc.js";
import { createReplica, type Replica } from "../../agent/core/replica.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { createPullCoordinator } from "../../agent/mesh/pull-coordinator.js";
import type { PeerSession } from "../../agent/mesh/peer-session.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";
import { REPLICA_A, aliasDraft, remoteChange } from "../support/fixtures.js";

const replicas: Replica[] = [];
afterEach(async () => {
  for (const r of replicas.splice(0)) await r.close();
});

/** A coordinator over a fresh in-memory journal of n1, pulling from `sessions`. */
function coordinatorOver(sessions: () => PeerSession[]) {
  const replica = createReplica({ store: openSqliteStore({ path: ":memory:", nodeId: "n1" }), hlc: createHlc({ wallMillis: Date.now }), log: silentLogger() });
  replicas.push(replica);
  const coordinator = createPullCoordinator({
    replica, log: silentLogger(), metrics: createMetrics({ defaults: false }), batchSize: 100, relayDelayMs: 0, sessions, readySince: () => 0,
  });
  return { replica, coordinator };
}

/** Origin A's first two changes, as a peer holds them. */
const twoOfA = (): Change[] => [1, 2].map((s) => remoteChange(REPLICA_A, s, 100 + s, aliasDraft(`a${s}@x`, "sip:t@x")));

/** A ready peer session of node `id` that holds `held`. */
function fakePeer(id: string, held: Record<string, Change[]>, answerDelayMs: number) {
  const pulls: PullParams["vv"][] = [];
  const vv = Object.fromEntries(Object.entries(held).map(([o, cs]) => [o, cs.length]));
  const session = {
    role: "client", remote: "fake", peerIsHub: false,
    peerNodeId: () => id, peerReplicaId: () => `${id}~00000000000f`, peerVector: () => vv, isReady: () => true,
    async pull(p: { vv: Record<string, number>; limit: number; skip?: string[] }): Promise<PullResult> {
      pulls.push(p.vv);
      await new Promise((r) => setTimeout(r, answerDelayMs));
      for (const [origin, changes] of Object.entries(held)) {
        if ((p.skip ?? []).includes(origin)) continue;
        const after = p.vv[origin] ?? 0;
        if (after < changes.length) return { batch: { origin, after, upTo: changes.length, changes: changes.slice(after) }, remaining: 0 };
      }
      return { batch: null, remaining: 0 };
    },
  } as unknown as PeerSession;
  return { session, pulls };
}

describe("pull coordinator", () => {
  it("runs a relay catch-up asked for during a resync once the resync is done", async () => {
    // p1 holds nothing; p2 holds two changes of origin A (a node not connected to us).
    const a = twoOfA();
    const p1 = fakePeer("p1", {}, 50);
    const p2 = fakePeer("p2", { [REPLICA_A]: a }, 0);
    const sessions: PeerSession[] = [];
    const { replica, coordinator } = coordinatorOver(() => sessions);
    try {
      const resync = coordinator.resync(p1.session);
      await new Promise((r) => setTimeout(r, 10));
      // While the resync runs, p2 connects and says it holds A: the catch-up has to wait.
      sessions.push(p2.session);
      coordinator.evaluate();
      expect(p2.pulls).toEqual([]);
      await resync.done;
      await expect.poll(async () => (await replica.versionVector())[REPLICA_A] ?? 0, { timeout: 2000 }).toBe(2);
      expect(p2.pulls[0]).toEqual({});
      // The catch-up ran right after: its progress does not hide how the resync ended, for a while.
      expect(coordinator.status()).toMatchObject({ state: "done", full: true, peer: "p1" });
    } finally {
      coordinator.close();
    }
  });
});

describe("the status of a resync followed by a relay catch-up", () => {
  it("shows the resync's end while the catch-up runs, but the catch-up once another resync waits for it", async () => {
    const a = twoOfA();
    const p1 = fakePeer("p1", {}, 0);
    const p2 = fakePeer("p2", { [REPLICA_A]: a }, 300);
    const sessions: PeerSession[] = [p2.session];
    const { coordinator } = coordinatorOver(() => sessions);
    try {
      const first = coordinator.resync(p1.session);
      coordinator.evaluate(); // the catch-up from p2 waits for the resync, then runs (slowly)
      await first.done;
      await expect.poll(() => p2.pulls.length, { timeout: 2000 }).toBeGreaterThan(0);
      expect(coordinator.status()).toMatchObject({ state: "done", full: true, peer: "p1" });
      const second = coordinator.resync(p1.session);
      expect(second.joined).toBe(false);
      // It waits for the catch-up; the resync that ended before is not what is under way.
      expect(coordinator.status()).toMatchObject({ state: "running", full: false, peer: "p2" });
      await second.done;
      expect(coordinator.status()).toMatchObject({ state: "done", full: true, peer: "p1" });
    } finally {
      coordinator.close();
    }
  });
});

describe("a resync asked for while one runs", () => {
  it("joins the one under way instead of pulling everything a second time", async () => {
    const a = twoOfA();
    const p1 = fakePeer("p1", { [REPLICA_A]: a }, 50);
    const p2 = fakePeer("p2", { [REPLICA_A]: a }, 0);
    const { coordinator } = coordinatorOver(() => []);
    try {
      const first = coordinator.resync(p1.session);
      const second = coordinator.resync(p2.session);
      expect(first.joined).toBe(false);
      expect(second.joined).toBe(true);
      expect(coordinator.status()).toMatchObject({ state: "running", full: true, peer: "p1" });
      await second.done;
      expect(coordinator.status()).toMatchObject({ state: "done", full: true, received: 2 });
      // One full pull, from p1; none from p2.
      expect(p2.pulls).toEqual([]);
      // Once it has ended, the next one starts afresh.
      const third = coordinator.resync(p2.session);
      expect(third.joined).toBe(false);
      await third.done;
      expect(p2.pulls).toEqual([{}, { [REPLICA_A]: 2 }]);
    } finally {
      coordinator.close();
    }
  });
});

describe("a pulled change stamped far ahead (the hostile dry run's F12)", () => {
  it("is refused as a pushed one is: nothing of the answer is applied, and the resync says why", async () => {
    const now = Date.now() * 1024;
    const changes = [remoteChange(REPLICA_A, 1, now, aliasDraft("ok@x", "sip:t@x")), remoteChange(REPLICA_A, 2, 2 ** 53 - 4, aliasDraft("far@x", "sip:t@x"))];
    const p = fakePeer("p1", { [REPLICA_A]: changes }, 0);
    const { replica, coordinator } = coordinatorOver(() => [p.session]);
    try {
      await coordinator.resync(p.session).done.catch(() => undefined);
      expect(coordinator.status()).toMatchObject({ state: "failed", error: expect.stringMatching(/^changes\.1\.hlc: .* more than a year ahead/) });
      expect(await replica.versionVector()).toEqual({});
    } finally {
      coordinator.close();
    }
  });
});

describe("the far-ahead check's clock", () => {
  it("is the later of this node's clock and the newest stamp it has seen: a node booted before NTP still takes the cluster's changes", async () => {
    const recent = Date.now() * 1024;
    // This node's clock reads 1970; its journal has seen recent stamps.
    const replica = createReplica({ store: openSqliteStore({ path: ":memory:", nodeId: "n1" }), hlc: createHlc({ wallMillis: () => 0, initial: recent }), log: silentLogger() });
    replicas.push(replica);
    const outcome = await replica.apply({ origin: REPLICA_A, after: 0, upTo: 1, changes: [remoteChange(REPLICA_A, 1, recent + 1, aliasDraft("ok@x", "sip:t@x"))] }, "p1");
    expect(outcome.have).toBe(1);
    // Near 2^53 is refused all the same, and the batch with it is not applied.
    await expect(replica.apply({ origin: REPLICA_A, after: 1, upTo: 2, changes: [remoteChange(REPLICA_A, 2, 2 ** 53 - 4, aliasDraft("far@x", "sip:t@x"))] }, "p1"))
      .rejects.toThrow(/changes\.0\.hlc: .* more than a year ahead of this node's clock and of the newest stamp its journal held at start/);
    expect(await replica.versionVector()).toEqual({ [REPLICA_A]: 1 });
  });

  it("does not follow the stamps it takes: a peer stamping each batch just under a year past its last cannot carry the clock on", async () => {
    const now = Date.now();
    const replica = createReplica({ store: openSqliteStore({ path: ":memory:", nodeId: "n1" }), hlc: createHlc({ wallMillis: () => now, initial: now * 1024 }), log: silentLogger() });
    replicas.push(replica);
    const step = MAX_STAMP_AHEAD_MS - 86_400_000;
    const at = (seq: number) => (now + seq * step) * 1024;
    expect((await replica.apply({ origin: REPLICA_A, after: 0, upTo: 1, changes: [remoteChange(REPLICA_A, 1, at(1), aliasDraft("a1@x", "sip:t@x"))] }, "p1")).have).toBe(1);
    // Found by review: measured from the newest stamp seen, 222 such batches in a row were taken.
    await expect(replica.apply({ origin: REPLICA_A, after: 1, upTo: 2, changes: [remoteChange(REPLICA_A, 2, at(2), aliasDraft("a2@x", "sip:t@x"))] }, "p1"))
      .rejects.toThrow(/changes\.0\.hlc: .* more than a year ahead/);
    expect(await replica.versionVector()).toEqual({ [REPLICA_A]: 1 });
  });
});


describe("peer vectors that move often (a hub hearing from many agents)", () => {
  it("looks at them once per VECTOR_CHECK_MS for all that moved meanwhile, and still pulls what a peer holds", async () => {
    const a = twoOfA();
    const p2 = fakePeer("p2", { [REPLICA_A]: a }, 0);
    const quiet = Array.from({ length: 20 }, (_, i) => fakePeer(`q${i}`, {}, 0).session);
    let looks = 0;
    const sessions = [...quiet, p2.session];
    const { replica, coordinator } = coordinatorOver(() => (looks++, sessions));
    try {
      for (let i = 0; i < 200; i++) coordinator.vectorChanged();
      expect(looks).toBe(0);
      await expect.poll(async () => (await replica.versionVector())[REPLICA_A] ?? 0, { timeout: 2000 }).toBe(2);
      // One look, and the one after the catch-up (its loop checks again): not one per vector.
      expect(looks).toBeLessThanOrEqual(2);
      expect(p2.pulls.length).toBeGreaterThan(0);
    } finally {
      coordinator.close();
    }
  });
});
