/**
 * How the local API's HTTP server (agent/api/http-server.ts, as agent and hub run it) stops: a
 * call under way is answered before the connection closes; one that outlasts the grace is answered
 * as cut short, its outcome unknown; one that arrives meanwhile is refused as temporary, saying
 * nothing of it was done; a WebSocket is closed with 1001 once its calls are answered. Before, the
 * connections were cut at once and the CLI said the agent was not reachable.
 */
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { CUT_SHORT, STOPPING, createHttpApi, type HttpApi } from "../../agent/api/http-server.js";
import type { ApiContext } from "../../agent/api/local-api.js";
import { ErrorCode } from "../../agent/contract/errors.js";
import { createKeyRing } from "../../agent/ops/key-ring.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";
import { createRpcServer } from "../../agent/rpc/server.js";
import { RpcWire } from "../support/rpc-wire.js";
import { request as httpRequest, Agent } from "node:http";

const TOKEN = "api-close-token-0123456789abcdef";
let api: HttpApi | null = null;
afterEach(async () => {
  await api?.close();
  api = null;
});

/** An API whose `slow` call ends when the test says; `started` resolves once one is under way. */
async function start(closeGraceMs: number) {
  const log = silentLogger();
  const rpc = createRpcServer<ApiContext>({ log });
  let finish!: (v: string) => void;
  let started!: () => void;
  const underWay = new Promise<void>((r) => (started = r));
  rpc.method("slow", z.object({}), () => new Promise<string>((r) => {
    finish = r;
    started();
  }));
  rpc.method("ping", z.object({}), () => "pong");
  api = createHttpApi({
    listen: { host: "127.0.0.1", port: 0 }, tokens: createKeyRing({ own: TOKEN, accepted: [] }), maxMessageBytes: 65_536,
    rpc, metrics: createMetrics({ defaults: false }), log, nodeId: "t1", webRoot: null, closeGraceMs,
  });
  await api.start();
  return { port: api.port(), underWay, finish: (v: string) => finish(v) };
}

/** POSTs one call on `agent`'s connections; resolves with the status and the parsed body. */
function post(port: number, agent: Agent, id: number, method: string): Promise<{ status: number; body: { id: unknown; result?: unknown; error?: { code: number; message: string } } }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, path: "/rpc", method: "POST", agent, headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` } }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end(JSON.stringify({ jsonrpc: "2.0", id, method, params: {} }));
  });
}

describe("the local API as it stops", () => {
  it("answers a call under way before closing, and takes no new connection meanwhile", async () => {
    const { port, underWay, finish } = await start(5000);
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 2 });
    // Two connections: one with the slow call, one idle after a ping (it would carry the next call).
    const slow = post(port, keepAlive, 1, "slow");
    await underWay;
    expect((await post(port, keepAlive, 2, "ping")).body.result).toBe("pong");
    const closing = api!.close();
    let closed = false;
    void closing.then(() => (closed = true));
    // A new connection is not taken.
    await expect(post(port, new Agent(), 3, "ping")).rejects.toThrow(/ECONNREFUSED/);
    expect(closed).toBe(false);
    finish("done");
    const answer = await slow;
    expect(answer).toMatchObject({ status: 200, body: { id: 1, result: "done" } });
    await closing;
    api = null;
    keepAlive.destroy();
  });

  it("refuses a call that arrives while a stop waits, with a temporary failure that says nothing was done", async () => {
    const { port, underWay, finish } = await start(5000);
    const wire = await RpcWire.open(`ws://127.0.0.1:${port}/rpc`, { headers: { authorization: `Bearer ${TOKEN}` } });
    wire.sendText(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "slow", params: {} }));
    await underWay;
    const closing = api!.close();
    const refused = await wire.request("ping", {});
    expect(refused.error).toEqual({ code: ErrorCode.TemporaryFailure, message: STOPPING });
    finish("done");
    // The call under way is answered, then the socket is closed as "going away".
    expect((await wire.next((m) => m.id === 1, "the slow call's answer")).result).toBe("done");
    expect(await wire.closed).toBe(1001);
    await closing;
    api = null;
  });

  it("answers a WebSocket call that outlasts the grace as cut short too, then closes with 1001", async () => {
    const { port, underWay } = await start(300);
    const wire = await RpcWire.open(`ws://127.0.0.1:${port}/rpc`, { headers: { authorization: `Bearer ${TOKEN}` } });
    wire.sendText(JSON.stringify({ jsonrpc: "2.0", id: 9, method: "slow", params: {} }));
    await underWay;
    await api!.close();
    api = null;
    expect(await wire.next((m) => m.id === 9, "the cut-short answer")).toEqual({ jsonrpc: "2.0", id: 9, error: { code: ErrorCode.TemporaryFailure, message: CUT_SHORT } });
    expect(await wire.closed).toBe(1001);
  });

  it("answers a call that outlasts the grace as cut short, its outcome unknown, and stops", async () => {
    const { port, underWay } = await start(300);
    const slow = post(port, new Agent(), 7, "slow");
    await underWay;
    const t0 = Date.now();
    await api!.close();
    api = null;
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(await slow).toEqual({ status: 503, body: { jsonrpc: "2.0", id: 7, error: { code: ErrorCode.TemporaryFailure, message: CUT_SHORT } } });
  });
});
