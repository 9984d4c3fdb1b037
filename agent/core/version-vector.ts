import type { VersionVector } from "../contract/records.js";

/** Changes that `mine` holds beyond `theirs`, counted by sequence distance (an upper bound). */
export function changesAhead(mine: VersionVector, theirs: VersionVector, skip?: ReadonlySet<string>): number {
  let n = 0;
  for (const [origin, have] of Object.entries(mine)) {
    if (skip?.has(origin)) continue;
    const other = theirs[origin] ?? 0;
    if (have > other) n += have - other;
  }
  return n;
}

/** Origins where `mine` is ahead of `theirs`, in a stable order. */
export function originsAhead(mine: VersionVector, theirs: VersionVector, skip?: ReadonlySet<string>): string[] {
  return Object.keys(mine)
    .filter((o) => !skip?.has(o) && (mine[o] ?? 0) > (theirs[o] ?? 0))
    .sort();
}

/** Whether `theirs` is ahead of `mine` for an origin not in `skip`: originsAhead's question when only yes or no is wanted, without building a list. */
export function anyAhead(theirs: VersionVector, mine: VersionVector, skip?: ReadonlySet<string>): boolean {
  for (const o in theirs) if ((theirs[o] ?? 0) > (mine[o] ?? 0) && !skip?.has(o)) return true;
  return false;
}

export function isEmptyVector(vv: VersionVector): boolean {
  return Object.values(vv).every((n) => n === 0);
}
