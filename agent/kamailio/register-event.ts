/**
 * Parses and validates the events locmesh's kamailio.cfg include (cfg-include.ts) sends over evapi.
 * Pure: no I/O. Everything from Kamailio is untrusted input here: each field is type-checked and
 * held to the contract's column limits (contract/sip-uri.ts LIMITS), strings with NUL or lone surrogates are refused
 * (event-fields.ts; the request's Contact header: contact-header.ts), and the only error that
 * leaves this module is EventFormatError.
 *
 * Two wire formats, told apart by the "v" key:
 * - Format 2 ({"v":2,...}, event-format2.ts) is what the include sends: the shapes below with the
 *   SIP and usrloc strings hex-encoded, printed by Kamailio in one pass. It is decoded into the
 *   format-1 shape and validated by the same code.
 * - Format 1 (no "v") is the JSON that includes generated before format 2 built with jansson. It
 *   is still read so an upgraded agent keeps working with a Kamailio that runs the old include
 *   until that is regenerated; it can go once no such include is left. Its shapes
 *   (route[LOCMESH_REGISTER] / route[LOCMESH_EXPIRED]):
 *   {"event":"register","rc":1,"ts":"1700000000.123456","aor":"sip:a@d","req_contact":"<sip:a@h>",
 *    "req_expires":300,"callid":"..","cseq":1,"user_agent":"..","source":"udp:1.2.3.4:5060",
 *    "contacts":[{"addr":"sip:a@h","expires":1700000300,"q":-1,"callid":"..","cseq":1,"path":"",
 *                 "received":"","user_agent":"..","ruid":"uloc-..","socket":"udp:..","flags":0,
 *                 "cflags":0,"methods":4294967295,"instance":"","regid":0,"modified":1700000000}]}
 *   {"event":"expired","ts":"..","aor":"a@d","addr":"sip:a@h","ruid":"..","callid":"..","expires":N}
 *   An unset string is left out (format 1) or "" (format 2); both read as "".
 * `contacts` is the AoR's whole state after save() (reg_fetch_contacts, kamailio-5.6.md §8), and
 * `q` there is usrloc's integer form, -1 or 0..1000.
 */
import { LIMITS, checkSipUri, checkSocket, normalizeAor, uriAor } from "../contract/sip-uri.js";
import { parseContactHeader, type RequestContact } from "./contact-header.js";
import { EventFormatError } from "./event-format-error.js";
import { U32, asObject, clip, field, int, optStr, optStrCut, show, str, typeName, u32, type Obj } from "./event-fields.js";
import { EVENT_FORMAT, fromFormat2, hexField } from "./event-format2.js";

export { EventFormatError };

export interface EventContact {
  contact: string;
  /** Absolute expiry, Unix seconds; 0 = permanent. */
  expires: number;
  /** -1 (unspecified) or 0..1, converted from $ulc's -1..1000. */
  q: number;
  callid: string;
  cseq: number;
  path: string;
  received: string;
  userAgent: string;
  ruid: string;
  socket: string;
  flags: number;
  cflags: number;
  methods: number;
  instance: string;
  regId: number;
  /** When Kamailio last changed the contact (Unix s, its last_modified); absent from older includes. */
  modified?: number;
}

export interface RegisterEvent {
  type: "register";
  /** save()'s return code: 1 inserted, 2 updated, 3 deleted, 4 query only. */
  rc: 1 | 2 | 3 | 4;
  /** Bare, lower-cased user@domain, as usrloc keys it. */
  aor: string;
  requestContacts: RequestContact[] | "*";
  requestExpires: number | null;
  callid: string;
  cseq: number;
  userAgent: string;
  /** proto:ip:port the REGISTER came from. */
  source: string;
  /** Kamailio's wall clock when it built the event ($TV(Sn)), in ms. */
  tsMs: number;
  contacts: EventContact[];
  /**
   * The drain's number for it, which the agent acknowledges once it is journaled (event-acks.ts);
   * absent from an event sent whole by the SIP worker (over pv_printf's buffer) or an older include.
   */
  n?: number;
}

export interface ExpiredEvent {
  type: "expired";
  /**
   * As Kamailio gave it, normalized when it is a full AoR. usrloc in db_mode 3 gives the user part
   * alone in Kamailio 5.6.3 (`$ulc(exp=>aor)`, fixed in 5.6.4): taken as it is, not as a malformed
   * event, since the agent does not use it (the journal expires bindings by their own expiry).
   */
  aor: string;
  contact: string;
  ruid: string;
  callid: string;
  expires: number;
  tsMs: number | null;
}

