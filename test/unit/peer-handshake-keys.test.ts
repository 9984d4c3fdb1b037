/**
 * The peer handshake while a cluster key is rotated: two real sessions (agent/mesh/peer-session.ts)
 * over in-memory journals and a transport in memory, each node with its own key set. A node
 * proves itself with its own key; the other takes a proof made with any key it accepts and answers
 * with the same key, so nodes holding different own keys still authenticate each other as long
 * as each accepts the other's. A proof made with a key the node does not accept is refused.
 */
import { createHmac } from "node:crypto";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { createHlc } from "../../agent/core/hlc.js";
import { createReplica, type Replica } from "../../agent/core/replica.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { clientProof, keyOfClientProof, newNonce, proofMatches, serverProof, type HandshakeIds } from "../../agent/mesh/auth.js";
import { createPeerKeyNotes, createPeerRefusalLog } from "../../agent/mesh/peer-keys.js";
import { createPeerSession, type PeerSession, type SessionDeps, type Transport } from "../../agent/mesh/peer-session.js";
import { createKeyRing, keyId, type KeyRing } from "../../agent/ops/key-ring.js";
import { silentLogger, type Logger } from "../../agent/ops/logger.js";
import { createMetrics, type AuthFailureReason, type Metrics } from "../../agent/ops/metrics.js";

const OLD = "old-cluster-key-0123456789abcdef";
const NEW = "new-cluster-key-0123456789abcdef";
const OTHER = "someone-elses-key-0123456789abcd";

const ids = (): HandshakeIds => ({ clientId: "n1", serverId: "n2", clientNonce: newNonce(), serverNonce: newNonce() });

describe("keyOfClientProof", () => {
  it("finds which accepted key made a proof, whatever its place in the list; none for a key not in it", () => {
    const h = ids();
    expect(keyOfClientProof([OLD, NEW], h, clientProof(OLD, h))).toBe(OLD);
    expect(keyOfClientProof([OLD, NEW], h, clientProof(NEW, h))).toBe(NEW);
    expect(keyOfClientProof([NEW, OLD], h, clientProof(OLD, h))).toBe(OLD);
    expect(keyOfClientProof([OLD, NEW], h, clientProof(OTHER, h))).toBeNull();
    expect(keyOfClientProof([], h, clientProof(OLD, h))).toBeNull();
  });

  it("keeps replay protection: a proof made for other nonces is refused under every key", () => {
    const recorded = ids();
    const proof = clientProof(NEW, recorded);
    expect(keyOfClientProof([OLD, NEW], { ...recorded, serverNonce: newNonce() }, proof)).toBeNull();
    // The server's answer is tied to the client's nonce the same way.
    const answer = serverProof(NEW, recorded);
    expect(proofMatches(serverProof(NEW, recorded), answer)).toBe(true);
    expect(proofMatches(serverProof(NEW, { ...recorded, clientNonce: newNonce() }), answer)).toBe(false);
  });

  it("refuses a proof that is not hex or is cut short, under every key", () => {
    const h = ids();
    expect(keyOfClientProof([OLD, NEW], h, "zz")).toBeNull();
    expect(keyOfClientProof([OLD, NEW], h, clientProof(NEW, h).slice(0, 62))).toBeNull();
  });
});

interface Node {
  keys: KeyRing;
  metrics: Metrics;
  replica: Replica;
}

const nodes: Node[] = [];
const sessions: PeerSession[] = [];
afterEach(async () => {
  for (const s of sessions.splice(0)) s.close(1000, "test done");
  for (const n of nodes.splice(0)) await n.replica.close();
});

function node(name: string, own: string, accepted: string[] = []): Node {
  const replica = createReplica({ store: openSqliteStore({ path: ":memory:", nodeId: name }), hlc: createHlc({ wallMillis: Date.now }), log: silentLogger() });
  const n = { keys: createKeyRing({ own, accepted }), metrics: createMetrics({ defaults: false }), replica };
  nodes.push(n);
  return n;
}

interface Outcome {
  /** Both sides became ready. */
  ready: boolean;
  /** Why each side closed, when it did. */
  clientClosed: string | null;
  serverClosed: string | null;
  /** Which of the server's keys the client proved itself with (onPeerKey), by id. */
  serverSawKey: string | null;
}

/**
 * n1 dials n2: one handshake over a transport in memory; resolves once both are ready or one closed.
 * `serverSide`: the server session's logger and refusal hook (the mesh's, in the daemons).
 */
