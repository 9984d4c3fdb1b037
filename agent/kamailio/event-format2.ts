/**
 * Event format 2, what the include (cfg-include.ts) sends: format 1's JSON (register-event.ts)
 * with every string that comes from SIP or usrloc hex-encoded, so Kamailio can print the whole
 * event in one pass of evapi_relay's format string instead of building it with ~25 jansson_set
 * calls, each of which re-parsed and re-serialised the document (issue 3: that cost 39% of the
 * registrar's throughput).
 *
 *   {"v":2,"event":"register","rc":1,"ts":"1700000000.123456","aor":H,"req_contact":H,
 *    "req_expires":"300","callid":H,"cseq":"1","user_agent":H,"source":"udp:1.2.3.4:5060","count":1,
 *    "contacts":[{"addr":H,"expires":1700000300,"q":-1,"callid":H,"cseq":1,"path":H,"received":H,
 *                 "user_agent":H,"ruid":H,"socket":H,"instance":H,"flags":0,"cflags":0,
 *                 "methods":4294967295,"regid":0,"modified":1700000000}]}
 *   {"v":2,"event":"expired","ts":"..","aor":H,"addr":H,"ruid":H,"callid":H,"expires":1700000300}
 *
 * Why it is safe to print strings into JSON this way (checked against Kamailio 5.6.3, see
 * test/integration/kamailio-events.test.ts):
 * - H is `{s.encode.hexa}`: lower-case hex of the raw bytes, so quotes, backslashes, control
 *   characters, NUL, separators and any byte sequence arrive intact and cannot break the JSON. An
 *   unset value ($null, which a format string would print as "<null>") fails the transformation
 *   and prints nothing, so it arrives as "" like an empty value: format 1 left such keys out, and
 *   both read as "".
 * - Numbers from usrloc ($ulc) are never $null for a fetched contact and are printed bare. The two
 *   numbers from the request are quoted decimal strings: `{s.int}` prints nothing when the header
 *   is missing or not a number (req_expires "" = no Expires header) and the JSON stays valid.
 * - `count` is usrloc's contact count. The include's loop can stop early (more contacts than the
 *   core's max_while_loops, default 100, or one contact over pv_buffer_size, 8 KB), and a short
 *   list would read as removals, so an event whose list is not `count` long is refused; the agent
 *   then looks that AoR up in Kamailio (ul.lookup, aor-lookups.ts) and brings it in line.
 * Decoded bytes are read as UTF-8 with U+FFFD for invalid sequences, as the agent reads `ul.dump`
 * (fifo-client.ts), so the event and the reconciler see the same strings for the same binding.
 */
import { EventFormatError } from "./event-format-error.js";

type Obj = Record<string, unknown>;

export const EVENT_FORMAT = 2;

const REGISTER_HEX = ["aor", "req_contact", "callid", "user_agent"] as const;
const CONTACT_HEX = ["addr", "callid", "path", "received", "user_agent", "ruid", "socket", "instance"] as const;
const EXPIRED_HEX = ["aor", "addr", "ruid", "callid"] as const;
const HEX = /^(?:[0-9a-f]{2})*$/;
const DECIMAL = /^\d{1,10}$/;

/**
 * Turns a format-2 event into the format-1 shape register-event.ts validates, in place: `o` is the
 * caller's own JSON.parse result (copying it cost more than the decoding).
 */
export function fromFormat2(o: Obj): Obj {
  const kind = field(o, "event");
  if (kind === "register") return register(o);
  if (kind === "expired") return hexFields(o, EXPIRED_HEX, "expired");
  return o; // parseKamailioEvent names the unknown kind
}

function register(o: Obj): Obj {
  hexFields(o, REGISTER_HEX, "register");
  o["cseq"] = decimal(o, "cseq");
  if (field(o, "req_expires") === "") delete o["req_expires"];
  else o["req_expires"] = decimal(o, "req_expires");
  const contacts = field(o, "contacts");
  const count = field(o, "count");
  if (!Array.isArray(contacts)) throw new EventFormatError(`register.contacts must be an array, got ${typeName(contacts)}`);
  if (!Number.isInteger(count)) throw new EventFormatError(`register.count must be an integer, got ${typeName(count)}`);
  if (contacts.length !== count) {
    throw new EventFormatError(
      `register.contacts has ${contacts.length} entries but usrloc holds ${String(count)} for the AoR: the include's loop stopped early ` +
        "(more contacts than Kamailio's max_while_loops, or a contact over pv_buffer_size); the agent looks the AoR up in Kamailio instead",
    );
  }
  contacts.forEach((c: unknown, i) => {
    const where = `register.contacts[${i}]`;
    if (typeof c !== "object" || c === null || Array.isArray(c)) throw new EventFormatError(`${where} must be a JSON object, got ${typeName(c)}`);
    hexFields(c as Obj, CONTACT_HEX, where);
  });
  return o;
}

function hexFields(o: Obj, keys: readonly string[], where: string): Obj {
  for (const k of keys) {
    const v = field(o, k);
    if (typeof v !== "string" || !HEX.test(v)) throw new EventFormatError(`${where}.${k} must be a hex string (event format ${EVENT_FORMAT}), got ${clip(v)}`);
    o[k] = fromHex(v);
  }
  return o;
}

/** The hex-encoded string field `key` of a format-2 object, decoded; null when it is not such a string. */
export function hexField(o: Obj, key: string): string | null {
  const v = field(o, key);
  return typeof v === "string" && HEX.test(v) ? fromHex(v) : null;
}

const NIBBLE = new Uint8Array(103);
for (let i = 0; i < 10; i++) NIBBLE[48 + i] = i;
for (let i = 0; i < 6; i++) NIBBLE[97 + i] = 10 + i;

/** `v` is checked lower-case hex. Plain ASCII (nearly every SIP value) is decoded without a Buffer. */
function fromHex(v: string): string {
  let out = "";
  for (let i = 0; i < v.length; i += 2) {
    const byte = ((NIBBLE[v.charCodeAt(i)] as number) << 4) | (NIBBLE[v.charCodeAt(i + 1)] as number);
    if (byte >= 0x80) return Buffer.from(v, "hex").toString("utf8");
    out += String.fromCharCode(byte);
  }
  return out;
}

function decimal(o: Obj, key: string): number {
  const v = field(o, key);
  if (typeof v !== "string" || !DECIMAL.test(v)) throw new EventFormatError(`register.${key} must be a decimal string (event format ${EVENT_FORMAT}), got ${clip(v)}`);
  return Number(v);
}

function field(o: Obj, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

function typeName(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
}

function clip(v: unknown): string {
  const s = JSON.stringify(v) ?? "undefined";
  return s.length > 60 ? s.slice(0, 60) + "…" : s;
}
