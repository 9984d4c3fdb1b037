import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { BatchParams } from "../../agent/contract/protocol.js";
import { createHlc } from "../../agent/core/hlc.js";
import { TransientError } from "../../agent/core/transient.js";
import { createReplica, type Replica } from "../../agent/core/replica.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { ErrorCode, RpcError } from "../../agent/contract/errors.js";
import { REFUSED_RETRY_MS, createPushPump, type PushPump } from "../../agent/mesh/push-pump.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";
import { REPLICA_A, REPLICA_B, REPLICA_C, aliasDraft, batchOf, remoteChange } from "../support/fixtures.js";

const open: { replica: Replica; pump: PushPump }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) {
    o.pump.close();
    await o.replica.close();
  }
});

async function relayHolding(counts: Record<string, number>) {
  const replica = createReplica({ store: openSqliteStore({ path: ":memory:", nodeId: "hub1" }), hlc: createHlc({ wallMillis: () => 1_800_000_000_000 }), log: silentLogger() });
  for (const [origin, n] of Object.entries(counts)) {
    const changes = Array.from({ length: n }, (_, i) => remoteChange(origin, i + 1, 100 + i, aliasDraft(`${origin}-${i}@x`, "sip:t@x")));
    await replica.apply(batchOf(origin, 0, n, changes), "agent");
  }
  return replica;
}

function pumpTo(replica: Replica, peerReplica: string, peerVector: Record<string, number>) {
  const sent: BatchParams[] = [];
  const pump = createPushPump({
    replica, peerId: "peer", relay: true, peerReplica, peerVector,
    send: async (b) => {
      sent.push(b);
      return { have: b.upTo };
    },
    isOpen: () => true, signal: new AbortController().signal, onRejected: () => undefined,
    options: { batchSize: 2, window: 4, retry: { minMs: 1, maxMs: 2 } },
    log: silentLogger(), metrics: createMetrics({ defaults: false }), nowMs: Date.now,
  });
  open.push({ replica, pump });
  return { pump, sent };
}

const settle = () => new Promise((r) => setTimeout(r, 30));

describe("push pump in relay (hub) mode", () => {
  it("sends every origin from where the peer stands, never the peer's own changes back", async () => {
    const replica = await relayHolding({ [REPLICA_A]: 3, [REPLICA_B]: 2, [REPLICA_C]: 2 });
    const peerVector = { [REPLICA_A]: 1 };
    const { pump, sent } = pumpTo(replica, REPLICA_C, peerVector);
    pump.wake();
    await settle();
    const ranges = sent.map((b) => `${b.origin.slice(0, 5)} (${b.after},${b.upTo}] ${b.changes.map((c) => c.seq).join(",")}`).sort();
    expect(ranges).toEqual(["alpha (1,3] 2,3", "bravo (0,2] 1,2"]);
    expect(peerVector).toEqual({ [REPLICA_A]: 3, [REPLICA_B]: 2 });
  });

  it("forwards what it stores later, and skips what the peer got elsewhere", async () => {
    const replica = await relayHolding({ [REPLICA_A]: 1 });
    const peerVector: Record<string, number> = {};
    const { pump, sent } = pumpTo(replica, REPLICA_C, peerVector);
    pump.wake();
    await settle();
    peerVector[REPLICA_B] = 2; // the peer reports B up to 2 (it got it from another hub)
    await replica.apply(batchOf(REPLICA_B, 0, 3, [1, 2, 3].map((s) => remoteChange(REPLICA_B, s, 200 + s, aliasDraft(`b${s}@x`, "sip:t@x")))), "agent");
    await settle();
    expect(sent.map((b) => [b.origin, b.after, b.upTo])).toEqual([[REPLICA_A, 0, 1], [REPLICA_B, 2, 3]]);
  });
});

describe("push pump delivery errors", () => {
  it("reports why a batch is being retried, and clears it once one is acknowledged", async () => {
    const replica = await relayHolding({ [REPLICA_A]: 1 });
    const reported: (string | null)[] = [];
    let refusals = 2;
    let acked = false;
    const pump = createPushPump({
      replica, peerId: "hub1", relay: true, peerReplica: REPLICA_C, peerVector: {},
      send: async (b) => {
        if (refusals-- > 0) throw new TransientError("the hub's PostgreSQL is unreachable");
        acked = true;
        return { have: b.upTo };
      },
      isOpen: () => true, signal: new AbortController().signal, onRejected: () => undefined,
      onDeliveryError: (e) => void reported.push(e),
      options: { batchSize: 2, window: 4, retry: { minMs: 1, maxMs: 2 } },
      log: silentLogger(), metrics: createMetrics({ defaults: false }), nowMs: Date.now,
    });
    open.push({ replica, pump });
    pump.wake();
    for (let i = 0; i < 200 && !acked; i++) await new Promise((r) => setTimeout(r, 5));
    await drain();
    const refused = "batch not acknowledged, retrying: the hub's PostgreSQL is unreachable";
    expect(reported).toEqual([refused, refused, null]);
  });
});

