/**
 * AoRs the agent looks up in Kamailio (ul.lookup), bringing the journal in line with what it holds
 * of them (reconcile-run.ts runForAors), because a registrar event told it something changed there
 * without telling it what:
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
 * Only what the journal lacks is decided: the journal learns the registrations and removals
 * Kamailio made (its own writes into Kamailio are the sink's and the full reconcile's). Only AoRs
 * of numbered events are taken (event-acks.ts): an include that numbers its events also stops a
 * Kamailio whose registrar keeps AoRs' case or whose usrloc keys them without their domain
 * (cfg-include.ts), so Kamailio keys the AoR as the journal does, and an AoR it does not find
 * has no contacts there (against an older include, a mixed-case AoR would look absent). Not used
 * against usrloc db_mode 3 (attachment.ts), whose ul.lookup finds nothing while its database is down.
 *
 * Looked up after each check of Kamailio (attachment.ts), CHUNK AoRs at a time, one chunk per
 * turn of Kamailio's one FIFO process. While the journal fails (the last event could not be
 * journaled, or a try failed) only PROBE AoRs are tried, backing off up to a minute: a full disk
 * must not make the agent read thousands of AoRs from Kamailio every few seconds for nothing.
 * At most `max` AoRs are kept, in memory (an agent restarted meanwhile forgets them; the
 * reconcile after its start finds them, below reconcileMaxContacts): past that, the rest is left
 * to a full reconcile, asked for once the kept ones are done, else to the phones' next REGISTERs.
 */
import { isTransient } from "../core/transient.js";
import type { Logger } from "../ops/logger.js";

export const AOR_LOOKUPS_MAX = 10_000;
/** AoRs reconciled in one turn. */
export const CHUNK = 256;
/** AoRs tried in one turn while the journal fails. */
export const PROBE = 8;
const BACKOFF_MIN_MS = 2000;
const BACKOFF_MAX_MS = 60_000;

export interface AorLookups {
  /** Kamailio holds something of this AoR that its event did not say (unreadable, or an oversized REGISTER's AoR alone). */
  add(aor: string): void;
  /**
   * An event could not be journaled: the journal is failing until journalWorks() or a turn that
   * commits. Its AoR is looked up then (null: an unnumbered event's, which is not).
   */
  failed(aor: string | null): void;
  /** The intake journaled an event again after failures: the next turn is not held back and takes a whole chunk. */
  journalWorks(): void;
  /** AoRs waiting to be looked up. */
  size(): number;
  /** AoRs are waiting, and no back-off holds the next turn. */
  due(): boolean;
  /**
   * One turn: reconciles up to CHUNK waiting AoRs (PROBE while the journal fails) with `run` (null:
   * done, else why not now). They stay while it says not now or fails transiently, and the turns
   * back off; a failure that would only repeat drops that chunk (logged).
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
  /** AoR → how many times it came: a turn drops only those that did not come again meanwhile. */
  const waiting = new Map<string, number>();
  let overflowed = 0;
  let journalFailing = false;
  let backoffMs = 0;
  let notBefore = 0;
  /** A run of failed turns was logged (once per run). */
  let warned = false;
  let done = 0;

  function backOff(): void {
    backoffMs = Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_MIN_MS, backoffMs * 2));
    notBefore = now() + backoffMs;
  }

  function add(aor: string): void {
    const n = waiting.get(aor);
    if (n !== undefined) waiting.set(aor, n + 1);
    else if (waiting.size < max) waiting.set(aor, 1);
    else overflowed++;
  }

  const drop = (batch: ReadonlyMap<string, number>) => {
    for (const [aor, n] of batch) if (waiting.get(aor) === n) waiting.delete(aor);
  };

  return {
    add,
    failed(aor) {
      journalFailing = true;
      if (aor !== null) add(aor);
    },
    journalWorks() {
      journalFailing = false;
      backoffMs = 0;
      notBefore = 0;
    },
    size: () => waiting.size,
    due: () => (waiting.size > 0 || overflowed > 0) && now() >= notBefore,
    async repair(run) {
      if (!(waiting.size > 0 || overflowed > 0) || now() < notBefore) return;
      const batch = new Map<string, number>();
      for (const [aor, n] of waiting) {
        if (batch.size >= (journalFailing ? PROBE : CHUNK)) break;
        batch.set(aor, n);
      }
      let reason: string | null;
      try {
        reason = batch.size > 0 ? await run(new Set(batch.keys())) : null;
      } catch (err) {
        if (!isTransient(err)) {
          drop(batch);
          log.error(
            { err: (err as Error).message, aors: batch.size },
            "could not bring AoRs looked up in Kamailio in line with it, and left them: the reconcile does, if it runs (below kamailio.reconcileMaxContacts), else the phones' next REGISTERs",
          );
          return;
        }
        journalFailing = true;
        if (!warned) {
          warned = true;
          log.warn({ err: (err as Error).message, aors: waiting.size }, "cannot yet look up in Kamailio the AoRs whose events did not say all (the journal still refuses writes, or Kamailio does not answer); trying again");
        }
        backOff();
        return;
      }
      if (reason !== null) {
        backOff();
        return;
      }
      drop(batch);
      done += batch.size;
      journalFailing = false;
      backoffMs = 0;
      notBefore = 0;
      warned = false;
      if (waiting.size > 0) return;
      log.info({ aors: done }, "looked up in Kamailio the AoRs whose events did not say all, and brought the journal in line with them");
      done = 0;
      if (overflowed > 0) {
        log.warn({ events: overflowed, kept: max }, "more AoRs were to be looked up than the agent keeps: a full reconcile brings the rest in line, if it runs (below kamailio.reconcileMaxContacts), else the phones' next REGISTERs");
        overflowed = 0;
        deps.onOverflow();
      }
    },
  };
}
