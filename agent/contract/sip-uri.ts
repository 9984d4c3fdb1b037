/**
 * Just enough SIP URI checking to keep garbage out of Kamailio (RFC 3261 §19.1.1). The shapes are
 * deliberately conservative: no whitespace, no angle brackets or quotes, bounded length, and the
 * column sizes of Kamailio's `location` and `dbaliases` tables (kamailio-5.6.md §4).
 */

export const LIMITS = {
  aor: 128,
  contact: 512,
  received: 128,
  path: 512,
  callid: 255,
  userAgent: 255,
  socket: 64,
  instance: 255,
} as const;

const URI = /^(sips?|tel):[^\s<>"]+$/i;
const AOR = /^[^\s<>"@:;?]+@[^\s<>"@;?]+$/;
// proto:host[:port]; an IPv6 host is bracketed, as Kamailio prints it (udp:[2001:db8::1]:5060).
const SOCKET = /^(udp|tcp|tls|sctp|ws|wss):(\[[0-9a-f:.]+\]|[^\s:[\]]+)(?::(\d{1,5}))?$/i;

// A high surrogate not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Why Kamailio cannot hold `s` exactly as it is, or null. Its jsonrpcs JSON parser drops `\u0000`
 * and lone UTF-16 surrogates from strings (verified on 5.6.3: a path "a\u0000b" is stored as "ab"),
 * C strings end at a NUL, PostgreSQL text refuses it, and a lone surrogate is not Unicode at all
 * (the journal would store U+FFFD instead). Such a value is refused at the input rather than stored
 * changed. Every other character (quotes, backslashes, control characters, any Unicode) is carried
 * byte for byte (the sip-values drill checks the FIFO and both Kamailio databases).
 */
export function unstorable(s: string): string | null {
  if (s.includes("\u0000")) return "contains a NUL character (\\u0000), which Kamailio cannot store";
  if (LONE_SURROGATE.test(s)) return "contains a lone UTF-16 surrogate (not valid Unicode), which Kamailio cannot store";
  return null;
}

/** Returns a message saying what is wrong with `uri` as a contact or target URI, or null. */
export function checkSipUri(uri: string): string | null {
  if (uri.length === 0) return "is empty";
  if (uri.length > LIMITS.contact) return `is longer than ${LIMITS.contact} characters`;
  const unfit = unstorable(uri);
  if (unfit) return unfit;
  if (!URI.test(uri)) return "is not a sip:, sips: or tel: URI without spaces, quotes or angle brackets";
  const rest = uri.slice(uri.indexOf(":") + 1);
  if (rest.startsWith("@") || rest.length === 0) return "has no user or host part";
  return null;
}

/**
 * A–Z to a–z, every other character as it is: what Kamailio's registrar does to an AoR with
 * `case_sensitive` 0 (C's tolower() on each byte), and what SQLite's and PostgreSQL's (COLLATE "C")
 * lower() do. "ÜNI" becomes "Üni", as Kamailio keys it.
 */
export function foldAscii(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/**
 * Normalises an address-of-record the way Kamailio's usrloc keys it: `user@domain`, scheme removed,
 * ASCII letters lower-cased (registrar `case_sensitive` 0, the default; foldAscii). Returns the AoR
 * or a message.
 */
export function normalizeAor(input: string): { aor: string } | { error: string } {
  let s = input.trim();
  const m = /^(sips?):/i.exec(s);
  if (m) s = s.slice(m[0].length);
  s = foldAscii(s);
  if (s.length === 0) return { error: "is empty" };
  if (s.length > LIMITS.aor) return { error: `is longer than ${LIMITS.aor} characters` };
  if (!AOR.test(s)) return { error: "must look like user@domain (with or without sip:), without parameters" };
  const unfit = unstorable(s);
  if (unfit) return { error: unfit };
  return { aor: s };
}

/**
 * The AoR a sip: or sips: URI names, as the registrar makes it for lookup() (registrar common.c
 * extract_aor: the user part unescaped, without a password, `@`, the host without its port; ASCII
 * lower-cased, as with case_sensitive 0): what Kamailio looks up when a request is sent there.
 * Null for a tel: URI or one without a user part. (Until review found it, the port and the
 * escapes were kept, and `sip:alice@example.com:5060` passed for another user than alice.)
 */
export function uriAor(uri: string): string | null {
  const m = /^sips?:([^;?]*)/i.exec(uri.trim());
  if (!m) return null;
  const userinfo = m[1]!;
  const at = userinfo.lastIndexOf("@");
  if (at <= 0 || at === userinfo.length - 1) return null;
  const user = userinfo.slice(0, at).split(":")[0]!.replace(/%([0-7][0-9a-fA-F])/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  const hostport = userinfo.slice(at + 1);
  const host = hostport.startsWith("[") ? hostport.slice(0, hostport.indexOf("]") + 1) : hostport.split(":")[0]!;
  return user === "" || host === "" ? null : foldAscii(`${user}@${host}`);
}

/**
 * Whether `a` and `b` name the same target, compared as RFC 3261 §19.1.4 compares SIP URIs, kept
 * simple: the scheme and the host without regard to ASCII case (`sip:Carol@Example.COM` is
 * `sip:Carol@example.com`), the user and password exactly (`sip:carol@…` is another user), and
 * everything after the host (port, parameters, headers) exactly as written: a parameter missing,
 * added, reordered or in another case is a difference here, where RFC 3261 would look closer. A
 * tel: URI folds its scheme only. What alias.set's and alias.remove's `expectTarget` are checked with.
 */
export function sameSipUri(a: string, b: string): boolean {
  if (a === b) return true;
  const x = uriParts(a);
  const y = uriParts(b);
  return x !== null && y !== null && x.scheme === y.scheme && x.user === y.user && foldAscii(x.host) === foldAscii(y.host) && x.rest === y.rest;
}

/** A URI's scheme (lower case), user part with its `@` ("" for none), host and the rest after it; null when it has no scheme. */
function uriParts(uri: string): { scheme: string; user: string; host: string; rest: string } | null {
  const colon = uri.indexOf(":");
  if (colon <= 0) return null;
  const scheme = foldAscii(uri.slice(0, colon));
  const after = uri.slice(colon + 1);
  if (scheme === "tel") return { scheme, user: "", host: "", rest: after };
  // The user part ends at the first @ (one in a user or password is escaped, %40); the host at
  // its port, parameters or headers, or after the ] of an IPv6 reference.
  const at = after.indexOf("@");
  const user = after.slice(0, at + 1);
  const hostAndRest = after.slice(at + 1);
  const end = hostAndRest.startsWith("[") ? hostAndRest.indexOf("]") + 1 || hostAndRest.length : hostAndRest.search(/[:;?]|$/);
  return { scheme, user, host: hostAndRest.slice(0, end), rest: hostAndRest.slice(end) };
}

export function checkSocket(socket: string): string | null {
  if (socket === "") return null;
  if (socket.length > LIMITS.socket) return `is longer than ${LIMITS.socket} characters`;
  const unfit = unstorable(socket);
  if (unfit) return unfit;
  const m = SOCKET.exec(socket);
  if (!m) return "must look like proto:address:port, e.g. udp:10.0.0.1:5060 or udp:[2001:db8::1]:5060";
  if (m[3] !== undefined && Number(m[3]) > 65535) return "has a port above 65535";
  return null;
}

// user@ is optional; host is a name (labels of letters, digits, - and _, an optional final dot), an
// IPv4 address or a bracketed IPv6 one; then :port, ;params, ?headers.
const LABEL = "[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?";
const SIP_HOSTPORT = new RegExp(`^sips?:(?:([^@]*)@)?(\\[[0-9a-f:.]+\\]|${LABEL}(?:\\.${LABEL})*\\.?)(?::(\\d{1,5}))?(?:[;?][^\\s<>"]*)?$`, "i");
const IPV4_LIKE = /^[0-9.]+$/;

/**
 * For what the local API takes in (a contact, an alias's target, a `received`): checkSipUri, and,
 * for a sip: or sips: URI, a host Kamailio can send to and a port it can use. Kamailio stores a
 * URI whose host it cannot resolve (`sip:a@[::1`, `sip:x@`, port 99999) and then fails every
 * lookup that forks to it. Peers' changes are checked with checkSipUri alone: a batch refused for
 * a value an older node let in would hold back every later change of its origin.
 */
export function checkSipTarget(uri: string, o: { tel?: boolean } = {}): string | null {
  const base = checkSipUri(uri);
  if (base !== null) return base;
  if (/^tel:/i.test(uri)) return o.tel === false ? "is a tel: URI, which Kamailio cannot send to: give a sip: URI" : null;
  const m = SIP_HOSTPORT.exec(uri);
  if (!m) return "has no host Kamailio can send to (a name, an IPv4 address or a bracketed IPv6 one, after the user@ if any)";
  if (m[1] !== undefined && m[1] === "") return "has an empty user part before the @";
  if (IPV4_LIKE.test(m[2]!) && !isIpv4(m[2]!)) return `has host ${m[2]}, which is not an IPv4 address`;
  if (m[3] !== undefined && (Number(m[3]) < 1 || Number(m[3]) > 65535)) return `has port ${m[3]}, outside 1-65535`;
  return null;
}

const isIpv4 = (h: string): boolean => {
  const parts = h.split(".");
  return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
};

/**
 * A Path as usrloc keeps it (RFC 3327: name-addr *(;rr-param), comma-separated): entries of an
 * optional display name, `<sip:…>` (or `<sips:…>`) with a host checkSipTarget accepts, and optional
 * parameters after the `>`. Anything else makes Kamailio's lookup of the whole AoR fail ("failed to
 * parse Path body"), real registrations included. Empty is no Path.
 */
export function checkPath(path: string): string | null {
  if (path === "") return null;
  const unfit = unstorable(path);
  if (unfit) return unfit;
  // Entries as Kamailio's parse_rr reads them: `<`, the URI (a comma there is the URI's), `>`, then a comma or the end.
  // Each part matches one way only (a parameter holds no ';'), so a long bad entry fails in linear time.
  const entry = /\s*(?:"(?:[^"\\]|\\.)*"\s*|[\w.!%*+`'~-]+(?:\s+[\w.!%*+`'~-]+)*\s*)?<([^<>]*)>(?:\s*;[^;,<>"\s]*)*\s*(,|$)/y;
  for (let at = 0; at < path.length;) {
    entry.lastIndex = at;
    const m = entry.exec(path);
    if (!m) return `must be <sip:…> entries separated by commas, as a Path header holds them (${JSON.stringify(path.slice(at).trim().slice(0, 60))} is not)`;
    const problem = checkSipTarget(m[1]!, { tel: false });
    if (problem) return `has an entry whose URI ${JSON.stringify(m[1]!.slice(0, 60))} ${problem}`;
    if (m[2] === "") return null;
    at = entry.lastIndex;
    if (at >= path.length) return "ends in a comma";
  }
  return null;
}

/** `received` (the source a phone is reached at behind NAT): empty, or a sip: URI checkSipTarget accepts. */
export function checkReceived(received: string): string | null {
  if (received === "") return null;
  if (!/^sips?:/i.test(received)) return "must be empty or a sip: URI of the address the phone is reached at, e.g. sip:198.51.100.7:5060";
  return checkSipTarget(received);
}

/** q as usrloc takes it: -1 (none given) or 0 to 1. */
export function checkQ(q: number): string | null {
  return q === -1 || (q >= 0 && q <= 1) ? null : "must be -1 (none given) or from 0 to 1";
}

