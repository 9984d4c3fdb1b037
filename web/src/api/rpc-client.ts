/**
 * JSON-RPC 2.0 over the agent's WebSocket /rpc, the way the web UI uses it: sign in with
 * auth.login, subscribe to changes.applied, then make calls. A dropped connection is redialled with
 * back-off and signed in again; listeners hear "resumed" so pages can refetch what they show.
 * Transport-agnostic enough to test: the WebSocket constructor is passed in.
 */
import { ErrorCode, RpcError } from "../../../agent/contract/errors.js";
import { ApiMethod } from "../../../agent/contract/protocol.js";

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
  close(): void;
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
}

const lost = () => new RpcError(ErrorCode.TemporaryFailure, "lost the connection to the agent; reconnecting");

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
  let ready: Promise<void> = Promise.resolve();
  let retryMs = 500;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;

  const setState = (s: ConnectionState | "resumed") => {
    if (s !== "resumed") state = s;
    for (const fn of stateListeners) fn(s);
  };

  function send<T>(socket: WebSocket, method: string, params: unknown): Promise<T> {
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new RpcError(ErrorCode.TemporaryFailure, `the agent did not answer ${method} within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      socket.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
    });
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
      let settled = false;
      socket.onmessage = onMessage;
      socket.onerror = () => undefined;
      socket.onclose = () => {
        for (const [id, p] of pending) {
          clearTimeout(p.timer);
          p.reject(lost());
          pending.delete(id);
        }
        if (!settled) {
          settled = true;
          return reject(new RpcError(ErrorCode.TemporaryFailure, `cannot reach the agent at ${deps.url}`));
        }
        if (ws === socket && state === "open") scheduleRedial();
      };
      socket.onopen = () => {
        send(socket, ApiMethod.AuthLogin, { token: deps.token })
          .then(() => send(socket, ApiMethod.ChangesSubscribe, {}))
          .then(() => {
            settled = true;
            ws = socket;
            resolve();
          })
          .catch((err: RpcError) => {
            settled = true;
            socket.close();
            reject(err);
          });
      };
    });
  }

  function scheduleRedial() {
    setState("reconnecting");
    ready = new Promise<void>((resolve) => {
      const attempt = () => {
        retryTimer = setTimeout(() => {
          if (state === "closed") return;
          dial().then(
            () => {
              retryMs = 500;
              setState("open");
              setState("resumed");
              resolve();
            },
            (err: RpcError) => {
              if (err.code === ErrorCode.Unauthorized) {
                setState("refused");
                return resolve();
              }
              retryMs = Math.min(retryMs * 2, 10_000);
              attempt();
            },
          );
        }, retryMs);
      };
      attempt();
    });
  }

  const client: RpcClient = {
    async call<T>(method: string, params: unknown = {}) {
      await ready;
      if (state !== "open" || !ws) {
        throw state === "refused"
          ? new RpcError(ErrorCode.Unauthorized, "the agent no longer accepts this token; sign in again")
          : lost();
      }
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
    close() {
      clearTimeout(retryTimer);
      setState("closed");
      ws?.close();
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
