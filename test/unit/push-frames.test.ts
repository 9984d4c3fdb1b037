/**
 * A relay's push carries several origins' batches (agent/mesh/push-pump.ts): as many as fit in
 * `batchSize` changes, `maxMessageBytes` and MAX_PUSH_BATCHES; a batch that would not fit whole goes
 * first in the next push, and each batch of a push is acknowledged, retried and refused on its own.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { BatchParams, BatchResult } from "../../agent/contract/protocol.js";
import { ErrorCode, RpcError } from "../../agent/contract/errors.js";
import { createHlc } from "../../agent/core/hlc.js";
import { createReplica, type Replica } from "../../agent/core/replica.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { MAX_PUSH_BATCHES, createPushPump, type PushPump, type PushPumpDeps } from "../../agent/mesh/push-pump.js";
import { arrayFrame, batchBytes, requestFrame } from "../../agent/mesh/request-frame.js";
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

const PEER = "delta~00000000000d";
const origin = (i: number) => `o${String(i).padStart(3, "0")}~${String(i).padStart(12, "0")}`;

async function relayHolding(counts: Record<string, number>, target = "sip:t@x") {
  const replica = createReplica({ store: openSqliteStore({ path: ":memory:", nodeId: "hub1" }), hlc: createHlc({ wallMillis: () => 1_800_000_000_000 }), log: silentLogger() });
  for (const [o, n] of Object.entries(counts)) {
    const changes = Array.from({ length: n }, (_, i) => remoteChange(o, i + 1, 100 + i, aliasDraft(`${o.slice(0, 4)}-${i}@x`, target)));
    await replica.apply(batchOf(o, 0, n, changes), "agent");
  }
  return replica;
}

/** A relay pump whose pushes are recorded (each a list of batches); `answer` decides each batch's answer. */
function relayPump(
  replica: Replica,
  options: Partial<PushPumpDeps["options"]>,
  answer: (b: BatchParams, attempt: number) => Promise<BatchResult> = async (b) => ({ have: b.upTo }),
  o: { throwOnFirstPush?: boolean } = {},
) {
  const pushes: BatchParams[][] = [];
  const peerVector: Record<string, number> = {};
  let throwing = o.throwOnFirstPush ?? false;
  const refused: string[] = [];
  const attempts = new Map<string, number>();
  const reply = (b: BatchParams) => {
    const key = `${b.origin} ${b.after}`;
    attempts.set(key, (attempts.get(key) ?? 0) + 1);
    return answer(b, attempts.get(key)!);
  };
  const metrics = createMetrics({ defaults: false });
  const pump = createPushPump({
    replica, peerId: "peer", relay: true, peerReplica: PEER, peerVector,
    send: (b) => {
      pushes.push([b]);
      return reply(b);
    },
    sendPush: (batches) => {
      pushes.push([...batches]);
      if (throwing) {
        throwing = false;
        throw new Error("the socket failed as it was written to");
      }
      return batches.map(reply);
    },
    isOpen: () => true, signal: new AbortController().signal, onRejected: (reason, b) => refused.push(`${b.origin} ${reason}`),
    options: { batchSize: 1000, window: 1, retry: { minMs: 1, maxMs: 2 }, ...options },
    log: silentLogger(), metrics, nowMs: Date.now,
  });
  open.push({ replica, pump });
  return { pump, pushes, refused, metrics, peerVector };
}

const settle = () => new Promise((r) => setTimeout(r, 50));
const shape = (pushes: BatchParams[][]) => pushes.map((p) => p.map((b) => `${b.origin.slice(0, 5)} (${b.after},${b.upTo}]`));

