/**
 * JSON-RPC 2.0 over the agent's WebSocket /rpc, the way the web UI uses it: sign in with
 * auth.login, subscribe to changes.applied, then make calls. A dropped connection is redialled with
 * back-off and signed in again; listeners hear "resumed" so pages can refetch what they show.
 * A call made while the connection is not open fails at once and is never sent later: a write held
 * back and sent after a reconnect would get a fresh clock stamp and silently override every change
 * made meanwhile, cluster-wide. The person retries when the badge shows live, knowing what is there.
 * Transport-agnostic enough to test: the WebSocket constructor is passed in.
 */
import { ErrorCode, RpcError } from "../../../agent/contract/errors.js";
import { ApiMethod } from "../../../agent/contract/api-protocol.js";

export type ConnectionState = "connecting" | "open" | "reconnecting" | "refused" | "closed";

export interface Notification {
  method: string;
  params: unknown;
}

export interface RpcClient {
  call<T>(method: string, params?: unknown): Promise<T>;
  onNotification(fn: (n: Notification) => void): () => void;
  /** "resumed" fires after a reconnect: notifications may have been missed meanwhile. */
  onState(fn: (s: ConnectionState | "resumed") => void): () => void;
  state(): ConnectionState;
  /**
   * In state "refused", why: the token (Unauthorized) or, after the agent restarted with other
   * `api.allowedOrigins`, this page's origin (originRefusal); null before any refusal.
   */
  refusal(): RpcError | null;
  /** In state "reconnecting", why the connection is down and when the next redial starts; else null. */
  reconnecting(): Reconnecting | null;
  /** While reconnecting and waiting out the back-off: dials at once (the agent is known to be back). */
  retryNow(): void;
  close(): void;
}

export interface Reconnecting {
  /** Why: how the connection went (the agent stopping, a drop, no answer), then each redial's failure. */
  why: string;
  /** When the next redial starts (Date.now() milliseconds); null while one is under way. */
  nextTryAt: number | null;
}

export interface RpcClientDeps {
  url: string;
  token: string;
  WebSocket?: typeof WebSocket;
  callTimeoutMs?: number;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: RpcError): void;
  timer: ReturnType<typeof setTimeout>;
  /** The socket it was sent on: only that socket's close fails it. */
  socket: WebSocket;
  method: string;
}

/** A call whose outcome is not known: the agent may have made the change (outcomeUnknown). */
const UNKNOWN = { outcome: "unknown" } as const;
/** The connection went before the answer: for a write, whether it was done is not known; a read is only to be asked again. */
const lost = (method: string) =>
  WRITES.has(method)
    ? new RpcError(
      ErrorCode.TemporaryFailure,
      "lost the connection to the agent before it answered, so a change may or may not have been made; check again when the badge shows live",
      UNKNOWN,
    )
    : new RpcError(ErrorCode.TemporaryFailure, "lost the connection to the agent before it answered; the page asks again once the badge shows live");

/** Calls that change something: one that got no answer may have been carried out. */
const WRITES = new Set<string>([ApiMethod.AliasSet, ApiMethod.AliasRemove, ApiMethod.LocationPublish, ApiMethod.ClusterResync, ApiMethod.KamailioReload]);
const POLICY_VIOLATION = 1008;
/** The agent closes the page's socket with 1001 "going away" as it stops (agent/api/http-server.ts). */
const GOING_AWAY = 1001;
/** The data of the error that says the agent refuses this page's origin. */
const ORIGIN = { refused: "origin" } as const;
/** The agent refused this page's origin (close 1008), not the token. */
export const originRefusal = (err: unknown): boolean => err instanceof RpcError && (err.data as { refused?: string } | undefined)?.refused === "origin";
const originRefused = () => {
  const origin = (globalThis as { location?: { origin: string } }).location?.origin ?? "this page's origin";
  // Not Unauthorized: the token was never looked at, and the sign-in page must not say it was wrong.
  return new RpcError(
    ErrorCode.InvalidRequest,
    `the agent refuses web pages at ${origin}: open the web UI by the agent's IP address (or as localhost through a tunnel), or add ${origin} to api.allowedOrigins in its config and restart it`,
    ORIGIN,
  );
};

