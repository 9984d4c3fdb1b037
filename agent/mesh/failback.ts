/**
 * When an agent on a hub other than its first (`hub.urls[0]`, its preferred hub) goes back to it.
 * The README's scale-out advice spreads agents over hubs by giving each a list that starts at a
 * different hub; without failing back, a rolling restart of the hubs would leave every agent on
 * the hub restarted last-but-one. No I/O here: the dialer (dialer.ts) runs the checks and the move.
 *
 * While on another hub the agent checks the preferred one every `afterMs`, plus up to half as much
 * again at random, so agents that failed over together neither check nor move together. It moves
 * once two checks in a row found the hub taking sessions: it has then been up for at least one
 * interval, so a hub that just came back, or restarts in a loop, is not trusted at once. A check
 * that fails doubles the interval (up to MAX_BACKOFF times) until one succeeds; a move that did not
 * stick (the agent was on another hub again within `afterMs` of moving) doubles it the same way
 * until a move sticks, so a hub that answers checks but drops sessions is not tried over and over.
 */
export interface FailbackPolicy {
  /** Milliseconds to wait before the next check; null: failback is off (`afterMs` 0). */
  nextCheckIn(): number | null;
  /** A check's outcome. True: move to the preferred hub now. */
  checked(up: boolean): boolean;
  /** The agent's session is now with a hub other than the preferred one (a failover, or a move that failed). */
  onOtherHub(nowMs: number): void;
  /** The agent is moving back (closing its session to dial the preferred hub). */
  moving(nowMs: number): void;
}

/** The longest wait between checks, in multiples of `afterMs` (before jitter). */
export const MAX_BACKOFF = 4;
/** Each wait is `afterMs` × back-off × (1 + up to this much at random). */
export const JITTER = 0.5;
/** Checks in a row that must find the preferred hub up before moving. */
export const CHECKS_TO_MOVE = 2;

export function createFailbackPolicy(o: { afterMs: number; random?: () => number }): FailbackPolicy {
  const random = o.random ?? Math.random;
  let checkBackoff = 1;
  let moveBackoff = 1;
  let upInARow = 0;
  let movedAt: number | null = null;
  return {
    nextCheckIn() {
      if (o.afterMs <= 0) return null;
      return Math.round(o.afterMs * Math.max(checkBackoff, moveBackoff) * (1 + JITTER * random()));
    },
    checked(up) {
      if (!up) {
        upInARow = 0;
        checkBackoff = Math.min(MAX_BACKOFF, checkBackoff * 2);
        return false;
      }
      checkBackoff = 1;
      upInARow++;
      return upInARow >= CHECKS_TO_MOVE;
    },
    onOtherHub(nowMs) {
      upInARow = 0;
      checkBackoff = 1;
      // Only a move judges the move back-off: one that did not stick doubles it, one that stuck
      // resets it. Sessions opened to another hub meanwhile (a reconnect, a session refused in its
      // handshake) leave it as it is, or a hub that drops the agents it takes back would be tried
      // again at the base interval after every reconnect.
      if (movedAt !== null) moveBackoff = nowMs - movedAt < o.afterMs ? Math.min(MAX_BACKOFF, moveBackoff * 2) : 1;
      movedAt = null;
    },
    moving(nowMs) {
      upInARow = 0;
      movedAt = nowMs;
    },
  };
}