async function handshake(client: Node, server: Node, serverSide: Pick<SessionDeps, "onAuthFailed"> & { log?: Logger } = {}): Promise<Outcome> {
  const out: Outcome = { ready: false, clientClosed: null, serverClosed: null, serverSawKey: null };
  let c: PeerSession | null = null;
  let s: PeerSession | null = null;
  const readyCount = { n: 0 };
  let settle = () => undefined as void;
  const settled = new Promise<void>((r) => (settle = r));
  const wire = (other: () => PeerSession | null, remote: string): Transport => ({
    remote,
    send: (frame) => setImmediate(() => other()?.receive(frame.toString())),
    close: (code, reason) => setImmediate(() => other()?.closed(`${code} ${reason}`)),
  });
  const common = (n: Node) => ({
    replica: n.replica, keys: n.keys, metrics: n.metrics, log: silentLogger(), isAllowed: () => true,
    options: { batchSize: 100, window: 2, requestTimeoutMs: 2000, statusIntervalMs: 60_000, retry: { minMs: 10, maxMs: 20 }, authTimeoutMs: 2000 },
    onPeerVector: () => undefined,
    onReady: () => {
      if (++readyCount.n === 2) {
        out.ready = true;
        settle();
      }
    },
  });
  c = createPeerSession({
    ...common(client), role: "client", nodeId: "n1", expectedPeer: "n2", transport: wire(() => s, "n2"),
    onClosed: (_x, reason) => {
      out.clientClosed = reason;
      settle();
    },
  });
  const notes = createPeerKeyNotes({ keys: server.keys, metrics: server.metrics, log: silentLogger() });
  s = createPeerSession({
    ...common(server), ...serverSide, role: "server", nodeId: "n2", transport: wire(() => c, "n1"),
    onPeerKey: (peer, key) => {
      out.serverSawKey = keyId(key);
      notes(peer, key);
    },
    onClosed: (_x, reason) => {
      out.serverClosed = reason;
      settle();
    },
  });
  sessions.push(c, s);
  await settled;
  return out;
}

const handshakes = async (n: Node) => (await n.metrics.registry.getSingleMetricAsString("locmesh_peer_handshakes_total")).split("\n").filter((l) => !l.startsWith("#")).join("\n");
const wrongKeys = async (n: Node) => (await n.metrics.registry.getSingleMetricAsString("locmesh_auth_failures_total")).includes('reason="wrong key"} 1');

describe("the peer handshake with several cluster keys", () => {
  it("one key on both sides: authenticated with the own key, as before", async () => {
    const server = node("n2", OLD);
    expect(await handshake(node("n1", OLD), server)).toMatchObject({ ready: true, serverSawKey: keyId(OLD) });
    expect(await handshakes(server)).toBe('locmesh_peer_handshakes_total{key="own"} 1\nlocmesh_peer_handshakes_total{key="accepted"} 0');
  });

  it("step 1, the new key accepted on the server only so far: a client still on the old key gets in with it", async () => {
    expect(await handshake(node("n1", OLD), node("n2", OLD, [NEW]))).toMatchObject({ ready: true, serverSawKey: keyId(OLD) });
  });

  it("step 2, a client already switched to the new key, a server still on the old one that accepts the new: authenticated, counted as an accepted key", async () => {
    const server = node("n2", OLD, [NEW]);
    expect(await handshake(node("n1", NEW, [OLD]), server)).toMatchObject({ ready: true, serverSawKey: keyId(NEW) });
    expect(await handshakes(server)).toBe('locmesh_peer_handshakes_total{key="own"} 0\nlocmesh_peer_handshakes_total{key="accepted"} 1');
    const status = server.keys.status();
    expect(status).toMatchObject({ own: keyId(OLD), accepted: [{ id: keyId(NEW), lastUsedBy: "n1" }] });
  });

  it("step 2 the other way round: a client still on the old key, a server switched to the new one that still accepts the old", async () => {
    expect(await handshake(node("n1", OLD, [NEW]), node("n2", NEW, [OLD]))).toMatchObject({ ready: true, serverSawKey: keyId(OLD) });
  });

  it("a client that holds the old key only as an accepted one, proving with the new, and a server on the old key alone: refused, wrong key", async () => {
    const server = node("n2", OLD);
    const out = await handshake(node("n1", NEW, [OLD]), server);
    expect(out).toMatchObject({ ready: false, serverSawKey: null });
    expect(out.clientClosed).toMatch(/refused by n2: unauthorized: wrong key/);
    expect(await wrongKeys(server)).toBe(true);
  });

  it("step 3, the old key dropped: a node still proving with it is refused", async () => {
    const server = node("n2", NEW);
    const out = await handshake(node("n1", OLD), server);
    expect(out.ready).toBe(false);
    expect(out.clientClosed).toMatch(/wrong key/);
    expect(await wrongKeys(server)).toBe(true);
  });

  it("a key dropped by SIGHUP is refused from the next handshake on; one added is taken", async () => {
    const server = node("n2", NEW, [OLD]);
    expect((await handshake(node("n1", OLD), server)).ready).toBe(true);
    server.keys.set({ own: NEW, accepted: [] });
    expect((await handshake(node("n1", OLD), server)).ready).toBe(false);
    server.keys.set({ own: NEW, accepted: [OTHER] });
    expect(await handshake(node("n1", OTHER), server)).toMatchObject({ ready: true, serverSawKey: keyId(OTHER) });
  });
});

