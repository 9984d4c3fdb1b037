/**
 * The API's WebSocket and the pages browsers open it from (agent/api/ws-origin.ts), with the API's
 * HTTP server as agent and hub run it, on 127.0.0.1: a page of another site (found by the web UI
 * review of 2026-11-23) could open sockets to the API from the admin's browser and send wrong
 * tokens, locking the admin's address out of the API; now such a socket is closed before any
 * sign-in. The web UI's own page, a proxy's forwarded host, a listed origin and clients that send
 * no Origin (the CLI) go on as before.
 */
import { connect, type Socket } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { z } from "zod";
import { createHttpApi, type HttpApi } from "../../agent/api/http-server.js";
import type { ApiContext } from "../../agent/api/local-api.js";
import { createKeyRing } from "../../agent/ops/key-ring.js";
import { silentLogger, type Logger } from "../../agent/ops/logger.js";
import { capturedLog } from "../support/captured-log.js";
import { createMetrics } from "../../agent/ops/metrics.js";
import { createRpcServer } from "../../agent/rpc/server.js";

const TOKEN = "ws-origin-token-0123456789abcdef";
const apis: HttpApi[] = [];
afterAll(async () => {
  await Promise.all(apis.map((a) => a.close()));
});

async function api(allowedOrigins: string[] = [], o: { log?: Logger; maxMessageBytes?: number; pingIntervalMs?: number } = {}): Promise<number> {
  const log = o.log ?? silentLogger();
  const rpc = createRpcServer<ApiContext>({ log });
  rpc.method("auth.login", z.object({ token: z.string() }), (p, ctx) => {
    const refused = ctx.signIn(p.token);
    if (refused) throw refused;
    return { ok: true };
  });
  const a = createHttpApi({
    listen: { host: "127.0.0.1", port: 0 }, tokens: createKeyRing({ own: TOKEN, accepted: [] }), maxMessageBytes: o.maxMessageBytes ?? 4096,
    rpc, metrics: createMetrics({ defaults: false }), log, nodeId: "t1", webRoot: null, allowedOrigins,
    ...(o.pingIntervalMs === undefined ? {} : { pingIntervalMs: o.pingIntervalMs }),
  });
  apis.push(a);
  await a.start();
  return a.port();
}

/** Opens a socket from 127.0.0.2 (not the host's own, so held off like any client) and signs in with `token`. */
async function login(port: number, token: string, headers: Record<string, string>): Promise<{ closed: number } | { answer: { result?: unknown; error?: { code: number } } }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/rpc`, { headers, localAddress: "127.0.0.2" });
  try {
    return await new Promise((resolve, reject) => {
      ws.on("error", reject);
      ws.on("close", (code) => resolve({ closed: code }));
      ws.on("message", (data) => resolve({ answer: JSON.parse(String(data)) as { result?: unknown; error?: { code: number } } }));
      ws.on("open", () => ws.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "auth.login", params: { token } })));
    });
  } finally {
    ws.terminate();
  }
}

describe("the API's WebSocket pings", () => {
  it("drops a client that answers no ping (its far end is gone), and keeps one that does, idle or not", async () => {
    const port = await api([], { pingIntervalMs: 100 });
    const open = (autoPong: boolean) => new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/rpc`, { headers: { authorization: `Bearer ${TOKEN}` }, autoPong });
      ws.on("open", () => resolve(ws));
      ws.on("error", reject);
    });
    const alive = await open(true);
    const gone = await open(false);
    const closedAt = new Map<WebSocket, number>();
    for (const ws of [alive, gone]) ws.on("close", () => closedAt.set(ws, Date.now()));
    try {
      await new Promise((r) => setTimeout(r, 800));
      expect(closedAt.has(gone)).toBe(true);
      expect(closedAt.has(alive)).toBe(false);
    } finally {
      alive.terminate();
      gone.terminate();
    }
  });
});

