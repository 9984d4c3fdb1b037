/**
 * The agent's local API on a real agent process: token checks over HTTP and WebSocket, parameter
 * validation, the body size limit, the location and alias round trip with paging, change
 * subscriptions, and the Prometheus and health endpoints.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../agent/contract/errors.js";
import type { ListResult } from "../../agent/contract/api-protocol.js";
import type { Change, Location } from "../../agent/contract/records.js";
import { AgentProcess, RpcCallError, freePort, waitFor } from "../support/agent-process.js";
import { RpcWire, type WireMessage } from "../support/rpc-wire.js";

const TOKEN = "local-api-token-0123456789abcdef";
const MAX_BODY = 16_384;
let dir: string;
let agent: AgentProcess;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-local-api-"));
  agent = new AgentProcess({
    id: "api1", meshPort: await freePort(), apiPort: await freePort(), dir: join(dir, "api1"),
    secret: "local-api-mesh-secret-0123456789", token: TOKEN, peers: [],
    config: { api: { maxMessageBytes: MAX_BODY } },
  });
  await agent.start();
});

afterAll(async () => {
  await agent?.stop();
  if (dir && !process.env["LOCMESH_KEEP_TEST_DIRS"]) rmSync(dir, { recursive: true, force: true });
});

async function post(body: string, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }) {
  const res = await fetch(`${agent.apiUrl}/rpc`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
  return { status: res.status, body: (await res.json()) as WireMessage };
}

const rpcBody = (method: string, params: unknown) => JSON.stringify({ jsonrpc: "2.0", id: 7, method, params });

/** The JSON-RPC error a call is answered with; fails the test if it succeeds. */
async function callError(method: string, params: unknown): Promise<RpcCallError> {
  const err = await agent.call(method, params).then(() => null, (e: unknown) => e);
  expect(err, `${method} should fail`).toBeInstanceOf(RpcCallError);
  return err as RpcCallError;
}

const wsUrl = () => `ws://127.0.0.1:${agent.spec.apiPort}/rpc`;
const expiresIn = (s: number) => Math.floor(Date.now() / 1000) + s;
const aliasNames = async () => (await agent.call<ListResult<{ alias: string }>>("alias.list", { limit: 1000 })).items.map((a) => a.alias);

describe("HTTP authentication", () => {
  it("answers a missing or wrong token with 401 and a JSON-RPC error, and does nothing", async () => {
    const failuresBefore = await agent.metric("locmesh_auth_failures_total", { reason: "api wrong token" });
    const set = rpcBody("alias.set", { alias: "sip:sneaky@example.com", target: "sip:x@example.com" });
    const attempts: Record<string, string>[] = [{}, { authorization: "Bearer not-the-token" }, { authorization: TOKEN }];
    for (const headers of attempts) {
      const res = await post(set, headers);
      expect(res.status).toBe(401);
      expect(res.body).toMatchObject({ jsonrpc: "2.0", id: null, error: { code: ErrorCode.Unauthorized } });
      expect(res.body.error?.message).toMatch(/token/);
    }
    expect(await agent.metric("locmesh_auth_failures_total", { reason: "api wrong token" })).toBe(failuresBefore + 1);
    expect(await aliasNames()).not.toContain("sneaky@example.com");
  });
});

describe("WebSocket authentication", () => {
  it("without a token, only auth.login is served until it succeeds", async () => {
    const ws = await RpcWire.open(wsUrl());
    try {
      expect((await ws.request("alias.list", {})).error?.code).toBe(ErrorCode.Unauthorized);
      expect((await ws.request("alias.set", { alias: "sip:ws@example.com", target: "sip:x@example.com" })).error?.code).toBe(ErrorCode.Unauthorized);
      // Signed out, an unknown method gets the sign-in error too, not the list of methods.
      expect((await ws.request("alias.frobnicate", {})).error?.code).toBe(ErrorCode.Unauthorized);
      expect((await ws.request("auth.login", { token: TOKEN })).result).toEqual({ ok: true });
      expect((await ws.request("alias.list", {})).result).toMatchObject({ items: expect.any(Array) });
    } finally {
      await ws.close();
    }
    expect(await aliasNames()).not.toContain("ws@example.com");
  });

  it("takes one sign-in attempt per connection: a refused one is answered, then the connection closed; a new one signs in", async () => {
    const ws = await RpcWire.open(wsUrl());
    // A batch of guesses: the first is checked, the rest refused unchecked (one guess per upgrade).
    ws.sendText(JSON.stringify(["wrong-token-0123456789", "wrong-token-9876543210", TOKEN].map((token, i) => ({ jsonrpc: "2.0", id: 100 + i, method: "auth.login", params: { token } }))));
    expect(await ws.closed).toBe(4003);
    const answers = ws.messages.flatMap((m) => (Array.isArray(m) ? m : [m])) as WireMessage[];
    expect(answers.map((a) => a.error?.code)).toEqual([ErrorCode.Unauthorized, ErrorCode.Unauthorized, ErrorCode.Unauthorized]);
    expect(answers[2]!.error?.message).toBe("sign-in refused on this connection; open a new one to try again");
    const again = await RpcWire.open(wsUrl());
    try {
      expect((await again.request("auth.login", { token: TOKEN })).result).toEqual({ ok: true });
    } finally {
      await again.close();
    }
  });

  it("a Bearer header signs the socket in; a wrong one does not", async () => {
    const good = await RpcWire.open(wsUrl(), { headers: { authorization: `Bearer ${TOKEN}` } });
    const bad = await RpcWire.open(wsUrl(), { headers: { authorization: "Bearer nope-nope-nope-nope" } });
    try {
      expect((await good.request("cluster.status", {})).result).toMatchObject({ nodeId: "api1" });
      expect((await bad.request("cluster.status", {})).error?.code).toBe(ErrorCode.Unauthorized);
    } finally {
      await Promise.all([good.close(), bad.close()]);
    }
  });
});

