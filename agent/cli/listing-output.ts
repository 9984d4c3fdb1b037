/**
 * Turns the API's lists into terminal text for the client commands (`location`, `alias`,
 * `location ls --kamailio`): the journal's aliases and bindings, and the local Kamailio's contacts
 * and location table beside the journal. Pure functions of their input (plus "now" for expiry).
 */
import type { KamailioAliasResult, KamailioBinding, KamailioContact, KamailioTableSummary } from "../contract/kamailio-status.js";
import type { Alias, Location } from "../contract/records.js";
import { cellText, formatPairs, formatTable } from "./table.js";

export function formatAliases(items: readonly Alias[]): string {
  if (items.length === 0) return "no aliases";
  return formatTable(["ALIAS", "TARGET"], items.map((a) => [a.alias, a.target]));
}

/** `alias show`: the journal's target for one alias. */
export function formatAlias(alias: string, target: string | null): string {
  return target === null ? `no alias ${cellText(alias)}` : `alias ${cellText(alias)} -> ${cellText(target)}`;
}

/**
 * `alias add` and `alias rm` print the alias as it is stored (the agent's answer: no scheme, ASCII
 * letters in lower case), as `alias ls` and `alias show` do, not as it was typed; the typed form
 * only if an answer lacks it.
 */
export function formatAliasSet(answer: (Partial<Alias> & { previous?: string | null }) | null, typed: { alias: string; target: string }): string {
  const line = formatAlias(answer?.alias ?? typed.alias, answer?.target ?? typed.target);
  // An agent older than `previous` says nothing of it: the line alone, as before.
  const previous = answer?.previous;
  if (typeof previous !== "string") return line;
  return previous === answer?.target ? `${line} (unchanged)` : `${line} (was ${cellText(previous)})`;
}

export function formatAliasRemoved(answer: { removed?: unknown } | null, typed: string): string {
  return `removed alias ${cellText(typeof answer?.removed === "string" ? answer.removed : typed)}`;
}

/** `alias show --kamailio`: what the local Kamailio holds for the alias, beside the journal. */
export function formatKamailioAlias(r: KamailioAliasResult): string {
  const where = r.store === "usrloc" ? `usrloc domain ${r.table}` : `alias_db table ${r.table}`;
  const verdict = {
    present: "in line: Kamailio holds what the agent writes for the journal's target",
    missing: "MISSING from Kamailio: the journal has a target, Kamailio none",
    differs: "DIFFERS: Kamailio holds another target than the agent writes for the journal's",
    extra: "EXTRA in Kamailio: the journal has no such alias (its removal not written there yet, or it was put there by hand)",
    absent: "neither the journal nor Kamailio has this alias",
  }[r.agreement];
  const pending = r.pendingWrites > 0 && r.agreement !== "present" && r.agreement !== "absent"
    ? ` (${r.pendingWrites} write(s) into Kamailio are still waiting: look again in a moment, or see \`locmesh status\`)`
    : "";
  return formatPairs([
    ["alias", r.alias],
    ["journal", r.journal ?? "-"],
    ["kamailio", `${r.kamailio.length === 0 ? "-" : r.kamailio.join(", ")} (${where})`],
    ["state", `${verdict}${pending}`],
  ]);
}

export function formatLocations(items: readonly Location[], nowSec: number): string {
  if (items.length === 0) return "no locations";
  return formatTable(
    ["AOR", "CONTACT", "EXPIRES", "Q", "OWNER"],
    items.map((l) => [l.aor, l.contact, formatExpiry(l.expires, nowSec), formatQ(l.q), l.owner]),
    { align: ["left", "left", "left", "right", "left"] },
  );
}

/** One block per binding, as `location show` prints them. */
export function formatBindings(aor: string, items: readonly Location[], nowSec: number): string {
  if (items.length === 0) return `no bindings for ${cellText(aor)}`;
  const n = items.length === 1 ? "1 binding" : `${items.length} bindings`;
  return formatContactBlocks(`${cellText(aor)}: ${n}`, items, nowSec, (b) => ["owner", b.owner]);
}

