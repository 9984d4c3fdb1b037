/**
 * AoRs whose registrar events could not be journaled (a full disk, an I/O error: registrar-intake.ts).
 * Kamailio took the REGISTER (it answered, and its usrloc holds the outcome) and the include
 * counts the event as done once the agent has tried it (event-acks.ts), so nothing sends it again:
 * each such AoR is looked up in Kamailio (ul.lookup) and reconciled whole once the journal takes
 * writes again (reconcile-run.ts runForAors). That does not depend on the table's size, where the
 * periodic ul.dump reconcile stops at kamailio.reconcileMaxContacts, and it does not wait for it.
 *
 * Tried at each check of Kamailio (attachment.ts), backing off while the tries fail (the journal
 * still full), from the start again once the intake journals an event again. At most `max` AoRs
 * are kept: past that, the rest are left to a full reconcile, asked for once the kept ones are done
 * (within reconcileMaxContacts), else to the phones' next REGISTERs.
 */
import { isTransient } from "../core/transient.js";
import type { Logger } from "../ops/logger.js";

export const UNJOURNALED_MAX = 10_000;
const BACKOFF_MIN_MS = 2000;
const BACKOFF_MAX_MS = 60_000;

export interface UnjournaledAors {
  /** An event of this AoR could not be journaled. */
  add(aor: string): void;
  /** The intake journaled an event again after failures: the next try is not held back. */
  journalWorks(): void;
  /** AoRs waiting to be looked up. */
  size(): number;
  /** AoRs are waiting, and no back-off holds the next try. */
  due(): boolean;
  /**
   * Reconciles the waiting AoRs with `run` (null: done, else why not now). They stay while it
   * says not now or fails transiently; a failure that would only repeat drops them (logged), left
   * to the periodic reconcile.
   */
  repair(run: (aors: ReadonlySet<string>) => Promise<string | null>): Promise<void>;
}

export function createUnjournaledAors(deps: {
  log: Logger;
  /** More AoRs failed than are kept: a full reconcile, once the kept ones are done. */
  onOverflow(): void;
  max?: number;
  nowMs?: () => number;
}): UnjournaledAors {
  const { log } = deps;
  const max = deps.max ?? UNJOURNALED_MAX;
  const now = deps.nowMs ?? Date.now;
  /** AoR → how many times it failed: a repair drops only those that did not fail again meanwhile. */
  const waiting = new Map<string, number>();
  let overflowed = 0;
  let backoffMs = 0;
  let notBefore = 0;
  let failingSince: number | null = null;

  function backOff(): void {
    backoffMs = Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_MIN_MS, backoffMs * 2));
    notBefore = now() + backoffMs;
  }

  return {
    add(aor) {
      const n = waiting.get(aor);
      if (n !== undefined) waiting.set(aor, n + 1);
      else if (waiting.size < max) waiting.set(aor, 1);
      else overflowed++;
    },
    journalWorks() {
      backoffMs = 0;
      notBefore = 0;
    },
    size: () => waiting.size,
    due: () => (waiting.size > 0 || overflowed > 0) && now() >= notBefore,
    async repair(run) {
      if (!(waiting.size > 0 || overflowed > 0) || now() < notBefore) return;
      const batch = new Map(waiting);
      const lost = overflowed;
      let reason: string | null;
      try {
        reason = batch.size > 0 ? await run(new Set(batch.keys())) : null;
      } catch (err) {
        if (!isTransient(err)) {
          for (const [aor, n] of batch) if (waiting.get(aor) === n) waiting.delete(aor);
          failingSince = null;
          log.error(
            { err: (err as Error).message, aors: batch.size },
            "could not bring the AoRs whose registrar events were not journaled in line with Kamailio; the periodic reconcile does (below kamailio.reconcileMaxContacts), else the phones' next REGISTERs",
          );
          return;
        }
        if (failingSince === null) {
          failingSince = now();
          log.warn({ err: (err as Error).message, aors: batch.size }, "cannot yet bring the AoRs whose registrar events were not journaled in line with Kamailio; trying again");
        }
        backOff();
        return;
      }
      if (reason !== null) {
        backOff();
        return;
      }
      for (const [aor, n] of batch) if (waiting.get(aor) === n) waiting.delete(aor);
      overflowed -= lost;
      backoffMs = 0;
      failingSince = null;
      log.info({ aors: batch.size }, "looked up in Kamailio the AoRs whose registrar events could not be journaled, and brought the journal in line with them");
      if (lost > 0) {
        log.warn({ events: lost, kept: max }, "more registrar events failed than the agent keeps AoRs for: a full reconcile brings the rest in line (below kamailio.reconcileMaxContacts), else the phones' next REGISTERs");
        deps.onOverflow();
      }
    },
  };
}