/** A POST to /rpc sent from `localAddress` (another loopback address than the host's own 127.0.0.1). */
function postFrom(localAddress: string, body: string, token: string) {
  return new Promise<{ status: number; retryAfter: string | undefined; body: WireMessage }>((resolve, reject) => {
    const req = request(`${agent.apiUrl}/rpc`, {
      method: "POST", localAddress,
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (d: string) => (text += d)).on("end", () => {
        resolve({ status: res.statusCode!, retryAfter: res.headers["retry-after"], body: JSON.parse(text) as WireMessage });
      });
    });
    req.once("error", reject).end(body);
  });
}

describe("token guessing", () => {
  it("holds off an address after 10 wrong tokens for a minute, right token or not; other addresses and the host's own are not held", async () => {
    const guesser = "127.0.0.2";
    const status = rpcBody("cluster.status", {});
    const lockedBefore = await agent.metric("locmesh_auth_failures_total", { reason: "api locked out" });
    for (let i = 0; i < 10; i++) {
      expect((await postFrom(guesser, status, `guess-${i}-0123456789abcdef`)).status).toBe(401);
    }
    const held = await postFrom(guesser, status, TOKEN);
    expect(held.status).toBe(429);
    expect(Number(held.retryAfter)).toBeGreaterThan(50);
    expect(held.body.error).toMatchObject({ code: ErrorCode.TooManyAttempts, data: { retryAfterSeconds: Number(held.retryAfter) } });
    expect(held.body.error?.message).toMatch(/too many wrong API tokens from 127\.0\.0\.2; try again in \d+ s/);

    // Over WebSocket the same address is held off too, by its Bearer header and by auth.login.
    const ws = await RpcWire.open(wsUrl(), { localAddress: guesser, headers: { authorization: `Bearer ${TOKEN}` } });
    try {
      expect((await ws.request("cluster.status", {})).error?.code).toBe(ErrorCode.Unauthorized);
      expect((await ws.request("auth.login", { token: TOKEN })).error?.code).toBe(ErrorCode.TooManyAttempts);
    } finally {
      await ws.close();
    }
    expect(await agent.metric("locmesh_auth_failures_total", { reason: "api locked out" })).toBe(lockedBefore + 2);

    // Another address, and the host's own after as many wrong tokens, still get in.
    expect((await postFrom("127.0.0.3", status, TOKEN)).status).toBe(200);
    for (let i = 0; i < 12; i++) expect((await post(status, { authorization: `Bearer own-guess-${i}-0123456789` })).status).toBe(401);
    expect((await post(status)).status).toBe(200);
    // The agent writes its log without waiting, so the line may land a moment after the 429.
    await waitFor("the lockout warning in the agent's log", async () => /too many wrong API tokens from this address/.test(readFileSync(agent.logPath, "utf8")), 5000);
  });
});

describe("WebSockets waiting for sign-in", () => {
  it("takes 16 per client: the 17th is closed with 1013 until one signs in or goes; the host's own are not capped", async () => {
    const client = "127.0.0.4";
    const opened: RpcWire[] = [];
    try {
      for (let i = 0; i < 16; i++) opened.push(await RpcWire.open(wsUrl(), { localAddress: client }));
      const refused = await RpcWire.open(wsUrl(), { localAddress: client });
      expect(await refused.closed).toBe(1013);
      // Another client, and the host itself, are not held by this one's sockets.
      const other = await RpcWire.open(wsUrl(), { localAddress: "127.0.0.5" });
      expect((await other.request("auth.login", { token: TOKEN })).result).toBeDefined();
      await other.close();
      const own: RpcWire[] = [];
      for (let i = 0; i < 20; i++) own.push(await RpcWire.open(wsUrl()));
      expect((await own[19]!.request("auth.login", { token: TOKEN })).result).toBeDefined();
      await Promise.all(own.map((w) => w.close()));
      // One signs in: its place is free for another signed-out socket; then it is full again.
      expect((await opened[0]!.request("auth.login", { token: TOKEN })).result).toBeDefined();
      const next = await RpcWire.open(wsUrl(), { localAddress: client });
      expect((await next.request("auth.login", { token: TOKEN })).result).toBeDefined();
      opened.push(next);
      opened.push(await RpcWire.open(wsUrl(), { localAddress: client }));
      expect(await (await RpcWire.open(wsUrl(), { localAddress: client })).closed).toBe(1013);
      // One that goes away frees its place too.
      await opened[1]!.close();
      await expect.poll(async () => {
        const w = await RpcWire.open(wsUrl(), { localAddress: client });
        const code = await Promise.race([w.closed, new Promise<number>((r) => setTimeout(() => r(0), 300))]);
        if (code === 0) opened.push(w);
        return code;
      }).toBe(0);
      await waitFor("the refusal in the agent's log", async () => /refused a WebSocket: too many from this client are waiting for sign-in/.test(readFileSync(agent.logPath, "utf8")), 5000);
    } finally {
      await Promise.all(opened.map((w) => w.close()));
    }
  });
});