export type KamailioEvent = RegisterEvent | ExpiredEvent;

/**
 * Larger events are refused unread. A full AoR of MAX_CONTACTS contacts at their column limits is
 * about 4.4 MB in format 2 (hex doubles every string); real ones are a few hundred bytes each.
 */
export const MAX_EVENT_BYTES = 8 * 1024 * 1024;
export const MAX_CONTACTS = 1024;
const RUID_MAX = 64; // location.ruid VARCHAR(64), kamailio-5.6.md §4.2
const SOURCE_MAX = 80;

export function parseKamailioEvent(payload: string): KamailioEvent {
  if (typeof payload !== "string") throw new EventFormatError("event payload is not a string");
  if (payload.length > MAX_EVENT_BYTES) throw new EventFormatError(`event of ${payload.length} characters is over the ${MAX_EVENT_BYTES} limit`);
  let json: unknown;
  try {
    json = JSON.parse(payload);
  } catch (err) {
    throw new EventFormatError(`event is not JSON: ${(err as Error).message}`);
  }
  const wire = asObject(json, "event");
  const version = field(wire, "v");
  if (version !== undefined && version !== EVENT_FORMAT) {
    throw new EventFormatError(`event format ${JSON.stringify(version)?.slice(0, 40)} is not one this agent reads (${EVENT_FORMAT}, or 1 without "v"): upgrade the agent`);
  }
  const o = version === undefined ? wire : fromFormat2(wire);
  const kind = field(o, "event");
  if (kind === "register") return parseRegister(o);
  if (kind === "expired") return parseExpired(o);
  throw new EventFormatError(`event has unknown "event" ${show(kind).slice(0, 40)}; expected "register" or "expired"`);
}

function parseRegister(o: Obj): RegisterEvent {
  const rc = int(o, "rc", "register", 1, 4) as 1 | 2 | 3 | 4;
  const rawContacts = field(o, "contacts");
  if (!Array.isArray(rawContacts)) throw new EventFormatError(`register.contacts must be an array, got ${typeName(rawContacts)}`);
  if (rawContacts.length > MAX_CONTACTS) throw new EventFormatError(`register.contacts has ${rawContacts.length} entries, over ${MAX_CONTACTS}`);
  const reqContact = optStr(o, "req_contact", "register", LIMITS.contact * 16);
  return {
    type: "register",
    rc,
    aor: aorFromUri(str(o, "aor", "register", LIMITS.aor + 64), "register.aor"),
    requestContacts: reqContact === "" ? [] : parseContactHeader(reqContact),
    requestExpires: field(o, "req_expires") === undefined ? null : int(o, "req_expires", "register", 0, U32),
    callid: str(o, "callid", "register", LIMITS.callid),
    cseq: int(o, "cseq", "register", 0, U32),
    userAgent: optStrCut(o, "user_agent", "register", LIMITS.userAgent),
    source: source(str(o, "source", "register", SOURCE_MAX)),
    tsMs: timestamp(field(o, "ts"), "register.ts"),
    contacts: rawContacts.map((c, i) => parseContact(asObject(c, `register.contacts[${i}]`), `register.contacts[${i}]`)),
    ...(field(o, "n") === undefined ? {} : { n: int(o, "n", "register", 1, EVENT_NUMBER_MAX) }),
  };
}

/**
 * The AoR of a register event the agent cannot read (parseKamailioEvent refused it), when its
 * `aor` still reads: Kamailio holds that AoR's outcome, which the agent then looks up instead
 * (aor-lookups.ts). Null when the payload is no register event or its AoR does not read.
 */
export function registerAorOf(payload: string): string | null {
  let o: unknown;
  try {
    o = JSON.parse(payload);
  } catch {
    return null;
  }
  if (typeof o !== "object" || o === null || Array.isArray(o) || field(o as Obj, "event") !== "register") return null;
  const wire = o as Obj;
  const uri = field(wire, "v") === EVENT_FORMAT ? hexField(wire, "aor") : field(wire, "aor");
  if (typeof uri !== "string" || uri.length > LIMITS.aor + 64) return null;
  try {
    return aorFromUri(uri, "register.aor");
  } catch {
    return null;
  }
}

