/**
 * The REGISTER's Contact header as a registrar event carries it (register-event.ts, req_contact):
 * "*", or each contact's URI with its own `expires=` parameter. Untrusted input: every failure is an
 * EventFormatError.
 */
import { checkSipUri } from "../contract/sip-uri.js";
import { EventFormatError } from "./event-format-error.js";
import { U32, clip, noNul } from "./event-fields.js";

export interface RequestContact {
  uri: string;
  /** The contact's own `expires=` parameter, when it has one. */
  expires: number | null;
  /**
   * Its `+sip.instance` (RFC 5626), without quotes and angle brackets, when it has one: usrloc
   * matches such a contact by its instance (and reg-id), not by its URI.
   */
  instance?: string;
}

/**
 * Parses a Contact header value (RFC 3261 §20.10, §25.1): "*", or comma-separated name-addr /
 * addr-spec entries with parameters. Commas inside <...> or quoted display names do not split.
 * Without <...>, everything after the first ';' is a header parameter (§20.10).
 */
export function parseContactHeader(value: string): RequestContact[] | "*" {
  if (typeof value !== "string") throw new EventFormatError("Contact header is not a string");
  noNul(value, "Contact header");
  if (value.trim() === "*") return "*";
  const parts = splitTopLevel(value, ",").map((p) => p.trim());
  if (parts.some((p) => p === "*")) throw new EventFormatError(`Contact "*" mixed with other contacts: ${clip(value)}`);
  return parts.filter((p) => p !== "").map(parseOneContact);
}

function parseOneContact(entry: string): RequestContact {
  let uri: string;
  let params: string;
  const lt = indexOfAngle(entry);
  if (lt >= 0) {
    const gt = entry.indexOf(">", lt);
    if (gt < 0) throw new EventFormatError(`Contact ${clip(entry)} has '<' without '>'`);
    uri = entry.slice(lt + 1, gt).trim();
    params = entry.slice(gt + 1);
  } else {
    const semi = entry.indexOf(";");
    uri = (semi < 0 ? entry : entry.slice(0, semi)).trim();
    params = semi < 0 ? "" : entry.slice(semi);
  }
  const problem = checkSipUri(uri);
  if (problem) throw new EventFormatError(`Contact URI ${clip(uri)} ${problem}`);
  let expires: number | null = null;
  let instance: string | null = null;
  for (const p of splitTopLevel(params, ";").slice(1)) {
    const eq = p.indexOf("=");
    if (eq < 0) continue;
    const name = p.slice(0, eq).trim().toLowerCase();
    const v = p.slice(eq + 1).trim();
    if (name === "expires") {
      if (!/^\d{1,10}$/.test(v) || Number(v) > U32) throw new EventFormatError(`Contact ${clip(uri)} has a bad expires=${clip(v)}`);
      expires = Number(v);
    } else if (name === "+sip.instance") {
      instance = bareInstance(v);
    }
  }
  return instance ? { uri, expires, instance } : { uri, expires };
}

/**
 * A `+sip.instance` value as usrloc compares it (get_ucontact_by_instance): without the quotes of
 * the parameter and the angle brackets around the URN. Also how a stored binding's instance is
 * compared (registrar-input.ts).
 */
export function bareInstance(v: string): string {
  let s = v.trim();
  if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) s = s.slice(1, -1);
  if (s.length >= 2 && s.startsWith("<") && s.endsWith(">")) s = s.slice(1, -1);
  return s;
}

/** Splits on `sep` outside "quoted strings" (with \-escapes) and <...>. */
function splitTopLevel(s: string, sep: string): string[] {
  const out: string[] = [];
  let start = 0;
  scanTopLevel(s, (ch, i) => {
    if (ch === sep) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  });
  out.push(s.slice(start));
  return out;
}

/** Index of the first '<' outside a quoted display name, or -1. */
function indexOfAngle(s: string): number {
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (quoted) {
      if (ch === "\\") i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === "<") return i;
  }
  return -1;
}

/** Calls `visit` for each character outside quotes and angle brackets. */
function scanTopLevel(s: string, visit: (ch: string, i: number) => void): void {
  let quoted = false;
  let angle = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i] as string;
    if (quoted) {
      if (ch === "\\") i++;
      else if (ch === '"') quoted = false;
    } else if (angle) {
      if (ch === ">") angle = false;
    } else if (ch === '"') quoted = true;
    else if (ch === "<") angle = true;
    else visit(ch, i);
  }
  if (quoted) throw new EventFormatError(`Contact header has an unterminated quoted string: ${clip(s)}`);
  if (angle) throw new EventFormatError(`Contact header has '<' without '>': ${clip(s)}`);
}
