/**
 * A peer session's WebSocket: the Transport the session sends through, and the frames, pings and
 * close that the socket feeds back into it. Before the handshake anyone can connect, so until the
 * session is ready it drops a connection that sends oversized frames or does not read its answers.
 */
import { WebSocket } from "ws";
import type { Logger } from "../ops/logger.js";
import type { PeerSession, Transport } from "./peer-session.js";

/** Before authentication: the largest frame taken (a hello with a version vector of 10,000 origins fits), and answers left unread. */
export const PRE_AUTH_MAX_FRAME = 1 << 20;
const PRE_AUTH_BUFFER_LIMIT = 1 << 20;

/** `isReady`: whether the session on this socket has authenticated (false while it is being made). */
export function socketTransport(ws: WebSocket, remote: string, log: Logger, isReady: () => boolean): Transport {
  return {
    remote,
    send: (frame) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      try {
        ws.send(frame, { binary: false });
      } catch (err) {
        // Never thrown into the session: its JSON-RPC client would take a throw for the peer's
        // answer to the request (a refusal), and in a push of several batches the requests already
        // made would be left unanswered. A connection that cannot be written is dead: the session
        // ends, its requests fail as transient, and the next session resumes from the peer's vector.
        log.warn({ remote, err: (err as Error).message }, "cannot write to the peer connection; dropping it");
        ws.terminate();
        return;
      }
      // Before the handshake anyone can connect: one who sends requests and never reads the
      // answers is dropped before they pile up.
      // (The server's challenge goes out while the session is being made: not ready then either.)
      if (!isReady() && ws.bufferedAmount > PRE_AUTH_BUFFER_LIMIT) {
        log.warn({ remote, buffered: ws.bufferedAmount }, "an unauthenticated peer connection does not read its answers; dropping it");
        ws.terminate();
      }
    },
    close: (code, reason) => ws.close(code, reason),
  };
}

/** Feeds the socket's text frames and its close into `session`, and drops the socket once it stops answering pings. */
export function feedSession(ws: WebSocket, session: PeerSession, opts: { remote: string; log: Logger; pingIntervalMs: number }): void {
  const { remote, log } = opts;
  let alive = true;
  const ping = setInterval(() => {
    if (!alive) {
      log.warn({ remote }, "peer stopped answering pings; dropping the connection");
      ws.terminate();
      return;
    }
    alive = false;
    ws.ping();
  }, opts.pingIntervalMs);
  ws.on("pong", () => (alive = true));
  ws.on("message", (data, isBinary) => {
    alive = true;
    if (isBinary) {
      ws.close(1003, "text frames only");
      return;
    }
    const size = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : (data as Buffer | ArrayBuffer).byteLength;
    if (!session.isReady() && size > PRE_AUTH_MAX_FRAME) {
      ws.close(1009, "frame too large before authentication");
      return;
    }
    session.receive(data.toString());
  });
  ws.on("close", (code, reason) => {
    clearInterval(ping);
    session.closed(`${code} ${reason.toString() || "closed"}`);
  });
  ws.on("error", (err) => log.debug({ remote, err: err.message }, "peer socket error"));
}
