/**
 * What the journal lets the Kamailio side do. Nothing of a stale journal (behind its peers,
 * core/journal-behind.ts) is written into Kamailio: it would put old targets and removed bindings
 * back. A journal started empty lacks what the cluster holds until it has caught up with a peer or
 * hub (seeded): the reload and the reconcile wait for it.
 */
import type { JournalBehind } from "../core/journal-behind.js";
import type { Logger } from "../ops/logger.js";

export interface JournalGate {
  /** The journal is stale: nothing of it is written into Kamailio. */
  held(): boolean;
  /** True once the journal is seeded; logs once that Kamailio waits for it. */
  waitedForSeed(): boolean;
  /** True once the journal is seeded (logs nothing). */
  seeded(): boolean;
}

export function createJournalGate(deps: { journalBehind: Pick<JournalBehind, "isSet">; seeded: () => boolean; log: Logger }): JournalGate {
  let waitingLogged = false;
  return {
    held: () => deps.journalBehind.isSet(),
    waitedForSeed() {
      if (deps.seeded()) return true;
      if (!waitingLogged) {
        waitingLogged = true;
        deps.log.warn("this node's journal started empty and has not caught up with a peer or hub yet: the reconcile with Kamailio, " +
          "a reload into it and letting REGISTERs through wait until it has (check that the peers or hubs are reachable)");
      }
      return false;
    },
    seeded: () => deps.seeded(),
  };
}