describe("the API's WebSocket and the page it is opened from", () => {
  it("closes one from another site's page before any sign-in, so its wrong tokens cannot lock the admin out", async () => {
    const port = await api();
    for (let i = 0; i < 12; i++) expect(await login(port, "wrong-token-0123456789", { Origin: "https://evil.example" })).toEqual({ closed: 1008 });
    // The admin's own page, from the same address: not held off.
    expect(await login(port, TOKEN, { Origin: `http://127.0.0.1:${port}` })).toMatchObject({ answer: { result: { ok: true } } });
  });

  it("takes the API's own origin by address or as localhost, a reverse proxy's forwarded address, a listed origin, and clients that send no Origin", async () => {
    const port = await api(["https://locmesh.example.com"]);
    const ok = { answer: { result: { ok: true } } };
    expect(await login(port, TOKEN, {})).toMatchObject(ok);
    expect(await login(port, TOKEN, { Origin: `http://localhost:${port}`, Host: `localhost:${port}` })).toMatchObject(ok);
    expect(await login(port, TOKEN, { Origin: "https://10.0.0.5:8443", "X-Forwarded-Host": "10.0.0.5:8443" })).toMatchObject(ok);
    expect(await login(port, TOKEN, { Origin: "https://locmesh.example.com" })).toMatchObject(ok);
    // A port other than the page's, a listed host over plain http, and a sandboxed page's "null": refused.
    expect(await login(port, TOKEN, { Origin: `http://127.0.0.1:${port + 1}` })).toEqual({ closed: 1008 });
    expect(await login(port, TOKEN, { Origin: "http://locmesh.example.com" })).toEqual({ closed: 1008 });
    expect(await login(port, TOKEN, { Origin: "null" })).toEqual({ closed: 1008 });
    // A page at a host name that is not listed, even when Host (or a proxy's X-Forwarded-Host)
    // agrees: another site's page can make its name resolve here (DNS rebinding).
    expect(await login(port, TOKEN, { Origin: `http://rebind.example:${port}`, Host: `rebind.example:${port}` })).toEqual({ closed: 1008 });
    expect(await login(port, TOKEN, { Origin: "https://ui.example.net", "X-Forwarded-Host": "ui.example.net" })).toEqual({ closed: 1008 });
  });

  it("drops a refused socket that never answers the closing handshake, and reads nothing more from it", async () => {
    // Found by review: ws.close() only begins the handshake; the socket stayed open up to 30 s,
    // still buffering whatever it sent, outside every connection cap.
    const port = await api([], { maxMessageBytes: 4 << 20 });
    const { sock, upgraded } = await rawUpgrade(port, "Origin: https://evil.example");
    expect(upgraded).toContain("101 Switching Protocols");
    const started = Date.now();
    const closed = new Promise<number>((r) => sock.once("close", () => r(Date.now() - started)));
    sock.write(frameHeader(1 << 20));
    sock.write(Buffer.alloc(200_000));
    expect(await Promise.race([closed, sleep(5000).then(() => -1)])).toBeGreaterThanOrEqual(0);
  });

  it("drops a socket not signed in once it has sent twice the frame size allowed before sign-in, without waiting for the frame's end", async () => {
    // Found by review: the limit was checked once the whole frame (up to maxMessageBytes, 4 MiB by default) was buffered.
    const port = await api([], { maxMessageBytes: 4 << 20 });
    const { sock, upgraded } = await rawUpgrade(port);
    expect(upgraded).toContain("101 Switching Protocols");
    const closed = new Promise<boolean>((r) => sock.once("close", () => r(true)));
    sock.write(frameHeader(4 << 20));
    sock.write(Buffer.alloc(256 << 10));
    expect(await Promise.race([closed, sleep(5000).then(() => false)])).toBe(true);
    // A client that signs in sends what it likes up to maxMessageBytes.
    expect(await login(port, TOKEN, {})).toMatchObject({ answer: { result: { ok: true } } });
  });

  it("logs requests without a valid token at most every 10 s per client: anyone can send them", async () => {
    const { log, lines } = capturedLog();
    const port = await api([], { log });
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/rpc`, { method: "POST", body: "{}" });
      expect(res.status).toBe(401);
    }
    expect(lines.filter((l) => /missing or wrong token/.test(l.msg))).toHaveLength(1);
  });

  it("stays up when a refused socket then sends a malformed frame", async () => {
    const port = await api();
    const { sock, upgraded } = await rawUpgrade(port, "Origin: https://evil.example");
    expect(upgraded).toContain("101 Switching Protocols");
    // A masked frame with a reserved opcode: the server's socket errors on it.
    sock.write(Buffer.from([0x83, 0x80, 0, 0, 0, 0]));
    await new Promise((r) => setTimeout(r, 200));
    sock.destroy();
    expect(await login(port, TOKEN, {})).toMatchObject({ answer: { result: { ok: true } } });
  });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A WebSocket upgrade written by hand (with `header` added), and what the server answered. */
async function rawUpgrade(port: number, header?: string): Promise<{ sock: Socket; upgraded: string }> {
  const sock = connect({ port, host: "127.0.0.1" });
  await new Promise<void>((r) => sock.once("connect", () => r()));
  let got = "";
  sock.on("data", (d: Buffer) => (got += d.toString("latin1")));
  sock.on("error", () => undefined);
  sock.write(["GET /rpc HTTP/1.1", `Host: 127.0.0.1:${port}`, "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", ...(header ? [header] : []), "", ""].join("\r\n"));
  for (let i = 0; i < 100 && !got.includes("101"); i++) await sleep(10);
  return { sock, upgraded: got };
}

/** A masked text frame's header declaring `length` bytes of payload (which is then written, or not). */
function frameHeader(length: number): Buffer {
  const head = Buffer.alloc(14);
  head[0] = 0x81;
  head[1] = 0x80 | 127;
  head.writeBigUInt64BE(BigInt(length), 2);
  return head; // the 4-byte mask key (zeros) ends it
}
