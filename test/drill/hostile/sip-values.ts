/**
 * The hostile SIP values the sip-values drill publishes, and how each record must read back.
 * Free-text fields (user agent, Call-ID, path, received, instance) get the strings raw; URIs
 * (contacts with parameters, alias targets) get them without the characters a URI cannot hold
 * (whitespace, quotes, angle brackets: the contract refuses those, contract/sip-uri.ts).
 */
import type { BindingInput } from "../../../agent/contract/api-protocol.js";

/** Strings that have broken SQL quoting, JSON escaping, C strings and SIP parsers elsewhere. */
export const HOSTILE_TEXTS: readonly string[] = [
  "'", '"', "\\", "';--", "' OR 1=1 --", "'); DROP TABLE location; --", '"quoted" \\"escaped\\"', "ends in a backslash\\", "\\\\",
  "😀👨‍👩‍👧‍👦", "\u200fRTL\u202emark\u202c", "%00", "%27%22%5C", "é中文Ω", "\u0001\u001f\t\r\n", '{"json":[1,"x"]}', "<sip:x;lr>", "$(ru) $var(x) $$",
  "\ufeffBOM", "\u00a0nbsp\u2028line",
];

/** Values the agent must refuse: Kamailio's jsonrpcs drops NUL and lone surrogates (kamailio-5.6.md). */
export const UNSTORABLE_TEXTS: readonly string[] = ["a\u0000b", "\u0000", "%00\u0000' OR 1=1", "lone\ud800", "\udc00low"];

export const uriSafe = (s: string): string => s.replace(/[\s<>"]/g, "") || "x";

export const DOMAIN = "example.com";

export interface PublishedBinding {
  /** As the journal and Kamailio key it: user@domain. */
  aor: string;
  contact: string;
  userAgent: string;
  callid: string;
  path: string;
  received: string;
  instance: string;
}

export interface PublishedAlias {
  alias: string;
  target: string;
}

/** One binding per hostile text, for phase `tag` ("a": through jsonrpcs, "b": through the databases). */
export function bindingsFor(tag: string, copies: number): PublishedBinding[] {
  const out: PublishedBinding[] = [];
  for (let round = 0; round < copies; round++) {
    HOSTILE_TEXTS.forEach((t, i) => {
      const n = `${tag}${round}x${i}`;
      out.push({
        // The first AoR of each phase carries a quote and a backslash in its user part too.
        aor: i === 0 ? `dsv${n}-o'brien\\x@${DOMAIN}` : `dsv${n}@${DOMAIN}`,
        contact: `sip:dsv${n}@192.0.2.${(i % 250) + 1}:5060;p=${uriSafe(t)};q='x';b=\\;--;e=😀;r=\u200f;n=%00`,
        userAgent: `UA ${n} ${t}`,
        callid: `${t}${n}@h`,
        // Inside the URI: the API refuses a Path that is not <sip:…> entries, or a received that is
        // not a URI, as Kamailio's lookup fails on them (sip-uri.ts checkPath, checkReceived).
        path: `<sip:edge.example.net;lr;x=${uriSafe(t)}>`,
        received: `sip:198.51.100.7:5060;${n}=${uriSafe(t)}`,
        instance: `<urn:uuid:${n}>${t}`,
      });
    });
  }
  return out;
}

export function aliasesFor(tag: string): PublishedAlias[] {
  return HOSTILE_TEXTS.map((t, i) => ({ alias: `dsv${tag}al${i}@${DOMAIN}`, target: `sip:dsv-t'${i}${uriSafe(t)}@${DOMAIN};v=${uriSafe(t)};e=😀` }));
}

/** The API's binding input for one of them: permanent, no socket (so other nodes install it as it is). */
export function bindingInput(b: PublishedBinding): BindingInput {
  return { aor: `sip:${b.aor}`, contact: b.contact, expires: 0, userAgent: b.userAgent, callid: b.callid, path: b.path, received: b.received, instance: b.instance };
}

/** Counts fields that differ, with examples for the report. */
export class Mismatches {
  count = 0;
  compared = 0;
  readonly examples: string[] = [];

  check(where: string, field: string, want: string, got: unknown): void {
    this.compared++;
    if (got === want) return;
    this.count++;
    if (this.examples.length < 6) this.examples.push(`${where} ${field}: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
  }

  missing(where: string, what: string): void {
    this.compared++;
    this.count++;
    if (this.examples.length < 6) this.examples.push(`${where}: ${what} missing`);
  }
}