/** An AoR's contacts as the local Kamailio holds them (`location show --kamailio`). */
export function formatKamailioContacts(aor: string, items: readonly KamailioContact[], nowSec: number): string {
  if (items.length === 0) return `this node's Kamailio holds no contact for ${cellText(aor)}`;
  const n = items.length === 1 ? "1 contact" : `${items.length} contacts`;
  return formatContactBlocks(`${cellText(aor)} in this node's Kamailio: ${n}`, items, nowSec, (c) => [
    // ul.add cannot set the phone's Call-ID, CSeq or User-Agent: Kamailio shows its own there.
    "installed by", c.installedByAgent ? "the locmesh agent (replicated; Call-ID and user agent are ul.add's)" : "a REGISTER at this node",
  ]);
}

type ContactFields = Pick<KamailioContact, "contact" | "expires" | "q" | "path" | "received" | "socket" | "userAgent">;

/** `heading`, then one block per contact; `source` is the line after q that says whose it is. */
function formatContactBlocks<C extends ContactFields>(heading: string, items: readonly C[], nowSec: number, source: (c: C) => readonly [string, string]): string {
  const blocks = items.map((c) =>
    formatPairs([
      ["contact", c.contact],
      ["expires", formatExpiry(c.expires, nowSec)],
      ["q", formatQ(c.q)],
      source(c),
      ["path", c.path],
      ["received", c.received],
      ["socket", c.socket],
      ["user agent", c.userAgent],
    ]),
  );
  return `${heading}\n\n${blocks.join("\n\n")}`;
}

/** Kamailio's location table (`location ls --kamailio`), with what the journal says of each binding. */
export function formatKamailioTable(items: readonly KamailioBinding[], nowSec: number, search = ""): string {
  // With a search, an empty page says nothing of the table (the summary line below counts all of it).
  if (items.length === 0) return search === "" ? "this node's Kamailio holds no binding" : `no binding in this node's Kamailio matches ${JSON.stringify(search)}`;
  return formatTable(
    ["AOR", "CONTACT", "EXPIRES", "Q", "INSTALLED BY", "JOURNAL"],
    items.map((b) => [
      b.aor, b.contact, formatExpiry(b.expires, nowSec), formatQ(b.q), b.installedByAgent ? "agent" : "REGISTER",
      b.journal === "differs" ? `differs: ${b.differences.join(",")}` : b.journal,
    ]),
    { align: ["left", "left", "left", "right", "left", "left"] },
  );
}

/**
 * The whole table against the journal in one line, and what to do about a difference: what the
 * on-call engineer reads to tell whether a reload or reconcile is complete.
 */
export function describeKamailioTable(s: KamailioTableSummary): string {
  const other = s.differs + s.onlyInKamailio + s.onlyInJournal;
  const counts = `Kamailio holds ${s.kamailio} bindings, the journal ${s.journal}: ` +
    (other === 0 ? "none differ" : `${other} differ (${s.differs} with other routing fields, ${s.onlyInKamailio} only in Kamailio, ${s.onlyInJournal} only in the journal)`);
  const pending = s.pendingWrites > 0 ? `; ${s.pendingWrites} changes not yet written into Kamailio` : "";
  const head = `whole table, dumped ${s.takenAt}: ${counts}${pending}`;
  if (other === 0) return head;
  const fixes = [
    ...(s.differs + s.onlyInJournal > 0 ? ["`locmesh resync --kamailio` writes what differs or is only in the journal"] : []),
    ...(s.onlyInKamailio > 0 ? ["the reconcile learns or removes what is only in Kamailio (`locmesh status`, its `kamailio reconcile` line)"] : []),
  ];
  return `${head}
A reload or reconcile is not complete, or changes are on their way (list again in a few seconds): ${fixes.join("; ")}.`;
}

/** `expires` is absolute Unix seconds, 0 meaning permanent (Kamailio's usrloc convention). */
export function formatExpiry(expires: number, nowSec: number): string {
  if (expires === 0) return "permanent";
  const left = expires - nowSec;
  return left > 0 ? `in ${left} s` : "expired";
}

/** -1 is Kamailio's Q_UNSPECIFIED: the contact gave no q. */
function formatQ(q: number): string {
  return q < 0 ? "-" : String(q);
}

/**
 * The bindings in a `location.lookup` result. The contract does not pin its shape yet, so accept
 * a bare list or an object holding `bindings` or `items`.
 */
export function bindingsOf(result: unknown): Location[] {
  if (Array.isArray(result)) return result as Location[];
  if (result && typeof result === "object") {
    const r = result as { bindings?: unknown; items?: unknown };
    if (Array.isArray(r.bindings)) return r.bindings as Location[];
    if (Array.isArray(r.items)) return r.items as Location[];
  }
  return [];
}
