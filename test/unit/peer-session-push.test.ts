/**
 * What a peer session does with a push of several batches (agent/mesh/peer-session.ts): a relay's
 * push goes as one frame, a JSON-RPC batch, and the receiver stores it in one journal transaction,
 * answering each batch on its own. Two real sessions over in-memory journals and a transport in
 * memory that records the frames.
 */
import { describe, expect, it } from "vitest";
import type { Replica } from "../../agent/core/replica.js";
import { createReplica } from "../../agent/core/replica.js";
import { createHlc } from "../../agent/core/hlc.js";
import type { RemoteBatch, ReplicaStore } from "../../agent/core/store.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { createPeerSession, type PeerSession, type Transport } from "../../agent/mesh/peer-session.js";
import { serverProof } from "../../agent/mesh/auth.js";
import { createKeyRing } from "../../agent/ops/key-ring.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";
import { REPLICA_A, REPLICA_B, REPLICA_C, aliasDraft, batchOf, remoteChange } from "../support/fixtures.js";
import { memoryPeers } from "../support/memory-peers.js";

const KEY = "cluster-key-0123456789abcdef0123";
const { replica, keep } = memoryPeers();

/** A receiving replica whose journal records each write it is asked for: the batches of each transaction. */
function recordingReplica(nodeId: string): { replica: Replica; transactions: string[][] } {
  const store = openSqliteStore({ path: ":memory:", nodeId });
  const transactions: string[][] = [];
  const name = (b: RemoteBatch) => `${b.origin.slice(0, 5)} (${b.after},${b.upTo}]`;
  const recording: ReplicaStore = Object.assign(Object.create(store) as ReplicaStore, {
    applyRemote: (b: RemoteBatch) => {
      transactions.push([name(b)]);
      return store.applyRemote(b);
    },
    applyRemoteGroup: (bs: readonly RemoteBatch[]) => {
      transactions.push(bs.map(name));
      return store.applyRemoteGroup(bs);
    },
  });
  const r = createReplica({ store: recording, hlc: createHlc({ wallMillis: Date.now }), log: silentLogger() });
  return { replica: r, transactions };
}

function connect(sender: Replica, receiver: Replica, o: { relay: boolean; batchSize?: number; together?: boolean }) {
  /** What the sender sent, and what the receiver answered. */
  const frames: string[] = [];
  const answers: string[] = [];
  let client: PeerSession | null = null;
  let server: PeerSession | null = null;
  // `together`: frames sent in one turn arrive in one turn, as frames that came in one read of a socket.
  const wire = (other: () => PeerSession | null, remote: string, record: string[]): Transport => {
    let due: string[] = [];
    return {
      remote,
      send: (frame) => {
        record.push(frame.toString());
        if (!o.together) return void setImmediate(() => other()?.receive(frame.toString()));
        due.push(frame.toString());
        if (due.length === 1) {
          setImmediate(() => {
            const now = due;
            due = [];
            for (const f of now) other()?.receive(f);
          });
        }
      },
      close: (code, reason) => setImmediate(() => other()?.closed(`${code} ${reason}`)),
    };
  };
  const common = {
    keys: createKeyRing({ own: KEY, accepted: [] }), log: silentLogger(), isAllowed: () => true,
    options: { batchSize: o.batchSize ?? 100, window: 4, requestTimeoutMs: 5000, statusIntervalMs: 60_000, retry: { minMs: 10, maxMs: 20 }, authTimeoutMs: 2000 },
    onPeerVector: () => undefined, onReady: () => undefined, onClosed: () => undefined,
  };
  client = createPeerSession({ ...common, metrics: createMetrics({ defaults: false }), replica: sender, relay: o.relay, role: "client", nodeId: sender.nodeId, expectedPeer: receiver.nodeId, transport: wire(() => server, "n2", frames) });
  server = createPeerSession({ ...common, metrics: createMetrics({ defaults: false }), replica: receiver, role: "server", nodeId: receiver.nodeId, transport: wire(() => client, "hub1", answers) });
  keep(client, server);
  return { frames, answers, client: () => client!, server: () => server! };
}

async function holding(r: Replica, counts: Record<string, number>) {
  for (const [o, n] of Object.entries(counts)) {
    await r.apply(batchOf(o, 0, n, Array.from({ length: n }, (_, i) => remoteChange(o, i + 1, 100 + i, aliasDraft(`${o.slice(0, 4)}${i}@x`, "sip:t@x")))), "x");
  }
}

