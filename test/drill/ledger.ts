/**
 * What the cluster acknowledged, and so what every node must hold once the faults have healed.
 *
 * Every write the drills make (a REGISTER through sipp, an alias.set/remove through the API) is
 * recorded with when it was sent and how it ended:
 * - "acked": the client got a success (200 OK, a JSON-RPC result). It must survive.
 * - "failed": the client got a definite refusal (an error response, a refused connection). It
 *   must have changed nothing.
 * - "doubt": no answer (timeout, a connection cut mid-call). It may or may not have happened,
 *   but every node must agree on which.
 * The expected state of a record is the set of values any "possibly last" write could have left:
 * a write is possibly last unless an acked write on the same record was sent after it ended. A
 * node is wrong about a record when it holds a value outside that set ("missing" when it holds
 * nothing, "extra" otherwise); nodes disagree when the set has several values and they differ.
 */

export type Outcome = "acked" | "failed" | "doubt";

export interface LedgerOp {
  kind: "loc" | "alias";
  /** AoR as Kamailio and the journal print it ("user@domain"), or the alias ("user@domain"). */
  key: string;
  /** Contact URI for a binding; "" for an alias. */
  sub: string;
  /** What the write leaves: for a binding "present", for an alias its target; null = removed. */
  value: string | null;
  /** Node the write went to. */
  node: string;
  sentMs: number;
  /** When the answer came (Infinity when none did). */
  doneMs: number;
  outcome: Outcome;
  /** Why an acked write was moved to "doubt" (e.g. acked in the instant a Kamailio was killed). */
  doubtReason?: string;
}

export interface Expected {
  /** Values the record may hold; null stands for "absent". */
  allowed: Set<string | null>;
}

export const recordId = (kind: "loc" | "alias", key: string, sub: string): string => `${kind}\u0000${key}\u0000${sub}`;

export class Ledger {
  private readonly ops: LedgerOp[] = [];

  add(op: LedgerOp): void {
    this.ops.push(op);
  }

  get all(): readonly LedgerOp[] {
    return this.ops;
  }

  count(outcome: Outcome, kind?: "loc" | "alias"): number {
    return this.ops.filter((o) => o.outcome === outcome && (kind === undefined || o.kind === kind)).length;
  }

  /**
   * Acked writes to `node` that completed within [fromMs, toMs] become "doubt": a Kamailio killed
   * with db_mode 0 loses what it acknowledged but had not yet handed to its agent (the 200 OK
   * leaves inside save(), before the event does). Returns how many were moved.
   */
  doubtAckedBetween(node: string, kind: "loc" | "alias", fromMs: number, toMs: number, reason: string): number {
    let n = 0;
    for (const o of this.ops) {
      if (o.node === node && o.kind === kind && o.outcome === "acked" && o.doneMs >= fromMs && o.doneMs <= toMs) {
        o.outcome = "doubt";
        o.doubtReason = reason;
        n++;
      }
    }
    return n;
  }

  /** The expected state of every record any write touched. */
  expected(): Map<string, Expected> {
    const byRecord = new Map<string, LedgerOp[]>();
    for (const o of this.ops) {
      if (o.outcome === "failed") continue;
      const id = recordId(o.kind, o.key, o.sub);
      const list = byRecord.get(id);
      if (list) list.push(o);
      else byRecord.set(id, [o]);
    }
    const out = new Map<string, Expected>();
    for (const [id, ops] of byRecord) {
      const acked = ops.filter((o) => o.outcome === "acked");
      const lastAckedSent = acked.reduce((m, o) => Math.max(m, o.sentMs), -Infinity);
      const allowed = new Set<string | null>();
      // Absent is possible while no acked write is known to have happened.
      if (acked.length === 0) allowed.add(null);
      for (const o of ops) {
        // Possibly last unless an acked write was sent after this one ended.
        if (!(lastAckedSent > o.doneMs)) allowed.add(o.value);
      }
      out.set(id, { allowed });
    }
    return out;
  }
}