describe("validation and limits", () => {
  it("answers invalid params with -32602 and a message naming the field", async () => {
    const cases: [string, unknown, RegExp][] = [
      ["alias.set", { alias: "sip:bob@example.com", target: "not a uri" }, /target/],
      ["alias.set", { alias: "bob", target: "sip:b@example.com" }, /alias/],
      ["location.publish", { edits: [{ op: "upsert", binding: { aor: "sip:a@example.com", contact: "sip:a@h", expires: "soon" } }] }, /edits\.0\.binding\.expires/],
      ["location.publish", { edits: [{ op: "upsert", binding: { aor: "sip:a@example.com", contact: "<sip:a@h>", expires: 1 } }] }, /edits\.0\.binding\.contact/],
      ["location.publish", { edits: [] }, /edits/],
      ["location.list", { limit: 5000 }, /limit/],
      ["alias.list", { after: "not a cursor" }, /after/],
      ["alias.list", { bogus: 1 }, /bogus/],
      // Values Kamailio would store and then fail on (the hostile-input dry run): nothing of them is journaled.
      ...([
        [{ q: -0.5 }, /edits\.0\.binding\.q: q -0\.5 must be -1 \(none given\) or from 0 to 1/],
        [{ path: "<sip:127.0.0.1:18065;lr>\r\nX-Evil: 1" }, /edits\.0\.binding\.path: path .* must be <sip:…> entries separated by commas/],
        [{ received: "not a uri" }, /edits\.0\.binding\.received: received "not a uri" must be empty or a sip: URI/],
        [{ contact: "sip:a@[::1" }, /edits\.0\.binding\.contact: SIP URI "sip:a@\[::1" has no host Kamailio can send to/],
        [{ contact: "sip:x@h:99999" }, /has port 99999, outside 1-65535/],
      ] as const).map(([over, field]): [string, unknown, RegExp] => [
        "location.publish", { edits: [{ op: "upsert", binding: { aor: "sip:hostile@example.com", contact: "sip:hostile@192.0.2.1", expires: 0, ...over } }] }, field,
      ]),
      ["alias.set", { alias: "sip:nohost@example.com", target: "sip:x@" }, /target: SIP URI "sip:x@" has no host/],
    ];
    for (const [method, params, field] of cases) {
      const err = await callError(method, params);
      expect(err.code, `${method} ${JSON.stringify(params)}`).toBe(ErrorCode.InvalidParams);
      expect(err.message).toMatch(field);
    }
    expect((await callError("alias.frobnicate", {})).code).toBe(ErrorCode.MethodNotFound);
    expect((await agent.call<ListResult<unknown>>("alias.list", { search: "bob" })).total).toBe(0);
    expect((await agent.call<{ bindings: unknown[] }>("location.lookup", { aor: "hostile@example.com" })).bindings).toEqual([]);
    expect((await agent.call<ListResult<unknown>>("alias.list", { search: "nohost" })).total).toBe(0);
  });

  it("applies one call's edits in order: a remove-aor also removes what the same call upserted before it", async () => {
    const aor = "ordered@example.com";
    const up = (contact: string) => ({ op: "upsert", binding: { aor, contact, expires: 0 } });
    await agent.call("location.publish", { edits: [up("sip:e1@192.0.2.1")] });
    await agent.call("location.publish", { edits: [up("sip:e2@192.0.2.2"), { op: "remove-aor", aor }, up("sip:e3@192.0.2.3")] });
    const held = await agent.call<{ bindings: { contact: string }[] }>("location.lookup", { aor });
    expect(held.bindings.map((b) => b.contact)).toEqual(["sip:e3@192.0.2.3"]);
    await agent.call("location.publish", { edits: [{ op: "remove-aor", aor }] }); // the tests below count the live bindings
  });

  it("does not count expired bindings as removed: nothing live, nothing removed", async () => {
    const aor = "lapsed@example.com";
    const expires = Math.floor(Date.now() / 1000) + 1;
    await agent.call("location.publish", { edits: [{ op: "upsert", binding: { aor, contact: "sip:l1@192.0.2.1", expires } }] });
    await waitFor("the binding to expire", async () => (await agent.call<{ bindings: unknown[] }>("location.lookup", { aor })).bindings.length === 0, 5000, 100);
    expect(await agent.call("location.publish", { edits: [{ op: "remove-aor", aor }] })).toEqual({ accepted: 0 });
    expect(await agent.call("location.publish", { edits: [{ op: "remove", aor, contact: "sip:l1@192.0.2.1" }] })).toEqual({ accepted: 0 });
  });

  it("answers invalid JSON with a parse error and an oversize body with 413", async () => {
    const garbled = await post("{ nope");
    expect(garbled.status).toBe(200);
    expect(garbled.body.error?.code).toBe(ErrorCode.ParseError);

    // Just over the limit, and far over it on a reused connection: a client still uploading must
    // get the 413, not a reset (an agent that stops reading makes the kernel reset the socket).
    const MiB = 1024 * 1024;
    for (const size of [MAX_BODY, 2 * MiB, 24 * MiB, 2 * MiB, 24 * MiB]) {
      const big = await post(rpcBody("alias.set", { alias: `sip:${"b".repeat(size)}@example.com`, target: "sip:x@example.com" }));
      expect(big.status, `${size}-byte alias`).toBe(413);
      expect(big.body.error?.code).toBe(ErrorCode.TooLarge);
    }
    expect((await agent.call<{ nodeId: string }>("cluster.status")).nodeId).toBe("api1");
  });
});

