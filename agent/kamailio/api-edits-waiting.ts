/**
 * The local API's edits of this node's own bindings that could not be brought into its Kamailio
 * when they were made (Kamailio did not answer, was restarting, the journal had not caught up),
 * kept in the journal (kamailio_api_waiting, sqlite-key-set.ts) and tried again once Kamailio
 * answers, until each went in. Before, such an edit waited for the periodic reconcile, which
 * tables above kamailio.reconcileMaxContacts skip: an API removal then stayed in that Kamailio
 * until the contact expired, and an agent restart forgot it altogether.
 *
 * A retry brings the binding in line with what the journal holds for it then, stamped as the
 * journal's version: the reconcile's rules for the API's edits decide (reconciler.ts, `only`),
 * so a phone that registered the contact again meanwhile is left as it is.
 */
import type { KeySet } from "../journal/sqlite-key-set.js";
import type { ReplicaStore } from "../core/store.js";
import type { Logger } from "../ops/logger.js";
import type { ApiEdit } from "./api-edit-batches.js";
import { bindingKey, parseRecordKey } from "./install-plan.js";

export interface WaitingApiEditsDeps {
  set: KeySet;
  store: Pick<ReplicaStore, "get">;
  log: Logger;
  /** Keys tried again per round. */
  max: number;
}

export interface WaitingApiEdits {
  /**
   * Runs `apply` for `edits` (api-edit-batches.ts add): notes them when they did not go in (a reason,
   * or a failure), forgets them when they did. Resolves or rejects as `apply` does.
   */
  track(edits: readonly ApiEdit[], apply: () => Promise<string | null>): Promise<string | null>;
  /** How many wait. */
  size(): number;
  /**
   * Tries the waiting edits again through `apply`, up to `max` of them; does nothing while a retry
   * runs. Resolves with whether all that were tried went in.
   */
  retry(apply: (edits: readonly ApiEdit[]) => Promise<string | null>): Promise<boolean>;
}

export function createWaitingApiEdits(deps: WaitingApiEditsDeps): WaitingApiEdits {
  const { set, store, log } = deps;
  let retrying = false;
  /** Why the last retry did not go in: the warning is logged when that changes, not at every check. */
  let lastWhy: string | null = null;

  /** Notes in the journal; a failure to (a full disk) is logged: the periodic reconcile is left. */
  function save(): void {
    try {
      set.flush();
    } catch (err) {
      log.error({ err: (err as Error).message }, "could not note in the journal the API edits that wait for this node's Kamailio");
    }
  }

  async function track(edits: readonly ApiEdit[], apply: () => Promise<string | null>): Promise<string | null> {
    let why: string | null;
    try {
      why = await apply();
    } catch (err) {
      for (const e of edits) set.add(bindingKey(e.aor, e.contact));
      save();
      throw err;
    }
    for (const e of edits) {
      const key = bindingKey(e.aor, e.contact);
      if (why !== null) set.add(key);
      // Forgotten only when no newer version came meanwhile: the run passes over one newer than the
      // edit (left to whoever made it), and a newer API edit of it may have waited for nothing else.
      else if (((await store.get("loc", e.aor, e.contact))?.hlc ?? 0) <= e.hlc) set.delete(key);
      else set.add(key);
    }
    save();
    return why;
  }

  return {
    track,
    size: () => set.size(),
    async retry(apply) {
      if (retrying || set.size() === 0) return true;
      retrying = true;
      try {
        const edits: ApiEdit[] = [];
        let keys: string[];
        try {
          keys = set.list("", deps.max);
        } catch (err) {
          // The notes could not be written first (a full disk): they stay noted for the next round.
          log.error({ err: (err as Error).message }, "could not read the API edits that wait for this node's Kamailio");
          return false;
        }
        for (const key of keys) {
          const { key: aor, sub: contact } = parseRecordKey(key);
          // The journal's version now; one purged since (0) is compared with Kamailio as absent.
          edits.push({ aor, contact, hlc: (await store.get("loc", aor, contact))?.hlc ?? 0 });
        }
        const why = await track(edits, () => apply(edits)).catch((err: unknown) => (err as Error).message);
        if (why === null) log.info({ edits: edits.length }, "API edits that had waited for this node's Kamailio are in it now");
        else if (why !== lastWhy) log.warn({ edits: edits.length, left: set.size(), why }, "API edits still wait for this node's Kamailio; tried again at each check");
        lastWhy = why;
        return why === null;
      } finally {
        retrying = false;
      }
    },
  };
}
