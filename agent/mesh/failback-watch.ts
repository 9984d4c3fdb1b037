/**
 * The hub dialer's (dialer.ts) watch of its preferred hub: while the agent's session is with a hub
 * other than the first of hub.urls, check the first as the failback policy says (failback.ts), and
 * have the dialer close the session to dial it once the policy, or an operator (failBackNow, on
 * SIGHUP), says to move. The dialer then dials the first URL, and falls over to the next ones as
 * after any drop if it no longer answers. The new hub learns by version vector what the agent
 * already holds, as after a failover: nothing is lost, nothing applied twice.
 */
import type { WebSocket } from "ws";
import type { Logger } from "../ops/logger.js";
import { redactUrl } from "../ops/redact-url.js";
import type { FailbackPolicy } from "./failback.js";

export interface FailbackWatchDeps {
  log: Logger;
  /**
   * A policy for the current first URL and failback interval: what the checks of one hub, or under
   * one interval, learned says nothing about another.
   */
  newPolicy(): FailbackPolicy;
  /** Resolves with the hub's node id once it would take a session; rejects saying why not. */
  probe(url: string): Promise<string>;
  /** A ready session with a hub exists (not one still in its handshake). */
  isConnected(): boolean;
  /** The preferred hub now: the first of hub.urls. */
  preferred(): string;
  /** The dialer was stopped. */
  stopped(): boolean;
  /** Close `ws` to dial the preferred hub, the dialer's list from its start. */
  moveBack(ws: WebSocket): void;
}

export interface FailbackWatch {
  /**
   * A session with `current`, a hub other than the preferred one, is up until `closed`: watch the
   * preferred hub. Ends any watch running before.
   */
  watch(ws: WebSocket, current: string, closed: Promise<string>): void;
  /** Ends the running watch at once (its session stays); one in a check drops what it finds. */
  end(): void;
  running(): boolean;
  /** Takes a new policy (a new first URL, or a new failback interval); a running watch keeps its own until restarted. */
  renew(): void;
  /**
   * The preferred hub refused this agent's handshake (`reason`: a wrong cluster key, an agent it
   * does not list, another protocol version). Its checks cannot see that (they stop at the
   * challenge, before authenticating), so moving there would be refused again every few intervals,
   * dropping a working session each time: the checks stop until a SIGHUP (checkNow) or a new first URL.
   */
  refusedBy(url: string, reason: string): void;
  /** A session with `url` held (the refusal, if any, was fixed on the hub's side): its checks resume. */
  accepted(url: string): void;
  /**
   * Asks the running watch to check the preferred hub now and move there if it takes sessions,
   * whatever the policy says; resolves with what was done. Null when no watch runs.
   */
  checkNow(): Promise<string> | null;
}

