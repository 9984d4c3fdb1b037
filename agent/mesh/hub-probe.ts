/**
 * Whether a hub would take a session now, without making one: it accepts the WebSocket and sends
 * its challenge, the first frame of every handshake (peer-handshake.ts). A hub that refuses sessions
 * (its PostgreSQL is away: 4013, or it holds our address off: 4029) closes before sending one.
 * We close with 1000 before authenticating: the hub counts no refusal and logs nothing, and a
 * second session with the same hub never exists (the duplicate rule would close one mid-transfer).
 * A challenge of another protocol version counts as not taking sessions: the handshake would refuse.
 */
import { WebSocket } from "ws";
import { PROTOCOL_VERSION, PeerMethod } from "../contract/protocol.js";

/** The WebSocket URL of a peer or hub configured as `url`: its `/peer` path when the URL names none. */
export const peerUrl = (url: string): string => (new URL(url).pathname === "/" ? new URL("/peer", url).toString() : url);

/**
 * Resolves with the hub's node id, as its challenge gives it; rejects saying why it would not take
 * a session. An agent's peer port answers the same way: `locmesh check` probes peers with it too.
 */
export function probeHub(
  url: string,
  o: {
    ca?: Buffer;
    timeoutMs: number;
    maxFrameBytes: number;
    /**
     * Take any certificate: for `locmesh check` asking its own daemon over loopback, whose
     * certificate names the host peers dial, not 127.0.0.1. Nothing is sent before the close.
     */
    anyCertificate?: boolean;
  },
): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { ca: o.ca, handshakeTimeout: o.timeoutMs, maxPayload: o.maxFrameBytes, ...(o.anyCertificate ? { rejectUnauthorized: false } : {}) });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no challenge within ${o.timeoutMs} ms`));
    }, o.timeoutMs);
    const settle = (err: Error | null, hubId?: string) => {
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(hubId!);
    };
    ws.once("message", (data: Buffer) => {
      const challenge = parseChallenge(data.toString());
      ws.close(1000, "probe");
      // A peer that never answers the close would hold the socket for ws's own 30 s.
      setTimeout(() => ws.terminate(), 1000).unref();
      if (challenge === null) return settle(new Error("its first frame was not a challenge"));
      // The handshake would refuse it (4002): a hub mid-upgrade is not one to move to.
      if (challenge.protocol !== PROTOCOL_VERSION) return settle(new Error(`it speaks protocol ${String(challenge.protocol)}, this agent ${PROTOCOL_VERSION}: upgrade the older one`));
      settle(null, challenge.nodeId);
    });
    ws.once("close", (code, why) => settle(new Error(`closed: ${code} ${why.toString()}`.trim())));
    ws.on("error", (err) => settle(err));
    ws.once("unexpected-response", (_req, res) => {
      settle(new Error(`HTTP ${res.statusCode}`));
      ws.terminate();
    });
  });
}

function parseChallenge(text: string): { nodeId: string; protocol: unknown } | null {
  try {
    const frame = JSON.parse(text) as { method?: unknown; params?: { nodeId?: unknown; protocol?: unknown } };
    return frame.method === PeerMethod.Challenge && typeof frame.params?.nodeId === "string" ? { nodeId: frame.params.nodeId, protocol: frame.params.protocol } : null;
  } catch {
    return null;
  }
}