describe("other methods on /rpc", () => {
  it("answers GET without a WebSocket upgrade, and PUT, with 405, Allow: POST and what to send instead", async () => {
    for (const method of ["GET", "PUT", "DELETE"]) {
      const res = await fetch(`${agent.apiUrl}/rpc`, { method, headers: { authorization: `Bearer ${TOKEN}` } });
      expect(res.status, method).toBe(405);
      expect(res.headers.get("allow")).toBe("POST");
      const { error } = (await res.json()) as { error: string };
      expect(error).toMatch(/the API is JSON-RPC 2\.0 by POST \/rpc .*, or over a WebSocket at \/rpc/);
      if (method === "GET") expect(error).toMatch(/^GET \/rpc without a WebSocket upgrade: /);
    }
    // Other paths are still not found, and the WebSocket at /rpc still opens.
    expect((await fetch(`${agent.apiUrl}/nope`, { method: "PUT" })).status).toBe(404);
    const ws = await RpcWire.open(wsUrl());
    await ws.close();
  });
});

describe("notifications and batches", () => {
  it("carries out a notification (no id) and answers 204 with no body, its error included; answers a batch with an array", async () => {
    const notify = (method: string, params: unknown) =>
      fetch(`${agent.apiUrl}/rpc`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ jsonrpc: "2.0", method, params }) });
    const ok = await notify("alias.set", { alias: "sip:notified@example.com", target: "sip:x@example.com" });
    expect(ok.status).toBe(204);
    expect(await ok.text()).toBe("");
    expect(await aliasNames()).toContain("notified@example.com");
    const failed = await notify("alias.set", { alias: "sip:self@example.com", target: "sip:self@example.com" });
    expect(failed.status).toBe(204);
    expect(await failed.text()).toBe("");
    expect(await aliasNames()).not.toContain("self@example.com");

    const batch = await fetch(`${agent.apiUrl}/rpc`, {
      method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify([
        { jsonrpc: "2.0", id: 1, method: "alias.set", params: { alias: "sip:batched@example.com", target: "sip:y@example.com" } },
        { jsonrpc: "2.0", id: 2, method: "alias.lookup", params: { alias: "sip:nobody@example.com" } },
        { jsonrpc: "2.0", id: 3, method: "alias.set", params: { alias: "sip:b2@example.com" } },
      ]),
    });
    expect(batch.status).toBe(200);
    const answers = (await batch.json()) as WireMessage[];
    expect(answers.map((a) => [a.id, a.error?.code ?? null])).toEqual([[1, null], [2, null], [3, ErrorCode.InvalidParams]]);
    expect(await aliasNames()).toContain("batched@example.com");
  });
});

describe("frames that are not requests", () => {
  it("answers them with Invalid Request over WebSocket, even before sign-in, and keeps running", async () => {
    const pid = agent.child?.pid;
    const anon = await RpcWire.open(wsUrl());
    try {
      // `[null]` once threw inside json-rpc-2.0 and, unhandled, killed the agent.
      for (const frame of ["[null]", "5", "{}", "[]", '{"jsonrpc":"2.0","id":{"x":1},"method":"alias.set","params":{"alias":"sip:idobj@example.com","target":"sip:t@example.com"}}']) {
        anon.sendText(frame);
      }
      await waitForAnswers(anon, 5);
      for (const m of anon.messages.flatMap((x) => (Array.isArray(x) ? (x as WireMessage[]) : [x]))) {
        expect(m.error?.code, JSON.stringify(m)).toBe(ErrorCode.InvalidRequest);
        expect(m.id).toBeNull();
      }
    } finally {
      await anon.close();
    }
    const res = await post("[null]");
    expect(res.status).toBe(200);
    expect(res.body).toEqual([expect.objectContaining({ id: null, error: expect.objectContaining({ code: ErrorCode.InvalidRequest }) })]);
    // An id that is not a string, number or null is refused before the method runs.
    const objectId = await post('{"jsonrpc":"2.0","id":{"x":1},"method":"alias.set","params":{"alias":"sip:idobj@example.com","target":"sip:t@example.com"}}');
    expect(objectId.body.error?.code).toBe(ErrorCode.InvalidRequest);
    expect(await aliasNames()).not.toContain("idobj@example.com");
    expect(agent.child?.exitCode).toBeNull();
    expect(agent.child?.pid).toBe(pid);
  });

  it("answers JSON that is no request (null, a number) with Invalid Request, not a parse error, over HTTP and WebSocket", async () => {
    for (const body of ["null", " null ", "5", '"x"']) {
      const res = await post(body);
      expect(res.status, body).toBe(200);
      expect(res.body.error, body).toEqual({ code: ErrorCode.InvalidRequest, message: "invalid request: a request is a JSON object" });
    }
    const ws = await RpcWire.open(wsUrl());
    try {
      ws.sendText("null");
      await waitForAnswers(ws, 1);
      expect(ws.messages[0]?.error?.code).toBe(ErrorCode.InvalidRequest);
    } finally {
      await ws.close();
    }
  });

  it("answers a binary WebSocket frame, even one holding a valid request, by saying to send text frames, and keeps the socket", async () => {
    const ws = await RpcWire.open(wsUrl(), { headers: { authorization: `Bearer ${TOKEN}` } });
    try {
      ws.ws.send(Buffer.from(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "cluster.status", params: {} })), { binary: true });
      await waitForAnswers(ws, 1);
      expect(ws.messages[0]).toMatchObject({ id: null, error: { code: ErrorCode.InvalidRequest } });
      expect(ws.messages[0]?.error?.message).toMatch(/binary WebSocket frame; send each JSON-RPC request or batch as a text frame/);
      expect((await ws.request("cluster.status", {})).error).toBeUndefined();
    } finally {
      await ws.close();
    }
  });
});

