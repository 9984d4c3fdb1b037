/**
 * The fuzz runs against the two JSON-RPC inputs: the peer port (connections that never
 * authenticate, then one that authenticates as a listed peer with the cluster key) and the local
 * API (WebSocket signed in, WebSocket not signed in, HTTP POST), plus the frames that must end a
 * connection: larger than the limit, invalid UTF-8, binary.
 */
import type { ClusterStatus } from "../../../agent/contract/cluster-status.js";
import type { ClusterNode } from "../../support/kamailio-cluster.js";
import { RpcWire, authenticatedWire, type WireMessage } from "../../support/rpc-wire.js";
import { apiBases, handWritten, peerBases, preAuthBases } from "./corpus.js";
import type { Rng } from "./mutate.js";
import { fuzzFrames, fuzzHttp, fuzzWire, newFigures, type Frame, type RpcFuzzFigures } from "./rpc-fuzz.js";

export const FUZZ_PEER = "fuzz";
const PRE_AUTH_PER_CONNECTION = 100;

/** Answers the target's own requests to the stand-in peer: it has nothing and wants nothing. */
function answerAgent(m: WireMessage): unknown {
  if (m.method === "repl.batch") return { have: (m.params as { upTo?: number } | undefined)?.upTo ?? 0 };
  if (m.method === "repl.pull") return { batch: null, remaining: 0 };
  return null;
}

export interface PeerFuzzResult {
  preAuth: RpcFuzzFigures;
  authed: RpcFuzzFigures;
  /** Authenticated sessions the agent closed during the fuzz. */
  sessionsClosed: number;
  /** A well-formed repl.pull on the fuzzed session was answered with a result afterwards. */
  stillServes: boolean;
}

export async function fuzzPeerPort(n: ClusterNode, rng: Rng, counts: { preAuth: number; authed: number }, listedGone: () => Promise<void>): Promise<PeerFuzzResult> {
  const { meshUrl } = n.agent;
  const secret = n.agent.spec.secret;
  const preAuth = newFigures();
  const pre = fuzzFrames(rng, { bases: preAuthBases(), handWritten: handWritten("repl.pull", { vv: {}, limit: 1 }), surface: "peer-preauth", count: counts.preAuth }, preAuth);
  for (let sent = 0; sent < counts.preAuth; sent += PRE_AUTH_PER_CONNECTION) {
    const wire = await RpcWire.open(`${meshUrl}/peer`);
    try {
      await wire.challenge();
      await fuzzWire(wire, take(pre, PRE_AUTH_PER_CONNECTION), { chunk: PRE_AUTH_PER_CONNECTION, timeoutMs: 8000 }, preAuth);
    } finally {
      await wire.close();
    }
  }

  const authed = newFigures();
  const vv = (await n.agent.call<ClusterStatus>("cluster.status")).vv;
  const post = fuzzFrames(rng, { bases: peerBases(vv), handWritten: handWritten("repl.pull", { vv, limit: 1 }), surface: "peer", count: counts.authed }, authed);
  let sessionsClosed = 0;
  let stillServes = false;
  for (let round = 0; authed.sent < counts.authed && round < 20; round++) {
    await listedGone();
    const wire = await authenticatedWire(meshUrl, secret, FUZZ_PEER, {}, vv);
    try {
      await fuzzWire(wire, post, { chunk: 500, timeoutMs: 30_000, onRequest: answerAgent }, authed);
      if (wire.ws.readyState !== wire.ws.OPEN) {
        sessionsClosed++;
        continue;
      }
      stillServes = (await wire.request("repl.pull", { vv, limit: 10 })).result !== undefined;
    } finally {
      await wire.close();
    }
  }
  return { preAuth, authed, sessionsClosed, stillServes };
}

/** The largest frame the API reads before sign-in (http-server.ts). */
const API_SIGNED_OUT_MAX_FRAME = 64 << 10;

function* withoutLarge(frames: Iterable<Frame>, max: number): Generator<Frame> {
  for (const f of frames) if (Buffer.byteLength(f.text) <= max) yield f;
}

export interface ApiFuzzResult {
  ws: RpcFuzzFigures;
  http: RpcFuzzFigures;
}

export async function fuzzApi(n: ClusterNode, rng: Rng, counts: { ws: number; http: number }): Promise<ApiFuzzResult> {
  const token = n.agent.spec.token;
  const bases = apiBases(token);
  const ws = newFigures();
  const wsUrl = `${n.agent.apiUrl.replace(/^http/, "ws")}/rpc`;
  const signedIn = Math.round(counts.ws * 0.8);
  for (const [headers, count] of [[{ authorization: `Bearer ${token}` }, signedIn], [{}, counts.ws - signedIn]] as const) {
    const wire = await RpcWire.open(wsUrl, { headers });
    const signedOut = !("authorization" in headers);
    try {
      const frames = fuzzFrames(rng, { bases, handWritten: handWritten("alias.list", { limit: 1 }), surface: "api", count }, ws);
      // Before sign-in a frame over 64 KiB ends the connection unread (the limit breakers check
      // that); on this connection, one would leave the rest of the fuzz unanswered.
      await fuzzWire(wire, signedOut ? withoutLarge(frames, API_SIGNED_OUT_MAX_FRAME) : frames, { chunk: 500, timeoutMs: 30_000 }, ws);
    } finally {
      await wire.close();
    }
  }
  const http = newFigures();
  await fuzzHttp(n.agent.apiUrl, token, fuzzFrames(rng, { bases, handWritten: handWritten("alias.list", { limit: 1 }), surface: "api", count: counts.http }, http), 8, http);
  return { ws, http };
}

