/**
 * The cluster status as the page shows it. `kamailio` is optional: agents without a Kamailio writer
 * (and agents older than it) do not send it, so every field is read defensively.
 */
import type { ClusterStatus } from "../../../agent/contract/protocol.js";

export interface KamailioStatus {
  writer?: "fifo" | "database" | "pending" | "off" | string;
  pendingWrites?: number;
  lastError?: string | null;
  reload?: { state?: string; done?: number; total?: number } | null;
}

export type ClusterStatusView = ClusterStatus & { kamailio?: KamailioStatus | null };

export const WRITER_TEXT: Record<string, string> = {
  fifo: "FIFO (jsonrpcs)",
  database: "database fallback",
  pending: "waiting for Kamailio",
  off: "off",
};

/** 0..1 progress, or null when the total is unknown. */
export function progress(done: number | undefined, total: number | undefined): number | null {
  if (!total || total <= 0 || done === undefined) return null;
  return Math.min(1, Math.max(0, done / total));
}
