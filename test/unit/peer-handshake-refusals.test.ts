/**
 * What the accepting side of a peer handshake tells a caller it refuses (agent/mesh/peer-handshake.ts),
 * driven by hand as a scanner would: a real server session over an in-memory journal, hellos made
 * up by the test. A caller that has not proved it holds a key the node takes hears one text,
 * whatever else was wrong, so it cannot learn which node ids are listed nor make the node report a
 * duplicate of itself; the node's metric and log keep the precise reason. A caller that proved the
 * key is told precisely.
 */
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION } from "../../agent/contract/protocol.js";
import { clientProof, newNonce } from "../../agent/mesh/auth.js";
import type { ClaimedId } from "../../agent/mesh/peer-handshake.js";
import { createPeerRefusalLog } from "../../agent/mesh/peer-keys.js";
import { createPeerSession, type PeerSession } from "../../agent/mesh/peer-session.js";
import { createKeyRing } from "../../agent/ops/key-ring.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics, type AuthFailureReason, type Metrics } from "../../agent/ops/metrics.js";
import { memoryPeers } from "../support/memory-peers.js";

const KEY = "the-cluster-key-0123456789abcdef";
const GUESS = "a-guessed-key-0123456789abcdef01";
/** The node under test, and the one node id it lists. */
const SELF = "n2";
const LISTED = "n1";

const peers = memoryPeers();

interface Attempt {
  /** The JSON-RPC error the hello was answered with (null: it was taken). */
  error: { code: number; message: string } | null;
  /** The close frame's code and reason the node sent. */
  closed: string | null;
  /** What the node's log hook was told. */
  refusal: { reason: AuthFailureReason; nodeId: string | null; claim?: ClaimedId } | null;
  metrics: Metrics;
  /** The session was admitted (onReady). */
  ready: boolean;
}

/** Dials a fresh server session of SELF as `nodeId`, proving with `key`; resolves once the node answered and closed (or took it). */
async function hello(
  nodeId: string, key: string, replicaId = `${nodeId}~0123abcd`, isAllowed: (id: string) => boolean = (id) => id === LISTED,
): Promise<Attempt> {
  const replica = peers.replica(SELF);
  const metrics = createMetrics({ defaults: false });
  const out: Attempt = { error: null, closed: null, refusal: null, metrics, ready: false };
  let challenge: { nonce: string } | null = null;
  let answered = () => undefined as void;
  const answer = new Promise<void>((r) => (answered = r));
  let closedDone = () => undefined as void;
  const closed = new Promise<void>((r) => (closedDone = r));
  const session: PeerSession = createPeerSession({
    role: "server", nodeId: SELF, keys: createKeyRing({ own: KEY, accepted: [] }), replica, metrics, log: silentLogger(),
    isAllowed,
    options: { batchSize: 100, window: 2, requestTimeoutMs: 2000, statusIntervalMs: 60_000, retry: { minMs: 10, maxMs: 20 }, authTimeoutMs: 5000 },
    onAuthFailed: (reason, id, claim) => (out.refusal = { reason, nodeId: id, ...(claim ? { claim } : {}) }),
    onPeerVector: () => undefined,
    onReady: () => void (out.ready = true),
    onClosed: () => undefined,
    transport: {
      remote: "192.0.2.66:40000",
      send(frame) {
        const m = JSON.parse(frame.toString()) as { method?: string; params?: { nonce: string }; id?: number; error?: Attempt["error"]; result?: unknown };
        if (m.method === "auth.challenge") challenge = m.params!;
        else if (m.id === 1) {
          out.error = m.error ?? null;
          answered();
        }
      },
      close(code, reason) {
        out.closed = `${code} ${reason}`;
        closedDone();
      },
    },
  });
  peers.keep(session);
  expect(challenge).not.toBeNull();
  const clientNonce = newNonce();
  const mac = clientProof(key, { clientId: nodeId, serverId: SELF, clientNonce, serverNonce: challenge!.nonce });
  session.receive(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "auth.hello", params: { protocol: PROTOCOL_VERSION, nodeId, replicaId, nonce: clientNonce, mac, vv: {} } }));
  await answer;
  if (out.error) await closed;
  return out;
}

const counted = async (m: Metrics, reason: AuthFailureReason) =>
  (await m.registry.getSingleMetricAsString("locmesh_auth_failures_total")).includes(`reason="${reason}"} 1`);

const GENERIC = `unauthorized: wrong key or unknown node id; ${SELF}'s log says which`;

