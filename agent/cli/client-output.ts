/**
 * Turns API results into terminal text for the client commands: `locmesh status` (cluster.status)
 * here, the lists of records and of Kamailio's table in listing-output.ts. Pure functions of their
 * input, so they are easy to test and the commands stay about flow.
 */
import {
  BATCH_REFUSED_REMEDY, JOURNAL_BEHIND_REMEDY, JOURNAL_NOT_SEEDED, journalBehindFinding, isHubStatus, type BatchRefusal, type ClusterStatus, type JournalBehindInfo,
  type KeysStatus, type PostgresStatus, type ResyncStatus,
} from "../contract/cluster-status.js";
import type { KamailioReloadInterrupted, KamailioReloadStatus, KamailioStatus } from "../contract/kamailio-status.js";
import { sipPeersText } from "../contract/sip-peers-text.js";
import { peerErrorText } from "../contract/batches-not-stored-text.js";
import { hubUnacknowledgedText } from "../contract/hub-unacknowledged-text.js";
import { keysText, type KeyKind } from "../contract/keys-text.js";
import { AGENTS_GO_ELSEWHERE, countsStanding, lastAnsweredText, postgresStanding, releaseText } from "../contract/postgres-standing.js";
import { cellText, formatPairs, formatTable } from "./table.js";

export function formatStatus(s: ClusterStatus, nowMs = Date.now()): string {
  const head = formatPairs([
    ["node", `${s.nodeId} (replica ${s.replicaId}, locmesh ${s.version}, protocol ${s.protocol}, up ${formatDuration(s.uptimeSeconds)})`],
    ["records", describeRecords(s)],
    ...(s.postgres ? ([["postgresql", describePostgres(s.postgres)]] as [string, string][]) : []),
    // A hub (it reports its PostgreSQL) has no Kamailio: two lines of "not attached" and 0 say nothing.
    ...(isHubStatus(s)
      ? []
      : ([
        ["kamailio", describeKamailio(s.kamailio)],
        ["pending writes", `${s.pendingWrites} (changes not yet written to the local Kamailio)`],
      ] as [string, string][])),
    ...(s.hubUnacknowledged === undefined ? [] : ([["unacknowledged by hub", hubUnacknowledgedText(s)]] as [string, string][])),
    ["resync", describeResync(s.resync)],
    ...(s.kamailio
      ? ([
        ["kamailio reload", describeReload(s.kamailio.reload)],
        ...(s.kamailio.reload.interrupted ? [["previous reload", describeInterrupted(s.kamailio.reload.interrupted)]] : []),
        ["kamailio reconcile", describeReconcile(s.kamailio.lastReconcile)],
        ...(s.kamailio.sipPeers ? [["kamailio sip peers", sipPeersText(s.kamailio.sipPeers)]] : []),
        ...(s.kamailio.warnings ?? []).map((w) => ["kamailio warning", `WARNING: ${w}`]),
      ] as [string, string][])
      : []),
    ...(s.credentials
      ? ([
        ["cluster keys", describeKeys(s.credentials.clusterKeys, "clusterKeys")],
        ["api tokens", describeKeys(s.credentials.apiTokens, "apiTokens")],
      ] as [string, string][])
      : []),
  ]);
  // Above everything else: the node is out of service until the operator acts, and the peers'
  // "journal behind peer" (or "4004 batch rejected") errors alone do not say what to do.
  const top = [
    ...(s.journalBehind ? [describeJournalBehind(s.journalBehind)] : []),
    ...(s.journalSeeded === false ? [`NEW JOURNAL, NOT CAUGHT UP YET: ${JOURNAL_NOT_SEEDED}.`] : []),
    ...(s.batchesRefused && s.batchesRefused.length > 0 ? [describeBatchesRefused(s.batchesRefused)] : []),
  ].map((t) => `${t}\n\n`).join("");
  if (s.peers.length === 0) return `${top}${head}\n\nno peers configured`;
  // A hub, or an agent in hub mode, says which hub each link is on (PeerStatus.hub).
  const hubMode = s.peers.some((p) => p.hub !== undefined);
  const peers = formatTable(
    ["PEER", "CONNECTED", ...(hubMode ? ["HUB"] : []), "DIRECTION", "BEHIND CHANGES", "BEHIND SECONDS", "ITS PENDING WRITES", "LAST ERROR"],
    // Unknown lag (no session) is null, which shows as "-".
    s.peers.map((p) => [
      p.nodeId, describeConnected(p, nowMs), ...(hubMode ? [describeHub(p, s.nodeId)] : []), p.direction, p.behindChanges,
      p.behindSeconds === null ? null : Math.round(p.behindSeconds), p.pendingWrites, peerErrorText(p, utcTime),
    ]),
    { align: ["left", "left", ...(hubMode ? ["left" as const] : []), "left", "right", "right", "right", "left"] },
  );
  return `${top}${head}\n\n${peers}`;
}

/** A node's keys of one kind by id, with durations as the terminal writes them (contract/keys-text.ts). */
export const describeKeys = (k: KeysStatus, kind: KeyKind): string => keysText(k, kind, formatDuration);

