/**
 * An agent in hub mode whose hubs all fail or refuse it (a hub whose PostgreSQL is away closes
 * with 4013, and hubs that share one PostgreSQL all do at once) replicates nothing through a hub
 * until one answers; its changes wait in the journal. Each attempt alone is routine (a hub
 * restarts, the agent fails over), so this warns only once every hub URL in a row failed, and
 * then at most once every `everyMs` for as long as none answers, with how many attempts failed.
 */
import type { Logger } from "../ops/logger.js";

export interface NoHubWarning {
  /** An attempt on a hub URL failed, or its session ended, for `reason`. */
  failed(reason: string): void;
  /** A hub session is ready. */
  answered(): void;
}

/** `urls`: the hub URLs now (SIGHUP may change them). */
export function createNoHubWarning(deps: { urls: () => readonly string[]; log: Logger; everyMs?: number; nowMs?: () => number }): NoHubWarning {
  const everyMs = deps.everyMs ?? 60_000;
  const nowMs = deps.nowMs ?? Date.now;
  let failures = 0;
  let sinceWarned = 0;
  let warnedAt: number | null = null;
  let firstFailedAt = 0;
  return {
    failed(reason) {
      if (failures === 0) firstFailedAt = nowMs();
      failures++;
      sinceWarned++;
      const urls = deps.urls().length;
      if (failures < urls || (warnedAt !== null && nowMs() - warnedAt < everyMs)) return;
      deps.log.warn(
        { attempts: sinceWarned, urls, forSec: Math.round((nowMs() - firstFailedAt) / 1000), lastError: reason },
        `no hub answers: ${failures} attempts on ${urls} hub URL(s) failed or were refused (last: ${reason}); ` +
          "this node's changes wait in the journal and go to the first hub that answers (`locmesh status`: unacknowledged by hub)",
      );
      warnedAt = nowMs();
      sinceWarned = 0;
    },
    answered() {
      if (warnedAt !== null) deps.log.info({ forSec: Math.round((nowMs() - firstFailedAt) / 1000) }, "a hub answers again; sending what waited in the journal");
      failures = 0;
      sinceWarned = 0;
      warnedAt = null;
    },
  };
}
