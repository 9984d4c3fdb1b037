/**
 * Whether this node's journal went back in time: a peer holds more of this node's own changes than
 * its journal does (restored from an older copy, or its last commits lost). peer-handshake.ts
 * notices it at a handshake. From then on, for the life of the process, the node must neither
 * replicate (mesh.ts closes every session), take writes (local-api.ts refuses them: they would be
 * thrown away with the journal) nor write its stale journal into Kamailio (kamailio/journal-gate.ts
 * holds the sink, the reload and the reconcile). The remedy is a restart with an empty journal
 * (JOURNAL_BEHIND_REMEDY), so there is no way to clear it.
 *
 * agent.ts makes one and hands it to each of them: the flag is shared state, and passing it in
 * keeps who reads and who sets it visible in the composition root.
 */
import type { JournalBehindInfo } from "../contract/cluster-status.js";

export interface JournalBehind {
  isSet(): boolean;
  /** What was found, once set. */
  info(): JournalBehindInfo | null;
  /** Records what was found; only the first call counts (then the listeners run, once). */
  set(info: JournalBehindInfo): void;
  /** Runs `listener` when the flag is set (at once if it already is); returns an unsubscribe. */
  onSet(listener: (info: JournalBehindInfo) => void): () => void;
}

export function createJournalBehind(): JournalBehind {
  let found: JournalBehindInfo | null = null;
  const listeners = new Set<(info: JournalBehindInfo) => void>();
  return {
    isSet: () => found !== null,
    info: () => found,
    set(info) {
      if (found !== null) return;
      found = { ...info };
      for (const l of [...listeners]) l(found);
    },
    onSet(listener) {
      if (found !== null) {
        listener(found);
        return () => undefined;
      }
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