/**
 * Lets every callback that is due run (the journal's and replica's work is promises and
 * setImmediate, never a timer) without moving a fake clock.
 */
async function drain(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

describe("push pump with relayLingerMs", () => {
  const LINGER = 60;
  const change = (seq: number) => remoteChange(REPLICA_A, seq, 100 + seq, aliasDraft(`l${seq}@x`, "sip:t@x"));
  // The linger is a timer: a fake clock says exactly when it may fire, however busy the machine.
  beforeEach(() => void vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] }));
  afterEach(() => void vi.useRealTimers());

  it("holds a partial batch for its linger even when an acknowledgement comes, and sends a full one at once", async () => {
    const replica = await relayHolding({ [REPLICA_A]: 1 });
    const sent: BatchParams[] = [];
    const acks: (() => void)[] = [];
    const pump = createPushPump({
      replica, peerId: "peer", relay: true, peerReplica: REPLICA_C, peerVector: {},
      send: (b) => {
        sent.push(b);
        return new Promise((resolve) => acks.push(() => resolve({ have: b.upTo })));
      },
      isOpen: () => true, signal: new AbortController().signal, onRejected: () => undefined,
      options: { batchSize: 2, window: 4, retry: { minMs: 1, maxMs: 2 }, relayLingerMs: LINGER },
      log: silentLogger(), metrics: createMetrics({ defaults: false }), nowMs: Date.now,
    });
    open.push({ replica, pump });

    pump.wake();
    await drain();
    expect(sent.map((b) => b.upTo)).toEqual([1]);

    // One more change, then the first batch's ack: one change waits, so it lingers, for exactly
    // the linger from its arrival.
    await replica.apply(batchOf(REPLICA_A, 1, 2, [change(2)]), "agent");
    acks.shift()!();
    await drain();
    expect(sent.map((b) => b.upTo)).toEqual([1]);
    await vi.advanceTimersByTimeAsync(LINGER - 1);
    await drain();
    expect(sent.map((b) => b.upTo)).toEqual([1]);
    await vi.advanceTimersByTimeAsync(1);
    await drain();
    expect(sent.map((b) => b.upTo)).toEqual([1, 2]);

    // Two more (a full batch) while the second is unacknowledged: its ack sends them at once,
    // with no time passing at all.
    await replica.apply(batchOf(REPLICA_A, 2, 4, [change(3), change(4)]), "agent");
    acks.shift()!();
    await drain();
    expect(sent.map((b) => b.upTo)).toEqual([1, 2, 4]);
    acks.shift()!();
  });
});

