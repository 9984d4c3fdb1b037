/**
 * A phone on TCP, TLS or WebSocket is reached from the other nodes through a Path to the socket its
 * connection came in on, as usrloc keeps it (install-plan.ts ownerRoute). A listener kept as a
 * wildcard (`listen=tcp:0.0.0.0:5060`) gives them a Path to 0.0.0.0, which is no address: calls
 * to such phones through the other nodes fail. Nothing on this node shows it, so the registrar
 * intake shows each of this node's bindings to this check, and status and the log say what to
 * change (the log hourly, while such bindings keep coming).
 */
import type { Logger } from "../ops/logger.js";
import { ownerRoute, parseSocket } from "./install-plan.js";

const WARN_EVERY_MS = 60 * 60 * 1000;
/** The warning stays in status this long after the last such binding (phones refresh well within it). */
const SHOWN_FOR_MS = 60 * 60 * 1000;
/** As parseSocket gives them (IPv6 bracketed). */
const WILDCARD_HOSTS = new Set(["0.0.0.0", "[::]", "[::0]", "[0:0:0:0:0:0:0:0]"]);

export interface WildcardSockets {
  /** A binding of this node's, with the socket usrloc keeps for it. */
  see(socket: string): void;
  /** What to change, while such bindings came within the last hour; else null. */
  warning(): string | null;
}

/** The socket is a connection's that other nodes reach through a Path, on a wildcard address. */
export function wildcardConnectionSocket(socket: string): boolean {
  if (socket === "" || socket.startsWith("udp:")) return false;
  const s = parseSocket(socket);
  return s !== null && WILDCARD_HOSTS.has(s.host) && ownerRoute({ socket, received: "" }) !== null;
}

export function wildcardSocketText(socket: string): string {
  const s = parseSocket(socket);
  const example = s === null ? "" : ` (listen=${s.proto}:${s.host.startsWith("[") ? "[2001:db8::1]" : "10.0.0.1"}:${s.port}, your node's)`;
  return `phones registered over TCP, TLS or WebSocket on Kamailio's wildcard listener ${socket}: the other nodes reach them through a Path to ` +
    `that socket, which is no address they can send to, so calls to these phones through other nodes fail. Give the listener an address ` +
    `the other nodes reach${example} and restart Kamailio`;
}

export function createWildcardSocketCheck(deps: { log: Logger; nowMs?: () => number }): WildcardSockets {
  const nowMs = deps.nowMs ?? Date.now;
  let last: { socket: string; at: number } | null = null;
  let warnedAt: number | null = null;
  /** The last socket found addressed: a node's phones come in on a few, so most REGISTERs are not parsed. */
  let lastAddressed = "";
  return {
    see(socket) {
      if (socket === lastAddressed) return;
      if (!wildcardConnectionSocket(socket)) {
        lastAddressed = socket;
        return;
      }
      const now = nowMs();
      last = { socket, at: now };
      if (warnedAt !== null && now - warnedAt < WARN_EVERY_MS) return;
      warnedAt = now;
      deps.log.warn({ socket }, `${wildcardSocketText(socket)}. Repeated hourly while such registrations come`);
    },
    warning() {
      if (last === null || nowMs() - last.at >= SHOWN_FOR_MS) return null;
      return wildcardSocketText(last.socket);
    },
  };
}
