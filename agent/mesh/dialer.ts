/**
 * Keeps one outbound connection up: dials, backs off and retries (p-retry, `retry`), waits while a
 * session is up, and dials again when it drops. A target with several URLs (the hubs of a cluster)
 * fails over: each attempt tries the next URL, and a connection that drops moves on to the next
 * hub at once rather than waiting for the one that just went away. On a hub other than the first
 * URL (the agent's preferred hub) it checks the first now and then and moves back to it once it
 * has answered for a while (failback.ts, watched by failback-watch.ts), through the same path:
 * close the session, dial. The hub list and the failback interval can be replaced while it runs
 * (SIGHUP: setUrls, renewFailback).
 */
import pRetry from "p-retry";
import { WebSocket } from "ws";
import type { Logger } from "../ops/logger.js";
import type { FailbackPolicy } from "./failback.js";
import { createFailbackWatch } from "./failback-watch.js";
import type { Metrics } from "../ops/metrics.js";
import { redactUrl } from "../ops/redact-url.js";


/**
 * A close that says the hub will refuse this agent again until someone changes a config: a key it
 * does not take, an id it does not list, another protocol, another node at that URL (peer-handshake.ts).
 * Not a timeout or a failed exchange ("handshake failed with"), which may pass.
 */
const HANDSHAKE_REFUSAL = /^(4001 (refused by|unauthorized|server proof failed)|4002|4003)\b/;
export interface DialTarget {
  /** The node we expect to reach; null for a hub, whichever of `urls` answers. */
  id: string | null;
  urls: readonly string[];
}

export interface DialerDeps {
  target: DialTarget;
  /** Label for logs and metrics: the peer id, or "hub". */
  label: string;
  nodeId: string;
  retry: { minMs: number; maxMs: number };
  /**
   * Opens a socket to `url` and attaches a client session to it; resolves once it is open, or with
   * null when a session with this peer exists already (it dialed us). `track` sees the socket first.
   */
  connect(url: string, track: (ws: WebSocket) => void): Promise<WebSocket | null>;
  /** A ready session with the target exists (ours or one the peer dialed). */
  isConnected(): boolean;
  log: Logger;
  metrics: Metrics;
  /**
   * Hubs only: while the session is with any URL but the first, `probe` the first as `policy`
   * says, and move back to it when the policy says so. `probe` resolves with the hub's node id
   * once it would take a session, and rejects saying why not. A new policy is made for each first
   * URL, and for each failback interval (renewFailback): what the checks of one hub learned says
   * nothing about another.
   */
  failback?: { newPolicy(): FailbackPolicy; probe(url: string): Promise<string> };
  /** An attempt failed or a session ended (not a duplicate closed, nor a move back): `reason` (no-hub-warning.ts). */
  onUnanswered?(reason: string): void;
}

export interface Dialer {
  readonly target: DialTarget;
  lastError(): string | null;
  /** The URL of the current or last connection attempt. */
  url(): string | null;
  /** Re-check now (a session closed, or the wait should end). */
  wake(): void;
  /**
   * On a hub other than the first URL: check the first now and move to it if it takes sessions,
   * whatever the failback policy says (an operator rebalancing). Resolves with what was done.
   */
  failBackNow(): Promise<string>;
  /**
   * Replace the URLs (a hub list changed by SIGHUP). A session with a URL still listed stays up (the
   * next failover starts after it in the new order, and failback follows the new first URL); one
   * with a URL no longer listed is closed and the new list dialed from its start. Says what was done.
   */
  setUrls(urls: readonly string[]): string;
  /**
   * The failback interval changed (SIGHUP): take a new policy from `failback.newPolicy`. On a hub
   * other than the first URL the checks of the first start over with it. Says what was done.
   */
  renewFailback(): string;
  stop(reason: string): void;
}

