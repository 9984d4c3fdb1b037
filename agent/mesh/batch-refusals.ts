/**
 * Peers that refuse this node's batches for good. A peer takes a batch whole or not at all, and its
 * version vector cannot pass a change it did not take, so one change it refuses holds back every
 * later change of that origin: the push pump holds that origin back and tries it again every
 * minute (push-pump.ts), for as long as the change is in the journal. Found by an operator's dry
 * run, where the only signs were a peer row's "disconnected: 4004 batch rejected" (the session then
 * closed at each refusal) and an alias that "was set" and reached no node.
 * So each refusal is kept, with what the peer said and the change it named, for `locmesh status`
 * (cluster.status `batchesRefused`), until the peer acknowledges a batch of that origin again; and
 * logged as an error when it is new or changed, then at most every REPEAT_LOG_MS while it lasts.
 */
import { BATCH_REFUSED_REMEDY, type BatchRefusal } from "../contract/cluster-status.js";
import type { Change } from "../contract/records.js";
import type { Logger } from "../ops/logger.js";

const REPEAT_LOG_MS = 10 * 60 * 1000;

export interface BatchRefusals {
  /** The peer refused a batch of `origin`'s changes: what it said, and the batch (to find the change it named). */
  refused(peer: string, origin: string, reason: string, changes: readonly Change[]): void;
  /** The peer acknowledged a batch of `origin`'s changes: whatever it refused before is behind. */
  acknowledged(peer: string, origin: string): void;
  /** The peer is no longer configured. */
  forget(peer: string): void;
  list(): BatchRefusal[];
}

/** The change a refusal names: zod's path "changes.N…" (describeZodError), an index into the batch. */
export function namedChange(reason: string, changes: readonly Change[]): BatchRefusal["change"] {
  const m = /\bchanges\.(\d+)\b/.exec(reason);
  const c = m ? changes[Number(m[1])] : undefined;
  return c ? { seq: c.seq, kind: c.kind, key: c.key, sub: c.sub } : null;
}

export function createBatchRefusals(deps: { log: Pick<Logger, "error" | "info">; nowMs?: () => number }): BatchRefusals {
  const nowMs = deps.nowMs ?? Date.now;
  const held = new Map<string, { refusal: BatchRefusal; loggedMs: number }>();
  const id = (peer: string, origin: string) => `${peer}\u0000${origin}`;
  return {
    refused(peer, origin, reason, changes) {
      const refusal: BatchRefusal = { peer, origin, at: new Date(nowMs()).toISOString(), reason, change: namedChange(reason, changes) };
      const before = held.get(id(peer, origin));
      const same = before !== undefined && before.refusal.reason === reason && before.refusal.change?.seq === refusal.change?.seq;
      const log = !same || nowMs() - before.loggedMs >= REPEAT_LOG_MS;
      held.set(id(peer, origin), { refusal, loggedMs: log ? nowMs() : before!.loggedMs });
      if (!log) return;
      deps.log.error(
        { peer, origin, reason, change: refusal.change },
        `${peer} refuses a batch of ${origin}'s changes: every later change of it waits behind the refused one and reaches no node, ` +
          `tried again every minute (repeated here every ${REPEAT_LOG_MS / 60_000} minutes while it lasts). ` +
          (refusal.change === null ? "See that node's log for why" : `What to do: ${BATCH_REFUSED_REMEDY}`),
      );
    },
    acknowledged(peer, origin) {
      if (!held.delete(id(peer, origin))) return;
      deps.log.info({ peer, origin }, `${peer} takes ${origin}'s changes again`);
    },
    forget(peer) {
      for (const [k, v] of held) if (v.refusal.peer === peer) held.delete(k);
    },
    list: () => [...held.values()].map((v) => v.refusal).sort((a, b) => (a.peer === b.peer ? a.origin.localeCompare(b.origin) : a.peer.localeCompare(b.peer))),
  };
}