async function waitForAnswers(wire: RpcWire, n: number): Promise<void> {
  const until = Date.now() + 5000;
  while (wire.messages.length < n && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  expect(wire.messages.length).toBe(n);
}

describe("locations and aliases", () => {
  it("publishes, looks up, lists page by page and removes a whole AoR", async () => {
    const edits = [
      { aor: "sip:Alice@Example.com", contact: "sip:alice@192.0.2.1:5060", expires: expiresIn(600), q: 0.5, callid: "a1", cseq: 3, userAgent: "Deskphone" },
      { aor: "sip:alice@example.com", contact: "sip:alice@192.0.2.2:5060", expires: expiresIn(600) },
      { aor: "sip:bob@example.com", contact: "sip:bob@192.0.2.3:5060", expires: expiresIn(600) },
      { aor: "sip:dave@example.com", contact: "sip:dave@192.0.2.4:5060", expires: expiresIn(600) },
    ].map((binding) => ({ op: "upsert", binding }));
    expect(await agent.call("location.publish", { edits })).toEqual({ accepted: 4 });

    const alice = await agent.call<{ aor: string; bindings: Location[] }>("location.lookup", { aor: "alice@example.com" });
    expect(alice.aor).toBe("alice@example.com");
    expect(alice.bindings.map((b) => b.contact).sort()).toEqual(["sip:alice@192.0.2.1:5060", "sip:alice@192.0.2.2:5060"]);
    expect(alice.bindings.find((b) => b.callid === "a1")).toMatchObject({ q: 0.5, cseq: 3, userAgent: "Deskphone", owner: "api1", methods: 4294967295 });

    const seen: string[] = [];
    let after = "";
    for (let pages = 0; ; pages++) {
      expect(pages).toBeLessThan(4);
      const page = await agent.call<ListResult<Location>>("location.list", { limit: 2, after });
      expect(page.total).toBe(4);
      seen.push(...page.items.map((l) => l.contact));
      if (page.next === null) break;
      after = page.next;
    }
    expect(seen).toHaveLength(4);
    expect(new Set(seen).size).toBe(4);
    expect((await agent.call<ListResult<Location>>("location.list", { search: "bob" })).items.map((l) => l.aor)).toEqual(["bob@example.com"]);

    expect(await agent.call("location.publish", { edits: [{ op: "remove-aor", aor: "sip:alice@example.com" }] })).toEqual({ accepted: 2 });
    expect((await agent.call<{ bindings: Location[] }>("location.lookup", { aor: "alice@example.com" })).bindings).toEqual([]);
    expect(await agent.call("location.publish", { edits: [{ op: "remove", aor: "bob@example.com", contact: "sip:bob@192.0.2.99" }] })).toEqual({ accepted: 0 });
    expect((await agent.call<ListResult<Location>>("location.list", {})).total).toBe(2);
  });

  it("sets, lists and removes aliases; removing an unknown alias is NotFound", async () => {
    expect(await agent.call("alias.set", { alias: "sip:Sales@Example.com", target: "sip:alice@example.com" })).toEqual({
      alias: "sales@example.com", target: "sip:alice@example.com", previous: null,
    });
    expect(await aliasNames()).toContain("sales@example.com");
    // Searched by its target, or by its name written as a URI (names are stored without the scheme).
    for (const search of ["ALICE@example", "sip:alice@", "sip:Sales@", "sips:sales"]) {
      expect((await agent.call<ListResult<{ alias: string }>>("alias.list", { search })).items.map((a) => a.alias), search).toEqual(["sales@example.com"]);
    }
    expect(await agent.call("alias.remove", { alias: "sales@example.com" })).toEqual({ removed: "sales@example.com" });
    expect(await aliasNames()).not.toContain("sales@example.com");
    expect((await callError("alias.remove", { alias: "sales@example.com" })).code).toBe(ErrorCode.NotFound);
  });

  it("alias.set with ifAbsent only adds, and with expectTarget only replaces the target the caller saw", async () => {
    const alias = "desk@example.com";
    const target = async () => (await agent.call<ListResult<{ alias: string; target: string }>>("alias.list", { search: alias })).items.map((a) => a.target);
    expect(await agent.call("alias.set", { alias: "sip:Desk@example.com", target: "sip:ann@example.com", ifAbsent: true })).toEqual({ alias, target: "sip:ann@example.com", previous: null });
    const exists = await callError("alias.set", { alias: "sip:desk@example.com", target: "sip:bob@example.com", ifAbsent: true });
    expect([exists.code, exists.message, exists.data]).toEqual([
      ErrorCode.Conflict, "alias desk@example.com already forwards to sip:ann@example.com; edit it instead", { alias, target: "sip:ann@example.com" },
    ]);
    expect(await target()).toEqual(["sip:ann@example.com"]);

    expect(await agent.call("alias.set", { alias, target: "sip:carl@example.com", expectTarget: "sip:ann@example.com" })).toEqual({ alias, target: "sip:carl@example.com", previous: "sip:ann@example.com" });
    const stale = await callError("alias.set", { alias, target: "sip:dan@example.com", expectTarget: "sip:ann@example.com" });
    expect(stale.code).toBe(ErrorCode.Conflict);
    expect(stale.message).toBe("alias desk@example.com was changed meanwhile: it now forwards to sip:carl@example.com, not sip:ann@example.com; edit it again if yours should still win");
    expect(await target()).toEqual(["sip:carl@example.com"]);
    await agent.call("alias.remove", { alias });
    const gone = await callError("alias.set", { alias, target: "sip:dan@example.com", expectTarget: "sip:carl@example.com" });
    expect([gone.code, gone.message]).toEqual([ErrorCode.Conflict, "alias desk@example.com was removed meanwhile; add it again if it is still wanted"]);
    expect(await target()).toEqual([]);
    const both = await callError("alias.set", { alias, target: "sip:dan@example.com", ifAbsent: true, expectTarget: "sip:carl@example.com" });
    expect([both.code, both.message]).toEqual([ErrorCode.InvalidParams, expect.stringMatching(/ifAbsent and expectTarget exclude each other/)]);
    // Unconditional, it still creates or replaces (the CLI's `alias add`, scripts).
    await agent.call("alias.set", { alias, target: "sip:eve@example.com" });
    await agent.call("alias.set", { alias, target: "sip:fay@example.com" });
    expect(await target()).toEqual(["sip:fay@example.com"]);
  });

  it("alias.remove with expectTarget only removes the target the caller saw", async () => {
    const alias = "front@example.com";
    const target = async () => (await agent.call<ListResult<{ alias: string; target: string }>>("alias.list", { search: alias })).items.map((a) => a.target);
    await agent.call("alias.set", { alias, target: "sip:ann@example.com" });
    await agent.call("alias.set", { alias, target: "sip:bob@example.com" });
    const stale = await callError("alias.remove", { alias, expectTarget: "sip:ann@example.com" });
    expect([stale.code, stale.message, stale.data]).toEqual([
      ErrorCode.Conflict,
      "alias front@example.com forwards to sip:bob@example.com, not sip:ann@example.com: it was changed meanwhile, or that was never its target; remove it again if it should still go",
      { alias, target: "sip:bob@example.com" },
    ]);
    expect(await target()).toEqual(["sip:bob@example.com"]);
    // The alias may be written as any form of its AoR; the target is compared as stored.
    expect(await agent.call("alias.remove", { alias: "sip:Front@example.com", expectTarget: "sip:bob@example.com" })).toEqual({ removed: alias });
    expect(await target()).toEqual([]);
    expect((await callError("alias.remove", { alias, expectTarget: "sip:bob@example.com" })).code).toBe(ErrorCode.NotFound);
    expect((await callError("alias.remove", { alias, expectTarget: "not a uri" })).code).toBe(ErrorCode.InvalidParams);
  });

  it("expectTarget compares hosts and schemes without regard to case and users exactly (RFC 3261 §19.1.4)", async () => {
    const alias = "carolfwd@example.com";
    await agent.call("alias.set", { alias, target: "sip:Carol@Example.COM" });
    // The user part differs in case: another target, refused.
    expect((await callError("alias.remove", { alias, expectTarget: "sip:carol@example.com" })).code).toBe(ErrorCode.Conflict);
    expect((await callError("alias.set", { alias, target: "sip:dave@example.com", expectTarget: "sip:carol@Example.COM" })).code).toBe(ErrorCode.Conflict);
    // Only the host (and scheme) differ in case: the same target.
    expect(await agent.call("alias.set", { alias, target: "sip:Carol@example.com;transport=tcp", expectTarget: "SIP:Carol@example.com" })).toMatchObject({ target: "sip:Carol@example.com;transport=tcp" });
    // A parameter that differs, in case too, is a difference.
    expect((await callError("alias.remove", { alias, expectTarget: "sip:Carol@example.com;transport=TCP" })).code).toBe(ErrorCode.Conflict);
    expect(await agent.call("alias.remove", { alias, expectTarget: "sip:Carol@EXAMPLE.com;transport=tcp" })).toEqual({ removed: alias });
  });

  it("of adds of one alias arriving together, one wins and the others are told what it forwards to", async () => {
    // Pipelined on one WebSocket, the requests are served concurrently: each checks and commits in
    // the journal's write turn, so none can pass its check before another's commit.
    const ws = await RpcWire.open(wsUrl());
    try {
      await ws.request("auth.login", { token: TOKEN });
      const answers = await Promise.all(Array.from({ length: 8 }, (_, i) =>
        ws.request("alias.set", { alias: "sip:race@example.com", target: `sip:r${i}@example.com`, ifAbsent: true })));
      const won = answers.filter((a) => a.result !== undefined);
      expect(won).toHaveLength(1);
      const winner = (won[0]!.result as { target: string }).target;
      for (const a of answers.filter((x) => x.error)) {
        expect(a.error).toMatchObject({ code: ErrorCode.Conflict, message: `alias race@example.com already forwards to ${winner}; edit it instead` });
      }
      expect((await agent.call<ListResult<{ target: string }>>("alias.list", { search: "race@" })).items.map((a) => a.target)).toEqual([winner]);
    } finally {
      await ws.close();
    }
  });

  it("pages past a binding whose contact is mostly control characters (a long cursor)", async () => {
    const contact = `sip:${"\u0001".repeat(400)}@192.0.2.50`;
    const edits = [contact, "sip:ctl@192.0.2.51"].map((c) => ({ op: "upsert", binding: { aor: "sip:ctl@example.com", contact: c, expires: expiresIn(600) } }));
    expect(await agent.call("location.publish", { edits })).toEqual({ accepted: 2 });
    const first = await agent.call<ListResult<Location>>("location.list", { search: "ctl@", limit: 1 });
    expect(first.items.map((l) => l.contact)).toEqual([contact]);
    expect(first.next!.length).toBeGreaterThan(2400);
    const second = await agent.call<ListResult<Location>>("location.list", { search: "ctl@", limit: 1, after: first.next });
    expect(second.items.map((l) => l.contact)).toEqual(["sip:ctl@192.0.2.51"]);
    expect(await agent.call("location.publish", { edits: [{ op: "remove-aor", aor: "ctl@example.com" }] })).toEqual({ accepted: 2 });
  });
});

describe("change subscriptions", () => {
  it("streams changes.applied notifications to a subscribed WebSocket", async () => {
    const ws = await RpcWire.open(wsUrl());
    try {
      await ws.request("auth.login", { token: TOKEN });
      expect((await ws.request("changes.subscribe", {})).result).toEqual({ subscribed: true });
      await agent.call("alias.set", { alias: "sip:live@example.com", target: "sip:live-target@example.com" });
      await agent.call("location.publish", { edits: [{ op: "remove-aor", aor: "bob@example.com" }] });
      const applied = async (key: string) =>
        (await ws.next((m) => m.method === "changes.applied" && (m.params?.["changes"] as Change[]).some((c) => c.key === key), `notification for ${key}`))
          .params?.["changes"] as Change[];
      expect((await applied("live@example.com")).find((c) => c.key === "live@example.com")).toMatchObject({
        kind: "alias", value: { target: "sip:live-target@example.com" }, origin: expect.stringMatching(/^api1~/),
      });
      expect((await applied("bob@example.com")).find((c) => c.key === "bob@example.com")).toMatchObject({ kind: "loc", value: null });
    } finally {
      await ws.close();
    }
    const overHttp = await callError("changes.subscribe", {});
    expect(overHttp.code).toBe(ErrorCode.InvalidRequest);
  });

  it("sends a summary subscriber counts by kind, a few at most per second, never the changes", async () => {
    const ws = await RpcWire.open(wsUrl(), { headers: { authorization: `Bearer ${TOKEN}` } });
    try {
      expect((await ws.request("changes.subscribe", { summary: true })).result).toEqual({ subscribed: true });
      const expires = expiresIn(600);
      const started = Date.now();
      await Promise.all([
        ...Array.from({ length: 30 }, (_, i) => agent.call("alias.set", { alias: `sip:sum${i}@example.com`, target: "sip:t@example.com" })),
        agent.call("location.publish", { edits: Array.from({ length: 20 }, (_, i) => ({ op: "upsert", binding: { aor: `sip:sum${i}@example.com`, contact: `sip:s${i}@192.0.2.9`, expires } })) }),
      ]);
      const total = { loc: 0, alias: 0 };
      await expect.poll(() => {
        const got = ws.notifications("changes.applied").map((m) => m.params as { counts: typeof total; changes?: unknown });
        for (const p of got) expect(p.changes).toBeUndefined();
        return got.reduce((t, p) => ({ loc: t.loc + p.counts.loc, alias: t.alias + p.counts.alias }), total);
      }, { timeout: 5000 }).toEqual({ loc: 20, alias: 30 });
      // 31 commits, coalesced: at most one notification per 250 ms they took (plus the first), far
      // fewer than commits however slow the machine.
      const sent = ws.notifications("changes.applied").length;
      expect(sent).toBeLessThanOrEqual(Math.ceil((Date.now() - started) / 250) + 1);
      expect(sent).toBeLessThan(31);
    } finally {
      await ws.close();
    }
  });
});

describe("operations endpoints", () => {
  it("serves Prometheus text at /metrics and liveness at /healthz without a token", async () => {
    const res = await fetch(`${agent.apiUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toContain("# TYPE locmesh_auth_failures_total counter");
    expect(text).toMatch(/^locmesh_changes_committed_total [1-9]\d*$/m);
    expect(text).toMatch(/^locmesh_rpc_errors_total\{surface="api",code="-32602"\} [1-9]\d*$/m);

    // Only the metrics named: a poller's cheap scrape. Unknown names are left out, not an error.
    const one = await (await fetch(`${agent.apiUrl}/metrics?name=locmesh_changes_committed_total&name[]=locmesh_rpc_errors_total&name=nope`)).text();
    expect(one).toMatch(/^locmesh_changes_committed_total [1-9]\d*$/m);
    expect(one).toMatch(/^locmesh_rpc_errors_total\{surface="api",code="-32602"\} [1-9]\d*$/m);
    expect(one).not.toContain("locmesh_auth_failures_total");
    expect(one).not.toContain("process_cpu");
    expect(one.split("\n").filter((l) => l.startsWith("# TYPE")).length).toBe(2);
    // Names of the registry's object's own properties are no metrics either: answered, not hung.
    for (const name of ["constructor", "__proto__", "toString"]) {
      const res = await fetch(`${agent.apiUrl}/metrics?name=${name}`, { signal: AbortSignal.timeout(5000) });
      expect(res.status, name).toBe(200);
      expect(await res.text(), name).toBe("");
    }

    const health = await fetch(`${agent.apiUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ ok: true, nodeId: "api1" });
    expect((await fetch(`${agent.apiUrl}/nope`)).status).toBe(404);
  });
});

describe("WebSocket clients that do not play along", () => {
  it("drops a signed-in client that sends requests and does not read the answers, past 64 MiB of them", async () => {
    // Signed in, no byte cap applies: the answers pile up until the buffer limit drops the socket.
    // About 7,000 frames of requests make 70 MB of answers, past the limit and the kernel's buffers.
    const wire = await RpcWire.open(`${agent.apiUrl.replace(/^http/, "ws")}/rpc`, { headers: { authorization: `Bearer ${TOKEN}` } });
    try {
      await wire.floodWithoutReading(20_000);
      await expect.poll(() => readFileSync(agent.logPath, "utf8").split("\n").some((l) =>
        l.includes("a WebSocket client does not read its answers; dropping it") && l.includes('"authenticated":true')), { timeout: 20_000 }).toBe(true);
      expect(JSON.parse(await (await fetch(`${agent.apiUrl}/healthz`)).text())).toEqual({ ok: true, nodeId: "api1" });
    } finally {
      wire.ws.terminate();
    }
  });

  it("drops a client that sends requests before sign-in and does not read the answers", async () => {
    // Before sign-in two limits apply, whichever comes first: 1 MiB of unread answers, or 128 KiB
    // received (api-ws-origin.test.ts). Which one depends on how much the kernel's buffers take.
    const wire = await RpcWire.open(`${agent.apiUrl.replace(/^http/, "ws")}/rpc`);
    try {
      await wire.floodWithoutReading();
      wire.resumeReading();
      expect(await Promise.race([wire.closed.then(() => "closed"), new Promise((r) => setTimeout(r, 10_000, "still open"))])).toBe("closed");
      expect(JSON.parse(await (await fetch(`${agent.apiUrl}/healthz`)).text())).toEqual({ ok: true, nodeId: "api1" });
    } finally {
      wire.ws.terminate();
    }
  });
});

describe("requests the API cannot take", () => {
  it("closes a WebSocket that sends a frame over 64 KiB before sign-in, without parsing it; signed in, the same frame is served", async () => {
    // This file's agent takes 16 KiB at most; one with the default 4 MiB shows the sign-in limit.
    const roomy = new AgentProcess({
      id: "api3", meshPort: await freePort(), apiPort: await freePort(), dir: join(dir, "api3"),
      secret: "local-api-mesh-secret-0123456789", token: TOKEN, peers: [],
    });
    await roomy.start();
    try {
      const url = `ws://127.0.0.1:${roomy.spec.apiPort}/rpc`;
      const big = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "alias.list", params: { search: "", pad: "x".repeat(100_000) } });
      const anon = await RpcWire.open(url);
      anon.sendText(big);
      expect(await anon.closed).toBe(1009);
      expect(anon.messages).toEqual([]);
      const signedIn = await RpcWire.open(url, { headers: { authorization: `Bearer ${TOKEN}` } });
      try {
        signedIn.sendText(big);
        await waitForAnswers(signedIn, 1);
        expect(signedIn.messages[0]!.error?.code).toBe(ErrorCode.InvalidParams);
      } finally {
        await signedIn.close();
      }
    } finally {
      await roomy.stop();
    }
  });

  it("answers a path that is not a URL path with 400, and an unknown method by naming the methods", async () => {
    const res = await new Promise<number>((resolve, reject) => {
      request(`${agent.apiUrl}//`, { method: "GET" }, (r) => {
        r.resume();
        resolve(r.statusCode!);
      }).once("error", reject).end();
    });
    expect(res).toBe(400);
    expect(readFileSync(agent.logPath, "utf8")).not.toContain("HTTP handler failed");
    const unknown = await callError("alias.frobnicate", {});
    expect(unknown.message).toMatch(/^no method "alias\.frobnicate"; the methods are .*alias\.list.*alias\.set/);
  });
});

