/**
 * The cluster status as the page shows it. `kamailio` comes from agents attached to a Kamailio
 * (null or absent otherwise, and absent from agents older than the attachment), so every field of
 * it is optional here and read defensively: the page works against old and new agents alike.
 */
import type { ClusterStatus, JournalBehindInfo, PeerStatus, PostgresStatus } from "../../../agent/contract/cluster-status.js";
import type { KamailioReloadInterrupted, SipPeersStatus } from "../../../agent/contract/kamailio-status.js";
import { AGENTS_GO_ELSEWHERE, countsStanding, lastAnsweredText, postgresStanding, releaseText } from "../../../agent/contract/postgres-standing.js";
import { formatCount, formatDuration, formatTime } from "./format.js";

export interface KamailioStatus {
  /** Kamailio answered over jsonrpcs at the last check. */
  up?: boolean;
  writer?: string;
  pendingWrites?: number;
  lastError?: string | null;
  lastErrorAt?: string | null;
  rejected?: number;
  /** `aorsToLookUp` is absent from agents before it. */
  events?: { connected: boolean; received: number; failed: number; aorsToLookUp?: number } | null;
  reload?: { state?: string; done?: number; total?: number; rate?: number; error?: string | null; refused?: number; interrupted?: KamailioReloadInterrupted | null } | null;
  /** `outcome` and `reason` are absent from agents before they were added (their runs were all "done"). */
  lastReconcile?: { at: string; outcome?: string; learned: number; repaired: number; contacts: number; reason?: string | null } | null;
  restarts?: number;
  /** Absent from agents before it. */
  sipPeers?: SipPeersStatus;
  warnings?: string[];
}

/** `journalBehind` is absent from agents older than it. */
export type ClusterStatusView = Omit<ClusterStatus, "kamailio" | "journalBehind"> & { kamailio?: KamailioStatus | null; journalBehind?: JournalBehindInfo | null };

export const WRITER_TEXT: Record<string, string> = {
  rpc: "Kamailio RPC (jsonrpcs)",
  fifo: "Kamailio RPC (FIFO)",
  database: "database fallback",
  pending: "retrying: a write failed (see the error below)",
  held: "nothing: this node's journal is behind",
  refused: "nothing: not attached (see below)",
  idle: "idle",
  off: "off",
};

/** The registrar events in a few words: the connection, how many came, and the AoRs still to look up in Kamailio (aor-lookups.ts). */
export function eventsText(e: NonNullable<KamailioStatus["events"]>): string {
  const lookUp = e.aorsToLookUp ? `; ${formatCount(e.aorsToLookUp)} AoRs to look up in Kamailio (their events could not be journaled or read)` : "";
  return `${e.connected ? "connected" : "disconnected"}, ${formatCount(e.received)} in${lookUp}`;
}

/** The last reconcile in a few words, after its time: counts when it ran, the reason when it did not. */
export function reconcileText(r: NonNullable<KamailioStatus["lastReconcile"]>): string {
  if (r.outcome === "skipped" || r.outcome === "failed") return `${r.outcome}: ${r.reason ?? "no reason given"}`;
  return `${formatCount(r.learned)} learned, ${formatCount(r.repaired)} repaired${r.reason ? `; warning: ${r.reason}` : ""}`;
}

/** The reload the agent's previous run left unfinished: how it ended, and that this start redoes it. */
export function interruptedText(i: KamailioReloadInterrupted): string {
  const how = i.error === null ? "cut short by an agent restart" : `failed (${i.error}), not redone before the agent stopped`;
  return `${how} after at least ${formatCount(i.done)} of ${formatCount(i.total)} writes (started ${formatTime(i.startedAt)}${i.whole ? ", every live record" : ""}); reloaded again at this start${i.whole ? ", every live record as well" : ""}`;
}

/** 0..1 progress, or null when the total is unknown. */
export function progress(done: number | undefined, total: number | undefined): number | null {
  if (!total || total <= 0 || done === undefined) return null;
  return Math.min(1, Math.max(0, done / total));
}

/** A hub, or an agent in hub mode, says which hub each link is on (PeerStatus.hub); a mesh agent does not. */
export function showsHubs(peers: readonly Pick<PeerStatus, "hub">[]): boolean {
  return peers.some((p) => p.hub !== undefined);
}

/** The Hub column, as `locmesh status` has it: "hub1 (this hub)" on hub1 itself, another hub's id, or "—" for none. */
export function hubText(hub: string | null | undefined, self: string, asOf?: string): string {
  if (asOf !== undefined) return `${hub ?? "none"} as of ${formatTime(asOf)} (unknown now)`;
  if (hub === undefined || hub === null) return "—";
  return hub === self ? `${hub} (this hub)` : hub;
}