describe("a caller that proved no key the node takes", () => {
  it("hears the same answer and close reason for a listed id, an unlisted id and the node's own id", async () => {
    const listed = await hello(LISTED, GUESS);
    const unlisted = await hello("intruder", GUESS);
    const own = await hello(SELF, GUESS);
    for (const a of [listed, unlisted, own]) {
      expect(a.error).toEqual({ code: -32010, message: GENERIC });
      expect(a.closed).toBe(`4001 ${GENERIC}`);
    }
  });

  it("is not answered that the node cannot peer with itself: that is counted only once the key checks out", async () => {
    const own = await hello(SELF, GUESS);
    expect(own.error?.message).not.toMatch(/itself|duplicate/);
    expect(await counted(own.metrics, "wrong key")).toBe(true);
    expect(await counted(own.metrics, "a node cannot peer with itself (duplicate nodeId?)")).toBe(false);
    expect(own.refusal).toEqual({ reason: "wrong key", nodeId: SELF, claim: "own id" });
  });

  it("is counted and logged as a wrong key, with what the id it claimed is to this node", async () => {
    const listed = await hello(LISTED, GUESS);
    const unlisted = await hello("intruder", GUESS);
    expect(listed.refusal).toEqual({ reason: "wrong key", nodeId: LISTED, claim: "listed" });
    expect(unlisted.refusal).toEqual({ reason: "wrong key", nodeId: "intruder", claim: "unlisted" });
    expect(await counted(unlisted.metrics, "wrong key")).toBe(true);
    expect(await counted(unlisted.metrics, "unknown node id")).toBe(false);
  });
});

describe("a caller that proved the cluster key", () => {
  it("is told precisely: not listed, the node's own id, a replica id of another node", async () => {
    const unlisted = await hello("n9", KEY);
    expect(unlisted.error).toEqual({ code: -32010, message: "unauthorized: unknown node id" });
    expect(await counted(unlisted.metrics, "unknown node id")).toBe(true);
    const own = await hello(SELF, KEY);
    expect(own.error?.message).toBe("unauthorized: a node cannot peer with itself (duplicate nodeId?)");
    expect(own.closed).toBe("4001 unauthorized: a node cannot peer with itself (duplicate nodeId?)");
    const replica = await hello(LISTED, KEY, "other~0123abcd");
    expect(replica.error?.message).toBe("unauthorized: replica id does not match node id");
  });

  it("with a listed id is taken", async () => {
    const ok = await hello(LISTED, KEY);
    expect(ok.error).toBeNull();
    expect(ok.refusal).toBeNull();
  });
});

describe("a caller taken out of the node's lists during its handshake (SIGHUP)", () => {
  it("is not admitted once its hello was answered: its session is closed as a removed peer's", async () => {
    let listed = true;
    const attempt = await hello(LISTED, KEY, undefined, (id) => listed && id === LISTED);
    expect(attempt.error).toBeNull();
    // The answer is on the wire; the session is admitted a turn later. A SIGHUP drops the peer now.
    listed = false;
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(attempt.ready).toBe(false);
    expect(attempt.closed).toBe("1000 peer removed from config");
  });

  it("still listed, is admitted", async () => {
    const attempt = await hello(LISTED, KEY);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(attempt.ready).toBe(true);
  });
});

describe("the refusal in the node's log", () => {
  it("says what the node id claimed with a wrong key is to this node, which the caller was not told", () => {
    const lines: { msg: string; claim?: string; reason: string }[] = [];
    const log = pino({ level: "info" }, { write: (text: string) => void lines.push(JSON.parse(text) as (typeof lines)[number]) });
    const logRefusal = createPeerRefusalLog({ log });
    logRefusal("192.0.2.66", "wrong key", "intruder", "unlisted");
    logRefusal("192.0.2.67", "wrong key", LISTED, "listed");
    logRefusal("192.0.2.68", "wrong key", SELF, "own id");
    expect(lines.map((l) => l.claim)).toEqual(["unlisted", "listed", "own id"]);
    expect(lines[0]!.msg).toMatch(/^refused peer authentication \(wrong key\): it proved itself with a key this node neither holds nor accepts .*; the node id it claimed is not listed here either: a probe/);
    expect(lines[1]!.msg).toMatch(/the node id it claimed is one this node lists: that node holds a key this node does not take/);
    expect(lines[2]!.msg).toMatch(/it claimed this node's own id: a probe, or a second node with this nodeId/);
  });
});
