/**
 * The journal's record counts (counts()): a tally kept up to date by every write, plus the bindings
 * expired and not yet purged (few: the purge removes them), found through records_expiring.
 * cluster.status asks for them whenever a status page, `locmesh status` or `locmesh resync` polls,
 * and counting the table took ~35 ms of the event loop at 100,000 records (a Kamailio reload waited
 * that long). The tally is counted once, on first use; a failed transaction drops it (sqlite-store.ts
 * `guarded`), to be counted again.
 */
import type Database from "better-sqlite3";
import type { StoreCounts } from "../core/store.js";
import { KIND_CODE } from "../core/stored-row.js";

/** A row before a write: absent, a tombstone, or with a value. */
export type RowState = "none" | "dead" | "value";

export interface RecordTally {
  /** Whether the tally is kept now: until counts() first needs it, writes need not say what a row was. */
  tracking(): boolean;
  /** What the row of `kind`, `key`, `sub` is now, before a write. */
  stateOf(kind: number, key: string, sub: string): RowState;
  /** A row of `kind` goes from `before` to `after` (with a value, or a tombstone). */
  write(kind: number, before: RowState, afterHasValue: boolean): void;
  /** The purge deleted this many tombstones and expired bindings. */
  purged(tombstones: number, expired: number): void;
  counts(nowSec: number): StoreCounts;
  /** Forget the tally (its transaction rolled back): the next counts() counts the table again. */
  drop(): void;
}

export function createRecordTally(db: Database.Database): RecordTally {
  const selectTally = db.prepare<[], { kind: number; dead: number; n: number }>(
    "SELECT kind, value IS NULL AS dead, count(*) AS n FROM records GROUP BY kind, value IS NULL",
  );
  const countExpired = db.prepare<[number], { n: number }>("SELECT count(*) AS n FROM records WHERE expires > 0 AND expires <= ?");
  const selectDead = db.prepare<[number, string, string], { dead: number }>(
    "SELECT value IS NULL AS dead FROM records WHERE kind = ? AND key = ? AND sub = ?",
  );
  /** Rows with a value, by kind code, and tombstones; null until counts() first needs it. */
  let tally: { withValue: number[]; tombstones: number } | null = null;
  const countTally = () => {
    const t = { withValue: [0, 0], tombstones: 0 };
    for (const r of selectTally.all()) {
      if (r.dead) t.tombstones += r.n;
      else t.withValue[r.kind] = (t.withValue[r.kind] ?? 0) + r.n;
    }
    return t;
  };

  return {
    tracking: () => tally !== null,
    stateOf(kind, key, sub) {
      const existing = selectDead.get(kind, key, sub);
      return existing ? (existing.dead ? "dead" : "value") : "none";
    },
    write(kind, before, afterHasValue) {
      if (tally === null) return;
      if (before === "value") tally.withValue[kind]!--;
      else if (before === "dead") tally.tombstones--;
      if (afterHasValue) tally.withValue[kind]!++;
      else tally.tombstones++;
    },
    purged(tombstones, expired) {
      if (tally === null) return;
      tally.tombstones -= tombstones;
      tally.withValue[KIND_CODE.loc]! -= expired;
    },
    counts(nowSec) {
      tally ??= countTally();
      return {
        // Only bindings expire (aliases and tombstones have no expiry), and live ones only count.
        locations: tally.withValue[KIND_CODE.loc]! - countExpired.get(nowSec)!.n,
        aliases: tally.withValue[KIND_CODE.alias]!,
        tombstones: tally.tombstones,
      };
    },
    drop() {
      tally = null;
    },
  };
}
