/**
 * What one HTTP client may hold on the API port (agent/api/http-limits.ts), with the API's HTTP
 * server (agent/api/http-server.ts, as agent and hub run it) and the peer port's
 * (agent/mesh/peer-listener.ts) on 127.0.0.1, and raw TCP clients that
 * trickle: a request's headers and body must arrive within their limits, a refused request (401,
 * 413, 429) closes the connection instead of reading on, and a client holds a bounded number of
 * HTTP connections (WebSockets apart). The limits are made short here through the factory option;
 * the defaults are 10 s and 60 s, 32 connections per client.
 */
import { connect, type Socket } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { createHttpApi, type HttpApi } from "../../agent/api/http-server.js";
import type { HttpLimits } from "../../agent/api/http-limits.js";
import type { ApiContext } from "../../agent/api/local-api.js";
import { createPeerListener, type PeerListener } from "../../agent/mesh/peer-listener.js";
import { createAuthThrottle, type AuthThrottle } from "../../agent/ops/auth-throttle.js";
import { createKeyRing } from "../../agent/ops/key-ring.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";
import { createRpcServer } from "../../agent/rpc/server.js";
import { RpcWire } from "../support/rpc-wire.js";
import { z } from "zod";

const TOKEN = "http-limits-token-0123456789abcdef";
const MAX_BODY = 4096;
const apis: HttpApi[] = [];
const listeners: PeerListener[] = [];
const sockets: Socket[] = [];

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all([...apis.map((a) => a.close()), ...listeners.map((l) => l.close())]);
});

async function api(limits: HttpLimits, throttle?: AuthThrottle, trustedProxies?: string[]): Promise<number> {
  const log = silentLogger();
  const rpc = createRpcServer<ApiContext>({ log });
  rpc.method("ping", z.object({}), () => "pong");
  const a = createHttpApi({
    listen: { host: "127.0.0.1", port: 0 }, tokens: createKeyRing({ own: TOKEN, accepted: [] }), maxMessageBytes: MAX_BODY,
    rpc, metrics: createMetrics({ defaults: false }), log, nodeId: "t1", webRoot: null, limits, ...(throttle ? { throttle } : {}),
    ...(trustedProxies ? { trustedProxies } : {}),
  });
  apis.push(a);
  await a.start();
  return a.port();
}

/** A raw connection: what it received, and when it was closed (ms after it opened; null while open). */
interface Raw {
  socket: Socket;
  received(): string;
  /** Resolves with the ms from open to close, or null if still open after `withinMs`. */
  closedWithin(withinMs: number): Promise<number | null>;
}

async function open(port: number, localAddress = "127.0.0.1"): Promise<Raw> {
  const socket = connect({ port, host: "127.0.0.1", localAddress });
  sockets.push(socket);
  let text = "";
  const openedAt = Date.now();
  let closedAfter: number | null = null;
  const closed = new Promise<void>((r) => socket.once("close", () => {
    closedAfter = Date.now() - openedAt;
    r();
  }));
  socket.on("data", (d: Buffer) => (text += d.toString()));
  socket.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return {
    socket,
    received: () => text,
    async closedWithin(withinMs) {
      await Promise.race([closed, new Promise((r) => setTimeout(r, withinMs))]);
      return closedAfter;
    },
  };
}

/** Writes `text` one byte every `everyMs` while the socket is open; returns a stop function. */
function trickle(s: Socket, text: string, everyMs = 100): () => void {
  let i = 0;
  const t = setInterval(() => {
    if (s.destroyed || i >= text.length) return clearInterval(t);
    s.write(text[i++]!);
  }, everyMs);
  return () => clearInterval(t);
}

const head = (headers: Record<string, string>, length: number) =>
  `POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n` +
  `${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n`;

describe("how long a request may take to arrive", () => {
  const limits: HttpLimits = { headersTimeoutMs: 500, requestTimeoutMs: 1000, connections: { perClient: 32, total: 1024 }, lingerMs: 300 };

  it("an authenticated client trickling its body is answered 408 and closed once the request timeout passes", async () => {
    const port = await api(limits);
    const c = await open(port);
    c.socket.write(head({ Authorization: `Bearer ${TOKEN}` }, 1000));
    const stop = trickle(c.socket, "x".repeat(1000));
    const after = await c.closedWithin(4000);
    stop();
    expect(after, "closed by the request timeout").not.toBeNull();
    expect(after!).toBeGreaterThanOrEqual(900);
    expect(c.received()).toMatch(/^HTTP\/1\.1 408 /);
  });

  it("a client trickling its headers is closed once the headers timeout passes", async () => {
    const port = await api(limits);
    const c = await open(port);
    const stop = trickle(c.socket, `POST /rpc HTTP/1.1\r\nHost: x\r\nX-Slow: ${"y".repeat(200)}\r\n`);
    const after = await c.closedWithin(3000);
    stop();
    expect(after, "closed by the headers timeout").not.toBeNull();
    expect(c.received()).toMatch(/^HTTP\/1\.1 408 /);
  });

  it("a signed-in WebSocket idle for longer than the request timeout stays open", async () => {
    const port = await api(limits);
    const ws = await RpcWire.open(`ws://127.0.0.1:${port}/rpc`, { headers: { authorization: `Bearer ${TOKEN}` } });
    try {
      await new Promise((r) => setTimeout(r, 2500));
      expect((await ws.request("ping", {})).result).toBe("pong");
    } finally {
      await ws.close();
    }
  });
});