/** The "Connected since" cell: since when it is up; or, down, when it was last up if known (PeerStatus.lastSeen). */
export function connectedSinceText(p: Pick<PeerStatus, "connected" | "connectedSince" | "lastSeen">): string {
  if (p.connectedSince) return formatTime(p.connectedSince);
  if (p.connected === false && p.lastSeen !== undefined) return `— (last up ${formatTime(p.lastSeen)})`;
  return "—";
}

/**
 * A link's badge. `connected` is null on a hub that cannot read which hub the agent is on now (its
 * PostgreSQL does not answer): unknown since `asOf`, neither up nor down.
 */
export function linkBadge(p: { connected: boolean | null; asOf?: string }): { cls: "ok" | "bad" | "warn"; text: string } {
  if (p.connected === null) return { cls: "warn", text: p.asOf === undefined ? "unknown" : `unknown since ${formatTime(p.asOf)}` };
  return p.connected ? { cls: "ok", text: "connected" } : { cls: "bad", text: "disconnected" };
}

export interface PostgresView {
  /** "up" while it answers, "failing" while checks fail but the hub still holds its agents, "down" once it released them. */
  badge: { cls: "ok" | "warn" | "bad"; text: "up" | "failing" | "down" };
  /** "Answering at host:port (last answered …)", "NOT ANSWERING at host:port for …", or "UNREACHABLE at host:port since …". */
  headline: string;
  /** Why it fails (the last check); null while it answers. */
  error: string | null;
  /** What the hub does about it meanwhile, or soon, and what the operator checks; null while it answers. */
  consequence: string | null;
}

/** A hub's PostgreSQL as its health checks found it (hub/pg-watch.ts), as `locmesh status` says it (agent/contract/postgres-standing.ts). */
export function postgresView(p: PostgresStatus): PostgresView {
  const s = postgresStanding(p);
  const answered = lastAnsweredText(s, formatDuration);
  switch (s.state) {
    case "answering":
      return { badge: { cls: "ok", text: "up" }, headline: `Answering at ${p.address}${answered}`, error: null, consequence: null };
    case "failing": {
      const release = releaseText(s, formatDuration);
      const when = release === null || s.releaseAfterSeconds === null
        ? "If it goes on, this hub releases its agents"
        : `If it goes on, ${release} (in ${formatDuration(Math.max(0, s.releaseAfterSeconds - s.failingForSeconds))} unless it answers)`;
      return {
        badge: { cls: "warn", text: "failing" },
        headline: `NOT ANSWERING at ${p.address} for ${formatDuration(s.failingForSeconds)}${answered}`,
        error: `Last check: ${s.error}`,
        consequence:
          `This hub still holds its agents' sessions: it has not counted PostgreSQL as unreachable yet. ${when}: ` +
          `it closes their sessions, and they ${AGENTS_GO_ELSEWHERE}; otherwise they keep journaling locally until one answers (nothing is lost).`,
      };
    }
    case "unreachable":
      return {
        badge: { cls: "bad", text: "down" },
        headline: `UNREACHABLE at ${p.address} since ${formatTime(s.since)}${answered}`,
        error: `Last check: ${s.error}`,
        consequence:
          "This hub can neither store its agents' changes nor read what to send them: it has closed their sessions and refuses new ones until PostgreSQL answers, " +
          `so they ${AGENTS_GO_ELSEWHERE}; otherwise they keep journaling locally until one answers (nothing is lost). Check PostgreSQL and the network path from this hub to it.`,
      };
  }
}

export interface CountsView {
  /** False before a hub's first count: the counts are zeros that mean nothing. */
  known: boolean;
  /** A hub's last counts, stale while PostgreSQL fails, after a failed recount, or past the age counts are reused for. */
  stale: boolean;
  /** How old a hub's counts are (they come from PostgreSQL), and why stale; null on an agent, whose counts are live. */
  age: string | null;
}

/** The record counts' standing: live on an agent; on a hub counted in PostgreSQL a while ago, STALE when the hub says so (countsStale). */
export function countsView(pg: PostgresStatus | undefined): CountsView {
  if (!pg) return { known: true, stale: false, age: null };
  const c = countsStanding(pg, formatDuration);
  return { known: c.counted, stale: c.counted && c.stale !== null, age: c.text };
}

/** One count as the node card shows it: "unknown" before a hub's first count, marked while stale. */
export function countText(n: number, c: CountsView): string {
  if (!c.known) return "unknown";
  return c.stale ? `${formatCount(n)} (stale)` : formatCount(n);
}