describe("an agent that cannot start", () => {
  it("warns at start when its config file, which holds the secrets, can be read by every user", async () => {
    const open = new AgentProcess({
      id: "api4", meshPort: await freePort(), apiPort: await freePort(), dir: join(dir, "api4"),
      secret: "local-api-mesh-secret-0123456789", token: TOKEN, peers: [],
    });
    open.writeConfig();
    chmodSync(open.configPath, 0o644);
    try {
      await open.start();
    } finally {
      await open.stop();
    }
    const warnings = readFileSync(open.logPath, "utf8").split("\n").filter((l) => l.includes("can be read by every user"));
    expect(warnings.map((l) => (JSON.parse(l) as { level: string; msg: string })).map((l) => [l.level, l.msg])).toEqual([
      ["warn", `the config file (it holds mesh.secret and api.token): ${open.configPath} can be read by every user on this host (mode 0644); chmod 600 it, or 640 with the service's group`],
    ]);
    // The suite's agent, whose config is 0600, says nothing of the kind.
    expect(readFileSync(agent.logPath, "utf8")).not.toContain("can be read by every user");
  });

  it("exits when its port is taken, saying which and what to do; the test's error carries the end of its log", async () => {
    const second = new AgentProcess({
      id: "api2", meshPort: await freePort(), apiPort: Number(new URL(agent.apiUrl).port), dir: join(dir, "api2"),
      secret: "local-api-mesh-secret-0123456789", token: TOKEN, peers: [],
    });
    const err = await second.start().then(() => null, (e: unknown) => e as Error);
    await second.stop();
    expect(err?.message).toMatch(/^agent api2 exited with 1; the end of .*agent\.log:\n/);
    // What the operator reads: which port, and what to do; not an unhandled 'error' event's stack.
    expect(err?.message).toContain(`the local API port ${new URL(agent.apiUrl).host} is already in use`);
    expect(err?.message).toContain("set api.listen.port to a free port");
    expect(err?.message).not.toContain("Unhandled 'error' event");
  });
});
