/**
 * A floor under the drills' writes. The ledger check only says that nothing acknowledged was lost
 * and nothing refused was kept: a cluster that refused every REGISTER (503) and every alias call
 * would pass it with nothing in the ledger but "doubt" and "failed". So each drill also counts the
 * nodes whose writes were not mostly acknowledged where no fault could excuse it; the only passing
 * figure is zero, as for the ledger's own.
 */
import type { LedgerOp } from "./ledger.js";

/** Share of a node's writes, sent outside the fault, that must have been acknowledged. */
export const FLOOR_SHARE = 0.8;

/**
 * A REGISTER or call sent this long after the fault healed still counts as in it: a node may take
 * a moment to be whole again (its Kamailio's REGISTER gate opening after the reload, a session
 * coming up).
 */
const SETTLE_MS = 2000;

export interface FaultWindow {
  fromMs: number;
  toMs: number;
}

export interface FloorOptions {
  /** Writes sent within it (and SETTLE_MS after) are left out. Null: a drill without a fault. */
  fault: FaultWindow | null;
  /** By kind, default FLOOR_SHARE; 0 asks only that some were acknowledged. */
  share?: Partial<Record<LedgerOp["kind"], number>>;
  /** Names the writes in the figures, e.g. "calibration REGISTERs"; default by kind (KINDS). */
  label?: { loc?: string; alias?: string };
  /** Kinds judged over the whole cluster rather than node by node (the figure then counts 0 or 1). */
  cluster?: readonly LedgerOp["kind"][];
}

export interface Floor {
  zeroes: Record<string, number>;
  info: Record<string, string>;
}

/**
 * What counts, by kind. Every REGISTER (a de-registration of a contact that is not there is still
 * answered 200); of the alias calls only alias.set: alias.remove of an alias that is not there is
 * refused (not found) by design, and the churn removes at random.
 */
const KINDS = [
  { kind: "loc", noun: "REGISTERs", counts: () => true },
  { kind: "alias", noun: "alias.set calls", counts: (op: LedgerOp) => op.value !== null },
] as const;

/** The zero figure's name: what was too few, and whose. */
function figure(what: string, share: number, whole: boolean): string {
  const few = share > 0 ? `under ${Math.round(share * 100)}% of` : "none of";
  return whole ? `${few} the cluster's ${what} acknowledged` : `nodes with ${few} their ${what} acknowledged`;
}

/**
 * Per kind of write and per node that was sent any (or the whole cluster, for the kinds in
 * `cluster`): the node counts once in the zero figure when under `share` of its writes sent
 * outside the fault were acknowledged, or when it acknowledged none at all (which also catches a
 * node whose writes all fell inside the fault). The shares go into `info`, so a run shows how far
 * above the floor it was.
 */
export function writeFloor(ops: readonly LedgerOp[], o: FloorOptions): Floor {
  const outside = (op: LedgerOp) => o.fault === null || op.sentMs < o.fault.fromMs || op.sentMs > o.fault.toMs + SETTLE_MS;
  const where = o.fault === null ? "" : " outside the fault";
  const zeroes: Record<string, number> = {};
  const info: Record<string, string> = {};
  for (const { kind, noun, counts } of KINDS) {
    const mine = ops.filter((op) => op.kind === kind && counts(op));
    if (mine.length === 0) continue;
    const name = o.label?.[kind] ?? noun;
    const share = o.share?.[kind] ?? FLOOR_SHARE;
    const whole = o.cluster?.includes(kind) ?? false;
    const nodeOf = (op: LedgerOp) => (whole ? "cluster" : op.node);
    const nodes = [...new Set(mine.map(nodeOf))].sort();
    let below = 0;
    const shares: string[] = [];
    for (const node of nodes) {
      const all = mine.filter((op) => nodeOf(op) === node);
      const counted = all.filter(outside);
      const acked = counted.filter((op) => op.outcome === "acked").length;
      const anyAcked = all.some((op) => op.outcome === "acked");
      if (!anyAcked || acked < share * counted.length) below++;
      shares.push(`${node} ${acked}/${counted.length}`);
    }
    zeroes[figure(`${name}${where}`, share, whole)] = below;
    info[`${name}${where} acknowledged`] = shares.join(", ");
  }
  return { zeroes, info };
}
