/**
 * An agent in hub mode whose hubs all fail or refuse it (a hub whose PostgreSQL is away closes
 * with 4013, and hubs that share one PostgreSQL all do at once) replicates nothing through a hub
 * until one answers; its changes wait in the journal. Each attempt alone is routine (a hub
 * restarts, the agent fails over), so this warns only once every hub URL in a row failed, and
 * then at most once every `everyMs` for as long as none answers, with how many attempts failed
 * (ops/log-pacing.ts).
 */
import type { Logger } from "../ops/logger.js";
import { createLogPacing } from "../ops/log-pacing.js";

export interface NoHubWarning {
  /** An attempt on a hub URL failed, or its session ended, for `reason`. */
  failed(reason: string): void;
  /** A hub session is ready. */
  answered(): void;
}

/** `urls`: the hub URLs now (SIGHUP may change them). */
export function createNoHubWarning(deps: { urls: () => readonly string[]; log: Logger; everyMs?: number; nowMs?: () => number }): NoHubWarning {
  const lines = createLogPacing({ everyMs: deps.everyMs, nowMs: deps.nowMs });
  return {
    failed(reason) {
      const urls = deps.urls().length;
      const line = lines.note("", { from: urls });
      if (!line) return;
      deps.log.warn(
        { attempts: line.count, urls, forSec: Math.round(line.forMs / 1000), lastError: reason },
        `no hub answers: ${line.streak} attempts on ${urls} hub URL(s) failed or were refused (last: ${reason}); ` +
          "this node's changes wait in the journal and go to the first hub that answers (`locmesh status`: unacknowledged by hub)",
      );
    },
    answered() {
      const streak = lines.end();
      if (streak?.logged) deps.log.info({ forSec: Math.round(streak.forMs / 1000) }, "a hub answers again; sending what waited in the journal");
    },
  };
}