/** On a hub the counts come from PostgreSQL: how old they are, or that there are none yet. */
export function describeRecords(s: ClusterStatus): string {
  const counts = `${s.counts.locations} locations, ${s.counts.aliases} aliases, ${s.counts.tombstones} tombstones`;
  if (!s.postgres) return counts;
  const c = countsStanding(s.postgres, formatDuration);
  return c.counted ? `${counts} (${c.text})` : `unknown (${c.text})`;
}

export function describePostgres(p: PostgresStatus): string {
  const s = postgresStanding(p);
  const answered = lastAnsweredText(s, formatDuration);
  switch (s.state) {
    case "answering":
      return `answering at ${p.address}${answered}`;
    case "failing": {
      const release = releaseText(s, formatDuration);
      return `NOT ANSWERING at ${p.address} for ${formatDuration(s.failingForSeconds)}${answered}: ${s.error}${release === null ? "" : `; ${release}`}`;
    }
    case "unreachable":
      return `UNREACHABLE at ${p.address} since ${s.since}${answered}: ${s.error}; this hub refuses agents until it answers (they ${AGENTS_GO_ELSEWHERE}; otherwise they journal locally and send everything when one answers)`;
  }
}

/** The CONNECTED column: yes, or no and since when, when known (PeerStatus.lastSeen). */
function describeConnected(p: ClusterStatus["peers"][number], nowMs: number): boolean | null | string {
  if (p.connected !== false || p.lastSeen === undefined) return p.connected;
  return `no, last up ${formatDuration((nowMs - Date.parse(p.lastSeen)) / 1000)} ago`;
}

/** A time in a table cell: the time of day, UTC (e.g. "05:57:20 UTC"). */
const utcTime = (iso: string) => `${iso.slice(11, 19)} UTC`;

/** The HUB column: this hub, another one, or (on an agent) its hub and the URL it reached it at. */
function describeHub(p: ClusterStatus["peers"][number], self: string): string | null {
  // Where the agent was when the hub last could read it (its PostgreSQL does not answer).
  if (p.asOf !== undefined) return `${p.hub ?? "none"} as of ${utcTime(p.asOf)} (unknown now)`;
  if (p.hub === undefined || p.hub === null) return null;
  if (p.hub === self) return `${p.hub} (this hub)`;
  return p.url !== null && p.url.includes("://") ? `${p.hub} at ${p.url}` : p.hub;
}

/** The journal went back in time: what happened, what the node does about it, and the fix. */
export function describeJournalBehind(b: JournalBehindInfo): string {
  return cellText(
    `JOURNAL BEHIND since ${b.at}: ${journalBehindFinding(b)} ` +
      "(restored from an older copy, or it lost its last commits). This node replicates with no peer, refuses changes and writes nothing into its Kamailio. " +
      `To repair it: ${JOURNAL_BEHIND_REMEDY}.`,
  );
}

/** Peers refuse this node's batches: who, what they said of which change, what it holds back, and the fix. */
export function describeBatchesRefused(list: readonly BatchRefusal[]): string {
  const each = list.map((r) => {
    const change = r.change === null ? "" : ` (the change: ${r.origin} #${r.change.seq}, ${r.change.kind} ${JSON.stringify(r.change.key)}${r.change.sub ? ` ${r.change.sub}` : ""})`;
    return `${r.peer} refuses ${r.origin}'s changes since ${r.at}: ${r.reason}${change}.`;
  });
  const named = list.some((r) => r.change !== null);
  return cellText(
    `PEERS REFUSE THIS NODE'S CHANGES: ${each.join(" ")} Every later change of that origin waits behind the refused one and reaches no node ` +
      "(an alias set here too), tried again every minute. " +
      (named ? `To repair it: ${BATCH_REFUSED_REMEDY}.` : "The refusing node's log says why."),
  );
}

export function describeKamailio(k: KamailioStatus | null): string {
  if (k === null) return "not attached";
  const writer = {
    rpc: "writing through jsonrpcs", database: "writing into its database (jsonrpcs unavailable)", pending: "NOT WRITING: a write failed (the last error says how), retrying",
    idle: "nothing written yet", held: "NOT WRITING: this node's journal is behind (see above)",
    refused: "NOT ATTACHED: nothing written into it, learned from it or reconciled with it",
  }[k.writer];
  const lookUp = k.events?.aorsToLookUp ? `${k.events.aorsToLookUp} AoR(s) to look up in Kamailio: their events could not be journaled or read` : "";
  const events = k.events === null ? "no event input"
    : k.events.connected ? `events connected (${k.events.received} received${lookUp ? `, ${lookUp}` : ""})`
    : `events DISCONNECTED${lookUp ? ` (${lookUp})` : ""}`;
  // Aliases that wait for alias_db's database do not stop the writer: lastError says so then.
  const shown = k.writer === "pending" || !k.up || (k.aliasesWaiting ?? 0) > 0;
  const err = !k.lastError ? "" : k.writer === "refused" ? `; why: ${k.lastError}` : shown ? `; last error: ${k.lastError}` : "";
  // A write Kamailio refused outright is skipped, not retried: that binding or alias is missing there.
  const rejected = k.rejected > 0 ? `, ${k.rejected} write(s) REFUSED by Kamailio and skipped (the log's "skipped" lines name them)` : "";
  return `${k.up ? "up" : "DOWN"}, ${writer}, ${events}${k.restarts > 0 ? `, ${k.restarts} restart(s) seen` : ""}${rejected}${err}`;
}

