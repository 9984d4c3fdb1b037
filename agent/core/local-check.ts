/**
 * Local changes pass the check every peer applies to an incoming one (contract/change-check.ts)
 * before they are journaled. A change the peers refuse would stop at the first of them: a batch is
 * taken whole or not at all, and a peer's version vector cannot pass a change it did not take, so
 * every later change of this node would wait behind it, the batch retried forever (found when a
 * Kamailio with usrloc use_domain 0 made the reconcile journal AoRs without their domain). Such a
 * change is not journaled; it is logged with what to fix and counted (locmesh_changes_refused_total),
 * and the other changes of the same commit go in.
 */
import { recordProblem } from "../contract/change-check.js";
import type { Logger } from "../ops/logger.js";
import type { ChangeSource, Metrics } from "../ops/metrics.js";
import type { Draft } from "./store.js";

/** What to do about a refused change, by where it came from. */
const WHAT_TO_FIX: Record<ChangeSource, string> = {
  event:
    "it came from a registrar event, which the agent checks against the same limits before this: please report this line as a locmesh bug",
  reconcile:
    "Kamailio's location table (ul.dump) holds it as the phone registered it, beyond what locmesh can replicate: that binding stays in this node's " +
    "Kamailio only. An AoR without @domain means Kamailio's usrloc runs with use_domain 0: set modparam(\"usrloc\", \"use_domain\", 1) and restart " +
    "Kamailio (README, \"Attach to your Kamailio\")",
  api: "it came through the API, whose own check should have refused it: please report this line as a locmesh bug",
};

/** At most this many refused changes of one commit are logged one by one; the rest in one line. */
const LOGGED_EACH = 5;

export interface LocalCheck {
  /**
   * The drafts every peer takes, and where each stands in `drafts`; the others are reported
   * (logged and counted) as coming from `source`.
   */
  screen(drafts: readonly Draft[], source: ChangeSource): { fit: Draft[]; at: number[] };
}

export function createLocalCheck(deps: { log: Pick<Logger, "error">; metrics?: Pick<Metrics, "changesRefused"> }): LocalCheck {
  return {
    screen(drafts, source) {
      const fit: Draft[] = [];
      const at: number[] = [];
      const refused: { draft: Draft; problem: string }[] = [];
      drafts.forEach((draft, i) => {
        const problem = recordProblem(draft);
        if (problem === null) {
          fit.push(draft);
          at.push(i);
        } else refused.push({ draft, problem });
      });
      if (refused.length === 0) return { fit, at };
      deps.metrics?.changesRefused.inc({ source }, refused.length);
      for (const { draft, problem } of refused.slice(0, LOGGED_EACH)) {
        deps.log.error(
          { source, kind: draft.kind, key: draft.key, sub: draft.sub, removal: draft.value === null, problem },
          `not journaled: the peers would refuse this change (${problem}), and every later change of this node behind it; ${WHAT_TO_FIX[source]}`,
        );
      }
      if (refused.length > LOGGED_EACH) {
        deps.log.error({ source, more: refused.length - LOGGED_EACH }, `not journaled either: more changes the peers would refuse; ${WHAT_TO_FIX[source]}`);
      }
      return { fit, at };
    },
  };
}

/** One entry per draft: the result of the fit draft at that position, null for a refused one. */
export function spread<T>(results: readonly T[], at: readonly number[], count: number): (T | null)[] {
  const out: (T | null)[] = new Array<T | null>(count).fill(null);
  at.forEach((pos, i) => (out[pos] = results[i] ?? null));
  return out;
}