describe("the MACs as README's \"Peer protocol\" spells them out", () => {
  it("are HMAC-SHA256 in lower-case hex over the listed lines joined with \\n, keyed with the key's text", () => {
    const h = { clientId: "n1", serverId: "n2", clientNonce: "a".repeat(32), serverNonce: "b".repeat(32) };
    const hmac = (lines: string[]) => createHmac("sha256", OLD).update(lines.join("\n")).digest("hex");
    expect(clientProof(OLD, h)).toBe(hmac(["locmesh-peer-auth-v1", "client", "n1", "n2", h.serverNonce, h.clientNonce]));
    expect(serverProof(OLD, h)).toBe(hmac(["locmesh-peer-auth-v1", "server", "n2", "n1", h.clientNonce, h.serverNonce]));
    expect(clientProof(OLD, h)).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("the server's answer", () => {
  it("is made with the key the client proved itself with, which a client holding only that key can check", () => {
    const h = ids();
    const proof = clientProof(NEW, h);
    const key = keyOfClientProof([OLD, NEW], h, proof)!;
    // The client (own key NEW, nothing else) checks the answer with its own key.
    expect(proofMatches(serverProof(NEW, h), serverProof(key, h))).toBe(true);
    // An answer made with the server's own key instead would not pass.
    expect(proofMatches(serverProof(NEW, h), serverProof(OLD, h))).toBe(false);
  });
});

/** A logger whose lines the test reads, and a clock it moves. */
function capture() {
  const lines: { level: number; msg: string; remote?: string; peer?: string | null; reason?: string; refused?: number }[] = [];
  const log = pino({ level: "info" }, { write: (text: string) => void lines.push(JSON.parse(text) as (typeof lines)[number]) });
  let now = 1_000_000;
  return { lines, log, nowMs: () => now, advance: (ms: number) => (now += ms) };
}

describe("refused handshakes in the log", () => {
  it("a node redialling with a wrong key: every refusal counted, the first logged, then one line a minute with how many", async () => {
    const server = node("n2", NEW);
    const c = capture();
    const logRefusal = createPeerRefusalLog({ log: c.log, nowMs: c.nowMs });
    const serverSide = { log: c.log, onAuthFailed: (reason: AuthFailureReason, peer: string | null) => logRefusal("10.0.0.9", reason, peer) };
    const refused = () => c.lines.filter((l) => l.msg.startsWith("refused peer authentication"));
    for (let i = 0; i < 5; i++) {
      expect((await handshake(node("n1", OLD), server, serverSide)).ready).toBe(false);
      c.advance(50);
    }
    expect(await server.metrics.registry.getSingleMetricAsString("locmesh_auth_failures_total")).toContain('reason="wrong key"} 5');
    expect(refused()).toHaveLength(1);
    expect(refused()[0]).toMatchObject({ level: 40, remote: "10.0.0.9", peer: "n1", reason: "wrong key" });
    expect(refused()[0]!.msg).toMatch(/^refused peer authentication \(wrong key\): it proved itself with a key this node neither holds nor accepts .*logged at most once a minute$/);
    c.advance(60_000);
    await handshake(node("n1", OLD), server, serverSide);
    expect(refused()).toHaveLength(2);
    expect(refused()[1]).toMatchObject({ refused: 5, reason: "wrong key" });
    expect(refused()[1]!.msg).toMatch(/^refused peer authentication \(wrong key\) 5 more time\(s\) from 10\.0\.0\.9 in the last 60 s \(last as n1\)/);
    expect(await server.metrics.registry.getSingleMetricAsString("locmesh_auth_failures_total")).toContain('reason="wrong key"} 6');
  });

  it("paces each address and reason alone", () => {
    const c = capture();
    const logRefusal = createPeerRefusalLog({ log: c.log, nowMs: c.nowMs });
    for (let i = 0; i < 100; i++) {
      logRefusal("10.0.0.9", "wrong key", "n1");
      logRefusal("10.0.0.9", "unknown node id", "x");
      logRefusal("192.0.2.7", "wrong key", "n1");
      c.advance(50);
    }
    expect(c.lines.map((l) => `${l.remote} ${l.reason}`)).toEqual(["10.0.0.9 wrong key", "10.0.0.9 unknown node id", "192.0.2.7 wrong key"]);
  });
});

describe("accepted-key handshakes in the log", () => {
  it("are logged at most once a minute per peer and key, and each one counted", async () => {
    const c = capture();
    const server = node("n2", OLD, [NEW]);
    const notes = createPeerKeyNotes({ keys: server.keys, metrics: server.metrics, log: c.log, nowMs: c.nowMs });
    for (let i = 0; i < 70; i++) {
      notes("n1", NEW);
      notes("n3", NEW);
      c.advance(1000);
    }
    expect(c.lines.map((l) => l.peer)).toEqual(["n1", "n3", "n1", "n3"]);
    expect(c.lines[0]!.msg).toMatch(/^n1 proved itself with accepted cluster key .* logged at most once a minute per peer and key\)$/);
    expect(server.keys.status().accepted[0]!.lastUsedBy).toBe("n3");
    expect(await handshakes(server)).toBe('locmesh_peer_handshakes_total{key="own"} 0\nlocmesh_peer_handshakes_total{key="accepted"} 140');
  });
});
