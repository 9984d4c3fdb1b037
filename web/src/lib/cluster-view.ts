/**
 * The cluster status as the page shows it. `kamailio` comes from agents attached to a Kamailio
 * (null or absent otherwise, and absent from agents older than the attachment), so every field of
 * it is optional here and read defensively: the page works against old and new agents alike.
 */
import type { ClusterStatus, JournalBehindInfo, KamailioReloadInterrupted } from "../../../agent/contract/protocol.js";
import { formatCount, formatTime } from "./format.js";

export interface KamailioStatus {
  /** Kamailio answered over jsonrpcs at the last check. */
  up?: boolean;
  writer?: string;
  pendingWrites?: number;
  lastError?: string | null;
  lastErrorAt?: string | null;
  rejected?: number;
  events?: { connected: boolean; received: number; failed: number } | null;
  reload?: { state?: string; done?: number; total?: number; rate?: number; error?: string | null; interrupted?: KamailioReloadInterrupted | null } | null;
  /** `outcome` and `reason` are absent from agents before they were added (their runs were all "done"). */
  lastReconcile?: { at: string; outcome?: string; learned: number; repaired: number; contacts: number; reason?: string | null } | null;
  restarts?: number;
}

/** `journalBehind` is absent from agents older than it. */
export type ClusterStatusView = Omit<ClusterStatus, "kamailio" | "journalBehind"> & { kamailio?: KamailioStatus | null; journalBehind?: JournalBehindInfo | null };

export const WRITER_TEXT: Record<string, string> = {
  rpc: "Kamailio RPC (jsonrpcs)",
  fifo: "Kamailio RPC (FIFO)",
  database: "database fallback",
  pending: "retrying: neither RPC nor database works",
  held: "nothing: this node's journal is behind",
  idle: "idle",
  off: "off",
};

/** The last reconcile in a few words, after its time: counts when it ran, the reason when it did not. */
export function reconcileText(r: NonNullable<KamailioStatus["lastReconcile"]>): string {
  if (r.outcome === "skipped" || r.outcome === "failed") return `${r.outcome}: ${r.reason ?? "no reason given"}`;
  return `${formatCount(r.learned)} learned, ${formatCount(r.repaired)} repaired`;
}

/** The reload the agent's previous run left unfinished: how it ended, and that this start redoes it. */
export function interruptedText(i: KamailioReloadInterrupted): string {
  const how = i.error === null ? "cut short by an agent restart" : `failed (${i.error}), not redone before the agent stopped`;
  return `${how} after at least ${formatCount(i.done)} of ${formatCount(i.total)} writes (started ${formatTime(i.startedAt)}); reloaded again at this start`;
}

/** 0..1 progress, or null when the total is unknown. */
export function progress(done: number | undefined, total: number | undefined): number | null {
  if (!total || total <= 0 || done === undefined) return null;
  return Math.min(1, Math.max(0, done / total));
}
