/**
 * A batch resent after its request timed out, while the first is still queued or being applied at
 * the receiver (a slow store: a hub's PostgreSQL stalling under a lock), gets the first one's
 * answer instead of being applied once more behind it (batches-in-flight.ts). Two real sessions
 * (agent/mesh/peer-session.ts) over in-memory journals and a transport in memory.
 */
import { describe, expect, it } from "vitest";
import type { RemoteBatch } from "../../agent/core/store.js";
import type { Replica } from "../../agent/core/replica.js";
import { createPeerSession, type PeerSession, type Transport } from "../../agent/mesh/peer-session.js";
import { createKeyRing } from "../../agent/ops/key-ring.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";
import { aliasDraft, counterStamp } from "../support/fixtures.js";
import { memoryPeers } from "../support/memory-peers.js";

const KEY = "cluster-key-0123456789abcdef0123";
const { replica, keep } = memoryPeers();

describe("a batch resent while the first is still being applied", () => {
  it("is answered with the first one's answer, not applied again behind it", async () => {
    const sender = replica("n1");
    await sender.store.commitLocal([aliasDraft("a@x", "sip:t@x"), aliasDraft("b@x", "sip:t@x")], counterStamp());
    const received = replica("n2");
    const applies: string[] = [];
    let requests = 0;
    // The receiver's store takes 1 s per batch: the sender's 100 ms timeout fires several times.
    const slow: Replica = {
      ...received,
      apply: async (batch: RemoteBatch, from: string) => {
        applies.push(`${batch.origin} ${batch.after} ${batch.upTo}`);
        await new Promise((r) => setTimeout(r, 1000));
        return received.apply(batch, from);
      },
    };
    let client: PeerSession | null = null;
    let server: PeerSession | null = null;
    const wire = (other: () => PeerSession | null, remote: string, count = false): Transport => ({
      remote,
      send: (frame) => {
        if (count && frame.toString().includes('"method":"repl.batch"')) requests++;
        setImmediate(() => other()?.receive(frame.toString()));
      },
      close: (code, reason) => setImmediate(() => other()?.closed(`${code} ${reason}`)),
    });
    const common = {
      keys: createKeyRing({ own: KEY, accepted: [] }), metrics: createMetrics({ defaults: false }), log: silentLogger(), isAllowed: () => true,
      options: { batchSize: 100, window: 1, requestTimeoutMs: 100, statusIntervalMs: 60_000, retry: { minMs: 10, maxMs: 20 }, authTimeoutMs: 2000 },
      onPeerVector: () => undefined, onReady: () => undefined, onClosed: () => undefined,
    };
    client = createPeerSession({ ...common, replica: sender, role: "client", nodeId: "n1", expectedPeer: "n2", transport: wire(() => server, "n2", true) });
    server = createPeerSession({ ...common, metrics: createMetrics({ defaults: false }), replica: slow, role: "server", nodeId: "n2", transport: wire(() => client, "n1") });
    keep(client, server);

    const own = sender.replicaId;
    // The sender hears its batch taken: about 1 s (2 s if one resend was on its way as the first
    // answer went out: it finds nothing in flight and is applied again, idempotent). On the old
    // code every resend (about one per 120 ms) queued another 1 s apply behind the first.
    await expect.poll(() => client!.peerVector()[own], { timeout: 5000 }).toBe(2);
    expect(requests).toBeGreaterThanOrEqual(4); // the sender did resend (its request timed out)
    expect(applies.length).toBeLessThanOrEqual(2);
    expect(new Set(applies)).toEqual(new Set([`${own} 0 2`]));
  });
});
