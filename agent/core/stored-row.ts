/** How stores lay a record's version out in a table row; shared by the SQLite journal and the hub's PostgreSQL store. */
import type { Change, RecordKind } from "../contract/records.js";

export const KIND_CODE: Record<RecordKind, number> = { loc: 0, alias: 1 };
export const KIND_NAME: RecordKind[] = ["loc", "alias"];

/** One record's current version; `origin` is the store's numeric id of the origin replica. */
export interface StoredRow {
  kind: number;
  key: string;
  sub: string;
  hlc: number;
  origin: number;
  seq: number;
  /** JSON text of the value; null is a tombstone. */
  value: string | null;
}

/** The row as a Change, given the replica id of its origin. */
export function rowToChange(r: StoredRow, origin: string): Change {
  return {
    kind: KIND_NAME[r.kind]!,
    key: r.key,
    sub: r.sub,
    value: r.value === null ? null : (JSON.parse(r.value) as Change["value"]),
    hlc: r.hlc,
    origin,
    seq: r.seq,
  };
}

/** A binding's absolute expiry as stored in its own column; null for aliases and tombstones. */
export const expiresOf = (c: Pick<Change, "kind" | "value">): number | null =>
  c.value !== null && c.kind === "loc" ? (c.value as { expires: number }).expires : null;
