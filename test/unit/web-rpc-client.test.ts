/**
 * The web UI's WebSocket JSON-RPC client against a scripted in-memory socket: sign-in, refusal,
 * notifications, and redialling after a drop (signing in again and telling listeners to refetch).
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { ErrorCode, RpcError } from "../../agent/contract/errors.js";
import { connectRpc } from "../../web/src/api/rpc-client.js";

interface Frame { id: number; method: string; params: { token?: string } }

/** A fake agent: accepts `token`, answers every other call with its method name. */
function fakeAgent(token: string) {
  const sockets: FakeSocket[] = [];
  let up = true;
  class FakeSocket {
    onopen: (() => void) | null = null;
    onmessage: ((ev: { data: string }) => void) | null = null;
    onclose: (() => void) | null = null;
    onerror: (() => void) | null = null;
    constructor(readonly url: string) {
      sockets.push(this);
      setTimeout(() => (up ? this.onopen?.() : this.onclose?.()), 0);
    }
    send(text: string) {
      const f = JSON.parse(text) as Frame;
      const reply = f.method === "auth.login" && f.params.token !== token
        ? { jsonrpc: "2.0", id: f.id, error: { code: ErrorCode.Unauthorized, message: "wrong token" } }
        : { jsonrpc: "2.0", id: f.id, result: { echo: f.method } };
      setTimeout(() => this.onmessage?.({ data: JSON.stringify(reply) }), 0);
    }
    close() {
      setTimeout(() => this.onclose?.(), 0);
    }
    notify(method: string, params: unknown) {
      this.onmessage?.({ data: JSON.stringify({ jsonrpc: "2.0", method, params }) });
    }
  }
  return {
    WebSocket: FakeSocket as unknown as typeof WebSocket,
    sockets,
    setUp: (v: boolean) => (up = v),
    changeToken: (t: string) => (token = t),
  };
}

afterEach(() => vi.useRealTimers());

describe("web rpc client", () => {
  it("signs in, subscribes, calls and hears notifications", async () => {
    const agent = fakeAgent("good-token");
    const client = await connectRpc({ url: "ws://x/rpc", token: "good-token", WebSocket: agent.WebSocket });
    expect(client.state()).toBe("open");
    expect(await client.call("alias.list", {})).toEqual({ echo: "alias.list" });
    const heard: string[] = [];
    client.onNotification((n) => heard.push(n.method));
    agent.sockets[0]!.notify("changes.applied", { changes: [] });
    expect(heard).toEqual(["changes.applied"]);
    client.close();
  });

  it("rejects a wrong token with Unauthorized", async () => {
    const agent = fakeAgent("good-token");
    const err = await connectRpc({ url: "ws://x/rpc", token: "bad", WebSocket: agent.WebSocket }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect((err as RpcError).code).toBe(ErrorCode.Unauthorized);
  });

  it("redials after a drop, signs in again and says it resumed; a token refused meanwhile signs out", async () => {
    const agent = fakeAgent("good-token");
    const client = await connectRpc({ url: "ws://x/rpc", token: "good-token", WebSocket: agent.WebSocket });
    const states: string[] = [];
    client.onState((s) => states.push(s));
    vi.useFakeTimers();
    agent.setUp(false);
    agent.sockets[0]!.close();
    await vi.advanceTimersByTimeAsync(10);
    expect(client.state()).toBe("reconnecting");
    const pending = client.call("alias.list", {});
    await vi.advanceTimersByTimeAsync(600); // first redial fails: agent still down
    agent.setUp(true);
    await vi.advanceTimersByTimeAsync(1100); // second redial, after back-off
    expect(await pending).toEqual({ echo: "alias.list" });
    expect(states).toEqual(["reconnecting", "open", "resumed"]);

    agent.changeToken("rotated-token");
    agent.sockets.at(-1)!.close();
    await vi.advanceTimersByTimeAsync(700);
    expect(client.state()).toBe("refused");
    await expect(client.call("alias.list", {})).rejects.toMatchObject({ code: ErrorCode.Unauthorized });
    client.close();
  });
});