describe("a relay's push carries several origins", () => {
  it("sends every origin's changes in one push, each as its own whole batch", async () => {
    const replica = await relayHolding({ [REPLICA_A]: 3, [REPLICA_B]: 2, [REPLICA_C]: 2 });
    const { pump, pushes, metrics } = relayPump(replica, {});
    pump.wake();
    await settle();
    // One push where the pump used to send three (one origin each).
    expect(shape(pushes)).toEqual([["alpha (0,3]", "bravo (0,2]", "charl (0,2]"]]);
    expect(await metrics.registry.getSingleMetricAsString("locmesh_pushes_sent_total")).toContain('locmesh_pushes_sent_total{peer="peer"} 1');
  });

  it("fills a push up to batchSize changes; an origin's batch that would not fit whole opens the next push", async () => {
    const replica = await relayHolding({ [REPLICA_A]: 3, [REPLICA_B]: 2, [REPLICA_C]: 2 });
    const { pump, pushes } = relayPump(replica, { batchSize: 4 });
    pump.wake();
    await settle();
    // A's 3, then B's 2 would make 5: B waits and goes first next, with C (4 in all).
    expect(shape(pushes)).toEqual([["alpha (0,3]"], ["bravo (0,2]", "charl (0,2]"]]);
  });

  it("keeps a push within maxMessageBytes, measured as it goes on the wire", async () => {
    const long = `sip:${"x".repeat(400)}@example.com`;
    const replica = await relayHolding({ [REPLICA_A]: 2, [REPLICA_B]: 2, [REPLICA_C]: 2 }, long);
    const probe = await relayHolding({ [REPLICA_A]: 2 }, long);
    const one = batchBytes({ origin: REPLICA_A, after: 0, upTo: 2, changes: await probe.store.readRange(REPLICA_A, 0, 2, 10) });
    await probe.close();
    // Room for two such batches, not three.
    const maxMessageBytes = 2 + 2 * (one + 1) + 10;
    const { pump, pushes } = relayPump(replica, { maxMessageBytes });
    pump.wake();
    await settle();
    expect(shape(pushes)).toEqual([["alpha (0,2]", "bravo (0,2]"], ["charl (0,2]"]]);
    let id = 0;
    for (const p of pushes) {
      const frame = arrayFrame(p.map((b) => requestFrame({ jsonrpc: "2.0", method: "repl.batch", params: b, id: ++id })));
      expect(frame.length).toBeLessThanOrEqual(maxMessageBytes);
      expect(JSON.parse(frame.toString())).toHaveLength(p.length);
    }
  });

  it(`carries at most ${MAX_PUSH_BATCHES} batches, what a receiver takes in one JSON-RPC batch`, async () => {
    const counts = Object.fromEntries(Array.from({ length: MAX_PUSH_BATCHES + 20 }, (_, i) => [origin(i), 1]));
    const replica = await relayHolding(counts);
    const { pump, pushes } = relayPump(replica, {});
    pump.wake();
    await settle();
    expect(pushes.map((p) => p.length)).toEqual([MAX_PUSH_BATCHES, 20]);
    expect(new Set(pushes.flat().map((b) => b.origin)).size).toBe(MAX_PUSH_BATCHES + 20);
  });

  it("resends only the batch of a push that failed for a while; the others are taken at once", async () => {
    const replica = await relayHolding({ [REPLICA_A]: 1, [REPLICA_B]: 1, [REPLICA_C]: 1 });
    const { pump, pushes } = relayPump(replica, {}, async (b, attempt) => {
      if (b.origin === REPLICA_B && attempt === 1) throw new RpcError(ErrorCode.TemporaryFailure, "temporary failure, retry later: journal busy");
      return { have: b.upTo };
    });
    pump.wake();
    await settle();
    expect(shape(pushes)).toEqual([["alpha (0,1]", "bravo (0,1]", "charl (0,1]"], ["bravo (0,1]"]]);
  });

  it("sends what it read before a read that failed, and every origin once the reads work again", async () => {
    const replica = await relayHolding({ [REPLICA_A]: 2, [REPLICA_B]: 2, [REPLICA_C]: 2 });
    let failures = 1;
    const store = Object.create(replica.store) as typeof replica.store;
    store.readRange = (origin, ...rest) => {
      if (origin === REPLICA_C && failures-- > 0) return Promise.reject(new Error("PostgreSQL busy"));
      return replica.store.readRange(origin, ...rest);
    };
    const { pump, pushes, peerVector } = relayPump({ ...replica, store }, {});
    pump.wake();
    await settle();
    // A and B went as read; C after the retry. (The pump used to mark A and B as sent, drop the
    // push, and never send them: the peer's vector stayed without them.)
    expect(shape(pushes)).toEqual([["alpha (0,2]", "bravo (0,2]"], ["charl (0,2]"]]);
    expect(peerVector).toEqual({ [REPLICA_A]: 2, [REPLICA_B]: 2, [REPLICA_C]: 2 });
  });

  it("retries each batch of a push the transport failed to take, and frees its place in the window", async () => {
    const replica = await relayHolding({ [REPLICA_A]: 1, [REPLICA_B]: 1 });
    const { pump, pushes, peerVector } = relayPump(replica, {}, undefined, { throwOnFirstPush: true });
    pump.wake();
    await settle();
    // The push that failed, then each batch again on its own (in either order: the back-off is randomized).
    const [failed, ...resent] = shape(pushes);
    expect(failed).toEqual(["alpha (0,1]", "bravo (0,1]"]);
    expect(resent.map((p) => p.join()).sort()).toEqual(["alpha (0,1]", "bravo (0,1]"]);
    expect(peerVector).toEqual({ [REPLICA_A]: 1, [REPLICA_B]: 1 });
  });

  it("holds back only the origin whose batch the peer refused", async () => {
    const replica = await relayHolding({ [REPLICA_A]: 1, [REPLICA_B]: 1, [REPLICA_C]: 1 });
    const { pump, pushes, refused } = relayPump(replica, {}, async (b) => {
      if (b.origin === REPLICA_B) throw new RpcError(ErrorCode.InvalidParams, "no");
      return { have: b.upTo };
    });
    pump.wake();
    await settle();
    await replica.apply(batchOf(REPLICA_A, 1, 2, [remoteChange(REPLICA_A, 2, 300, aliasDraft("a2@x", "sip:t@x"))]), "agent");
    await replica.apply(batchOf(REPLICA_B, 1, 2, [remoteChange(REPLICA_B, 2, 300, aliasDraft("b2@x", "sip:t@x"))]), "agent");
    pump.wake();
    await settle();
    expect(refused).toEqual([`${REPLICA_B} no`]);
    expect(shape(pushes)).toEqual([["alpha (0,1]", "bravo (0,1]", "charl (0,1]"], ["alpha (1,2]"]]);
  });
});

