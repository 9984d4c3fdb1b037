/**
 * The web UI's WebSocket JSON-RPC client against a scripted in-memory socket: sign-in, refusal,
 * notifications, redialling after a drop (signing in again and telling listeners to refetch),
 * calls refused while not connected (never sent late), and sign-out during a redial.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { ErrorCode, RpcError } from "../../agent/contract/errors.js";
import { connectRpc, outcomeUnknown } from "../../web/src/api/rpc-client.js";

interface Frame { id: number; method: string; params: { token?: string } }

/** A fake agent: accepts `token`, answers every other call with its method name after `replyMs`, except the `silent` ones. */
function fakeAgent(token: string, replyMs = 0, silent: readonly string[] = []) {
  const sockets: FakeSocket[] = [];
  /** Every method the client sent, in order, on any socket. */
  const sent: string[] = [];
  let up = true;
  /** The agent refuses this page's origin: it closes each new socket with 1008 on its first frame. */
  let originRefused = false;
  class FakeSocket {
    onopen: (() => void) | null = null;
    onmessage: ((ev: { data: string }) => void) | null = null;
    onclose: ((ev?: { code: number }) => void) | null = null;
    readonly refusing = originRefused;
    onerror: (() => void) | null = null;
    closed = false;
    /** 1 open; 2 once the agent began the closing handshake (serverCloses), before onclose. */
    readyState = 1;
    constructor(readonly url: string) {
      sockets.push(this);
      setTimeout(() => (up ? this.onopen?.() : this.onclose?.()), 0);
    }
    send(text: string) {
      const f = JSON.parse(text) as Frame;
      sent.push(f.method);
      if (this.refusing) return void setTimeout(() => this.onclose?.({ code: 1008 }), 0);
      if (silent.includes(f.method)) return; // never answered
      const reply = f.method === "auth.login" && f.params.token !== token
        ? { jsonrpc: "2.0", id: f.id, error: { code: ErrorCode.Unauthorized, message: "wrong token" } }
        : { jsonrpc: "2.0", id: f.id, result: { echo: f.method } };
      setTimeout(() => !this.closed && this.onmessage?.({ data: JSON.stringify(reply) }), replyMs);
    }
    close() {
      // As a browser's: closing a closed socket does nothing.
      if (this.closed) return;
      this.closed = true;
      setTimeout(() => this.onclose?.(), 0);
    }
    /** The agent's close frame arrived: the browser's socket is CLOSING until the handshake ends. */
    serverCloses() {
      this.readyState = 2;
    }
    notify(method: string, params: unknown) {
      this.onmessage?.({ data: JSON.stringify({ jsonrpc: "2.0", method, params }) });
    }
  }
  return {
    WebSocket: FakeSocket as unknown as typeof WebSocket,
    sockets,
    sent,
    setUp: (v: boolean) => (up = v),
    refuseOrigin: () => (originRefused = true),
    changeToken: (t: string) => (token = t),
  };
}

afterEach(() => vi.useRealTimers());

/** A client signed in to `agent` with the right token, recording its states; fake timers from here on. */
async function signedIn(agent: ReturnType<typeof fakeAgent>) {
  const client = await connectRpc({ url: "ws://x/rpc", token: "good-token", WebSocket: agent.WebSocket });
  const states: string[] = [];
  client.onState((s) => states.push(s));
  vi.useFakeTimers();
  return { agent, client, states };
}