describe("a refused request closes its connection instead of reading the rest", () => {
  const limits: HttpLimits = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, connections: { perClient: 32, total: 1024 }, lingerMs: 300 };

  it("401: a client without the token trickling a body is answered at its headers and closed", async () => {
    const port = await api(limits);
    const c = await open(port);
    c.socket.write(head({ Authorization: "Bearer wrong" }, 1000));
    const stop = trickle(c.socket, "x".repeat(1000));
    const after = await c.closedWithin(1500);
    stop();
    expect(c.received()).toMatch(/^HTTP\/1\.1 401 /);
    expect(c.received()).toMatch(/\r\nConnection: close\r\n/i);
    expect(after, "closed after the 401").not.toBeNull();
  });

  it("429: an address held off for wrong tokens is answered and closed", async () => {
    const port = await api(limits, createAuthThrottle({ maxFailures: 1, lockMs: 60_000 }));
    const first = await open(port, "127.0.0.2");
    first.socket.write(head({ Authorization: "Bearer wrong" }, 2));
    expect(await first.closedWithin(2000)).not.toBeNull();
    const c = await open(port, "127.0.0.2");
    c.socket.write(head({ Authorization: `Bearer ${TOKEN}` }, 1000));
    const stop = trickle(c.socket, "x".repeat(1000));
    const after = await c.closedWithin(1500);
    stop();
    expect(c.received()).toMatch(/^HTTP\/1\.1 429 /);
    expect(c.received()).toMatch(/\r\nConnection: close\r\n/i);
    expect(c.received()).toMatch(/\r\nRetry-After: \d+\r\n/i);
    expect(after, "closed after the 429").not.toBeNull();
  });

  it("413: a body over the limit is answered and closed, and a fetch still uploading gets the 413, not a reset", async () => {
    const port = await api(limits);
    const c = await open(port);
    c.socket.write(head({ Authorization: `Bearer ${TOKEN}` }, MAX_BODY * 4));
    c.socket.write("x".repeat(MAX_BODY + 1));
    const stop = trickle(c.socket, "x".repeat(MAX_BODY));
    const after = await c.closedWithin(1500);
    stop();
    expect(c.received()).toMatch(/^HTTP\/1\.1 413 /);
    expect(c.received()).toMatch(/\r\nConnection: close\r\n/i);
    expect(after, "closed after the 413").not.toBeNull();
    for (const size of [MAX_BODY + 1, 8 << 20]) {
      const res = await fetch(`http://127.0.0.1:${port}/rpc`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: "x".repeat(size) });
      expect(res.status, `${size} bytes`).toBe(413);
    }
  });

  it("an accepted request keeps its connection for the next one", async () => {
    const port = await api(limits);
    const c = await open(port);
    const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping", params: {} });
    c.socket.write(head({ Authorization: `Bearer ${TOKEN}` }, body.length) + body);
    c.socket.write(head({ Authorization: `Bearer ${TOKEN}` }, body.length) + body);
    await expect.poll(() => c.received().match(/"result":"pong"/g)?.length ?? 0).toBe(2);
    expect(await c.closedWithin(200)).toBeNull();
  });
});

