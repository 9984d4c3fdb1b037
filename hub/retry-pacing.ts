/**
 * How often a hub retries something PostgreSQL must answer (the change feed's LISTEN), and how
 * often it says so. While PostgreSQL is stopped every attempt fails at once: a fixed 500 ms retry
 * logged every time wrote two warnings a second per hub. The wait doubles from `minMs` to `maxMs`
 * (as mesh.retry does for peers), the first failure is logged, and then at most one line every
 * `logEveryMs` with how many attempts failed since.
 */
export interface RetryPacing {
  /** An attempt failed: how long to wait, and whether to log (with the failures since the last line). */
  failed(): { delayMs: number; log: { attempts: number; first: boolean } | null };
  /** An attempt succeeded: how many failed before it (0: nothing to report). */
  succeeded(): number;
}

export function createRetryPacing(o: { minMs: number; maxMs: number; logEveryMs?: number; nowMs?: () => number }): RetryPacing {
  const logEveryMs = o.logEveryMs ?? 60_000;
  const nowMs = o.nowMs ?? Date.now;
  let failures = 0;
  let unlogged = 0;
  let loggedAt = 0;
  return {
    failed() {
      const delayMs = Math.min(o.maxMs, o.minMs * 2 ** Math.min(failures, 30));
      failures++;
      unlogged++;
      const first = failures === 1;
      if (!first && nowMs() - loggedAt < logEveryMs) return { delayMs, log: null };
      const log = { attempts: unlogged, first };
      loggedAt = nowMs();
      unlogged = 0;
      return { delayMs, log };
    },
    succeeded() {
      const n = failures;
      failures = 0;
      unlogged = 0;
      return n;
    },
  };
}