export interface LimitFigures {
  sent: number;
  /** Frames that must end the connection, and the connections the agent did end. */
  mustClose: number;
  closed: number;
  /** Frames that must be answered with an error instead (HTTP 413, a binary frame on the API). */
  mustRefuse: number;
  refused: number;
  examples: string[];
}

/** Frames over the size limit, with invalid UTF-8, or binary, on the peer port and the API. */
export async function sendLimitBreakers(peerNode: ClusterNode, apiNode: ClusterNode, limits: { mesh: number; api: number }, listedGone: () => Promise<void>): Promise<LimitFigures> {
  const fig: LimitFigures = { sent: 0, mustClose: 0, closed: 0, mustRefuse: 0, refused: 0, examples: [] };
  const expectClose = async (open: () => Promise<RpcWire>, what: string, send: (w: RpcWire) => void, codes: number[]) => {
    const wire = await open();
    fig.sent++;
    fig.mustClose++;
    send(wire);
    const code = await Promise.race([wire.closed, new Promise<null>((r) => setTimeout(() => r(null), 10_000))]);
    if (code !== null && codes.includes(code)) fig.closed++;
    else fig.examples.push(`${what}: connection ${code === null ? "still open" : `closed with ${code}`}`);
    await wire.close();
  };
  const preAuth = async () => {
    const w = await RpcWire.open(`${peerNode.agent.meshUrl}/peer`);
    await w.challenge();
    return w;
  };
  const authed = async () => {
    await listedGone();
    return authenticatedWire(peerNode.agent.meshUrl, peerNode.agent.spec.secret, FUZZ_PEER);
  };
  const api = () => RpcWire.open(`${apiNode.agent.apiUrl.replace(/^http/, "ws")}/rpc`, { headers: { authorization: `Bearer ${apiNode.agent.spec.token}` } });
  const oversized = (limit: number) => (w: RpcWire) => w.sendText(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "repl.status", params: { vv: {}, pad: "x".repeat(limit) } }));
  const badUtf8 = (w: RpcWire) => w.ws.send(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0xc0, 0x22, 0x7d]), { binary: false });
  const binary = (w: RpcWire) => w.ws.send(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"repl.pull","params":{"vv":{},"limit":1}}'), { binary: true });

  await expectClose(preAuth, "oversized frame before authenticating", oversized(limits.mesh), [1009]);
  await expectClose(authed, "oversized frame from a peer", oversized(limits.mesh), [1009]);
  await expectClose(preAuth, "invalid UTF-8 before authenticating", badUtf8, [1007]);
  await expectClose(authed, "invalid UTF-8 from a peer", badUtf8, [1007]);
  await expectClose(authed, "binary frame from a peer", binary, [1003]);
  await expectClose(api, "oversized API frame", oversized(limits.api), [1009]);
  await expectClose(() => RpcWire.open(`${apiNode.agent.apiUrl.replace(/^http/, "ws")}/rpc`), "API frame over 64 KiB before sign-in", oversized(API_SIGNED_OUT_MAX_FRAME), [1009]);
  await expectClose(api, "invalid UTF-8 on the API", badUtf8, [1007]);

  const wire = await api();
  try {
    fig.sent++;
    fig.mustRefuse++;
    binary(wire);
    const m = await wire.next(() => true, "answer to a binary frame", 5000).catch(() => null);
    if (m?.error !== undefined) fig.refused++;
    else fig.examples.push(`binary API frame answered ${JSON.stringify(m)}`);
  } finally {
    await wire.close();
  }
  fig.sent++;
  fig.mustRefuse++;
  const res = await fetch(`${apiNode.agent.apiUrl}/rpc`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiNode.agent.spec.token}` },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "alias.list", params: { search: "x".repeat(limits.api) } }),
  });
  const body = (await res.json().catch(() => null)) as WireMessage | null;
  if (res.status === 413 && body?.error !== undefined) fig.refused++;
  else fig.examples.push(`oversized POST answered HTTP ${res.status}`);
  return fig;
}

/** The next `n` items of a shared iterator, as an iterable. */
function* take<T>(it: Iterator<T>, n: number): Generator<T> {
  for (let i = 0; i < n; i++) {
    const r = it.next();
    if (r.done) return;
    yield r.value;
  }
}