export function describeReload(r: KamailioStatus["reload"]): string {
  switch (r.state) {
    case "idle":
      return "idle";
    case "running":
      return `running${parenthesis(r.reason, wholeText(r))}: ${r.done} of ${r.total} writes${r.channel ? ` over ${r.channel}` : ""}`;
    case "done":
      return `done${parenthesis(r.reason, wholeText(r))}: ${r.done} writes${r.unchanged > 0 ? `, ${r.unchanged} already right` : ""}${refusedText(r)}${aliasesWaitingText(r)}, ${r.rate}/s${r.channel ? ` over ${r.channel}` : ""}, finished ${r.finishedAt ?? "?"}`;
    case "failed":
      return `failed after ${r.done} of ${r.total} writes: ${r.error ?? "no reason given"}`;
  }
}

/** " (reason, every live record)", the parts that are there; "" when neither is. */
const parenthesis = (reason: string | null, whole: string): string => (reason || whole ? ` (${[reason, whole.replace(/^, /, "")].filter(Boolean).join(", ")})` : "");

/** A reload that writes every live record, not only the difference with a preloading Kamailio's database. */
const wholeText = (r: Pick<KamailioReloadStatus, "whole">): string => (r.whole ? ", every live record" : "");

/** Aliases a reload left to the sink, alias_db's database away (counted among its writes done). */
const aliasesWaitingText = (r: Pick<KamailioReloadStatus, "aliasesWaiting">): string =>
  r.aliasesWaiting ? `, ${r.aliasesWaiting} of them aliases NOT WRITTEN: alias_db's database did not answer; they are written once it does` : "";

/** Writes of a reload Kamailio refused (counted among its writes done). */
export const refusedText = (r: Pick<KamailioReloadStatus, "refused">): string =>
  r.refused ? `, ${r.refused} of them REFUSED by Kamailio and skipped (the log's "reload skipped" lines name them)` : "";

/**
 * The reload the agent's previous run left unfinished, said in capitals like a skipped reconcile:
 * Kamailio's state was unknown at this start, and the `kamailio reload` line shows the redo.
 */
export function describeInterrupted(i: KamailioReloadInterrupted): string {
  const how = i.error === null
    ? "CUT SHORT by the agent stopping (restart, kill or crash)"
    : `FAILED (${i.error}) and not redone before the agent stopped`;
  return `${how} after at least ${i.done} of ${i.total} writes; it started ${i.startedAt} (${i.reason ?? "no reason noted"}${i.whole ? ", every live record" : ""}). ` +
    `Which writes went in was unknown, so this start reloads Kamailio again${i.whole ? " (every live record as well; the line above)" : " (the line above)"}`;
}

/** The last reconcile with Kamailio (ul.dump): when, what it did, or why it did not run. */
export function describeReconcile(r: KamailioStatus["lastReconcile"]): string {
  // At start a reload stands in for it when Kamailio needs one (restarted, or a new journal).
  if (r === null) return "not run yet (when a reload made Kamailio whole at start, the first runs within kamailio.reconcileIntervalSec)";
  switch (r.outcome) {
    case "skipped":
      // What the skip costs, said where the operator looks (README "Attach to your Kamailio").
      return `SKIPPED at ${r.at}: ${r.reason ?? "no reason given"}; REGISTERs taken while the agent was away, beyond those Kamailio held, are learned only when the phones refresh`;
    case "failed":
      return `FAILED at ${r.at}: ${r.reason ?? "no reason given"}`;
    default:
      // Agents from before `outcome` existed report only completed runs.
      return `done at ${r.at}: ${r.learned} learned, ${r.repaired} repaired, ${r.contacts} contacts compared${r.reason ? `; WARNING: ${r.reason}` : ""}`;
  }
}

export function describeResync(r: ResyncStatus): string {
  // A relay catch-up pulls the changes of a node not connected here, by itself.
  const from = `${r.full === false ? " (relay catch-up)" : ""}${r.peer ? ` from ${r.peer}` : ""}`;
  switch (r.state) {
    case "idle":
      return "idle";
    case "running":
      return `running${from}: ${r.received} of ~${r.expected} changes pulled`;
    case "done":
      return `done${from}: ${r.received} changes pulled${r.finishedAt ? `, finished ${r.finishedAt}` : ""}`;
    case "failed":
      return `failed${from}: ${r.error ?? "no reason given"}`;
  }
}

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d${h}h`;
  if (h > 0) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}
