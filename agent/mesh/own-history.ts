/**
 * Whether a peer's copy of this node's own changes is the journal's, sequence number for sequence
 * number.
 *
 * peer-handshake.ts finds a journal that went back in time (restored from an older copy, or its
 * last commits lost) when a peer holds more of this node's changes than the journal. That misses a
 * journal restored while no peer could be reached and then written past what the peers hold: the
 * new changes took sequence numbers the peers already hold for the lost ones, so each side keeps
 * its own change under that number and neither ever gets the other's (an alias set then is never
 * seen elsewhere). So once per peer and run, after the handshake, the agent pulls the peer's last
 * changes of this origin up to what it held then, and compares each with the journal.
 *
 * Only what proves a fork counts, since the verdict stops the node: a change of an origin is one
 * version, so the same sequence number under another record or stamp, or the journal's own
 * version of a record older than the one the peer holds of this node (the journal holds every own
 * change up to its vector entry, or a newer one), or a newer sequence number with an older stamp.
 * A record the journal does not hold at all proves nothing (the purge may have taken it), nor does
 * another origin's version (a purged tombstone lets an older one in).
 */
import type { Change, RecordKind } from "../contract/records.js";
import { ErrorCode } from "../contract/errors.js";
import type { JournalBehind } from "../core/journal-behind.js";
import type { Replica } from "../core/replica.js";
import type { Logger } from "../ops/logger.js";
import { toRpcError } from "../rpc/server.js";
import type { PeerSession } from "./peer-session.js";
import { JOURNAL_BEHIND_REMEDY } from "../contract/cluster-status.js";

/** How many of the peer's last changes of this origin are compared: the newest, where a fork starts. */
export const OWN_HISTORY_WINDOW = 500;

/** What the journal is asked about its own origin's changes. */
export interface OwnJournal {
  /** The change of this origin with that sequence number, if the journal still holds it as a current version. */
  atSeq(seq: number): Promise<Change | null>;
  /** The current version of a record. */
  get(kind: RecordKind, key: string, sub: string): Promise<Change | null>;
}

const describe = (c: Change) =>
  `${c.kind === "loc" ? "binding" : "alias"} ${c.kind === "loc" ? `${c.key} ${c.sub}` : c.key} ${c.value === null ? "removed" : "set"} at HLC ${c.hlc}`;

/**
 * The first of `theirs` (the peer's changes of origin `self`) that proves the journal's history of
 * its own changes forked from the peer's, said in a sentence; null when none does. `have` is the
 * journal's vector entry for `self`: changes above it are left to the handshake's check.
 */
export async function ownHistoryConflict(theirs: readonly Change[], journal: OwnJournal, self: string, have: number): Promise<string | null> {
  for (const c of theirs) {
    if (c.origin !== self || c.seq > have) continue;
    const same = await journal.atSeq(c.seq);
    if (same !== null && (same.kind !== c.kind || same.key !== c.key || same.sub !== c.sub || same.hlc !== c.hlc)) {
      return `this node's change ${c.seq} is ${describe(c)} on the peer, but ${describe(same)} in the journal`;
    }
    const current = await journal.get(c.kind, c.key, c.sub);
    if (current === null || current.origin !== self || current.seq === c.seq) continue;
    if (current.seq < c.seq) {
      return `the peer holds this node's change ${c.seq} (${describe(c)}); the journal, which holds this node's changes up to ${have}, has its older change ${current.seq} of that record`;
    }
    if (current.hlc < c.hlc) {
      return `this node's change ${current.seq} (${describe(current)}) in the journal is stamped before its change ${c.seq} on the peer (${describe(c)})`;
    }
  }
  return null;
}

export interface OwnHistoryCheck {
  /** A session became ready: compare with this peer, once per peer and run, unless already done. */
  peerReady(session: PeerSession): void;
}

export function createOwnHistoryCheck(deps: {
  replica: Replica;
  journalBehind: Pick<JournalBehind, "isSet" | "set">;
  log: Logger;
  nowMs?: () => number;
  /** The peer answers a pull only once its side of the handshake is done too; asked again after this long. */
  notReadyRetryMs?: number;
}): OwnHistoryCheck {
  const { replica } = deps;
  const self = replica.replicaId;
  const nowMs = deps.nowMs ?? Date.now;
  const retryMs = deps.notReadyRetryMs ?? 100;
  const checked = new Set<string>();
  const journal: OwnJournal = {
    atSeq: async (seq) => (await replica.store.readRange(self, seq - 1, seq, 1))[0] ?? null,
    get: (kind, key, sub) => replica.store.get(kind, key, sub),
  };

  /** The peer's changes of this origin from `held` − the window up, at most the window's worth. */
  async function pullTheirs(session: PeerSession, held: number): Promise<Change[] | null> {
    const skip = Object.keys(session.peerVector()).filter((o) => o !== self);
    for (let attempt = 0; attempt < 50 && session.isReady(); attempt++) {
      try {
        const res = await session.pull({ vv: { [self]: Math.max(0, held - OWN_HISTORY_WINDOW) }, limit: OWN_HISTORY_WINDOW, skip });
        if (res.batch === null) return [];
        if (res.batch.origin === self) return res.batch.changes as Change[];
        skip.push(res.batch.origin); // an origin the peer learned of since the handshake
      } catch (err) {
        if (toRpcError(err).code !== ErrorCode.NotReady) throw err;
        await new Promise((r) => setTimeout(r, retryMs));
      }
    }
    return null;
  }

  async function check(session: PeerSession, peer: string, held: number): Promise<void> {
    const theirs = await pullTheirs(session, held);
    if (theirs === null || deps.journalBehind.isSet()) return;
    const have = (await replica.versionVector())[self] ?? 0;
    const conflict = await ownHistoryConflict(theirs, journal, self, have);
    if (conflict === null) {
      checked.add(peer);
      return;
    }
    deps.log.error(
      { peer, peerHolds: held, journalHas: have, replica: self, conflict },
      "this node's journal and the peer hold different changes of this node under the same numbers: the journal was restored from an older copy (or lost its last commits) and took changes before any peer could tell; " +
        `it replicates with no peer, takes no API writes and writes nothing into its Kamailio until it is started afresh: ${JOURNAL_BEHIND_REMEDY}`,
    );
    deps.journalBehind.set({ peer, peerHolds: held, journalHas: have, at: new Date(nowMs()).toISOString(), conflict });
  }

  return {
    peerReady(session) {
      const peer = session.peerNodeId();
      const held = session.peerVector()[self] ?? 0;
      if (peer === null || held === 0 || checked.has(peer) || deps.journalBehind.isSet()) return;
      check(session, peer, held).catch((err: unknown) =>
        deps.log.warn({ peer, err: (err as Error).message }, "could not compare this node's own changes with the peer's copy; compared at its next session"));
    },
  };
}