/** The call failed without an answer (connection lost, timed out): whatever it asked may have been done. */
export const outcomeUnknown = (err: unknown): boolean => err instanceof RpcError && (err.data as { outcome?: string } | undefined)?.outcome === "unknown";
/** WebSocket.CLOSING; CLOSED is 3 (a number here: the socket class is a dependency). */
const CLOSING = 2;
const notConnected = () => new RpcError(ErrorCode.TemporaryFailure, "not connected to the agent; try again when the badge shows live");
const signedOut = () => new RpcError(ErrorCode.TemporaryFailure, "this session is signed out; sign in again");

/** Resolves once signed in; rejects with RpcError (Unauthorized for a wrong token) otherwise. */
export function connectRpc(deps: RpcClientDeps): Promise<RpcClient> {
  const Ws = deps.WebSocket ?? WebSocket;
  const timeoutMs = deps.callTimeoutMs ?? 15_000;
  const pending = new Map<number, Pending>();
  const notificationListeners = new Set<(n: Notification) => void>();
  const stateListeners = new Set<(s: ConnectionState | "resumed") => void>();
  let nextId = 1;
  let ws: WebSocket | null = null;
  let state: ConnectionState = "connecting";
  let retryMs = 500;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** While reconnecting: why, and when the next dial starts. */
  let down: Reconnecting | null = null;
  let refusal: RpcError | null = null;
  /** The socket of a redial in progress, so that close() can end it too. */
  let dialing: WebSocket | null = null;

  // Once closed (signed out), nothing moves the state again: a redial that was under way must not
  // report "open", nor "refused" (which would sign out whatever session the page has by then).
  const setState = (s: ConnectionState | "resumed") => {
    if (state === "closed") return;
    if (s !== "resumed") state = s;
    for (const fn of stateListeners) fn(s);
  };

  function send<T>(socket: WebSocket, method: string, params: unknown): Promise<T> {
    const id = nextId++;
    // The agent began closing it (1001 as it stops): the browser would drop the frame and log an
    // error, and the call would wait for the close. Refused now, as while reconnecting.
    if (socket.readyState >= CLOSING) return Promise.reject(notConnected());
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(WRITES.has(method)
          ? new RpcError(ErrorCode.TemporaryFailure, `the agent did not answer ${method} within ${timeoutMs / 1000} s, so it may or may not have been done; the page shows what the agent holds once it answers`, UNKNOWN)
          : new RpcError(ErrorCode.TemporaryFailure, `the agent did not answer ${method} within ${timeoutMs / 1000} s`));
        // No answer in that long: the connection is most likely dead (the agent's host went away,
        // a VPN dropped), and TCP may take a quarter of an hour to say so. Dial again now.
        if (socket === ws && state === "open") dropAndRedial(socket);
      }, timeoutMs);
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, socket, method });
      socket.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
    });
  }

  /** Gives up on the live socket: its calls fail as lost, and a new one is dialed. */
  function dropAndRedial(socket: WebSocket) {
    ws = null;
    failPending(socket, null);
    socket.close();
    scheduleRedial(`the agent did not answer for ${timeoutMs / 1000} s`);
  }

  /** Fails the calls waiting on `socket`: with `err`, else as lost. */
  function failPending(socket: WebSocket, err: RpcError | null) {
    for (const [id, p] of pending) {
      if (p.socket !== socket) continue;
      clearTimeout(p.timer);
      p.reject(err ?? lost(p.method));
      pending.delete(id);
    }
  }

  function onMessage(ev: MessageEvent) {
    let msg: { id?: number; method?: string; params?: unknown; result?: unknown; error?: { code: number; message: string; data?: unknown } };
    try {
      msg = JSON.parse(String(ev.data)) as typeof msg;
    } catch {
      return;
    }
    if (typeof msg.method === "string" && msg.id === undefined) {
      for (const fn of notificationListeners) fn({ method: msg.method, params: msg.params });
      return;
    }
    const p = typeof msg.id === "number" ? pending.get(msg.id) : undefined;
    if (!p) return;
    pending.delete(msg.id!);
    clearTimeout(p.timer);
    if (msg.error) p.reject(new RpcError(msg.error.code, msg.error.message, msg.error.data));
    else p.resolve(msg.result);
  }

  /** Opens a socket, signs in and subscribes; rejects when any of that fails. */
  function dial(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const socket = new Ws(deps.url);
      dialing = socket;
      let settled = false;
      socket.onmessage = onMessage;
      socket.onerror = () => undefined;
      socket.onclose = (ev?: { code?: number }) => {
        // 1008: the agent refused this page's origin (agent/api/ws-origin.ts) before any sign-in.
        const why = ev?.code === POLICY_VIOLATION ? originRefused() : null;
        failPending(socket, why);
        if (!settled) {
          settled = true;
          return reject(why ?? new RpcError(ErrorCode.TemporaryFailure, `cannot reach the agent at ${deps.url}`));
        }
        if (ws === socket && state === "open") {
          scheduleRedial(ev?.code === GOING_AWAY ? "the agent is stopping (or restarting)" : "the connection to the agent dropped");
        }
      };
      socket.onopen = () => {
        send(socket, ApiMethod.AuthLogin, { token: deps.token })
          // Counts by kind are all a page needs to know to refresh (a resync's whole changes are not).
          .then(() => send(socket, ApiMethod.ChangesSubscribe, { summary: true }))
          .then(() => {
            settled = true;
            if (dialing === socket) dialing = null;
            if (state === "closed") {
              socket.close();
              return reject(signedOut());
            }
            ws = socket;
            resolve();
          })
          .catch((err: RpcError) => {
            settled = true;
            if (dialing === socket) dialing = null;
            socket.close();
            reject(err);
          });
      };
    });
  }

  function scheduleRedial(why: string) {
    down = { why, nextTryAt: null };
    setState("reconnecting");
    planRedial();
  }

  function planRedial() {
    down = { why: down?.why ?? "", nextTryAt: Date.now() + retryMs };
    retryTimer = setTimeout(redial, retryMs);
  }

  function redial() {
    if (state === "closed" || !down) return;
    down = { why: down.why, nextTryAt: null };
    dial().then(
      () => {
        retryMs = 500;
        down = null;
        setState("open");
        setState("resumed");
      },
      (err: RpcError) => {
        if (state === "closed") return;
        // Refused, not unreachable: redialling would be refused again, every 10 s, unsaid.
        if (err.code === ErrorCode.Unauthorized || originRefusal(err)) {
          refusal = err;
          down = null;
          return setState("refused");
        }
        down = { why: err.message, nextTryAt: null };
        retryMs = Math.min(retryMs * 2, 10_000);
        planRedial();
      },
    );
  }

  const client: RpcClient = {
    async call<T>(method: string, params: unknown = {}) {
      if (state === "refused") throw new RpcError(ErrorCode.Unauthorized, "the agent no longer accepts this token; sign in again");
      if (state === "closed") throw signedOut();
      if (state !== "open" || !ws) throw notConnected();
      return send<T>(ws, method, params);
    },
    onNotification(fn) {
      notificationListeners.add(fn);
      return () => notificationListeners.delete(fn);
    },
    onState(fn) {
      stateListeners.add(fn);
      return () => stateListeners.delete(fn);
    },
    state: () => state,
    refusal: () => refusal,
    reconnecting: () => (state === "reconnecting" && down ? { ...down } : null),
    retryNow() {
      if (state !== "reconnecting" || down?.nextTryAt == null) return;
      clearTimeout(retryTimer);
      redial();
    },
    close() {
      clearTimeout(retryTimer);
      setState("closed");
      ws?.close();
      dialing?.close();
    },
  };

  return dial().then(() => {
    setState("open");
    return client;
  });
}

/** The WebSocket URL of the agent that served this page. */
export function agentRpcUrl(location: { protocol: string; host: string }): string {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/rpc`;
}
