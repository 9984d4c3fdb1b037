/**
 * The failback check of a preferred hub (agent/mesh/hub-probe.ts) against a WebSocket server on
 * 127.0.0.1 that sends a challenge as a hub does: one of another protocol version counts as not
 * taking sessions, since the handshake would refuse it (4002).
 */
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { PROTOCOL_VERSION, PeerMethod } from "../../agent/contract/protocol.js";
import { probeHub } from "../../agent/mesh/hub-probe.js";

let server: WebSocketServer | null = null;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

async function hubSending(protocol: number): Promise<string> {
  server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  server.on("connection", (ws) => ws.send(JSON.stringify({ jsonrpc: "2.0", method: PeerMethod.Challenge, params: { protocol, nodeId: "hub-a", nonce: "n".repeat(32) } })));
  await new Promise<void>((r) => server!.once("listening", () => r()));
  return `ws://127.0.0.1:${(server.address() as { port: number }).port}/peer`;
}

describe("probeHub", () => {
  it("takes a hub whose challenge speaks this agent's protocol", async () => {
    expect(await probeHub(await hubSending(PROTOCOL_VERSION), { timeoutMs: 2000, maxFrameBytes: 65_536 })).toBe("hub-a");
  });

  it("does not take a hub of another protocol version, saying which to upgrade", async () => {
    await expect(probeHub(await hubSending(PROTOCOL_VERSION + 1), { timeoutMs: 2000, maxFrameBytes: 65_536 }))
      .rejects.toThrow(`it speaks protocol ${PROTOCOL_VERSION + 1}, this agent ${PROTOCOL_VERSION}: upgrade the older one`);
  });
});
