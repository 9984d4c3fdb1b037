/**
 * What the CLI's API client (agent/cli/api-client.ts) says when the transport fails, against real
 * sockets on 127.0.0.1: a connection refused (nothing listens) is "not reachable", while one that
 * breaks after the request went out says the call's outcome is unknown, since it may have run.
 */
import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { AgentUnreachableError, createApiClient } from "../../agent/cli/api-client.js";

let server: Server | null = null;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

async function listen(onData: (socket: import("node:net").Socket) => void): Promise<number> {
  server = createServer((socket) => socket.once("data", () => onData(socket)));
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
  return (server.address() as { port: number }).port;
}

describe("the API client's transport errors", () => {
  it("a connection that breaks once the request is sent: the outcome is unknown, not 'is it running?'", async () => {
    const port = await listen((socket) => socket.destroy());
    const client = createApiClient({ url: `http://127.0.0.1:${port}`, token: "t".repeat(20), timeoutMs: 5000 });
    const err = await client.call("alias.set", {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentUnreachableError);
    expect((err as Error).message).toMatch(/broke before alias\.set was answered \((ECONNRESET|UND_ERR_SOCKET|EPIPE)[^)]*\): whether it took effect is unknown/);
  });

  it("a connection refused: nothing listens there", async () => {
    const port = await listen(() => undefined);
    await new Promise<void>((r) => server!.close(() => r()));
    server = null;
    const client = createApiClient({ url: `http://127.0.0.1:${port}`, token: "t".repeat(20), timeoutMs: 5000 });
    const err = await client.call("status").catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/is not reachable at .* \(ECONNREFUSED\): is `locmesh agent`/);
  });
});
