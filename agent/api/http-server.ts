/**
 * The agent's HTTP surface: JSON-RPC over POST /rpc and over WebSocket /rpc, Prometheus metrics at
 * /metrics, a liveness probe at /healthz and the web UI's static files at / (static-files.ts).
 * Tokens are checked by api-auth.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createJSONRPCErrorResponse } from "json-rpc-2.0";
import { WebSocketServer, type WebSocket } from "ws";
import { ErrorCode, RpcError } from "../contract/errors.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import { webDistDir } from "../ops/paths.js";
import { parseFrame, type RpcServer } from "../rpc/server.js";
import type { ApiContext } from "./local-api.js";
import { SIGNED_OUT_LIMITS, createClientSlots, type ClientSlots } from "./client-slots.js";
import { HTTP_LIMITS, answerAndClose, capConnections, httpServerOptions, type HttpLimits } from "./http-limits.js";
import { createStaticFiles } from "./static-files.js";
import { listenOn } from "../ops/listen.js";
import { apiExempt, createAuthThrottle, type AuthThrottle } from "../ops/auth-throttle.js";
import { createLogPacing } from "../ops/log-pacing.js";
import { allowedOrigins, originRefusal } from "./ws-origin.js";
import { createApiAuth } from "./api-auth.js";
import type { KeyRing } from "../ops/key-ring.js";

export interface HttpServerDeps {
  listen: { host: string; port: number };
  /** api.token and api.acceptedTokens (api-auth.ts), which SIGHUP may replace. */
  tokens: KeyRing;
  maxMessageBytes: number;
  rpc: RpcServer<ApiContext>;
  metrics: Metrics;
  log: Logger;
  nodeId: string;
  /** The built web UI served at /; defaults to the package's web/dist, null serves none. */
  webRoot?: string | null;
  /** Limits token guessing per address; defaults to 10 wrong tokens a minute, then 60 s refused. */
  throttle?: AuthThrottle;
  /** api.trustedProxies: reverse proxies not limited one by one, as the host's own clients (apiExempt). */
  trustedProxies?: readonly string[];
  /** api.allowedOrigins: web pages besides the API's own that may open its WebSocket (ws-origin.ts). */
  allowedOrigins?: readonly string[];
  /** Caps WebSockets waiting for sign-in; defaults to 16 per client and 512 in all. */
  signedOut?: ClientSlots;
  /** How long a request may take to arrive, and how many HTTP connections a client may hold (http-limits.ts). */
  limits?: HttpLimits;
  /** How often each WebSocket is pinged; one that has not answered (a pong, any frame) by the next ping is dropped. Default 30 s. */
  pingIntervalMs?: number;
  /** How long close() lets calls under way finish before it answers them itself. Default CLOSE_GRACE_MS. */
  closeGraceMs?: number;
}

export interface HttpApi {
  start(): Promise<void>;
  port(): number;
  /** Sends a JSON-RPC notification to every WebSocket client that subscribed to `mode`. */
  broadcast(method: string, params: unknown, mode?: "changes" | "summary"): void;
  /** Some client subscribed to `mode`. */
  hasSubscribers(mode: "changes" | "summary"): boolean;
  /**
   * Stops taking calls (those that arrive are answered "the agent is stopping", a temporary
   * failure), lets the calls under way finish for up to closeGraceMs, answers those still running
   * then as cut short (their outcome unknown), closes the WebSockets with 1001 and the server.
   */
  close(): Promise<void>;
}

/**
 * What close() waits for the calls under way: most end in milliseconds; a long one (a resync, a
 * Kamailio lookup that waits out its FIFO timeout) would hold the whole stop, within the 10 s the
 * daemon gives it (ops/daemon.ts), with the mesh, Kamailio and the journal still to close.
 */
export const CLOSE_GRACE_MS = 3000;
/** The answer to a call that arrives while the agent stops. */
export const STOPPING = "the agent is stopping: nothing of this call was done; retry once it is back, or on another node";
/** The answer to a call still running when the agent stopped. */
export const CUT_SHORT = "the agent stopped before this call finished: whether it took effect is unknown; check once it is back (or on another node)";

