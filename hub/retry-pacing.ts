/**
 * How often a hub retries something PostgreSQL must answer (the change feed's LISTEN), and how
 * often it says so. While PostgreSQL is stopped every attempt fails at once: a fixed 500 ms retry
 * logged every time wrote two warnings a second per hub. The wait doubles from `minMs` to `maxMs`
 * (as mesh.retry does for peers), the first failure is logged, and then at most one line every
 * `logEveryMs` with how many attempts failed since (agent/ops/log-pacing.ts).
 */
import { createLogPacing } from "../agent/ops/log-pacing.js";

export interface RetryPacing {
  /** An attempt failed: how long to wait, and whether to log (with the failures since the last line). */
  failed(): { delayMs: number; log: { attempts: number; first: boolean } | null };
  /** An attempt succeeded: how many failed before it (0: nothing to report). */
  succeeded(): number;
}

export function createRetryPacing(o: { minMs: number; maxMs: number; logEveryMs?: number; nowMs?: () => number }): RetryPacing {
  const lines = createLogPacing({ everyMs: o.logEveryMs, nowMs: o.nowMs });
  let failures = 0;
  return {
    failed() {
      const delayMs = Math.min(o.maxMs, o.minMs * 2 ** Math.min(failures, 30));
      failures++;
      const line = lines.note();
      return { delayMs, log: line && { attempts: line.count, first: line.first } };
    },
    succeeded() {
      const n = failures;
      failures = 0;
      lines.end();
      return n;
    },
  };
}
