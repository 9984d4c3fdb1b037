/**
 * Keeps one outbound connection up: dials, backs off and retries (p-retry, `retry`), waits while a
 * session is up, and dials again when it drops. A target with several URLs (the hubs of a cluster)
 * fails over: each attempt tries the next URL, and a connection that drops moves on to the next
 * hub at once rather than waiting for the one that just went away.
 */
import pRetry from "p-retry";
import { WebSocket } from "ws";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import { redactUrl } from "../ops/redact-url.js";

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
  /** An attempt failed or a session ended (not a duplicate closed): `reason` (no-hub-warning.ts). */
  onUnanswered?(reason: string): void;
}

export interface Dialer {
  readonly target: DialTarget;
  lastError(): string | null;
  /** The URL of the current or last connection attempt. */
  url(): string | null;
  /** Re-check now (a session closed, or the wait should end). */
  wake(): void;
  stop(reason: string): void;
}

export function startDialer(deps: DialerDeps): Dialer {
  const { target, retry } = deps;
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
    url = target.urls[next % target.urls.length]!;
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
        const reason = await new Promise<string>((r) => {
          if (ws.readyState === WebSocket.CLOSED) r("1006 closed");
          else ws.once("close", (code, why) => r(`${code} ${why.toString()}`));
        });
        if (!reason.startsWith("4009")) {
          lastError = `disconnected: ${reason}`;
          deps.onUnanswered?.(`${redactUrl(url!)}: ${reason}`);
        }
        // Stay with a peer that only closed a duplicate; otherwise try the next URL first.
        if (reason.startsWith("4009")) next--;
        if (!stop.signal.aborted) await new Promise((r) => setTimeout(r, pauseAfter(reason, Date.now() - openedAt)));
      } catch {
        return; // aborted
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

  void run();
  return {
    target,
    lastError: () => lastError,
    url: () => (url === null ? null : redactUrl(url)),
    wake: () => wake(),
    stop(reason) {
      stop.abort();
      wake();
      socket?.close(1000, reason);
    },
  };
}