describe("HTTP connections per client", () => {
  const limits: HttpLimits = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, connections: { perClient: 3, total: 6 }, lingerMs: 300 };

  it("a client past its limit is closed at once; one closing makes room; the host's own addresses count toward the total only", async () => {
    const port = await api(limits);
    const held = [await open(port, "127.0.0.2"), await open(port, "127.0.0.2"), await open(port, "127.0.0.2")];
    const over = await open(port, "127.0.0.2");
    expect(await over.closedWithin(1000), "the fourth connection of 127.0.0.2").not.toBeNull();
    expect(over.received()).toBe("");
    for (const h of held) expect(await h.closedWithin(0)).toBeNull();
    // Another client is not held off by it.
    const other = await open(port, "127.0.0.3");
    expect(await other.closedWithin(300)).toBeNull();

    held[0]!.socket.destroy();
    await new Promise((r) => setTimeout(r, 200));
    const again = await open(port, "127.0.0.2");
    expect(await again.closedWithin(300), "room again after one closed").toBeNull();

    // 127.0.0.1 is not limited per client (a reverse proxy, the CLI), but the total (6) holds:
    // 4 held above, so 2 more.
    const local = [await open(port), await open(port)];
    for (const l of local) expect(await l.closedWithin(300)).toBeNull();
    expect(await (await open(port)).closedWithin(1000), "past the total").not.toBeNull();
  });

  it("a reverse proxy in api.trustedProxies counts toward the total only, and is never held off for its browsers' wrong tokens", async () => {
    const port = await api(limits, undefined, ["::ffff:127.0.0.2"]);
    // Past perClient (3), up to the total (6).
    const held = [];
    for (let i = 0; i < 6; i++) held.push(await open(port, "127.0.0.2"));
    for (const h of held) expect(await h.closedWithin(0)).toBeNull();
    expect(await (await open(port, "127.0.0.2")).closedWithin(1000), "past the total").not.toBeNull();
    for (const h of held) h.socket.destroy();
    await new Promise((r) => setTimeout(r, 200));
    // Twelve wrong tokens (the throttle locks an address out after ten), then a right one.
    const ask = async (token: string): Promise<string> => {
      const c = await open(port, "127.0.0.2");
      const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping", params: {} });
      c.socket.write(head({ Authorization: `Bearer ${token}`, Connection: "close" }, body.length) + body);
      await c.closedWithin(2000);
      return c.received();
    };
    for (let i = 0; i < 12; i++) expect(await ask("wrong")).toMatch(/^HTTP\/1\.1 401 /);
    expect(await ask(TOKEN)).toMatch(/"result":"pong"/);
    // Another address is held off after ten, as before.
    const untrusted = await api(limits);
    for (let i = 0; i < 10; i++) {
      const c = await open(untrusted, "127.0.0.3");
      c.socket.write(head({ Authorization: "Bearer wrong", Connection: "close" }, 2) + "{}");
      await c.closedWithin(2000);
    }
    const c = await open(untrusted, "127.0.0.3");
    c.socket.write(head({ Authorization: `Bearer ${TOKEN}`, Connection: "close" }, 2) + "{}");
    await c.closedWithin(2000);
    expect(c.received()).toMatch(/^HTTP\/1\.1 429 /);
  });

  it("a WebSocket does not count once upgraded: a client holds more signed-in WebSockets than HTTP connections", async () => {
    const port = await api(limits);
    const wires: RpcWire[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        wires.push(await RpcWire.open(`ws://127.0.0.1:${port}/rpc`, { localAddress: "127.0.0.2", headers: { authorization: `Bearer ${TOKEN}` } }));
      }
      for (const w of wires) expect((await w.request("ping", {})).result).toBe("pong");
      const http = await open(port, "127.0.0.2");
      expect(await http.closedWithin(300)).toBeNull();
    } finally {
      for (const w of wires) await w.close();
    }
  });
});

describe("the peer port's HTTP server", () => {
  async function peerPort(requestTimeoutMs: number): Promise<number> {
    const l = createPeerListener({
      listen: { host: "127.0.0.1", port: 0 }, tls: null, maxMessageBytes: 65_536, log: silentLogger(),
      wanted: () => true, unwantedBecause: "", logFields: () => ({}), onConnection: (ws) => ws.close(1000, "test"), requestTimeoutMs,
    });
    listeners.push(l);
    await l.sync();
    return l.port();
  }

  it("answers a request that is not a WebSocket upgrade 426 and closes, rather than reading a trickled body", async () => {
    const c = await open(await peerPort(30_000));
    c.socket.write("POST /peer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
    const stop = trickle(c.socket, "x".repeat(1000));
    const after = await c.closedWithin(2000);
    stop();
    expect(c.received()).toMatch(/^HTTP\/1\.1 426 /);
    expect(after, "closed after the 426").not.toBeNull();
  });

  it("closes a client trickling its upgrade request once the timeout passes", async () => {
    const c = await open(await peerPort(500));
    const stop = trickle(c.socket, `GET /peer HTTP/1.1\r\nHost: x\r\nX-Slow: ${"y".repeat(200)}\r\n`);
    const after = await c.closedWithin(3000);
    stop();
    expect(after, "closed by the timeout").not.toBeNull();
    expect(c.received()).toMatch(/^HTTP\/1\.1 408 /);
  });
});