export function createFailbackWatch(deps: FailbackWatchDeps): FailbackWatch {
  const { log } = deps;
  let policy = deps.newPolicy();
  /** Set while a watch waits: ask it for a check now. */
  let asking: ((answer: (outcome: string) => void) => void) | null = null;
  let onOtherHub = false;
  /** The running watch; one that outlived its session (in a check) must not clear the next one's state. */
  let watchToken: object | null = null;
  /** Ends the current waitForCheck (the session closed, or the watch was ended). */
  let interruptWait: (() => void) | null = null;
  /** The preferred hub that refused our handshake, and why: not checked until a SIGHUP or a new first URL. */
  let refused: { url: string; reason: string } | null = null;
  const nextWait = (rules: FailbackPolicy, preferred: string): number | null => (refused?.url === preferred ? null : rules.nextCheckIn());

  function end(): void {
    const interrupt = interruptWait;
    watchToken = null;
    asking = null;
    interruptWait = null;
    onOtherHub = false;
    interrupt?.();
  }

  async function run(ws: WebSocket, current: string, closed: Promise<string>): Promise<void> {
    // The policy of this watch's first URL: a new first URL brings a new policy and a new watch.
    const rules = policy;
    const me = {};
    watchToken = me;
    const preferred = deps.preferred();
    let ended = false;
    void closed.then(() => {
      ended = true;
      interruptWait?.();
    });
    rules.onOtherHub(Date.now());
    onOtherHub = true;
    /** When the first of the checks in a row that found the preferred hub up ran. */
    let upSince: number | null = null;
    let wait = nextWait(rules, preferred);
    // Debug, not info: while every hub refuses sessions this runs on each attempt (the session's
    // own "peer session ready" line says which hub the agent is on).
    if (wait !== null) log.debug({ hub: redactUrl(current), preferred: redactUrl(preferred), checkInSec: Math.round(wait / 1000) }, "on a hub other than its preferred one; will check that one");
    try {
      while (!ended && !deps.stopped() && watchToken === me) {
        const answer = await waitForCheck(wait);
        if (ended || deps.stopped() || watchToken !== me) {
          answer?.("the hub session closed; the agent dials as after any drop");
          return;
        }
        if (!deps.isConnected()) {
          // Still in the handshake (or refused and about to close): no session to leave yet.
          answer?.("the hub session is not ready yet; try again in a moment");
          continue;
        }
        let hubId: string | null = null;
        let why = "";
        try {
          hubId = await deps.probe(preferred);
        } catch (err) {
          why = (err as Error).message;
        }
        if (ended || deps.stopped()) {
          answer?.("the hub session closed during the check; the agent dials as after any drop");
          return;
        }
        if (watchToken !== me) {
          answer?.("hub.urls changed during the check; send SIGHUP again to check the new first hub");
          return;
        }
        upSince = hubId === null ? null : (upSince ?? Date.now());
        const move = rules.checked(hubId !== null) || (answer !== null && hubId !== null);
        wait = nextWait(rules, preferred);
        if (!move) {
          log.debug({ preferred: redactUrl(preferred), up: hubId !== null, err: why || undefined }, "checked the preferred hub");
          answer?.(`the preferred hub ${redactUrl(preferred)} does not take sessions (${why}); staying on ${redactUrl(current)}`);
          continue;
        }
        const because = answer ? "asked to rebalance" : `it has taken sessions for ${Math.round((Date.now() - upSince!) / 1000)} s`;
        log.info({ from: redactUrl(current), to: redactUrl(preferred), hub: hubId }, `moving back to its preferred hub ${hubId}: ${because}`);
        rules.moving(Date.now());
        deps.moveBack(ws);
        answer?.(`moving to the preferred hub ${hubId} (${redactUrl(preferred)})`);
        return;
      }
    } finally {
      if (watchToken === me) {
        watchToken = null;
        asking = null;
        interruptWait = null;
        onOtherHub = false;
      }
    }
  }

  /** Sleeps `ms` (null: until asked), or until the session closes or checkNow asks; resolves with the asker's callback. */
  function waitForCheck(ms: number | null): Promise<((outcome: string) => void) | null> {
    return new Promise((r) => {
      const done = (answer: ((outcome: string) => void) | null) => {
        if (t) clearTimeout(t);
        asking = null;
        interruptWait = null;
        r(answer);
      };
      const t = ms === null ? null : setTimeout(() => done(null), ms);
      asking = done;
      interruptWait = () => done(null);
    });
  }

  return {
    watch(ws, current, closed) {
      end();
      void run(ws, current, closed);
    },
    end,
    running: () => watchToken !== null,
    renew() {
      policy = deps.newPolicy();
      refused = null;
    },
    refusedBy(url, reason) {
      if (refused?.url !== url || refused.reason !== reason) {
        log.error({ hub: redactUrl(url), reason }, "the preferred hub refused this agent's handshake: the agent stays on its other hubs and stops checking that one until a SIGHUP. Fix what the reason says (the hub's mesh.agents, the cluster key, the versions), then send SIGHUP");
      }
      refused = { url, reason };
    },
    accepted(url) {
      if (refused?.url !== url) return;
      log.info({ hub: redactUrl(url) }, "the preferred hub took this agent again: failback checks it again");
      refused = null;
    },
    checkNow() {
      // An operator asking (SIGHUP) has fixed what the refusal said, or wants to see.
      refused = null;
      const ask = asking;
      if (!ask && onOtherHub) return Promise.resolve("a check of the preferred hub is under way; try again in a moment");
      if (!ask) return null;
      return new Promise((r) => ask(r));
    },
  };
}
