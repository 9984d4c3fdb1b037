/**
 * A raw JSON-RPC-over-WebSocket client for tests that speak the wire by hand, on the peer port
 * (/peer) or the local API (/rpc): they record handshakes, send malformed frames, collect
 * notifications and watch how the agent answers or hangs up.
 */
import { readFileSync } from "node:fs";
import { WebSocket, type ClientOptions } from "ws";
import { clientProof, newNonce } from "../../agent/mesh/auth.js";
import { PROTOCOL_VERSION } from "../../agent/contract/protocol.js";

export interface WireMessage {
  jsonrpc?: string;
  id?: number | string | null;
  method?: string;
  params?: Record<string, unknown>;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
}

export interface Challenge {
  protocol: number;
  nodeId: string;
  nonce: string;
}

export class RpcWire {
  readonly messages: WireMessage[] = [];
  readonly unparsed: string[] = [];
  /** Resolves with the close code once the socket is closed, whoever closed it. */
  readonly closed: Promise<number>;
  private waiters: (() => void)[] = [];
  private nextId = 1000;

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data) => {
      const text = data.toString();
      try {
        this.messages.push(JSON.parse(text) as WireMessage);
      } catch {
        this.unparsed.push(text);
      }
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((r) => ws.once("close", (code) => r(code)));
    ws.on("error", () => undefined);
  }

  /** Opens a connection to `url` (path included); rejects if the WebSocket handshake fails. */
  static open(url: string, opts: ClientOptions = {}): Promise<RpcWire> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { handshakeTimeout: 5000, ...opts });
      ws.once("open", () => resolve(new RpcWire(ws)));
      ws.once("error", reject);
    });
  }

  /** Waits for the first received message (past or future) that matches. */
  async next(match: (m: WireMessage) => boolean, what: string, timeoutMs = 5000): Promise<WireMessage> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(match);
      if (found) return found;
      const left = until - Date.now();
      if (left <= 0 || this.ws.readyState === WebSocket.CLOSED) throw new Error(`no ${what} from the agent`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 100));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  async challenge(): Promise<Challenge> {
    const m = await this.next((x) => x.method === "auth.challenge", "auth.challenge");
    return m.params as unknown as Challenge;
  }

  /** Notifications received so far with this method name. */
  notifications(method: string): WireMessage[] {
    return this.messages.filter((m) => m.method === method && m.id === undefined);
  }

  sendText(text: string): void {
    this.ws.send(text);
  }

  /** Sends a request and waits for the response with its id. */
  async request(method: string, params: unknown): Promise<WireMessage> {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
    return this.next((m) => m.id === id && m.method === undefined, `answer to ${method}`);
  }

  /**
   * Stops reading from the socket and sends up to `frames` copies of a 201-byte frame of a hundred
   * invalid requests (about 10 KB of answers each), so that the answers pile up at the other end.
   */
  async floodWithoutReading(frames = 3000): Promise<void> {
    (this.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const frame = JSON.stringify(Array.from({ length: 100 }, () => 1));
    for (let i = 0; i < frames && this.ws.readyState === WebSocket.OPEN; i++) {
      this.ws.send(frame);
      if (i % 100 === 99) await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Reads again after floodWithoutReading: what the agent sent, then its close, if it closed. */
  resumeReading(): void {
    (this.ws as unknown as { _socket: { resume(): void } })._socket.resume();
  }

  close(): Promise<number> {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.close(1000, "test done");
    return this.closed;
  }
}

/** A valid auth.hello for `nodeId` answering `challenge`, computed with the cluster key. */
/** The node id a TLS peer port (`wss://127.0.0.1:<port>/peer`) answers with, checked against `ca`; rejects when the TLS handshake fails. */
export async function servedNodeId(port: number, ca: string): Promise<string> {
  const w = await RpcWire.open(`wss://127.0.0.1:${port}/peer`, { ca: readFileSync(ca) });
  try {
    return (await w.challenge()).nodeId;
  } finally {
    await w.close();
  }
}

export function makeHello(secret: string, nodeId: string, challenge: Challenge, vv: Record<string, number> = {}) {
  const nonce = newNonce();
  return {
    protocol: PROTOCOL_VERSION,
    nodeId,
    replicaId: `${nodeId}~0123abcd`,
    nonce,
    mac: clientProof(secret, { clientId: nodeId, serverId: challenge.nodeId, clientNonce: nonce, serverNonce: challenge.nonce }),
    vv,
  };
}

/**
 * Opens a connection to a peer port and completes the handshake as `nodeId`; throws if refused.
 * `vv` is the version vector we claim: the agent pushes us what it holds beyond it.
 */
export async function authenticatedWire(meshUrl: string, secret: string, nodeId: string, opts: ClientOptions = {}, vv: Record<string, number> = {}): Promise<RpcWire> {
  const wire = await RpcWire.open(`${meshUrl}/peer`, opts);
  const res = await wire.request("auth.hello", makeHello(secret, nodeId, await wire.challenge(), vv));
  if (res.error) {
    await wire.close();
    throw new Error(`hello refused: ${res.error.message}`);
  }
  return wire;
}
