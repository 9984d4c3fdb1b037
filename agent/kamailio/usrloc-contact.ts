/**
 * Parses usrloc contacts as `ul.dump` and `ul.lookup` print them (kamailio-5.6.md §2.2) into
 * locmesh's binding fields. Pure functions, no I/O.
 */
import type { BindingValue } from "../contract/records.js";
import { KamailioProtocolError } from "./jsonrpcs-wire.js";

/** How Kamailio printed `Expires`: seconds left, or one of its words. */
export type ContactStatus = "active" | "permanent" | "expired" | "deleted";

/** One usrloc contact with absolute expiry, in BindingValue's terms (minus `owner`, which is ours). */
export interface UsrlocContact extends Omit<BindingValue, "owner"> {
  /** usrloc domain (table) it lives in, e.g. "location" or "aliases". */
  table: string;
  aor: string;
  contact: string;
  status: ContactStatus;
  serverId: number;
  tcpconnId: number;
  lastModified: number;
  /** CS_NEW / CS_SYNC / CS_DIRTY. */
  state: string;
}

/** Kamailio prints unset strings as this literal (§2.2). */
const NOT_SET = "[not set]";

type Raw = Record<string, unknown>;

function str(c: Raw, key: string): string {
  const v = c[key];
  if (v === undefined || v === null || v === NOT_SET) return "";
  return String(v);
}

function num(c: Raw, key: string): number {
  const v = c[key];
  return typeof v === "number" ? v : Number(v ?? 0) || 0;
}

/**
 * `Expires` is seconds remaining (Kamailio subtracts time(0)), or "permanent" / "expired" /
 * "deleted". Expired and deleted contacts get `expires = nowSec`: no longer live (isLive needs
 * expires > now), and never 0, which would mean permanent.
 */
function expiry(raw: unknown, nowSec: number): { expires: number; status: ContactStatus } {
  if (typeof raw === "number") return { expires: nowSec + raw, status: "active" };
  if (raw === "permanent") return { expires: 0, status: "permanent" };
  if (raw === "expired" || raw === "deleted") return { expires: nowSec, status: raw };
  throw new KamailioProtocolError(`unexpected usrloc Expires value ${JSON.stringify(raw)}`);
}

export function parseContact(table: string, aor: string, raw: unknown, nowSec: number): UsrlocContact {
  const c = (raw as { Contact?: Raw } | null)?.Contact;
  if (!c || typeof c !== "object") throw new KamailioProtocolError(`usrloc contact of ${aor} has no Contact object`);
  return {
    table,
    aor,
    contact: str(c, "Address"),
    ...expiry(c["Expires"], nowSec),
    q: num(c, "Q"),
    callid: str(c, "Call-ID"),
    cseq: num(c, "CSeq"),
    userAgent: str(c, "User-Agent"),
    received: str(c, "Received"),
    path: str(c, "Path"),
    state: str(c, "State"),
    flags: num(c, "Flags"),
    cflags: num(c, "CFlags"),
    socket: str(c, "Socket"),
    methods: num(c, "Methods"),
    ruid: str(c, "Ruid"),
    instance: str(c, "Instance"),
    regId: num(c, "Reg-Id"),
    serverId: num(c, "Server-Id"),
    tcpconnId: num(c, "Tcpconn-Id"),
    lastModified: num(c, "Last-Modified"),
  };
}

/** `ul.lookup` result: `{"AoR":..,"Contacts":[{"Contact":{..}}]}`. */
export function parseLookup(table: string, result: unknown, nowSec: number): UsrlocContact[] {
  const r = result as { AoR?: unknown; Contacts?: unknown } | null;
  if (!r || typeof r.AoR !== "string" || !Array.isArray(r.Contacts)) {
    throw new KamailioProtocolError("unexpected ul.lookup result shape");
  }
  const aor = r.AoR;
  return r.Contacts.map((c) => parseContact(table, aor, c, nowSec));
}

/**
 * Full `ul.dump` result: one `{"Domain":{...}}` per usrloc domain, each with
 * `AoRs:[{"Info":{"AoR",..,"Contacts":[..]}}]`. A brief dump (`AoRs:[{"AoR":..}]`) has no contacts.
 */
export function parseDump(result: unknown, nowSec: number): UsrlocContact[] {
  const domains = (result as { Domains?: unknown } | null)?.Domains;
  if (!Array.isArray(domains)) throw new KamailioProtocolError("unexpected ul.dump result shape (no Domains)");
  const out: UsrlocContact[] = [];
  for (const d of domains) {
    const dom = (d as { Domain?: { Domain?: unknown; AoRs?: unknown } }).Domain;
    if (!dom || typeof dom.Domain !== "string" || !Array.isArray(dom.AoRs)) {
      throw new KamailioProtocolError("unexpected ul.dump domain shape");
    }
    for (const a of dom.AoRs) {
      const info = (a as { Info?: { AoR?: unknown; Contacts?: unknown } }).Info;
      if (!info || typeof info.AoR !== "string" || !Array.isArray(info.Contacts)) continue;
      for (const c of info.Contacts) out.push(parseContact(dom.Domain, info.AoR, c, nowSec));
    }
  }
  return out;
}