const GOOD = batchOf(REPLICA_A, 0, 1, [remoteChange(REPLICA_A, 1, 100, aliasDraft("a@x", "sip:t@x"))]);

/** Sends `frame` straight into a ready receiving session, as a peer would; `answerTo(id)` waits for the array answering it. */
async function sendStraight(frame: unknown[]) {
  const { replica: agent, transactions } = recordingReplica("n2");
  const { server, answers } = connect(replica("hub1"), agent, { relay: true });
  await expect.poll(() => server().isReady(), { timeout: 3000 }).toBe(true);
  server().receive(JSON.stringify(frame));
  const find = (id: string) => answers.map((a) => JSON.parse(a) as unknown).find((a) => Array.isArray(a) && a.some((r: { id?: unknown }) => r.id === id));
  const answerTo = async (id: string) => {
    await expect.poll(() => find(id), { timeout: 3000 }).toBeDefined();
    return find(id);
  };
  return { transactions, answerTo };
}

const batchFrames = (frames: string[]) => frames.filter((f) => f.includes('"repl.batch"')).map((f) => JSON.parse(f) as unknown);

describe("batches that arrive together", () => {
  it("are stored in one transaction, in the order they were sent", async () => {
    const sender = replica("n1");
    await sender.store.commitLocal([1, 2, 3].map((i) => aliasDraft(`a${i}@x`, "sip:t@x")), ((t) => () => ++t)(1_000));
    const { replica: agent, transactions } = recordingReplica("n2");
    // An agent's own changes, one batch of one change each, three in flight: three frames in one read.
    connect(sender, agent, { relay: false, batchSize: 1, together: true });
    const own = sender.replicaId;
    await expect.poll(async () => (await agent.versionVector())[own], { timeout: 3000 }).toBe(3);
    const name = own.slice(0, 5);
    // They used to be applied one after another, a transaction (and an fsync) each.
    expect(transactions).toEqual([[`${name} (0,1]`, `${name} (1,2]`, `${name} (2,3]`]]);
  });
});

describe("a relay's push of several origins", () => {
  it("goes as one frame and is stored in one transaction, each batch answered", async () => {
    const hub = replica("hub1");
    await holding(hub, { [REPLICA_A]: 2, [REPLICA_B]: 1, [REPLICA_C]: 3 });
    const { replica: agent, transactions } = recordingReplica("n2");
    const { frames, client } = connect(hub, agent, { relay: true });
    await expect.poll(async () => agent.versionVector(), { timeout: 3000 }).toEqual({ [REPLICA_A]: 2, [REPLICA_B]: 1, [REPLICA_C]: 3 });
    const pushed = batchFrames(frames);
    expect(pushed).toHaveLength(1);
    expect(Array.isArray(pushed[0])).toBe(true);
    expect((pushed[0] as unknown[]).length).toBe(3);
    // One journal transaction for the three, where there were three.
    expect(transactions).toEqual([["alpha (0,2]", "bravo (0,1]", "charl (0,3]"]]);
    // Every batch was answered: the hub knows the agent holds each origin.
    await expect.poll(() => client().peerVector(), { timeout: 3000 }).toMatchObject({ [REPLICA_A]: 2, [REPLICA_B]: 1, [REPLICA_C]: 3 });
  });

  it("answers a batch of the push that fails its check with an error, and stores the others", async () => {
    const { transactions, answerTo } = await sendStraight([
      { jsonrpc: "2.0", method: "repl.batch", id: "x1", params: { origin: REPLICA_B, after: 0, upTo: 1, changes: [{ bogus: true }] } },
      { jsonrpc: "2.0", method: "repl.batch", id: "x2", params: GOOD },
    ]);
    const answer = (await answerTo("x1")) as { id: string; result?: unknown; error?: { code: number } }[];
    expect(answer).toHaveLength(2);
    expect(answer[0]).toMatchObject({ id: "x1", error: { code: -32602 } });
    expect(answer[1]).toMatchObject({ id: "x2", result: { have: 1 } });
    expect(transactions).toEqual([["alpha (0,1]"]]);
  });

  it("serves a JSON-RPC batch that mixes a batch with other requests one request after another", async () => {
    const { transactions, answerTo } = await sendStraight([
      { jsonrpc: "2.0", method: "repl.batch", id: "y1", params: GOOD },
      { jsonrpc: "2.0", method: "repl.pull", id: "y2", params: { vv: {}, limit: 10 } },
    ]);
    const answer = (await answerTo("y1")) as { id: string; result?: { have?: number; batch?: { origin: string } } }[];
    expect(answer.map((r) => r.id)).toEqual(["y1", "y2"]);
    expect(answer[0]!.result).toEqual({ have: 1 });
    // Served in turn: the pull saw the batch stored.
    expect(answer[1]!.result?.batch?.origin).toBe(REPLICA_A);
    expect(transactions).toEqual([["alpha (0,1]"]]);
  });
});