describe("push pump under sustained load", () => {
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it("starts again from the peer's position after an ack shows a gap, without waiting for the load to stop", async () => {
    // An agent's pump to a hub: the third batch fails once (a PostgreSQL connection lost), the
    // batches pipelined behind it arrive first and cannot move the hub's vector.
    const replica = createReplica({ store: openSqliteStore({ path: ":memory:", nodeId: "x1" }), hlc: createHlc({ wallMillis: Date.now }), log: silentLogger() });
    const receiver = openSqliteStore({ path: ":memory:", nodeId: "hub1" });
    const BATCH = 100;
    let sends = 0;
    /** The end of the batch that failed once. */
    let failedUpTo: number | null = null;
    const pump = createPushPump({
      replica, peerId: "hub", relay: false, peerReplica: "hub1~000000000001", peerVector: {},
      send: async (b) => {
        await wait(3);
        if (++sends === 3) {
          failedUpTo = b.upTo;
          throw new TransientError("PostgreSQL connection lost");
        }
        return { have: (await receiver.applyRemote(b)).have };
      },
      isOpen: () => true, signal: new AbortController().signal, onRejected: () => undefined,
      options: { batchSize: BATCH, window: 4, retry: { minMs: 20, maxMs: 40 } },
      log: silentLogger(), metrics: createMetrics({ defaults: false }), nowMs: Date.now,
    });
    open.push({ replica, pump });
    const self = replica.replicaId;
    const theirs = async () => (await receiver.versionVector())[self] ?? 0;
    // Commits go on until the hub holds well past the failed batch. Counted in commits, not in
    // wall time: a slow machine slows both sides alike. This pump gets there in 400-600 commits;
    // with the pump before the fix the hub was still at the failed batch after 5000.
    const CAP = 5000;
    let i = 0;
    let caughtUp = false;
    while (!caughtUp && i < CAP) {
      await replica.commit([aliasDraft(`k${i++ % 50}@x`, "sip:t@x")]);
      if (i % 20 === 0) {
        await wait(0);
        caughtUp = failedUpTo !== null && (await theirs()) > failedUpTo + 2 * BATCH;
      }
    }
    expect(failedUpTo, "the third batch was sent, and failed once").not.toBeNull();
    // Still under load when it got there: the commits had not stopped.
    expect(caughtUp, `hub at ${await theirs()} after ${i} commits; the failed batch ended at ${failedUpTo}`).toBe(true);
    const mine = (await replica.versionVector())[self]!;
    await vi.waitFor(async () => expect(await theirs()).toBe(mine), { timeout: 5000, interval: 20 });
    await receiver.close();
  });

  it("gives a quiet origin its turn while busy ones fill the window", async () => {
    const replica = await relayHolding({});
    const sentBy = new Map<string, number>();
    /** Origins in the order their batches went out. */
    const order: string[] = [];
    const pump = createPushPump({
      replica, peerId: "peer", relay: true, peerReplica: "delta~00000000000d", peerVector: {},
      send: (b) => {
        sentBy.set(b.origin, (sentBy.get(b.origin) ?? 0) + 1);
        order.push(b.origin);
        return new Promise((resolve) => setTimeout(() => resolve({ have: b.upTo }), 3));
      },
      isOpen: () => true, signal: new AbortController().signal, onRejected: () => undefined,
      options: { batchSize: 1000, window: 2, retry: { minMs: 1, maxMs: 2 } },
      log: silentLogger(), metrics: createMetrics({ defaults: false }), nowMs: Date.now,
    });
    open.push({ replica, pump });
    const seq: Record<string, number> = { [REPLICA_A]: 0, [REPLICA_B]: 0, [REPLICA_C]: 0 };
    let hlc = 100;
    const add = async (origin: string) => {
      const s = ++seq[origin]!;
      await replica.apply(batchOf(origin, s - 1, s, [remoteChange(origin, s, ++hlc, aliasDraft(`${origin.slice(0, 1)}${s}@x`, "sip:t@x"))]), "agent");
    };
    // alpha and bravo (first in order) have something new every round trip; charlie once, when
    // they are busy. Counted in batches sent, not in wall time, so a slow machine changes nothing.
    const sends = (o: string) => sentBy.get(o) ?? 0;
    let charlieAdded = false;
    for (let round = 0; sends(REPLICA_A) < 30 && round < 5000; round++) {
      await add(REPLICA_A);
      await add(REPLICA_B);
      if (!charlieAdded && sends(REPLICA_A) >= 5) {
        charlieAdded = true;
        await add(REPLICA_C);
      }
      await wait(1);
    }
    expect(sends(REPLICA_A)).toBeGreaterThanOrEqual(30);
    expect(sends(REPLICA_C)).toBe(1);
    // Its turn came while the busy origins still filled the window, not once the load ended.
    expect(order.lastIndexOf(REPLICA_A)).toBeGreaterThan(order.indexOf(REPLICA_C));
  });
});

describe("push pump after a failed read", () => {
  it("tries again by itself, with no new commit or ack to wake it", async () => {
    const replica = await relayHolding({ [REPLICA_A]: 2 });
    const readRange = replica.store.readRange.bind(replica.store);
    let failures = 1;
    replica.store.readRange = (...args) => (failures-- > 0 ? Promise.reject(new Error("database is locked")) : readRange(...args));
    const { pump, sent } = pumpTo(replica, REPLICA_C, {});
    pump.wake();
    await settle();
    expect(sent.map((b) => [b.origin, b.after, b.upTo])).toEqual([[REPLICA_A, 0, 2]]);
  });
});

