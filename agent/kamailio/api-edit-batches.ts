/**
 * The local API's edits of this node's own bindings (location.publish), waiting to be brought into
 * this node's Kamailio. Edits that arrive while a batch waits for its turn join it; once the batch
 * starts, later edits make the next one. So at most one batch waits, however many callers publish,
 * and a binding edited twice before its batch starts is written once, as of its later edit.
 */
import { bindingKey } from "./install-plan.js";
import type { ApiEdits } from "./reconciler.js";

export interface ApiEdit {
  aor: string;
  contact: string;
  /** The stamp of the API's edit of this binding. */
  hlc: number;
}

export interface ApiEditBatchesDeps {
  /** Runs one batch in turn with the reload, check and reconcile (they share Kamailio's one FIFO process). */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /** Brings Kamailio in line for the batch's bindings: null when done, else why not now. */
  run(edits: ApiEdits): Promise<string | null>;
  /** Past this many waiting edits, more are refused (left to the next reconcile or reload). */
  max: number;
}

export interface ApiEditBatches {
  /** Resolves when the batch these edits joined has run: null when done, else why it did not happen now. */
  add(edits: readonly ApiEdit[]): Promise<string | null>;
}

export function createApiEditBatches(deps: ApiEditBatchesDeps): ApiEditBatches {
  let waiting: { keys: Map<string, { aor: string; hlc: number }>; done: Promise<string | null> } | null = null;

  return {
    add(edits) {
      if (edits.length === 0) return Promise.resolve(null);
      if (waiting !== null && waiting.keys.size >= deps.max) {
        return Promise.resolve(`${waiting.keys.size} edits wait for this node's Kamailio already: these are kept in the journal and tried again at its next checks`);
      }
      let batch = waiting;
      if (batch === null) {
        const b = { keys: new Map<string, { aor: string; hlc: number }>(), done: Promise.resolve<string | null>(null) };
        b.done = deps.exclusive(() => {
          if (waiting === b) waiting = null; // edits from now on make the next batch
          return deps.run({ keys: b.keys });
        });
        waiting = batch = b;
      }
      // A later edit of the same binding replaces the earlier one, with its newer stamp (a retry of
      // a waiting edit may bring an older stamp after it: the newer stays).
      for (const e of edits) {
        const key = bindingKey(e.aor, e.contact);
        if ((batch.keys.get(key)?.hlc ?? -1) <= e.hlc) batch.keys.set(key, { aor: e.aor, hlc: e.hlc });
      }
      return batch.done;
    },
  };
}
