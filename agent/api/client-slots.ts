/**
 * Caps what one client may hold open on the API port, where anyone who can reach `api.listen` may
 * connect: the WebSockets that have not signed in yet (each holds a socket, its buffers and a
 * sign-in timer for up to 30 s) and the HTTP connections (each holds a socket while its request
 * arrives, up to the request timeout: http-limits.ts). Without a cap one client could hold
 * thousands. Per client (throttleKey: an IPv4 address, an IPv6 /64) at most `perClient`, and
 * `total` in all. The host's own addresses count only toward the total: behind a reverse proxy on
 * the same host every browser arrives from 127.0.0.1. So do the proxies in `api.trustedProxies`.
 */
import { isOwnHost, throttleKey } from "../ops/auth-throttle.js";

export interface ClientSlots {
  /** A new socket from `remote`: false when it must be refused. */
  admit(remote: string): boolean;
  /** That socket no longer counts (signed in, upgraded or closed). Call once per admitted socket. */
  release(remote: string): void;
  /** Sockets held now (tests, status). */
  count(): number;
}

/** WebSockets waiting for sign-in. */
export const SIGNED_OUT_LIMITS = { perClient: 16, total: 512 } as const;
/** HTTP connections (not WebSockets: an upgraded connection no longer counts here). */
export const HTTP_CONNECTION_LIMITS = { perClient: 32, total: 1024 } as const;

/** `exempt`: clients that count toward the total only (default the host's own; apiExempt). */
export function createClientSlots(limits: { perClient: number; total: number }, exempt: (remote: string) => boolean = isOwnHost): ClientSlots {
  const byClient = new Map<string, number>();
  let total = 0;
  const keyOf = (remote: string) => (exempt(remote) ? null : throttleKey(remote));
  return {
    admit(remote) {
      const key = keyOf(remote);
      const held = key === null ? 0 : (byClient.get(key) ?? 0);
      if (total >= limits.total || held >= limits.perClient) return false;
      total++;
      if (key !== null) byClient.set(key, held + 1);
      return true;
    },
    release(remote) {
      total = Math.max(0, total - 1);
      const key = keyOf(remote);
      if (key === null) return;
      const held = (byClient.get(key) ?? 1) - 1;
      if (held <= 0) byClient.delete(key);
      else byClient.set(key, held);
    },
    count: () => total,
  };
}
