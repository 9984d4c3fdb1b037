/**
 * Caps the API WebSockets that have not signed in yet. Anyone who can reach `api.listen` may open
 * one, and each holds a socket, its buffers and a sign-in timer for up to 30 s; without a cap one
 * client could hold thousands. Per client (throttleKey: an IPv4 address, an IPv6 /64) at most
 * `perClient`, and `total` in all. The host's own addresses count only toward the total: behind a
 * reverse proxy on the same host every browser arrives from 127.0.0.1.
 */
import { isOwnHost, throttleKey } from "../ops/auth-throttle.js";

export interface SignedOutSockets {
  /** A new signed-out socket from `remote`: false when it must be refused. */
  admit(remote: string): boolean;
  /** That socket signed in or closed. Call once per admitted socket. */
  release(remote: string): void;
  /** Signed-out sockets held now (tests, status). */
  count(): number;
}

export const SIGNED_OUT_LIMITS = { perClient: 16, total: 512 } as const;

export function createSignedOutSockets(limits: { perClient: number; total: number } = SIGNED_OUT_LIMITS): SignedOutSockets {
  const byClient = new Map<string, number>();
  let total = 0;
  const keyOf = (remote: string) => (isOwnHost(remote) ? null : throttleKey(remote));
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
