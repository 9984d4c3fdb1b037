/**
 * Everything a hostile message could change, per node, for a before/after comparison: the
 * journal's full lists (every field of every live binding and alias), its version vector and
 * counts, and Kamailio's whole usrloc (ul.dump, every field). Nothing is counted: each record is
 * compared whole.
 */
import type { ClusterStatus } from "../../../agent/contract/cluster-status.js";
import type { Alias, Location } from "../../../agent/contract/records.js";
import type { UsrlocContact } from "../../../agent/kamailio/usrloc-contact.js";
import type { ClusterNode } from "../../support/kamailio-cluster.js";
import { listAll } from "../drill-cluster.js";

export interface NodeState {
  node: string;
  /** record key → the record as JSON (Kamailio contacts without their expiry, kept apart). */
  records: Map<string, string>;
  /** Kamailio contact key → absolute expiry (Kamailio prints seconds left, so ±1 s between dumps). */
  kamailioExpiry: Map<string, number>;
}

export async function dumpNode(n: ClusterNode): Promise<NodeState> {
  const [locations, aliases, status, contacts] = await Promise.all([
    listAll<Location>(n.agent, "location.list"),
    listAll<Alias>(n.agent, "alias.list"),
    n.agent.call<ClusterStatus>("cluster.status"),
    n.dump(),
  ]);
  const records = new Map<string, string>();
  const kamailioExpiry = new Map<string, number>();
  for (const l of locations) records.set(`journal loc ${l.aor} ${l.contact}`, JSON.stringify(l));
  for (const a of aliases) records.set(`journal alias ${a.alias}`, JSON.stringify(a));
  for (const [origin, seq] of Object.entries(status.vv)) records.set(`journal vv ${origin}`, String(seq));
  records.set("journal counts", JSON.stringify(status.counts));
  for (const c of contacts) {
    const key = `kamailio ${c.table} ${c.aor} ${c.contact}`;
    const { expires, ...rest } = c satisfies UsrlocContact;
    records.set(key, JSON.stringify(rest));
    kamailioExpiry.set(key, expires);
  }
  return { node: n.id, records, kamailioExpiry };
}

export const dumpAll = (nodes: readonly ClusterNode[]): Promise<NodeState[]> => Promise.all(nodes.map(dumpNode));

/** Records added, removed or changed between two dumps of the same nodes, with examples. */
export function stateChanges(before: readonly NodeState[], after: readonly NodeState[]): { changes: number; examples: string[] } {
  let changes = 0;
  const examples: string[] = [];
  const note = (s: string) => {
    changes++;
    if (examples.length < 5) examples.push(s);
  };
  for (const b of before) {
    const a = after.find((x) => x.node === b.node);
    if (!a) throw new Error(`no second dump of ${b.node}`);
    for (const [k, v] of b.records) {
      const w = a.records.get(k);
      if (w === undefined) note(`${b.node}: ${k} gone`);
      else if (w !== v) note(`${b.node}: ${k} changed from ${v.slice(0, 120)} to ${w.slice(0, 120)}`);
      else if (Math.abs((a.kamailioExpiry.get(k) ?? 0) - (b.kamailioExpiry.get(k) ?? 0)) > 2) note(`${b.node}: ${k} expiry moved`);
    }
    for (const k of a.records.keys()) if (!b.records.has(k)) note(`${b.node}: ${k} appeared: ${a.records.get(k)!.slice(0, 120)}`);
  }
  return { changes, examples };
}
