/**
 * Full dumps of every node, journal and Kamailio alike, compared record by record with what the
 * ledger says was acknowledged. Counts are never compared: each record is looked up.
 */
import { recordId, type Expected, type Ledger } from "./ledger.js";

/** One view of the cluster's state: a node's journal, or its Kamailio. */
export interface View {
  /** e.g. "n1 journal", "n2 kamailio". */
  name: string;
  /** recordId → value ("present" for a binding, the target for an alias). */
  records: Map<string, string>;
}

export interface ViewFigures {
  view: string;
  missing: number;
  extra: number;
  /** Examples of what is wrong, for the report. */
  examples: string[];
}

export interface Verdict {
  views: ViewFigures[];
  /** Records whose outcome was in doubt and that the views do not agree on. */
  disagree: number;
  examples: string[];
  /** Every figure is zero. */
  ok: boolean;
}

const stripSip = (u: string): string => u.replace(/^sips?:/i, "");

/** Keeps only the records a drill made (by their key prefix), in the ledger's terms. */
export function viewOf(
  name: string,
  bindings: readonly { aor: string; contact: string }[],
  aliases: readonly { alias: string; target: string }[],
  keep: (key: string) => boolean,
): View {
  const records = new Map<string, string>();
  for (const b of bindings) {
    const aor = stripSip(b.aor);
    if (keep(aor)) records.set(recordId("loc", aor, b.contact), "present");
  }
  for (const a of aliases) {
    const alias = stripSip(a.alias);
    if (keep(alias)) records.set(recordId("alias", alias, ""), a.target);
  }
  return { name, records };
}

export function verify(ledger: Ledger, views: readonly View[], maxExamples = 5): Verdict {
  const expected = ledger.expected();
  const figures: ViewFigures[] = [];
  for (const v of views) {
    const f: ViewFigures = { view: v.name, missing: 0, extra: 0, examples: [] };
    const note = (what: string) => {
      if (f.examples.length < maxExamples) f.examples.push(what);
    };
    for (const [id, e] of expected) {
      const have = v.records.get(id) ?? null;
      if (e.allowed.has(have)) continue;
      if (have === null) {
        f.missing++;
        note(`missing ${show(id)} (want ${showAllowed(e)})`);
      } else {
        f.extra++;
        note(`extra ${show(id)} = ${have} (want ${showAllowed(e)})`);
      }
    }
    for (const [id, have] of v.records) {
      if (expected.has(id)) continue;
      f.extra++;
      note(`extra ${show(id)} = ${have} (never written)`);
    }
    figures.push(f);
  }
  let disagree = 0;
  const examples: string[] = [];
  for (const [id, e] of expected) {
    if (e.allowed.size < 2) continue;
    const seen = new Set(views.map((v) => v.records.get(id) ?? null));
    if (seen.size > 1) {
      disagree++;
      if (examples.length < maxExamples) examples.push(`${show(id)}: ${views.map((v) => `${v.name}=${v.records.get(id) ?? "absent"}`).join(", ")}`);
    }
  }
  const ok = disagree === 0 && figures.every((f) => f.missing === 0 && f.extra === 0);
  return { views: figures, disagree, examples, ok };
}

const show = (id: string): string => id.split("\u0000").filter(Boolean).join(" ");
const showAllowed = (e: Expected): string => [...e.allowed].map((v) => v ?? "absent").join(" or ");
