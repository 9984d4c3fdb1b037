/**
 * Whether the hub's PostgreSQL answers. A hub that lost it can neither store its agents' batches
 * nor read what to send them, yet its agents stay: their sessions are alive (the hub answers
 * pings), their batches only time out and are resent to the same hub. So the hub watches, and
 * hub.ts closes and refuses agent sessions while PostgreSQL does not answer, which is the agents'
 * cue to dial another hub (agent/mesh/dialer.ts). When every hub shares that PostgreSQL, all of
 * them refuse, and the agents journal locally until one answers.
 *
 * A check (`SELECT 1` on a connection of its own, so a busy pool never passes for a lost
 * PostgreSQL) runs every third of `unreachableAfterMs`, one at a time. Once none has succeeded for
 * `unreachableAfterMs`, PostgreSQL counts as unreachable. The verdict does not wait for a check in
 * flight: against a silent network a check ends only with its timeout. The first check that
 * succeeds after that makes it reachable again.
 *
 * Before the verdict, PostgreSQL is reachable but failing: a check failed, or one has waited longer
 * than a check interval. The state says so (`failingSinceMs`, dated from that check's start), and
 * when PostgreSQL last answered, so a status in those first seconds does not read "answering"; an
 * outage is dated from its first failed check, not from the verdict.
 */
import { AGENTS_GO_ELSEWHERE } from "../agent/contract/postgres-standing.js";
import type { Logger } from "../agent/ops/logger.js";

/**
 * What agents do while a hub's PostgreSQL is away. True whether or not another hub has a
 * PostgreSQL that answers: hubs that share one database all lose it at once, and then there is
 * no hub to go to (README "Running a hub": the hubs' PostgreSQL is down).
 */
export const AGENTS_MEANWHILE =
  `Agents ${AGENTS_GO_ELSEWHERE}; otherwise they keep journaling locally and send everything when one answers`;

export interface PgState {
  reachable: boolean;
  /** The last failed check's reason while checks fail (or "no answer for N s"); null while they succeed. */
  error: string | null;
  /** When it became reachable, or since when it has not answered (the first failed check) (ms since the epoch). */
  sinceMs: number;
  /** When a check last succeeded (ms since the epoch; the watch's start before the first). */
  lastAnsweredMs: number;
  /** While reachable: since when checks fail or go unanswered (ms), not yet for unreachableAfterMs; else null. */
  failingSinceMs: number | null;
}

export interface PgWatchDeps {
  /** One check: resolves once PostgreSQL answered; bounded by its own timeout. */
  check(): Promise<void>;
  /** host:port, for the log (pg-connection.ts pgAddress: never the password). */
  address: string;
  unreachableAfterMs: number;
  log: Logger;
  onChange(state: PgState): void;
  nowMs?: () => number;
}

export interface PgWatch {
  state(): PgState;
  close(): void;
}

export function startPgWatch(deps: PgWatchDeps): PgWatch {
  const nowMs = deps.nowMs ?? Date.now;
  const log = deps.log.child({ component: "pg-watch", postgres: deps.address });
  const intervalMs = Math.max(100, Math.floor(deps.unreachableAfterMs / 3));
  let lastOkMs = nowMs();
  let lastError: string | null = null;
  let state: PgState = { reachable: true, error: null, sinceMs: lastOkMs, lastAnsweredMs: lastOkMs, failingSinceMs: null };
  let checking = false;
  let checkStartedMs = lastOkMs;
  /** The start of the first check that failed since the last success; null after a success. */
  let failedSinceMs: number | null = null;
  let closed = false;

  /** Since when checks fail or go unanswered (a check in flight longer than an interval), else null. */
  const failingSince = (): number | null =>
    failedSinceMs ?? (checking && nowMs() - checkStartedMs > intervalMs ? checkStartedMs : null);

  const become = (next: PgState) => {
    state = next;
    deps.onChange(next);
  };

  function check(): void {
    checking = true;
    const started = (checkStartedMs = nowMs());
    deps.check().then(
      () => {
        lastOkMs = nowMs();
        lastError = null;
        failedSinceMs = null;
        if (closed || state.reachable) return;
        log.info({ unreachableForSec: Math.round((lastOkMs - state.sinceMs) / 1000) }, `PostgreSQL at ${deps.address} answers again; this hub takes agents again`);
        become({ reachable: true, error: null, sinceMs: lastOkMs, lastAnsweredMs: lastOkMs, failingSinceMs: null });
      },
      (err: unknown) => {
        lastError = err instanceof Error ? err.message : String(err);
        failedSinceMs ??= started;
        if (!state.reachable) state = { ...state, error: lastError };
      },
    ).finally(() => (checking = false));
  }

  function tick(): void {
    if (!checking) check();
    const silentMs = nowMs() - lastOkMs;
    if (!state.reachable || silentMs < deps.unreachableAfterMs) return;
    const error = lastError ?? `no answer for ${Math.round(silentMs / 1000)} s`;
    log.error(
      { silentMs, err: error },
      `PostgreSQL at ${deps.address} has not answered for ${Math.round(silentMs / 1000)} s (${error}): this hub closes its agents' sessions and ` +
        `refuses new ones until PostgreSQL answers. ${AGENTS_MEANWHILE}. Check PostgreSQL and the network path to it`,
    );
    become({ reachable: false, error, sinceMs: failingSince() ?? lastOkMs, lastAnsweredMs: lastOkMs, failingSinceMs: null });
  }

  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return {
    state(): PgState {
      if (!state.reachable) return state;
      const since = failingSince();
      if (since === null) return { ...state, lastAnsweredMs: lastOkMs };
      return { ...state, lastAnsweredMs: lastOkMs, failingSinceMs: since, error: lastError ?? `no answer for ${Math.round((nowMs() - since) / 1000)} s` };
    },
    close() {
      closed = true;
      clearInterval(timer);
    },
  };
}