/** Answers a WebSocket client may leave unread before it is dropped: before and after sign-in. */
const WS_BUFFER_LIMIT_SIGNED_OUT = 1 << 20;
const WS_BUFFER_LIMIT = 64 << 20;
/** A WebSocket that has not signed in by then is closed. */
const WS_SIGN_IN_MS = 30_000;
/** What a binary frame is answered with. */
const BINARY_FRAME = "a binary WebSocket frame; send each JSON-RPC request or batch as a text frame (UTF-8)";
/** The largest frame read before sign-in: auth.login's token is at most 4,096 characters. */
const WS_FRAME_LIMIT_SIGNED_OUT = 64 << 10;
/** How long a refused WebSocket lingers after its close frame (refuseSocket). */
const REFUSED_SOCKET_MS = 250;
/**
 * WebSocket pings: they keep a NAT or firewall on the way from forgetting an idle admin's
 * connection, and find one whose far end is gone (a laptop closed, a VPN dropped), which TCP may
 * take a quarter of an hour to notice, holding its subscription and its buffers meanwhile.
 */
const WS_PING_MS = 30_000;

export function createHttpApi(deps: HttpServerDeps): HttpApi {
  const log = deps.log.child({ component: "http" });
  const exempt = apiExempt(deps.trustedProxies ?? []);
  const auth = createApiAuth({ tokens: deps.tokens, throttle: deps.throttle ?? createAuthThrottle({ exempt }), metrics: deps.metrics, log });
  const signedOut = deps.signedOut ?? createClientSlots(SIGNED_OUT_LIMITS, exempt);
  const limits = deps.limits ?? HTTP_LIMITS;
  let lastRefusalLogged = 0;
  const origins = allowedOrigins(deps.allowedOrigins ?? []);
  /** Refused pages, logged per origin at most every 10 s with how many since (ops/log-pacing.ts). */
  // Keyed by the client's address, not by the Origin it sends: anyone can send a new one each time.
  const originRefusals = createLogPacing({ everyMs: 10_000, maxKeys: 1000 });
  /** Requests without a valid token, logged at most every 10 s per client address: anyone can send them. */
  const tokenRefusals = createLogPacing({ everyMs: 10_000, maxKeys: 1000 });
  let lastConnectionRefusalLogged = 0;
  const bearer = (req: IncomingMessage) => /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? "")?.[1]?.trim() ?? null;
  const wsClients = new Set<WebSocket>();
  /** Sockets heard from (a pong, any frame) since the last ping. */
  const heard = new WeakSet<WebSocket>();
  let pinger: NodeJS.Timeout | undefined;
  const subscribers = new Map<WebSocket, "changes" | "summary">();
  let server: Server | null = null;
  let stopping = false;
  /** Calls under way (HTTP and WebSocket), each settled when answered; close() waits for them. */
  const calls = new Set<Promise<unknown>>();
  /** HTTP calls under way, answered by close() if they are still running when its grace ends. */
  const httpCalls = new Map<ServerResponse, string | number | null>();
  /** The same for WebSocket calls: each socket's calls under way, by id (null for a batch). */
  const wsCalls = new Map<WebSocket, Map<object, string | number | null>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    calls.add(p);
    void p.then(() => calls.delete(p), () => calls.delete(p));
    return p;
  };
  const webRoot = deps.webRoot === undefined ? webDistDir() : deps.webRoot;
  const web = webRoot === null ? null : createStaticFiles({ root: webRoot });

  const JSON_HEADERS = { "content-type": "application/json", "cache-control": "no-store" };
  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, JSON_HEADERS).end(JSON.stringify(body));
  };
  /**
   * A refusal (401, 413, 429) closes the connection once it is sent instead of reading the rest of
   * the body: a client refused at its headers could otherwise hold the connection for as long as
   * it trickles one (http-limits.ts, answerAndClose).
   */
  const refuse = (req: IncomingMessage, res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
    answerAndClose(req, res, status, { ...JSON_HEADERS, ...headers }, JSON.stringify(body), limits.lingerMs);

  /**
   * The body as text; null once it passes the limit (the caller refuses it, which closes the
   * connection; the rest is dropped meanwhile); "gone" when the connection closed first: the
   * client went away, or sent too slowly and Node answered 408 (limits.requestTimeoutMs).
   */
  function readBody(req: IncomingMessage): Promise<string | null | "gone"> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size <= deps.maxMessageBytes) return void chunks.push(chunk);
        chunks.length = 0;
        resolve(null);
      });
      req.once("end", () => resolve(size > deps.maxMessageBytes ? null : Buffer.concat(chunks).toString("utf8")));
      req.once("error", () => resolve("gone"));
      req.once("close", () => resolve("gone")); // after "end" this changes nothing: a promise settles once
    });
  }

  async function handleRpc(req: IncomingMessage, res: ServerResponse) {
    const remote = req.socket.remoteAddress ?? "unknown";
    const refused = auth.verify(bearer(req), remote, "bearer");
    if (refused?.code === ErrorCode.TooManyAttempts) {
      const data = refused.data as { retryAfterSeconds: number };
      return refuse(req, res, 429, createJSONRPCErrorResponse(null, refused.code, refused.message, refused.data), { "retry-after": String(data.retryAfterSeconds) });
    }
    if (refused) {
      const line = tokenRefusals.note(remote);
      if (line) log.warn({ remote, times: line.count }, "API request with a missing or wrong token (logged at most every 10 s per client)");
      return refuse(req, res, 401, createJSONRPCErrorResponse(null, refused.code, refused.message));
    }
    const body = await readBody(req);
    if (body === "gone") return;
    if (body === null) {
      return refuse(req, res, 413, createJSONRPCErrorResponse(null, ErrorCode.TooLarge, `request larger than ${deps.maxMessageBytes} bytes; split it`));
    }
    const frame = parseFrame(body);
    if (frame === null) return json(res, 200, deps.rpc.parseError());
    const id = idOf(frame.json);
    if (stopping) return refuse(req, res, 503, createJSONRPCErrorResponse(id, ErrorCode.TemporaryFailure, STOPPING));
    const ctx: ApiContext = { authenticated: true, signIn: (t) => auth.verify(t, remote, "login") };
    httpCalls.set(res, id);
    let answer;
    try {
      answer = await track(deps.rpc.receive(frame.json, ctx));
    } finally {
      httpCalls.delete(res);
    }
    if (res.headersSent) return; // close() answered it as cut short
    if (answer === null) return void res.writeHead(204).end();
    json(res, 200, answer);
  }

  async function route(req: IncomingMessage, res: ServerResponse) {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://x");
    } catch {
      return json(res, 400, { error: "the request path is not a valid URL path" });
    }
    const path = url.pathname;
    if (path === "/rpc" && req.method === "POST") return handleRpc(req, res);
    if (path === "/rpc") {
      // A WebSocket upgrade never gets here (onSocket): a browser opening the URL, or a script with the wrong method, does.
      const how = req.method === "GET" ? "GET /rpc without a WebSocket upgrade" : `${req.method} /rpc`;
      res.setHeader("allow", "POST");
      return json(res, 405, { error: `${how}: the API is JSON-RPC 2.0 by POST /rpc (Authorization: Bearer <api.token>), or over a WebSocket at /rpc (a GET with Upgrade: websocket)` });
    }
    if (path === "/metrics" && req.method === "GET") {
      const text = await scrape([...url.searchParams.getAll("name"), ...url.searchParams.getAll("name[]")]);
      res.writeHead(200, { "content-type": deps.metrics.registry.contentType });
      return void res.end(text);
    }
    if (path === "/healthz") return json(res, 200, { ok: true, nodeId: deps.nodeId });
    if (web && (req.method === "GET" || req.method === "HEAD")) return web.serve(req, res, path);
    json(res, 404, { error: `no such endpoint: ${req.method} ${path}; the API is POST /rpc` });
  }

  /**
   * The whole registry, or only the metrics named (`/metrics?name=a&name=b`, or `name[]=` as
   * Prometheus's Python client spells it); names the agent does not have are left out. A scrape of
   * everything collects process figures too and costs ~1 ms; a script polling one counter should
   * not pay that on every poll.
   */
  async function scrape(names: string[]): Promise<string> {
    const registry = deps.metrics.registry;
    if (names.length === 0) return registry.metrics();
    // The registry's own names only: prom-client keeps metrics in a plain object, where
    // "constructor" or "__proto__" would be found and then fail.
    const known = new Set(registry.getMetricsAsArray().map((m) => m.name));
    const parts: string[] = [];
    for (const name of new Set(names)) if (known.has(name)) parts.push(await registry.getSingleMetricAsString(name));
    return parts.map((p) => `${p}\n`).join("");
  }

  /**
   * Closes a WebSocket refused before it is of any use. ws.close() only begins the closing
   * handshake, and until the client answers it (up to 30 s) the socket stays open and its frames
   * are still read and buffered, outside every connection cap: it is no longer read, and it is
   * dropped once the close frame has had a moment to go out.
   */
  function refuseSocket(ws: WebSocket, code: number, reason: string): void {
    ws.close(code, reason);
    ws.pause();
    setTimeout(() => ws.terminate(), REFUSED_SOCKET_MS).unref();
  }

  function onSocket(ws: WebSocket, req: IncomingMessage) {
    // First of all: a socket closed below may still get a bad frame, whose error, unheard, would
    // end the process.
    ws.on("error", () => undefined);
    const remote = req.socket.remoteAddress ?? "unknown";
    // Before anything else: another site's page gets no sign-in attempt (ws-origin.ts).
    const foreign = originRefusal(req.headers, origins);
    if (foreign !== null) {
      const line = originRefusals.note(remote);
      if (line) log.warn({ remote, origin: req.headers.origin?.slice(0, 200), times: line.count }, `refused a WebSocket from another site's page: ${foreign.slice(0, 300)} (logged at most every 10 s per client)`);
      return refuseSocket(ws, 1008, "this page's origin may not use this API");
    }
    // A bearer token on the upgrade signs in at once, unless the address is refused for now.
    const authenticated = auth.accepts(bearer(req), remote);
    if (!authenticated && !signedOut.admit(remote)) {
      // Logged at most every 10 s: a flood of refused sockets must not become a flood of log lines.
      if (Date.now() - lastRefusalLogged > 10_000) {
        lastRefusalLogged = Date.now();
        log.warn({ remote }, "refused a WebSocket: too many from this client are waiting for sign-in (logged at most every 10 s)");
      }
      return refuseSocket(ws, 1013, "too many connections waiting for sign-in; try again later");
    }
    let waiting = !authenticated;
    // Before sign-in a frame is taken whole (up to maxPayload) before its size is looked at: the
    // bytes are counted as they come, and a client past twice the signed-out frame limit is dropped.
    let received = 0;
    const countBytes = (chunk: Buffer) => {
      received += chunk.length;
      if (received > 2 * WS_FRAME_LIMIT_SIGNED_OUT) {
        req.socket.off("data", countBytes);
        ws.terminate();
      }
    };
    if (waiting) req.socket.on("data", countBytes);
    const stopWaiting = () => {
      if (waiting) signedOut.release(remote);
      waiting = false;
      req.socket.off("data", countBytes);
    };
    // One sign-in attempt per connection: a refused one closes it once answered, and the rest of a
    // batch is refused unchecked. Otherwise one WebSocket through a proxy the guessing limit
    // exempts (the host's own, api.trustedProxies) would carry a thousand guesses per upgrade.
    let loginRefused = false;
    const ctx: ApiContext = {
      authenticated,
      signIn(t) {
        if (loginRefused) return new RpcError(ErrorCode.Unauthorized, "sign-in refused on this connection; open a new one to try again");
        const refused = auth.verify(t, remote, "login");
        if (refused === null) {
          ctx.authenticated = true;
          stopWaiting();
        } else loginRefused = true;
        return refused;
      },
      subscribe: (mode) => subscribers.set(ws, mode),
    };
    wsClients.add(ws);
    heard.add(ws);
    const answered = () => heard.add(ws);
    ws.on("pong", answered);
    // A client that sends requests and does not read the answers would make them pile up here:
    // past the limit (small before sign-in, where anyone can connect) the connection is dropped.
    const send = (text: string) => {
      if (ws.readyState !== ws.OPEN) return;
      ws.send(text);
      const limit = ctx.authenticated ? WS_BUFFER_LIMIT : WS_BUFFER_LIMIT_SIGNED_OUT;
      if (ws.bufferedAmount > limit) {
        log.warn({ buffered: ws.bufferedAmount, authenticated: ctx.authenticated }, "a WebSocket client does not read its answers; dropping it");
        ws.terminate();
      }
    };
    const signIn = setTimeout(() => {
      if (!ctx.authenticated) ws.close(4001, "sign in with auth.login within 30 s");
    }, WS_SIGN_IN_MS);
    signIn.unref();
    ws.on("close", () => {
      clearTimeout(signIn);
      stopWaiting();
      wsClients.delete(ws);
      wsCalls.delete(ws);
      subscribers.delete(ws);
    });
    ws.on("message", (data, isBinary) => {
      answered();
      // Anyone can connect: a large frame is not parsed (it would hold the event loop) before sign-in.
      const size = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : (data as Buffer | ArrayBuffer).byteLength;
      if (!ctx.authenticated && size > WS_FRAME_LIMIT_SIGNED_OUT) return ws.close(1009, "frame too large before sign-in");
      // Text frames only, as on the peer port: a binary frame is answered (the socket stays open)
      // rather than decoded, since a text frame's UTF-8 is checked by the WebSocket layer and a
      // binary frame's is not.
      if (isBinary) return send(JSON.stringify(deps.rpc.invalidRequest(BINARY_FRAME)));
      const frame = parseFrame(data.toString());
      if (frame === null) return send(JSON.stringify(deps.rpc.parseError()));
      if (stopping) return send(JSON.stringify(createJSONRPCErrorResponse(idOf(frame.json), ErrorCode.TemporaryFailure, STOPPING)));
      const call = {};
      const mine = wsCalls.get(ws) ?? new Map<object, string | number | null>();
      wsCalls.set(ws, mine.set(call, idOf(frame.json)));
      // Answered in the turn the call settles: close() goes on only after it, and must not cut in.
      void track(deps.rpc.receive(frame.json, ctx)).then((answer) => {
        mine.delete(call);
        if (answer !== null) send(JSON.stringify(answer));
        if (loginRefused && !ctx.authenticated && ws.readyState === ws.OPEN) ws.close(4003, "sign-in refused; open a new connection to try again");
      }, (err: unknown) => {
        mine.delete(call);
        log.error({ err }, "could not answer a WebSocket request");
      }).catch((err: unknown) => log.error({ err }, "could not send a WebSocket answer"));
    });
  }

  return {
    async start() {
      server = createServer(httpServerOptions(limits), (req, res) => {
        route(req, res).catch((err: unknown) => {
          log.error({ err }, "HTTP handler failed");
          if (!res.headersSent) json(res, 500, { error: "internal error; see the agent's log" });
          else res.destroy(); // never leave a half-sent answer hanging
        });
      });
      capConnections(server, limits, (remote) => {
        // Logged at most every 10 s, as the WebSockets refused below.
        if (Date.now() - lastConnectionRefusalLogged <= 10_000) return;
        lastConnectionRefusalLogged = Date.now();
        log.warn(
          { remote, perClient: limits.connections.perClient, total: limits.connections.total },
          "refused an HTTP connection: this client holds as many as it may, or the API as many as it takes in all; closed it at once (logged at most every 10 s). A reverse proxy on another host: list it in api.trustedProxies",
        );
      }, exempt);
      const wss = new WebSocketServer({ server, path: "/rpc", maxPayload: deps.maxMessageBytes });
      wss.on("connection", onSocket);
      pinger = setInterval(() => {
        for (const ws of wsClients) {
          if (!heard.has(ws)) {
            log.info("dropping a WebSocket client that did not answer a ping (its connection is gone)");
            ws.terminate();
            continue;
          }
          heard.delete(ws);
          ws.ping();
        }
      }, deps.pingIntervalMs ?? WS_PING_MS);
      pinger.unref();
      await listenOn(server, wss, deps.listen, "local API", "api.listen.port", (err) => log.error({ err: err.message }, "local API server error"));
      log.info({ listen: `${deps.listen.host}:${(server.address() as AddressInfo).port}` }, "local API listening");
    },
    port: () => (server?.address() as AddressInfo | null)?.port ?? 0,
    // Asked on every applied change (change-summary.ts): no array is made for it.
    hasSubscribers(mode) {
      for (const wants of subscribers.values()) if (wants === mode) return true;
      return false;
    },
    broadcast(method, params, mode = "changes") {
      let text: string | null = null;
      for (const [ws, wants] of subscribers) {
        if (wants !== mode) continue;
        text ??= JSON.stringify({ jsonrpc: "2.0", method, params });
        // A subscriber that stops reading is dropped rather than allowed to grow our memory.
        if (ws.bufferedAmount > deps.maxMessageBytes) {
          log.warn("dropping a WebSocket subscriber that does not keep up");
          ws.terminate();
          subscribers.delete(ws);
        } else ws.send(text);
      }
    },
    async close() {
      stopping = true;
      clearInterval(pinger);
      // No new connection; idle keep-alive ones close now, the others once their call is answered.
      const closed = new Promise<void>((r) => (server ? server.close(() => r()) : r()));
      server?.closeIdleConnections();
      if (calls.size > 0) {
        let grace: NodeJS.Timeout | undefined;
        const over = new Promise<void>((r) => (grace = setTimeout(r, deps.closeGraceMs ?? CLOSE_GRACE_MS)));
        await Promise.race([Promise.allSettled([...calls]), over]);
        clearTimeout(grace);
      }
      const running = httpCalls.size + [...wsCalls.values()].reduce((n, m) => n + m.size, 0);
      if (running > 0) log.warn({ calls: running }, "API calls still running as the agent stops: answered as cut short (their outcome unknown)");
      for (const [res, id] of httpCalls) {
        if (!res.headersSent) res.writeHead(503, { ...JSON_HEADERS, connection: "close" }).end(JSON.stringify(createJSONRPCErrorResponse(id, ErrorCode.TemporaryFailure, CUT_SHORT)));
      }
      for (const [ws, mine] of wsCalls) {
        if (ws.readyState !== ws.OPEN) continue;
        for (const id of mine.values()) ws.send(JSON.stringify(createJSONRPCErrorResponse(id, ErrorCode.TemporaryFailure, CUT_SHORT)));
      }
      // 1001 "going away": the web UI says the agent stopped and redials.
      for (const ws of wsClients) refuseSocket(ws, 1001, "the agent is stopping");
      await new Promise((r) => setTimeout(r, wsClients.size > 0 ? REFUSED_SOCKET_MS : 0));
      for (const ws of wsClients) ws.terminate();
      server?.closeAllConnections();
      await closed;
    },
  };
}

/** The id of a single request, for an answer given without running it; null for a batch or none. */
function idOf(json: unknown): string | number | null {
  if (json === null || typeof json !== "object" || Array.isArray(json)) return null;
  const id = (json as { id?: unknown }).id;
  return typeof id === "string" || typeof id === "number" ? id : null;
}