describe("a hub's first push in the same read as the answer to the dialler's hello", () => {
  it("is stored once the answer is taken in, not refused as coming before authentication", async () => {
    const { replica: agent, transactions } = recordingReplica("n2");
    const sent: { id?: number; method?: string; params?: { nonce: string }; result?: unknown; error?: { code: number; message: string } }[] = [];
    const session = createPeerSession({
      keys: createKeyRing({ own: KEY, accepted: [] }), log: silentLogger(), isAllowed: () => true, metrics: createMetrics({ defaults: false }),
      options: { batchSize: 100, window: 4, requestTimeoutMs: 5000, statusIntervalMs: 60_000, retry: { minMs: 10, maxMs: 20 }, authTimeoutMs: 2000 },
      onPeerVector: () => undefined, onReady: () => undefined, onClosed: () => undefined,
      replica: agent, role: "client", nodeId: "n2", expectedPeer: "hub1", peerIsHub: true,
      transport: { remote: "hub1", send: (f) => void sent.push(JSON.parse(f.toString()) as (typeof sent)[number]), close: () => undefined },
    });
    keep(session);
    const serverNonce = "ab".repeat(16);
    session.receive(JSON.stringify({ jsonrpc: "2.0", method: "auth.challenge", params: { protocol: 1, nodeId: "hub1", nonce: serverNonce } }));
    await expect.poll(() => sent.find((m) => m.method === "auth.hello"), { timeout: 2000 }).toBeDefined();
    const hello = sent.find((m) => m.method === "auth.hello")!;
    const mac = serverProof(KEY, { clientId: "n2", serverId: "hub1", clientNonce: hello.params!.nonce, serverNonce });
    const batch = batchOf(REPLICA_A, 0, 1, [remoteChange(REPLICA_A, 1, 100, aliasDraft("a@x", "sip:t@x"))]);
    // Both frames in one turn, as when they come in one read of the socket.
    session.receive(JSON.stringify({ jsonrpc: "2.0", id: hello.id, result: { nodeId: "hub1", replicaId: "hub1~0123456789abcdef", mac, vv: {} } }));
    session.receive(JSON.stringify({ jsonrpc: "2.0", method: "repl.batch", id: "push1", params: batch }));
    // Its resend, in line behind it: answered with the first one's answer, not applied again.
    session.receive(JSON.stringify({ jsonrpc: "2.0", method: "repl.batch", id: "push1-again", params: batch }));
    await expect.poll(() => sent.find((m) => m.id === ("push1" as unknown as number)), { timeout: 2000 }).toBeDefined();
    // Served the moment it came, it was answered -32012 (authenticate first), which the hub takes
    // as a refusal for good: it held that origin back from the agent for 60 s (an integration test
    // of failover caught it).
    expect(sent.find((m) => m.id === ("push1" as unknown as number))).toMatchObject({ result: { have: 1 } });
    expect(session.isReady()).toBe(true);
    expect((await agent.versionVector())[REPLICA_A]).toBe(1);
    await expect.poll(() => sent.find((m) => m.id === ("push1-again" as unknown as number)), { timeout: 2000 }).toMatchObject({ result: { have: 1 } });
    expect(transactions).toEqual([["alpha (0,1]"]]);
    // The pushes after it are queued as they come, together: one transaction for three.
    const next = [2, 3, 4].map((i) => batchOf(REPLICA_A, i - 1, i, [remoteChange(REPLICA_A, i, 100 + i, aliasDraft(`a${i}@x`, "sip:t@x"))]));
    next.forEach((b, i) => session.receive(JSON.stringify({ jsonrpc: "2.0", method: "repl.batch", id: `next${i}`, params: b })));
    await expect.poll(async () => (await agent.versionVector())[REPLICA_A], { timeout: 2000 }).toBe(4);
    expect(transactions).toEqual([["alpha (0,1]"], ["alpha (1,2]", "alpha (2,3]", "alpha (3,4]"]]);
  });
});
