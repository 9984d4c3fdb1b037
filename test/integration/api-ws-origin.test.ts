/**
 * The API's WebSocket and the pages browsers open it from (agent/api/ws-origin.ts), with the API's
 * HTTP server as agent and hub run it, on 127.0.0.1: a page of another site (found by the web UI
 * review of 2026-11-23) could open sockets to the API from the admin's browser and send wrong
 * tokens, locking the admin's address out of the API; now such a socket is closed before any
 * sign-in. The web UI's own page, a proxy's forwarded host, a listed origin and clients that send
 * no Origin (the CLI) go on as before.
 */
import { connect } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { z } from "zod";
import { createHttpApi, type HttpApi } from "../../agent/api/http-server.js";
import type { ApiContext } from "../../agent/api/local-api.js";
import { createKeyRing } from "../../agent/ops/key-ring.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";
import { createRpcServer } from "../../agent/rpc/server.js";

const TOKEN = "ws-origin-token-0123456789abcdef";
const apis: HttpApi[] = [];
afterAll(async () => {
  await Promise.all(apis.map((a) => a.close()));
});

async function api(allowedOrigins: string[] = []): Promise<number> {
  const log = silentLogger();
  const rpc = createRpcServer<ApiContext>({ log });
  rpc.method("auth.login", z.object({ token: z.string() }), (p, ctx) => {
    const refused = ctx.signIn(p.token);
    if (refused) throw refused;
    return { ok: true };
  });
  const a = createHttpApi({
    listen: { host: "127.0.0.1", port: 0 }, tokens: createKeyRing({ own: TOKEN, accepted: [] }), maxMessageBytes: 4096,
    rpc, metrics: createMetrics({ defaults: false }), log, nodeId: "t1", webRoot: null, allowedOrigins,
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

  it("stays up when a refused socket then sends a malformed frame", async () => {
    const port = await api();
    const sock = connect({ port, host: "127.0.0.1" });
    await new Promise<void>((r) => sock.once("connect", () => r()));
    let got = "";
    sock.on("data", (d: Buffer) => (got += d.toString("latin1")));
    sock.on("error", () => undefined);
    sock.write(["GET /rpc HTTP/1.1", `Host: 127.0.0.1:${port}`, "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Origin: https://evil.example", "", ""].join("\r\n"));
    for (let i = 0; i < 100 && !got.includes("101"); i++) await new Promise((r) => setTimeout(r, 10));
    expect(got).toContain("101 Switching Protocols");
    // A masked frame with a reserved opcode: the server's socket errors on it.
    sock.write(Buffer.from([0x83, 0x80, 0, 0, 0, 0]));
    await new Promise((r) => setTimeout(r, 200));
    sock.destroy();
    expect(await login(port, TOKEN, {})).toMatchObject({ answer: { result: { ok: true } } });
  });
});
