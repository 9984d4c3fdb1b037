import type { BatchParams } from "../contract/protocol.js";
import { isWellFormedChange } from "../contract/change-check.js";
import { REPLICA_ID_RE } from "../contract/ids.js";

// Safe integers only, as zod's .int() (a batch with upTo 2^53 passed here once, and raised the
// origin's version vector past every sequence number it will ever send).
const isCount = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** The batch as it is when every part passes the fast check, else null (parse with zod then). */
export function fastBatch(raw: unknown): BatchParams | null {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return null;
  const b = raw as Record<string, unknown>;
  if (Object.keys(b).length !== 4 || typeof b["origin"] !== "string" || !REPLICA_ID_RE.test(b["origin"])) return null;
  if (!isCount(b["after"]) || !isCount(b["upTo"])) return null;
  const changes = b["changes"];
  if (!Array.isArray(changes) || changes.length > 5000) return null;
  for (const c of changes) if (!isWellFormedChange(c)) return null;
  return b as unknown as BatchParams;
}