describe("push pump when the peer refuses a batch for good", () => {
  beforeEach(() => void vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] }));
  afterEach(() => void vi.useRealTimers());

  it("holds back that origin only, goes on with the others, and tries it again a minute later", async () => {
    const replica = await relayHolding({ [REPLICA_A]: 2, [REPLICA_B]: 2 });
    const peerVector: Record<string, number> = {};
    const sent: string[] = [];
    const refused: string[] = [];
    const deliveryErrors: (string | null)[] = [];
    const metrics = createMetrics({ defaults: false });
    let refuseA = true;
    const pump = createPushPump({
      replica, peerId: "agent3", relay: true, peerReplica: REPLICA_C, peerVector,
      send: async (b) => {
        sent.push(`${b.origin} (${b.after},${b.upTo}]`);
        if (b.origin === REPLICA_A && refuseA) throw new RpcError(ErrorCode.InvalidParams, "invalid params: changes.0.key: a value this agent's version refuses");
        return { have: b.upTo };
      },
      isOpen: () => true, signal: new AbortController().signal,
      onRejected: (reason, b) => void refused.push(`${b.origin}: ${reason}`),
      onDeliveryError: (e) => void deliveryErrors.push(e),
      options: { batchSize: 2, window: 4, retry: { minMs: 1, maxMs: 2 } },
      log: silentLogger(), metrics, nowMs: Date.now,
    });
    open.push({ replica, pump });
    pump.wake();
    await vi.advanceTimersByTimeAsync(10);
    expect(refused).toEqual([`${REPLICA_A}: invalid params: changes.0.key: a value this agent's version refuses`]);
    expect(peerVector).toEqual({ [REPLICA_B]: 2 }); // B went on
    // A refusal is not a retry: no "retrying" error, no retry counted (p-retry asks onFailedAttempt first).
    expect(deliveryErrors.filter((e) => e?.includes("retrying"))).toEqual([]);
    expect((await metrics.peerRetries.get()).values.reduce((n, v) => n + v.value, 0)).toBe(0);

    // More of B keeps flowing; A is not sent again meanwhile, however often the pump wakes.
    await replica.apply(batchOf(REPLICA_B, 2, 3, [remoteChange(REPLICA_B, 3, 300, aliasDraft("b3@x", "sip:t@x"))]), "agent");
    await vi.advanceTimersByTimeAsync(REFUSED_RETRY_MS - 1000);
    expect(peerVector[REPLICA_B]).toBe(3);
    expect(sent.filter((s) => s.startsWith(REPLICA_A))).toHaveLength(1);

    // A minute on, A is tried again from what the peer has, and taken this time.
    refuseA = false;
    await vi.advanceTimersByTimeAsync(2000);
    expect(sent.filter((s) => s.startsWith(REPLICA_A))).toEqual([`${REPLICA_A} (0,2]`, `${REPLICA_A} (0,2]`]);
    expect(peerVector).toEqual({ [REPLICA_A]: 2, [REPLICA_B]: 3 });
  });

  it("keeps the refusal reported while its origin is held back: not cleared by the gap acknowledgements of that origin's later batches, nor by other origins' acknowledgements", async () => {
    const replica = await relayHolding({ [REPLICA_A]: 4, [REPLICA_B]: 4 });
    const peerVector: Record<string, number> = {};
    const acknowledged: string[] = [];
    const errors: (string | null)[] = [];
    const pump = createPushPump({
      replica, peerId: "agent3", relay: true, peerReplica: REPLICA_C, peerVector,
      send: async (b) => {
        if (b.origin === REPLICA_A && b.after === 0) throw new RpcError(ErrorCode.InvalidParams, "invalid params: changes.0.key: refused");
        // The peer stores A's later batches beyond the gap, without moving its vector.
        return { have: b.origin === REPLICA_A ? (peerVector[REPLICA_A] ?? 0) : b.upTo };
      },
      isOpen: () => true, signal: new AbortController().signal,
      onRejected: () => void errors.push("refused"),
      onAcknowledged: (origin) => void acknowledged.push(origin),
      onDeliveryError: (e) => void errors.push(e),
      options: { batchSize: 1, window: 4, retry: { minMs: 1, maxMs: 2 } },
      log: silentLogger(), metrics: createMetrics({ defaults: false }), nowMs: Date.now,
    });
    open.push({ replica, pump });
    pump.wake();
    await vi.advanceTimersByTimeAsync(100);
    expect(peerVector[REPLICA_B]).toBe(4); // B went on
    expect(acknowledged.filter((o) => o === REPLICA_A)).toEqual([]); // A's gap acks do not count as taken
    expect(errors.slice(errors.indexOf("refused"))).not.toContain(null); // nothing cleared the refusal since
  });
});
