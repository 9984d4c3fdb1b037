/**
 * What one HTTP client may hold on the API port (agent and hub alike: http-server.ts). Node's
 * defaults let a client trickle a request for 300 s (requestTimeout) and its headers for 60 s, with
 * no limit on connections: a hostile run held 200 connections on one agent for minutes. Here:
 * headers within `headersTimeoutMs`, the whole request within `requestTimeoutMs` (Node answers 408
 * and closes), and at most `connections.perClient` HTTP connections per client and
 * `connections.total` in all (client-slots.ts); one over is closed at once. A connection upgraded to
 * a WebSocket stops counting here: the WebSocket caps (SIGNED_OUT_LIMITS, the sign-in timer) take
 * over. Refusals (401, 413, 429) close the connection rather than read the rest of the body
 * (answerAndClose).
 */
import type { IncomingMessage, Server, ServerOptions, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { HTTP_CONNECTION_LIMITS, createClientSlots } from "./client-slots.js";

export interface HttpLimits {
  /** A request's headers must be in within this many ms of its start. */
  headersTimeoutMs: number;
  /** The whole request, body included, within this many ms of its start. */
  requestTimeoutMs: number;
  /** HTTP connections open at once: per client (an IPv6 /64 is one), and in all. */
  connections: { perClient: number; total: number };
  /** After a refusal is sent, what the client still sends is read and dropped for at most this many ms (answerAndClose). */
  lingerMs: number;
}

/**
 * A body of api.maxMessageBytes (4 MiB by default) in 60 s needs about 70 KB/s; a script or the
 * CLI sends its request at once.
 */
export const HTTP_LIMITS: HttpLimits = { headersTimeoutMs: 10_000, requestTimeoutMs: 60_000, connections: HTTP_CONNECTION_LIMITS, lingerMs: 2000 };

/**
 * The options for node:http's createServer. Node looks for expired requests every
 * connectionsCheckingInterval (30 s by default, which would let a 10 s limit run to 40 s): here
 * every second, or sooner for the short limits tests set.
 */
export function httpServerOptions(l: HttpLimits): ServerOptions {
  const check = Math.max(50, Math.min(1000, Math.floor(Math.min(l.headersTimeoutMs, l.requestTimeoutMs) / 4)));
  return { headersTimeout: Math.min(l.headersTimeoutMs, l.requestTimeoutMs), requestTimeout: l.requestTimeoutMs, connectionsCheckingInterval: check };
}

/**
 * Counts each connection `server` takes against `l.connections`; one over the limit is destroyed
 * before a byte is read, and `onRefused` told (for a log line). An upgraded connection is released.
 */
export function capConnections(server: Server, l: HttpLimits, onRefused: (remote: string) => void, exempt?: (remote: string) => boolean): void {
  const slots = createClientSlots(l.connections, exempt);
  const releases = new WeakMap<Duplex, () => void>();
  server.on("connection", (socket: Duplex & { remoteAddress?: string }) => {
    const remote = socket.remoteAddress ?? "unknown";
    if (!slots.admit(remote)) {
      onRefused(remote);
      socket.destroy();
      return;
    }
    let held = true;
    const release = () => {
      if (held) slots.release(remote);
      held = false;
    };
    releases.set(socket, release);
    socket.once("close", release);
  });
  server.on("upgrade", (_req: IncomingMessage, socket: Duplex) => releases.get(socket)?.());
}

/**
 * Answers a refused request (401, 413, 429) and closes its connection, rather than read the rest
 * of its body for as long as the client takes to send it. The whole answer is sent at once, with
 * `Connection: close` (so no client sends another request on it) and its length; what the client
 * still sends is dropped until its body ends or `lingerMs` pass, and then the answer is ended, which
 * closes the socket (Apache's lingering close). Closing at once, with unread data, would make the
 * kernel reset the connection, and a client still uploading would see EPIPE or ECONNRESET instead
 * of the answer.
 */
export function answerAndClose(req: IncomingMessage, res: ServerResponse, status: number, headers: Record<string, string>, body: string, lingerMs: number): void {
  res.writeHead(status, { ...headers, connection: "close", "content-length": String(Buffer.byteLength(body)) });
  res.write(body);
  const end = () => {
    clearTimeout(timer);
    if (!res.writableEnded) res.end();
  };
  const timer = setTimeout(end, lingerMs);
  timer.unref();
  if (req.complete) return end();
  req.once("end", end);
  req.once("close", end);
  req.resume();
}
