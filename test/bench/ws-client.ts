/**
 * A minimal JSON-RPC 2.0 client for the agent's WebSocket API (ws://…/rpc), built for load: many
 * requests in flight on one socket, fire-and-forget sends, and a callback for server
 * notifications (`changes.applied` after `changes.subscribe`). It authenticates with the
 * `Authorization: Bearer <token>` header at the upgrade, as the API expects.
 */
import { WebSocket } from "ws";

export interface RpcFailure {
  code: number;
  message: string;
  data?: unknown;
}

export class WsRpcError extends Error {
  constructor(readonly failure: RpcFailure, method: string) {
    super(`${method} failed: ${failure.code} ${failure.message}`);
  }
}

export interface WsRpcClient {
  /** Sends a request and resolves with its result (rejects with WsRpcError on an error reply). */
  call<T = unknown>(method: string, params?: unknown): Promise<T>;
  /**
   * Sends a request without keeping a promise: `onReply` runs when the answer arrives. Used by the
   * paced publisher, which must never wait for replies.
   */
  send(method: string, params: unknown, onReply?: (error: RpcFailure | null) => void): void;
  /** As `send`, with the params already serialised (keeps JSON.stringify out of timed loops). */
  sendJson(method: string, paramsJson: string, onReply?: (error: RpcFailure | null, result: unknown) => void): void;
  /** Requests sent and not answered yet. */
  inFlight(): number;
  /** Bytes queued in the socket that the kernel has not taken yet. */
  bufferedAmount(): number;
  onNotification(handler: (method: string, params: unknown) => void): void;
  close(): Promise<void>;
}

type Pending = (error: RpcFailure | null, result: unknown) => void;

export async function connectWsRpc(apiUrl: string, token: string): Promise<WsRpcClient> {
  const url = `${apiUrl.replace(/^http/, "ws")}/rpc`;
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  ws.on("error", () => undefined);
  const pending = new Map<number, Pending>();
  const handlers: ((method: string, params: unknown) => void)[] = [];
  let nextId = 1;

  ws.on("message", (data) => {
    const msg = JSON.parse(data.toString()) as {
      id?: number | null;
      method?: string;
      params?: unknown;
      result?: unknown;
      error?: RpcFailure;
    };
    if (typeof msg.method === "string") {
      for (const h of handlers) h(msg.method, msg.params);
      return;
    }
    if (typeof msg.id !== "number") return;
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    p(msg.error ?? null, msg.result);
  });
  ws.on("close", () => {
    for (const p of pending.values()) p({ code: -1, message: "WebSocket closed" }, undefined);
    pending.clear();
  });

  const sendJson = (method: string, paramsJson: string, cb: Pending) => {
    const id = nextId++;
    pending.set(id, cb);
    ws.send(`{"jsonrpc":"2.0","id":${id},"method":${JSON.stringify(method)},"params":${paramsJson}}`);
  };
  const send = (method: string, params: unknown, cb: Pending) => sendJson(method, JSON.stringify(params), cb);

  return {
    call<T>(method: string, params: unknown = {}) {
      return new Promise<T>((resolve, reject) => {
        send(method, params, (error, result) => (error ? reject(new WsRpcError(error, method)) : resolve(result as T)));
      });
    },
    send(method, params, onReply) {
      send(method, params, (error) => onReply?.(error));
    },
    sendJson(method, paramsJson, onReply) {
      sendJson(method, paramsJson, (error, result) => onReply?.(error, result));
    },
    inFlight: () => pending.size,
    bufferedAmount: () => ws.bufferedAmount,
    onNotification: (h) => void handlers.push(h),
    async close() {
      if (ws.readyState === WebSocket.CLOSED) return;
      await new Promise<void>((resolve) => {
        ws.once("close", () => resolve());
        ws.close(1000, "bench done");
        setTimeout(() => {
          ws.terminate();
          resolve();
        }, 1000).unref();
      });
    },
  };
}
