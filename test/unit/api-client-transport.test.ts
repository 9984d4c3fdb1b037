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

  // The review's run: `alias add` against a paused agent timed out saying only that it "may be
  // overloaded or stuck"; the agent resumed and the alias was set.
  it("a write that times out: the outcome is unknown, and where to check it once the agent answers", async () => {
    const writes: [string, unknown, string][] = [
      ["alias.set", { alias: "sip:bob@example.com", target: "sip:alice@example.com" }, "`locmesh alias show sip:bob@example.com`"],
      ["alias.remove", { alias: "sip:bob@example.com" }, "`locmesh alias show sip:bob@example.com`"],
      ["location.publish", { edits: [{ op: "upsert", binding: { aor: "sip:alice@example.com", contact: "sip:a@192.0.2.1", expires: 0 } }] }, "`locmesh location show sip:alice@example.com`"],
      ["location.publish", { edits: [{ op: "remove-aor", aor: "sip:alice@example.com" }] }, "`locmesh location show sip:alice@example.com`"],
      ["cluster.resync", {}, "`locmesh status`"],
      ["kamailio.reload", {}, "`locmesh status`"],
    ];
    const port = await listen(() => undefined); // takes each request, never answers (a paused agent)
    const sockets: import("node:net").Socket[] = [];
    server!.on("connection", (socket) => sockets.push(socket));
    const client = createApiClient({ url: `http://127.0.0.1:${port}`, token: "t".repeat(20), timeoutMs: 100 });
    for (const [method, params, check] of writes) {
      const err = await client.call(method, params).catch((e: unknown) => e);
      expect(err, method).toBeInstanceOf(AgentUnreachableError); // exit 3
      expect((err as Error).message, method).toBe(
        `the locmesh agent or hub at http://127.0.0.1:${port} did not answer ${method} within 100 ms (overloaded or stuck? see its log): whether it took effect is unknown; check once it answers (${check})`,
      );
    }
    // A read that times out changed nothing.
    const err = await client.call("cluster.status").catch((e: unknown) => e);
    expect((err as Error).message).toBe(`the locmesh agent or hub at http://127.0.0.1:${port} did not answer cluster.status within 100 ms; it may be overloaded or stuck (see its log)`);
    client.close();
    for (const socket of sockets) socket.destroy();
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