export function startDialer(deps: DialerDeps): Dialer {
  const { retry } = deps;
  let urls = deps.target.urls;
  const target: DialTarget = {
    id: deps.target.id,
    get urls() {
      return urls;
    },
  };
  const log = deps.log.child({ peer: deps.label });
  const stop = new AbortController();
  let lastError: string | null = null;
  let socket: WebSocket | null = null;
  let wake = () => undefined as void;
  let next = 0;
  let url: string | null = null;

  const sleepUnlessWoken = (ms: number) =>
    new Promise<void>((r) => {
      const t = ms === Infinity ? null : setTimeout(r, ms);
      wake = () => {
        if (t) clearTimeout(t);
        r();
      };
    });

  function connectOnce(): Promise<WebSocket | null> {
    // The peer may have dialed us while we were backing off: keep its session rather than build
    // a second one that the duplicate rule would then swap in mid-transfer.
    if (deps.isConnected()) return Promise.resolve(null);
    url = urls[((next % urls.length) + urls.length) % urls.length]!;
    next++;
    return deps.connect(url, (ws) => (socket = ws));
  }

  async function run(): Promise<void> {
    // Both ends of a pair may list each other. The lower id dials first; the higher id gives it a
    // moment (its dialer backs off up to retry.maxMs) before dialing too, so the pair rarely
    // builds two sessions whose pumps would send the same changes twice.
    const deferMs = target.id !== null && target.id < deps.nodeId ? retry.maxMs + 500 : 0;
    // Except right after start: the peer that stayed up is somewhere in its reconnect back-off
    // (up to retry.maxMs), and every millisecond of waiting here delays our catch-up.
    let justStarted = true;
    while (!stop.signal.aborted) {
      if (deps.isConnected()) {
        await sleepUnlessWoken(Infinity);
        continue;
      }
      if (deferMs > 0 && !justStarted) {
        await sleepUnlessWoken(deferMs);
        if (deps.isConnected() || stop.signal.aborted) continue;
      }
      justStarted = false;
      try {
        const ws = await pRetry(connectOnce, {
          retries: Number.POSITIVE_INFINITY,
          minTimeout: retry.minMs,
          maxTimeout: retry.maxMs,
          randomize: true,
          signal: stop.signal,
          onFailedAttempt: ({ error, attemptNumber }) => {
            lastError = `${redactUrl(url!)}: ${error.message}`;
            deps.onUnanswered?.(lastError);
            deps.metrics.peerRetries.inc({ peer: deps.label });
            if (attemptNumber === 1 || attemptNumber % 20 === 0) log.warn({ attempt: attemptNumber, url: redactUrl(url!), err: error.message }, "cannot reach peer; retrying");
          },
        });
        lastError = null;
        if (!ws) continue;
        const openedAt = Date.now();
        const closed = new Promise<string>((r) => {
          if (ws.readyState === WebSocket.CLOSED) r("1006 closed");
          else ws.once("close", (code, why) => r(`${code} ${why.toString()}`));
        });
        live = { ws, url: url!, closed };
        // The list may have changed while this one was being dialed.
        if (!urls.includes(url!)) leave(ws, REMOVED);
        else if (url !== urls[0]) watch?.watch(ws, url!, closed);
        const reason = await closed;
        live = null;
        // Refused at the handshake by the preferred hub (its failback checks could not tell), or a
        // session with it that held: that one takes this agent (again).
        if (url === urls[0]) {
          const livedMs = Date.now() - openedAt;
          if (HANDSHAKE_REFUSAL.test(reason) && livedMs < 5000) watch?.refusedBy(url!, reason);
          else if (livedMs >= 5000) watch?.accepted(url!);
        }
        // Not waiting for the watch: it may be in a check of the preferred hub (up to 5 s), and a
        // dropped session must fail over at once.
        const left = leaving === ws;
        leaving = null;
        if (!reason.startsWith("4009") && !left) {
          lastError = `disconnected: ${reason}`;
          deps.onUnanswered?.(`${redactUrl(url!)}: ${reason}`);
        }
        // Stay with a peer that only closed a duplicate, or a hub that asks for a new handshake
        // (1012: its database lost commits), if it is still listed; otherwise try the next URL
        // first. Not for a session this side closed (a move, a dropped URL): `next` is set there.
        // (From the URL's place, not by counting back: the list may have changed meanwhile.)
        if (!left && (reason.startsWith("4009") || reason.startsWith("1012")) && urls.includes(url!)) next = urls.indexOf(url!);
        if (!stop.signal.aborted) await new Promise((r) => setTimeout(r, pauseAfter(reason, Date.now() - openedAt)));
      } catch (err) {
        if (stop.signal.aborted) return;
        // A fault of ours, not the network's (p-retry gives up on those): never stop dialing for it.
        log.error({ err }, "dialing failed unexpectedly; dialing again");
        lastError = `dialing failed: ${(err as Error).message}`;
        await new Promise((r) => setTimeout(r, retry.maxMs));
      }
    }
  }

  /**
   * How long to wait before dialing again after a connection ended with `reason`. A peer that
   * refused us (a wrong key, an unlisted id, another protocol: 40xx within moments of connecting)
   * will refuse again: back off as for an unreachable one, so a misconfigured node does not knock
   * every 100 ms (and get its address held off by the peer's guessing limit). One holding us off
   * (4029) says for how long.
   */
  let refusals = 0;
  function pauseAfter(reason: string, livedMs: number): number {
    const held = /^4029 .*retry in (\d+) s/.exec(reason);
    if (held) return Number(held[1]) * 1000;
    const refused = /^40(0[1-8]|1\d)\b/.test(reason) && livedMs < 5000;
    refusals = refused ? refusals + 1 : 0;
    return refused ? Math.min(retry.maxMs, retry.minMs * 2 ** refusals) : retry.minMs;
  }

  /** The open connection, from when it opened until it closed. */
  let live: { ws: WebSocket; url: string; closed: Promise<string> } | null = null;
  /** The session closed on purpose, to move back or because its URL was dropped (its close is no error). */
  let leaving: WebSocket | null = null;
  const REMOVED = "hub no longer in hub.urls";

  function leave(ws: WebSocket, reason: string): void {
    leaving = ws;
    ws.close(1000, reason);
  }

  const watch = deps.failback
    ? createFailbackWatch({
      log, ...deps.failback, isConnected: deps.isConnected,
      preferred: () => urls[0]!,
      stopped: () => stop.signal.aborted,
      moveBack(ws) {
        next = 0;
        leave(ws, "moving back to the preferred hub");
      },
    })
    : null;

  void run();
  return {
    target,
    lastError: () => lastError,
    url: () => (url === null ? null : redactUrl(url)),
    wake: () => wake(),
    failBackNow() {
      if (!watch) return Promise.resolve("not dialing hubs");
      if (leaving !== null) return Promise.resolve("the hub session is closing; the agent dials the first of hub.urls that answers");
      return watch.checkNow() ?? Promise.resolve(deps.isConnected() ? "already on the preferred hub" : "not connected to a hub; dialing the hubs in turn");
    },
    setUrls(list) {
      if (list.length === 0) throw new Error("a dialer needs at least one URL");
      const firstChanged = list[0] !== urls[0];
      urls = [...list];
      if (firstChanged) watch?.renew();
      const on = live;
      if (on === null || leaving === on.ws) {
        next = 0;
        return `${on === null ? "not connected to a hub" : "the hub session is closing"}; dialing ${redactUrl(urls[0]!)} first`;
      }
      if (!urls.includes(on.url)) {
        watch?.end();
        next = 0;
        leave(on.ws, REMOVED);
        return `closing the session with ${redactUrl(on.url)} (no longer listed); dialing ${redactUrl(urls[0]!)} first`;
      }
      // A later drop fails over to the URL after this one, in the new order.
      next = urls.indexOf(on.url) + 1;
      if (on.url === urls[0]) {
        watch?.end();
        return `staying on ${redactUrl(on.url)}, the first of hub.urls`;
      }
      if (firstChanged || !watch?.running()) watch?.watch(on.ws, on.url, on.closed);
      return `on ${redactUrl(on.url)} for now (still listed); the first of hub.urls is ${redactUrl(urls[0]!)}: the agent moves there once a check finds it taking sessions (a SIGHUP checks at once, then failback's checks go on)`;
    },
    renewFailback() {
      if (!watch) return "not dialing hubs";
      watch.renew();
      const on = live;
      if (on === null || leaving === on.ws) return "not on a hub now; the next session on a hub other than the first of hub.urls is checked as failback says";
      if (on.url === urls[0]) return `on ${redactUrl(on.url)}, the first of hub.urls; failback applies after the next failover`;
      watch.watch(on.ws, on.url, on.closed);
      return `on ${redactUrl(on.url)}, not the first of hub.urls: the checks of ${redactUrl(urls[0]!)} start over as failback now says`;
    },
    stop(reason) {
      stop.abort();
      wake();
      socket?.close(1000, reason);
    },
  };
}
