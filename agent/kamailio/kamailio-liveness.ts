/**
 * Whether the local Kamailio answers, and if not, why: what the `kamailio` line of `locmesh
 * status` shows (up, or DOWN with the last probe or connection error) and `locmesh_kamailio_up`.
 *
 * Seeing Kamailio come back retries the sink's pending writes at once with its back-off started
 * over: otherwise its timer (up to 5 s) kept writes pending, and status said NOT WRITING, for
 * seconds after Kamailio had taken a whole reload.
 */
import type { Metrics } from "../ops/metrics.js";
import { aliasesWaitingText, type KamailioSink, type SinkStatus } from "./kamailio-sink.js";

export interface KamailioDown {
  error: string;
  /** ISO 8601. */
  at: string;
}

export interface KamailioLiveness {
  isUp(): boolean;
  /** Kamailio answered (a probe over jsonrpcs). True when it was down until now. */
  up(): boolean;
  /** Kamailio stopped answering, or went away; `error` is what status shows. */
  down(error: string): void;
  /** Why it is down; null while up. */
  downReason(): KamailioDown | null;
}

/**
 * The error status shows. While writes are pending, why the last one failed (it names both ways
 * in); else, while Kamailio is down, why (the last probe or connection error), so DOWN never comes
 * without a reason; else, while aliases wait for alias_db's database, that; else the sink's last error.
 */
export function lastErrorOf(sink: Pick<SinkStatus, "state" | "lastError" | "lastErrorAt" | "aliasesWaiting">, down: KamailioDown | null): { lastError: string | null; lastErrorAt: string | null } {
  if (sink.state === "waiting") return { lastError: sink.lastError, lastErrorAt: sink.lastErrorAt };
  if (down !== null) return { lastError: down.error, lastErrorAt: down.at };
  const aliases = sink.aliasesWaiting;
  if (aliases !== null) return { lastError: aliasesWaitingText(aliases), lastErrorAt: aliases.at === null ? sink.lastErrorAt : new Date(aliases.at).toISOString() };
  return { lastError: sink.lastError, lastErrorAt: sink.lastErrorAt };
}

/** Before the first probe has answered. */
export const NOT_CHECKED_YET = "not reached yet: the first check is under way";

export function createKamailioLiveness(deps: { sink: Pick<KamailioSink, "retryNow">; metrics: Metrics; nowMs?: () => number }): KamailioLiveness {
  const nowMs = deps.nowMs ?? Date.now;
  let reason: KamailioDown | null = { error: NOT_CHECKED_YET, at: new Date(nowMs()).toISOString() };
  deps.metrics.kamailioUp.set(0);
  return {
    isUp: () => reason === null,
    up() {
      if (reason === null) return false;
      reason = null;
      deps.metrics.kamailioUp.set(1);
      deps.sink.retryNow();
      return true;
    },
    down(error) {
      reason = { error, at: new Date(nowMs()).toISOString() };
      deps.metrics.kamailioUp.set(0);
    },
    downReason: () => reason,
  };
}