describe("web rpc client", () => {
  it("refuses a call at once on a socket the agent is closing (it stops), sending nothing the browser would drop", async () => {
    const agent = fakeAgent("good-token");
    const client = await connectRpc({ url: "ws://x/rpc", token: "good-token", WebSocket: agent.WebSocket });
    agent.sockets[0]!.serverCloses();
    const before = agent.sent.length;
    await expect(client.call("alias.list", {})).rejects.toThrow("not connected to the agent");
    expect(agent.sent.length).toBe(before);
    client.close();
  });

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

  it("marks a call that got no answer (timed out, connection lost) as of unknown outcome, and one the agent refused as not", async () => {
    const { agent, client } = await signedIn(fakeAgent("good-token", 0, ["alias.set"]));
    const slow = client.call("alias.set", { alias: "a@x", target: "sip:t@x" }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(16_000);
    const timedOut = await slow;
    expect(outcomeUnknown(timedOut)).toBe(true);
    expect((timedOut as Error).message).toMatch(/did not answer alias\.set within 15 s, so it may or may not have been done/);
    // (The timeout dropped that socket and dialed again: see the next test.)
    expect(agent.sockets).toHaveLength(2);
    const dropped = client.call("alias.set", { alias: "a@x", target: "sip:t@x" }).catch((e: unknown) => e);
    agent.sockets[1]!.close();
    await vi.advanceTimersByTimeAsync(10);
    expect(outcomeUnknown(await dropped)).toBe(true);
    expect(outcomeUnknown(new RpcError(ErrorCode.Conflict, "alias changed meanwhile"))).toBe(false);
    client.close();
  });

  it("takes a call left unanswered for the timeout for a dead connection: drops it and dials again, without waiting for TCP (found by review)", async () => {
    const { agent, client, states } = await signedIn(fakeAgent("good-token", 0, ["cluster.status"]));
    const other = client.call("alias.list", {}); // answered on the same socket meanwhile
    const hung = client.call("cluster.status", {}).catch((e: unknown) => e);
    const later = client.call("cluster.status", {}).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(10);
    expect(await other).toEqual({ echo: "alias.list" });
    await vi.advanceTimersByTimeAsync(15_000);
    expect((await hung) as RpcError).toMatchObject({ code: ErrorCode.TemporaryFailure, message: "the agent did not answer cluster.status within 15 s" });
    // Every call still waiting on that socket fails now, as a lost connection: a read is only to
    // be asked again (no "a change may have been made").
    expect(await later).toMatchObject({ code: ErrorCode.TemporaryFailure, message: "lost the connection to the agent before it answered; the page asks again once the badge shows live" });
    expect(outcomeUnknown(await later)).toBe(false);
    expect(agent.sockets[0]!.closed).toBe(true);
    await vi.advanceTimersByTimeAsync(600);
    expect(states).toEqual(["reconnecting", "open", "resumed"]);
    expect(agent.sockets).toHaveLength(2);
    // A call on the new socket is not failed by the old one's close, however late it comes.
    const fresh = client.call("alias.list", {});
    agent.sockets[0]!.onclose?.();
    await vi.advanceTimersByTimeAsync(10);
    expect(await fresh).toEqual({ echo: "alias.list" });
    expect(client.state()).toBe("open");
    client.close();
  });

  it("says that the agent refuses this page's origin (close 1008 before any answer), not that the token was wrong", async () => {
    class Refusing {
      onopen: (() => void) | null = null;
      onmessage: ((ev: { data: string }) => void) | null = null;
      onclose: ((ev: { code: number }) => void) | null = null;
      onerror: (() => void) | null = null;
      constructor(readonly url: string) {
        setTimeout(() => this.onopen?.(), 0);
      }
      send() {
        setTimeout(() => this.onclose?.({ code: 1008 }), 0); // the agent closed it as it opened
      }
      close() {}
    }
    const err = await connectRpc({ url: "ws://x/rpc", token: "good-token", WebSocket: Refusing as unknown as typeof WebSocket }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect((err as RpcError).code).not.toBe(ErrorCode.Unauthorized);
    expect((err as RpcError).message).toMatch(/^the agent refuses web pages at this page's origin: open the web UI by the agent's IP address .*api\.allowedOrigins/);
  });

  it("rejects a wrong token with Unauthorized", async () => {
    const agent = fakeAgent("good-token");
    const err = await connectRpc({ url: "ws://x/rpc", token: "bad", WebSocket: agent.WebSocket }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect((err as RpcError).code).toBe(ErrorCode.Unauthorized);
  });

  it("redials after a drop, signs in again and says it resumed; a token refused meanwhile signs out", async () => {
    const { agent, client, states } = await signedIn(fakeAgent("good-token"));
    agent.setUp(false);
    agent.sockets[0]!.close();
    await vi.advanceTimersByTimeAsync(10);
    expect(client.state()).toBe("reconnecting");
    // A call while reconnecting fails at once and is never sent: a write sent late would get a
    // fresh stamp and override whatever changed meanwhile.
    await expect(client.call("alias.set", { alias: "a@x", target: "sip:t@x" })).rejects.toMatchObject({
      code: ErrorCode.TemporaryFailure, message: "not connected to the agent; try again when the badge shows live",
    });
    await vi.advanceTimersByTimeAsync(600); // first redial fails: agent still down
    agent.setUp(true);
    await vi.advanceTimersByTimeAsync(1100); // second redial, after back-off
    expect(states).toEqual(["reconnecting", "open", "resumed"]);
    expect(agent.sent).not.toContain("alias.set");
    const listed = client.call("alias.list", {});
    await vi.advanceTimersByTimeAsync(10);
    expect(await listed).toEqual({ echo: "alias.list" });

    agent.changeToken("rotated-token");
    agent.sockets.at(-1)!.close();
    await vi.advanceTimersByTimeAsync(700);
    expect(client.state()).toBe("refused");
    await expect(client.call("alias.list", {})).rejects.toMatchObject({ code: ErrorCode.Unauthorized });
    client.close();
  });

  it("says why it is reconnecting and when it tries next; Try now dials at once instead of waiting out the back-off", async () => {
    const { agent, client, states } = await signedIn(fakeAgent("good-token"));
    /** Why, and how long until the next dial (within the few ms the fake socket's events take). */
    const down = () => {
      const d = client.reconnecting();
      return d && { why: d.why, inMs: d.nextTryAt === null ? null : Math.ceil((d.nextTryAt - Date.now()) / 50) * 50 };
    };
    expect(client.reconnecting()).toBeNull();
    agent.setUp(false);
    // The agent stopping closes the page's socket with 1001.
    agent.sockets[0]!.onclose?.({ code: 1001 });
    expect(down()).toEqual({ why: "the agent is stopping (or restarting)", inMs: 500 });
    await vi.advanceTimersByTimeAsync(510); // the first redial fails: the agent is still down
    expect(down()).toEqual({ why: "cannot reach the agent at ws://x/rpc", inMs: 1000 });
    await vi.advanceTimersByTimeAsync(1010);
    await vi.advanceTimersByTimeAsync(2010);
    const dialled = agent.sockets.length;
    expect(down()).toEqual({ why: "cannot reach the agent at ws://x/rpc", inMs: 4000 });
    // The agent is back: Try now dials at once, not 4 s later.
    agent.setUp(true);
    client.retryNow();
    expect(down()).toEqual({ why: "cannot reach the agent at ws://x/rpc", inMs: null });
    client.retryNow(); // a dial is under way: nothing more
    await vi.advanceTimersByTimeAsync(10);
    expect(agent.sockets.length).toBe(dialled + 1);
    expect(client.state()).toBe("open");
    expect(client.reconnecting()).toBeNull();
    expect(states).toEqual(["reconnecting", "open", "resumed"]);
    // The back-off starts again from 500 ms; a drop without a close code is said as a drop.
    agent.sockets.at(-1)!.close();
    await vi.advanceTimersByTimeAsync(1);
    expect(down()).toEqual({ why: "the connection to the agent dropped", inMs: 500 });
    client.retryNow();
    await vi.advanceTimersByTimeAsync(10);
    expect(client.state()).toBe("open");
    client.retryNow(); // not reconnecting: nothing
    await vi.advanceTimersByTimeAsync(1000);
    expect(agent.sockets.length).toBe(dialled + 2);
    client.close();
  });

  it("stops redialling once the agent refuses this page's origin (restarted with other api.allowedOrigins), and says why", async () => {
    const { agent, client, states } = await signedIn(fakeAgent("good-token"));
    agent.refuseOrigin();
    agent.sockets[0]!.close();
    await vi.advanceTimersByTimeAsync(700);
    expect(states).toEqual(["reconnecting", "refused"]);
    expect(client.refusal()?.message).toMatch(/^the agent refuses web pages at this page's origin: .*api\.allowedOrigins/);
    expect(client.refusal()?.code).not.toBe(ErrorCode.Unauthorized);
    // It used to dial again every 10 s, refused each time, the badge saying "reconnecting".
    const dialled = agent.sockets.length;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(agent.sockets.length).toBe(dialled);
    client.close();
  });

  // Signed out while a redial was under way, the old client must stay closed: a redial that then
  // signs in would hold a socket nobody uses, and one refused would report "refused", which the
  // app takes as "sign out" (of whatever session it has by then).
  it.each([
    ["signs in", "good-token"],
    ["is refused", "rotated-token"],
  ])("stays closed, telling nobody, when signed out during a redial that then %s", async (_what, agentToken) => {
    const { agent, client, states } = await signedIn(fakeAgent("good-token", 50));
    agent.changeToken(agentToken);
    agent.sockets[0]!.close();
    await vi.advanceTimersByTimeAsync(520); // the redial's socket is open, its auth.login unanswered
    expect(agent.sockets).toHaveLength(2);
    expect(agent.sent.at(-1)).toBe("auth.login");
    client.close();
    await vi.advanceTimersByTimeAsync(1000);
    expect(states).toEqual(["reconnecting", "closed"]);
    expect(client.state()).toBe("closed");
    expect(agent.sockets.every((s) => s.closed)).toBe(true);
    await expect(client.call("alias.list", {})).rejects.toMatchObject({ message: "this session is signed out; sign in again" });
  });
});
