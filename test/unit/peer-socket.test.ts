/**
 * The peer session's transport (agent/mesh/peer-socket.ts): a write that throws never reaches the
 * session (its JSON-RPC client would take it for the peer's refusal, and requests of a push of
 * several batches made before it would be left unanswered); the connection is dropped instead.
 */
import { WebSocket } from "ws";
import { describe, expect, it } from "vitest";
import { socketTransport } from "../../agent/mesh/peer-socket.js";
import { capturedLog } from "../support/captured-log.js";

function fakeSocket(send: () => void) {
  const calls = { terminated: 0, sent: 0 };
  const ws = {
    readyState: WebSocket.OPEN,
    bufferedAmount: 0,
    send: () => {
      calls.sent++;
      send();
    },
    terminate: () => {
      calls.terminated++;
    },
    close: () => undefined,
  } as unknown as WebSocket;
  return { ws, calls };
}

describe("peer socket transport", () => {
  it("drops the connection, and throws nothing, when a write throws", () => {
    const { ws, calls } = fakeSocket(() => {
      throw new Error("write after end");
    });
    const { log, lines } = capturedLog();
    const t = socketTransport(ws, "192.0.2.1:4000", log, () => true);
    expect(() => t.send("frame")).not.toThrow();
    expect(calls).toEqual({ sent: 1, terminated: 1 });
    expect(lines.filter((l) => /cannot write to the peer connection; dropping it/.test(l.msg))).toHaveLength(1);
  });

  it("writes, and keeps the connection, when the write goes through", () => {
    const { ws, calls } = fakeSocket(() => undefined);
    const t = socketTransport(ws, "192.0.2.1:4000", capturedLog().log, () => true);
    t.send("frame");
    expect(calls).toEqual({ sent: 1, terminated: 0 });
  });
});