/** The drain numbers events 1 up to this, then from 1 again (cfg-include-register.ts). */
export const EVENT_NUMBER_MAX = 1_000_000_000;

/**
 * The number of an event the agent cannot read, when it has one: it is still acknowledged (a
 * malformed event sent again would be as malformed), or every later one would wait for it.
 */
export function eventNumberOf(payload: string): number | null {
  const m = /^\{"n":(\d{1,10}),/.exec(payload);
  if (!m) return null;
  const n = Number(m[1]);
  return n >= 1 && n <= EVENT_NUMBER_MAX ? n : null;
}

function parseExpired(o: Obj): ExpiredEvent {
  const ts = field(o, "ts");
  return {
    type: "expired",
    aor: expiredAor(str(o, "aor", "expired", LIMITS.aor)),
    contact: sipUri(str(o, "addr", "expired", LIMITS.contact), "expired.addr"),
    ruid: optStr(o, "ruid", "expired", RUID_MAX),
    callid: optStr(o, "callid", "expired", LIMITS.callid),
    expires: int(o, "expires", "expired", 0, U32),
    tsMs: ts === undefined ? null : timestamp(ts, "expired.ts"),
  };
}

function parseContact(c: Obj, where: string): EventContact {
  const q = int(c, "q", where, -1, 1000);
  const socket = optStr(c, "socket", where, LIMITS.socket);
  const socketProblem = checkSocket(socket);
  if (socketProblem) throw new EventFormatError(`${where}.socket ${socketProblem}`);
  return {
    contact: sipUri(str(c, "addr", where, LIMITS.contact), `${where}.addr`),
    expires: int(c, "expires", where, 0, U32),
    q: q < 0 ? -1 : q / 1000,
    callid: optStr(c, "callid", where, LIMITS.callid),
    cseq: int(c, "cseq", where, 0, U32),
    path: optStr(c, "path", where, LIMITS.path),
    received: optStr(c, "received", where, LIMITS.received),
    userAgent: optStrCut(c, "user_agent", where, LIMITS.userAgent),
    ruid: optStr(c, "ruid", where, RUID_MAX),
    socket,
    flags: u32(c, "flags", where),
    cflags: u32(c, "cflags", where),
    methods: u32(c, "methods", where, U32),
    instance: optStr(c, "instance", where, LIMITS.instance),
    regId: field(c, "regid") === undefined ? 0 : int(c, "regid", where, 0, U32),
    ...(field(c, "modified") === undefined ? {} : { modified: int(c, "modified", where, 0, U32) }),
  };
}

/**
 * $tu → usrloc's AoR as the registrar makes it (extract_aor; uriAor): scheme, password, URI
 * parameters, headers and port dropped, the user part unescaped. Until review found it the escapes
 * were kept (`sip:%2B4930123@…` journaled as `%2b4930123@…`, an AoR no other node's lookup() finds)
 * and a password failed the event.
 */
function aorFromUri(uri: string, where: string): string {
  const aor = uriAor(uri);
  if (aor === null) throw new EventFormatError(`${where} ${clip(uri)} is not a sip: or sips: URI with a user and a host`);
  return bareAor(aor, where);
}

function bareAor(s: string, where: string): string {
  const r = normalizeAor(s);
  if ("error" in r) throw new EventFormatError(`${where} ${clip(s)} ${r.error}`);
  return r.aor;
}

/** The expired event's AoR: a full one normalized, or the user part alone (see ExpiredEvent.aor). */
function expiredAor(s: string): string {
  if (s !== "" && !s.includes("@") && !s.includes(":")) return s;
  return bareAor(s, "expired.aor");
}

function sipUri(s: string, where: string): string {
  const problem = checkSipUri(s);
  if (problem) throw new EventFormatError(`${where} ${clip(s)} ${problem}`);
  return s;
}

function source(s: string): string {
  if (!/^[a-z]{2,5}:[0-9a-f.:[\]]+:\d{1,5}$/i.test(s)) throw new EventFormatError(`register.source ${clip(s)} must look like proto:ip:port`);
  return s.toLowerCase();
}

/** $TV(Sn) is "seconds.microseconds". */
function timestamp(v: unknown, where: string): number {
  if (typeof v !== "string" || !/^\d{1,12}\.\d{6}$/.test(v)) throw new EventFormatError(`${where} must be a "seconds.microseconds" string, got ${clip(show(v))}`);
  const [sec, usec] = v.split(".") as [string, string];
  return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
}
