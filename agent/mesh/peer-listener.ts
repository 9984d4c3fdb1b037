/**
 * The peer port (`mesh.listen`): an HTTP(S) server that takes WebSocket upgrades on /peer and
 * hands each connection to the mesh. It listens only while `wanted()` says some node could use it
 * (an agent in hub mode with nobody to take sessions from does not: mesh.ts), and `sync()` opens
 * or closes it when that changes (a SIGHUP that adds or removes `mesh.peers`).
 */
import { createServer as createHttpServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import { listenOn } from "../ops/listen.js";
import type { Logger } from "../ops/logger.js";
import { readTlsFiles, type TlsFiles, type TlsMaterial } from "./tls-files.js";

/**
 * Whether the peer port is of use: outside hub mode the other nodes dial this one (or will, once
 * they list it); in hub mode with no mesh.peers and mesh.acceptUnlisted off the handshake would
 * refuse every node that dials it, and an open port would only be one more to firewall.
 */
export function peerPortWanted(o: { hubMode: boolean; peers: number; acceptUnlisted: boolean }): boolean {
  return !o.hubMode || o.peers > 0 || o.acceptUnlisted;
}

export const PEER_PORT_UNWANTED =
  "in hub mode with no mesh.peers and mesh.acceptUnlisted off, no node could hold a session there (the agent dials its hubs); a SIGHUP that adds mesh.peers opens it";

export interface PeerListener {
  /**
   * Opens or closes the port as `wanted()` says, one change at a time, and logs it. Rejects with a
   * ListenError (ops/listen.ts) that says what to do when the port cannot be opened.
   */
  sync(): Promise<void>;
  /** Stops listening for good and drops every connection it took (sessions on them end). */
  close(): Promise<void>;
  /** The bound port; 0 while not listening. */
  port(): number;
  /**
   * Serves mesh.tls's certificate and key as just read from `files` (readTlsFiles: a renewed
   * certificate; SIGHUP) to the next handshakes; sessions up stay, and a reopened port reads
   * `files`. Only for a listener started with TLS (switching needs a restart).
   */
  setTls(files: TlsFiles, read: TlsMaterial): void;
}

export function createPeerListener(deps: {
  listen: { host: string; port: number };
  /** PEM file paths; read at each open (and by setTls). */
  tls: TlsFiles | null;
  maxMessageBytes: number;
  log: Logger;
  /** Whether some node could hold a session over the port. */
  wanted(): boolean;
  /** Why not, when wanted() is false: for the log. */
  unwantedBecause: string;
  /** Fields for the log lines (peers, hubs). */
  logFields(): object;
  onConnection(ws: WebSocket, req: IncomingMessage): void;
  /** How long a request (the WebSocket upgrade, headers only) may take to arrive; 10 s unless a test says otherwise. */
  requestTimeoutMs?: number;
}): PeerListener {
  const { log } = deps;
  const at = `${deps.listen.host}:${deps.listen.port}`;
  let server: Server | null = null;
  let tlsFiles = deps.tls;
  let wss: WebSocketServer | null = null;
  let closed = false;
  let synced = false;
  /** The last open or close; the next one waits for it. */
  let change: Promise<void> = Promise.resolve();

  async function open(): Promise<void> {
    const m = tlsFiles ? readTlsFiles(tlsFiles) : null;
    const tls = m ? { cert: m.cert, key: m.key } : null;
    // The only request this port serves is a WebSocket upgrade, headers alone: one that takes
    // longer than this is answered 408 and closed (Node's defaults held a trickling client for up
    // to 300 s), checked every second rather than Node's 30 s.
    const timeout = deps.requestTimeoutMs ?? 10_000;
    const options = { headersTimeout: timeout, requestTimeout: timeout, connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(timeout / 4))) };
    const s = tls ? createHttpsServer({ ...tls, ...options }) : createHttpServer(options);
    s.on("request", (_req, res) => {
      // Closed once answered, not kept while the client trickles a body nobody reads.
      res.writeHead(426, { "content-type": "text/plain", connection: "close" }).end("locmesh peer port: WebSocket only\n");
    });
    const w = new WebSocketServer({ server: s, path: "/peer", maxPayload: deps.maxMessageBytes });
    w.on("connection", deps.onConnection);
    await listenOn(s, w, deps.listen, "peer mesh", "mesh.listen.port", (err) => log.error({ err: err.message }, "peer mesh server error"));
    server = s;
    wss = w;
  }

  async function shut(): Promise<void> {
    const s = server;
    if (!s) return;
    for (const c of wss?.clients ?? []) c.terminate();
    wss?.close();
    server = null;
    wss = null;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  const port = () => (server?.address() as AddressInfo | null)?.port ?? 0;

  return {
    sync() {
      const run = async () => {
        if (closed) return;
        const first = !synced;
        synced = true;
        if (deps.wanted() && !server) {
          await open();
          log.info({ listen: `${deps.listen.host}:${port()}`, tls: Boolean(deps.tls), ...deps.logFields() }, "peer mesh listening");
        } else if (!deps.wanted() && server) {
          await shut();
          log.info({ listen: null, ...deps.logFields() }, `peer mesh closed its port ${at}: ${deps.unwantedBecause}`);
        } else if (!deps.wanted() && first) {
          log.info({ listen: null, ...deps.logFields() }, `peer mesh not listening on ${at}: ${deps.unwantedBecause}`);
        }
      };
      change = change.then(run, run);
      return change;
    },
    async close() {
      closed = true;
      await change.catch(() => undefined);
      await shut();
    },
    port,
    setTls(files, read) {
      if (tlsFiles === null) throw new Error("the peer port was started without TLS: turning it on needs a restart");
      tlsFiles = files;
      if (server && "setSecureContext" in server) (server as HttpsServer).setSecureContext({ cert: read.cert, key: read.key });
    },
  };
}
