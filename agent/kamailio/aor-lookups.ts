/**
 * AoRs the agent looks up in Kamailio (ul.lookup) and reconciles whole (reconcile-run.ts
 * runForAors), because a registrar event told it something changed there without telling it what:
 * - an event the journal could not take (a full disk, an I/O error: registrar-intake.ts). Kamailio
 *   took the REGISTER (it answered, and its usrloc holds the outcome) and the include counts the
 *   event as done once the agent has tried it (event-acks.ts), so nothing sends it again;
 * - a register event the agent cannot read whose AoR still reads (evapi-events.ts): one cut short
 *   by max_while_loops (event-format2.ts);
 * - the AoR-only half of a REGISTER too big for the include's queue (cfg-include-register.ts
 *   OVERSIZED_REQUEST): it carries the AoR's contacts but not what the request removed.
 * That does not depend on the table's size, where the periodic ul.dump reconcile stops at
 * kamailio.reconcileMaxContacts, and it does not wait for it.
 *
 * Tried at each check of Kamailio (attachment.ts), backing off while the tries fail (the journal
 * still full), from the start again once the intake journals an event again. At most `max` AoRs
 * are kept: past that, the rest are left to a full reconcile, asked for once the kept ones are done
 * (within reconcileMaxContacts), else to the phones' next REGISTERs.
 */
import { isTransient } from "../core/transient.js";
import type { Logger } from "../ops/logger.js";

export const AOR_LOOKUPS_MAX = 10_000;
const BACKOFF_MIN_MS = 2000;
const BACKOFF_MAX_MS = 60_000;

export interface AorLookups {
  /** Kamailio holds something of this AoR that its events did not bring into the journal. */
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

export function createAorLookups(deps: {
  log: Logger;
  /** More AoRs came than are kept: a full reconcile, once the kept ones are done. */
  onOverflow(): void;
  max?: number;
  nowMs?: () => number;
}): AorLookups {
  const { log } = deps;
  const max = deps.max ?? AOR_LOOKUPS_MAX;
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
            "could not bring the AoRs looked up in Kamailio in line with it; the periodic reconcile does (below kamailio.reconcileMaxContacts), else the phones' next REGISTERs",
          );
          return;
        }
        if (failingSince === null) {
          failingSince = now();
          log.warn({ err: (err as Error).message, aors: batch.size }, "cannot yet look up in Kamailio the AoRs whose events did not say all (the journal still refuses writes, or Kamailio does not answer); trying again");
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
      log.info({ aors: batch.size }, "looked up in Kamailio the AoRs whose events did not say all, and brought the journal in line with them");
      if (lost > 0) {
        log.warn({ events: lost, kept: max }, "more AoRs were to be looked up than the agent keeps: a full reconcile brings the rest in line (below kamailio.reconcileMaxContacts), else the phones' next REGISTERs");
        deps.onOverflow();
      }
    },
  };
}
