/**
 * When Kamailio itself reached the state that a journal version records, for the versions this
 * agent learned from its own Kamailio: the event's `ts` for a registrar event, the dump's start for
 * `ul.dump`.
 *
 * A version's HLC is the time the agent committed it, and under load the agent commits events
 * seconds after Kamailio sent them. Comparing an event's `ts` with that HLC would make an earlier
 * event's version look newer than the next event of the same AoR: a REGISTER that followed a
 * de-registration would be skipped, and the reconcile would then delete the live registration
 * from Kamailio as well (found by the register-storm drill). Comparing Kamailio's times with
 * Kamailio's times keeps the order Kamailio applied them in.
 *
 * Memory stays bounded: an entry only matters while events that Kamailio stamped before the
 * version's commit may still arrive (the HLC would make the version look newer than them), so an
 * entry is dropped once the newest event seen is more than `horizonMs` past that commit. Without an
 * entry callers fall back to the HLC (moved back by the clock's lead, registrar-input.ts), which is
 * right once the agent is no longer behind. Measured from Kamailio's time instead, an event held
 * minutes while the agent was away lost its entry to the first event after the reconnect burst,
 * and a de-registration right after it was taken for older than the version it removes.
 */
import { hlcToMillis, type Change } from "../contract/records.js";
import { recordKey } from "./install-plan.js";

export interface KamailioTimes {
  /** These versions, just committed, record Kamailio's state at `kamailioMs`. */
  learned(changes: readonly (Change | null)[], kamailioMs: number): void;
  /** Kamailio's time for exactly this version, when the agent learned it from Kamailio. */
  of(change: Change): number | undefined;
  /** Events from Kamailio have reached `kamailioMs`: forget what is far behind it. */
  advance(kamailioMs: number): void;
  size(): number;
}

interface Entry {
  hlc: number;
  origin: string;
  kamailioMs: number;
  /** Until when (ms) an event may be older than the version's commit: the later of the two times. */
  untilMs: number;
}

export function createKamailioTimes(o: { horizonMs?: number } = {}): KamailioTimes {
  const horizonMs = o.horizonMs ?? 10_000;
  // Entries are learned as their versions commit, so insertion order is (nearly) commit order and
  // pruning walks from the front.
  const entries = new Map<string, Entry>();
  const of = (c: Change): number | undefined => {
    const e = entries.get(recordKey(c));
    return e !== undefined && e.hlc === c.hlc && e.origin === c.origin ? e.kamailioMs : undefined;
  };
  return {
    learned(changes, kamailioMs) {
      for (const c of changes) {
        if (c === null) continue;
        const key = recordKey(c);
        entries.delete(key);
        entries.set(key, { hlc: c.hlc, origin: c.origin, kamailioMs, untilMs: Math.max(kamailioMs, hlcToMillis(c.hlc)) });
      }
    },
    of,
    advance(kamailioMs) {
      const before = kamailioMs - horizonMs;
      for (const [key, e] of entries) {
        if (e.untilMs >= before) break;
        entries.delete(key);
      }
    },
    size: () => entries.size,
  };
}

/**
 * When a journal version happened on this host's clock, the one Kamailio stamps its events and
 * last_modified with: Kamailio's own time when the agent learned the version from it (`learnedMs`,
 * KamailioTimes.of), else its stamp moved back by how far the hybrid logical clock runs ahead of
 * this host (stamps follow the fastest clock in the cluster).
 */
export function hostClockMs(change: Change, learnedMs: number | undefined, clockLeadMs: number): number {
  return learnedMs ?? hlcToMillis(change.hlc) - clockLeadMs;
}
