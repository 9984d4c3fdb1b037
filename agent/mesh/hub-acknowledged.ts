/**
 * In hub mode: how many of this node's own changes a hub last said it held, kept in the journal
 * (sqlite-meta.ts notes) so that an agent restarted while no hub answers still says how many of
 * its changes wait for one (`locmesh status`: unacknowledged by hub; `locmesh_peer_behind_changes
 * {peer="hub"}`). Before it was kept, a restart during a hub outage made that count unknown, just
 * when the operator needed it.
 *
 * The figure may only ever make the count look larger than the truth, never smaller:
 * - every hub session's figure is saved as soon as it is seen, a lower one too (a hub that lost
 *   data, e.g. after a PostgreSQL failover, says so in its handshake), so a restart cannot go back
 *   to a higher figure the hub no longer stands by;
 * - a rise saved late (the agent killed before the hub's next status) only overstates the count;
 * - it is kept under this journal's replica id (node~epoch): a journal started afresh (lost, moved
 *   aside for a snapshot) is a new epoch with changes no hub has acknowledged, and a figure under
 *   another replica id is not used (unknown instead);
 * - a journal restored from an older copy brings back its own older figure with it, at most what
 *   it held then.
 */
import type { JournalNotes } from "../journal/sqlite-meta.js";
import type { Logger } from "../ops/logger.js";

export interface HubAcknowledged {
  /** Of this replica's own changes, how many the last hub session said the hub held; null when no hub has answered this journal. */
  held(): number | null;
  /** A hub session said (in its handshake, a status, or as it closed) that the hub holds `held` of our changes. */
  record(held: number): void;
}

export const HUB_HELD_NOTE = "hub_held";

/** `notes`: the journal's (sqlite-meta.ts); null keeps the figure for this run only (a hub, which has no such journal). */
export function openHubAcknowledged(deps: { notes: JournalNotes | null; replicaId: string; log: Logger }): HubAcknowledged {
  let held = deps.notes === null ? null : parse(deps.notes.readNote(HUB_HELD_NOTE), deps.replicaId);
  let warned = false;
  return {
    held: () => held,
    record(next) {
      if (next === held) return;
      held = next;
      try {
        deps.notes?.writeNote(HUB_HELD_NOTE, JSON.stringify({ replica: deps.replicaId, held: next }));
        warned = false;
      } catch (err) {
        // Costs only the figure after a restart (a full disk): it is right for this run.
        if (!warned) deps.log.warn({ err: (err as Error).message }, "could not note in the journal how many of this node's changes the hub holds; after a restart, `unacknowledged by hub` is what the hub said before until a hub answers");
        warned = true;
      }
    },
  };
}

/** The figure kept for `replicaId`; null for none, another replica's, or one that does not read back. */
function parse(text: string | null, replicaId: string): number | null {
  if (text === null) return null;
  try {
    const v = JSON.parse(text) as { replica?: unknown; held?: unknown } | null;
    if (v === null || typeof v !== "object" || v.replica !== replicaId) return null;
    return Number.isSafeInteger(v.held) && (v.held as number) >= 0 ? (v.held as number) : null;
  } catch {
    return null;
  }
}

/**
 * A hub session that starts with the hub holding none of this node's changes, where a hub had
 * acknowledged some: most likely it uses another database than the hubs before it (a typo in its
 * postgres.url splits the cluster in two, each half replicating through its own database: the hub
 * dry run, F35), or that database was recreated empty. The agent sends them again, so nothing is
 * lost here, but the operator must hear of it. A hub holding fewer but some is left alone: it
 * learns other hubs' commits through NOTIFY, a moment (or, while its LISTEN connection is remade,
 * seconds) late, so a partial deficit at session start is no evidence. Returns the warning, or null.
 */
export function hubHoldsNone(hub: string, before: number | null, now: number): string | null {
  if (before === null || before === 0 || now > 0) return null;
  return `hub ${hub} holds none of this node's changes, where a hub had acknowledged ${before}: check that every hub's postgres.url names the same database ` +
    "(a hub on another one splits the cluster, each half replicating only within its own), or whether that database was recreated empty. " +
    "This node sends them again";
}
