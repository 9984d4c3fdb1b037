/**
 * What a list search (location.list, alias.list) matches, computed once for both stores so that the
 * SQLite journal and the hub's PostgreSQL answer alike (one contract suite tests both).
 *
 * The rule: a search matches a record when it occurs in its name (AoR or alias), or in its contact
 * (a binding) or target (an alias), ignoring case as each field is stored:
 * - Names are stored with their ASCII letters lower-cased by normalizeAor (contract/sip-uri.ts, as
 *   Kamailio's registrar keys them) and without their sip:/sips: scheme, on every way in (API,
 *   peers, registrar events). So the search is made a name the same way, and compared with the
 *   stored name as it is: "SIP:JÜRGEN" finds "jÜrgen@example.com", not "jürgen@example.com".
 * - Contacts and targets keep their case. Both databases fold only ASCII letters (SQLite's lower()
 *   without ICU; PostgreSQL's lower() under COLLATE "C"), so the search is folded the same way:
 *   "sip:ALICE" finds "sip:Alice@…", and non-ASCII letters match as written ("Ö" finds "sip:Ö@…",
 *   "ö" does not). Folding Unicode on the database side would need ICU in SQLite and a
 *   locale-dependent lower() in PostgreSQL, so the two stores could disagree.
 */
import { foldAscii } from "../contract/sip-uri.js";

export interface ListSearch {
  /** True for an empty search: everything matches. */
  all: boolean;
  /** Matched against stored names; "" when the search is nothing but a scheme (matches no name). */
  name: string;
  /** Matched against ASCII-folded contacts and targets. */
  text: string;
}

const SCHEME = /^sips?:/i;

export function listSearch(search: string): ListSearch {
  return {
    all: search === "",
    name: foldAscii(search.replace(SCHEME, "")),
    text: foldAscii(search),
  };
}