describe("a relay's origins as they come", () => {
  it("takes an origin that appears after the pump has pushed the others, in turn with them", async () => {
    const replica = await relayHolding({ [REPLICA_A]: 2, [REPLICA_B]: 1 });
    const { pump, pushes } = relayPump(replica, {});
    pump.wake();
    await settle();
    expect(shape(pushes)).toEqual([[`${REPLICA_A.slice(0, 5)} (0,2]`, `${REPLICA_B.slice(0, 5)} (0,1]`]]);
    // A third origin (the sorted list the pump kept must take it), and more of the first.
    await replica.apply(batchOf(REPLICA_C, 0, 1, [remoteChange(REPLICA_C, 1, 300, aliasDraft("c-0@x", "sip:t@x"))]), "agent");
    await replica.apply(batchOf(REPLICA_A, 2, 3, [remoteChange(REPLICA_A, 3, 301, aliasDraft("a-2@x", "sip:t@x"))]), "agent");
    pump.wake();
    await settle();
    expect(shape(pushes.slice(1)).flat().sort()).toEqual([`${REPLICA_A.slice(0, 5)} (2,3]`, `${REPLICA_C.slice(0, 5)} (0,1]`]);
  });
});

describe("a relay's linger after an acknowledgement", () => {
  it("counts what waits from what the peer holds, so changes it got elsewhere do not send the next push at once", async () => {
    const replica = await relayHolding({ [REPLICA_A]: 15 });
    let first = true;
    const { pump, pushes } = relayPump(replica, { batchSize: 4, relayLingerMs: 300 }, async (b) => {
      if (!first) return { have: b.upTo };
      first = false;
      // The peer got all of A elsewhere meanwhile (a resync), and B has one new change.
      await replica.apply(batchOf(REPLICA_B, 0, 1, [remoteChange(REPLICA_B, 1, 500, aliasDraft("b-0@x", "sip:t@x"))]), "agent");
      return { have: 15 };
    });
    pump.wake();
    await new Promise((r) => setTimeout(r, 100));
    // A's first batch went; nothing of A waits (the peer holds it all), so B's change lingers.
    expect(shape(pushes)).toEqual([[`${REPLICA_A.slice(0, 5)} (0,4]`]]);
    await new Promise((r) => setTimeout(r, 400));
    expect(shape(pushes)).toEqual([[`${REPLICA_A.slice(0, 5)} (0,4]`], [`${REPLICA_B.slice(0, 5)} (0,1]`]]);
  });
});
