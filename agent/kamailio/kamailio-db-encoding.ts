/**
 * How Kamailio 5.6 encodes usrloc values in its own tables (kamailio-5.6.md §4.2, surprises 8-9),
 * as pure functions: no I/O, so they are unit-tested against values taken from Kamailio's source
 * and from rows Kamailio wrote.
 */

/** usrloc writes NULL in `methods` for the all-methods mask (§4.2). */
export const ALL_METHODS = 0xffffffff;

// --- SQLite: DATETIME columns hold a Julian-day REAL (surprise 8) -------------------------------

const UNIX_EPOCH_JD = 2440587.5;
const SECONDS_PER_DAY = 86400;

/**
 * Unix seconds → the REAL db_sqlite stores. Exactly db_sqlite's `timet_to_sqlite()`
 * (src/modules/db_sqlite/dbase.c): `((t - 0.5) / 86400) + 2440587.5`. The half-second offset is
 * Kamailio's, and the bits matter: usrloc's db_mode 3 timer deletes rows with
 * `expires < now AND expires != <epoch 0 encoded this way>`, so a permanent row written as a
 * plain 2440587.5 would be deleted as expired.
 */
export function unixToJulianDay(sec: number): number {
  return (sec - 0.5) / SECONDS_PER_DAY + UNIX_EPOCH_JD;
}

/**
 * The REAL → Unix seconds. db_sqlite's `sqlite_to_timet()` truncates `86400*(jd-2440587.5)+0.5`,
 * which can lose a second to rounding noise; rounding instead gives back exactly what
 * unixToJulianDay (or Kamailio) wrote.
 */
export function julianDayToUnix(jd: number): number {
  const sec = Math.round(SECONDS_PER_DAY * (jd - UNIX_EPOCH_JD) + 0.5);
  return sec === 0 ? 0 : sec; // never -0: 0 means permanent
}

// --- PostgreSQL: TIMESTAMP WITHOUT TIME ZONE in Kamailio's local time (surprise 9) --------------

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
    formatters.set(timeZone, f);
  }
  return f;
}

export function isTimeZone(timeZone: string): boolean {
  return zoneError(timeZone) === null;
}

/** Throws a RangeError naming the zone when it is not a valid IANA zone. */
export function checkTimeZone(timeZone: string): string {
  const error = zoneError(timeZone);
  if (error !== null) throw error;
  return timeZone;
}

function zoneError(timeZone: string): RangeError | null {
  try {
    formatter(timeZone);
    return null;
  } catch (cause) {
    return new RangeError(`"${timeZone}" is not an IANA time zone (e.g. "UTC", "Europe/Berlin")`, { cause });
  }
}

interface Wall { y: number; mo: number; d: number; h: number; mi: number; s: number }

function wallAt(sec: number, timeZone: string): Wall {
  const parts: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(new Date(sec * 1000))) {
    if (p.type !== "literal") parts[p.type] = Number(p.value);
  }
  return { y: parts["year"] ?? 0, mo: parts["month"] ?? 0, d: parts["day"] ?? 0, h: parts["hour"] ?? 0, mi: parts["minute"] ?? 0, s: parts["second"] ?? 0 };
}

const pad = (n: number, w = 2): string => String(n).padStart(w, "0");

/** Wall-clock fields read as if they were UTC, in seconds. */
function wallAsUtc(w: Wall): number {
  return Date.UTC(w.y, w.mo - 1, w.d, w.h, w.mi, w.s) / 1000;
}

/** Seconds the zone is ahead of UTC at an instant. */
function offsetAt(sec: number, timeZone: string): number {
  return wallAsUtc(wallAt(sec, timeZone)) - sec;
}

/**
 * Unix seconds → 'YYYY-MM-DD HH:MM:SS' in `timeZone`, as db_postgres writes it
 * (`localtime_r` + strftime in src/lib/srdb1/db_ut.c `db_time2str`). Permanent (0) becomes epoch 0
 * in that zone, e.g. '1969-12-31 19:00:00' in America/New_York.
 */
export function unixToLocalTimestamp(sec: number, timeZone: string): string {
  const w = wallAt(sec, timeZone);
  return `${pad(w.y, 4)}-${pad(w.mo)}-${pad(w.d)} ${pad(w.h)}:${pad(w.mi)}:${pad(w.s)}`;
}

const TIMESTAMP = /^(\d{4,})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?$/;

/**
 * 'YYYY-MM-DD HH:MM:SS' in `timeZone` → Unix seconds, as db_postgres reads it (`strptime` then
 * `mktime` with tm_isdst = -1, db_ut.c `db_str2time`). At DST edges glibc's choices are kept
 * (verified with a C program under TZ=America/New_York): a wall time that happens twice (fall
 * back) is the earlier instant; one that never happens (spring forward gap) is read with the offset
 * in force before the change, so 02:30 on the spring-forward day is 03:30 daylight time. Fractional
 * seconds are dropped, as strptime does. Returns NaN for text that is not a timestamp.
 */
export function localTimestampToUnix(text: string, timeZone: string): number {
  const m = TIMESTAMP.exec(text.trim());
  if (!m) return Number.NaN;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const local = wallAsUtc({ y, mo, d, h, mi, s });
  // Offsets in force a day either side cover any single transition around this wall time.
  const before = offsetAt(local - SECONDS_PER_DAY, timeZone);
  const after = offsetAt(local + SECONDS_PER_DAY, timeZone);
  const candidates = [...new Set([before, after])]
    .map((off) => local - off)
    .filter((sec) => unixToLocalTimestamp(sec, timeZone) === unixToLocalTimestamp(local, "UTC"));
  if (candidates.length > 0) return Math.min(...candidates);
  return local - before;
}

/** The IANA zone this process runs in (what Kamailio uses when both share TZ). */
export function processTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

// --- Integers, NULLs and AoRs --------------------------------------------------------------------

/**
 * The schema's INTEGER columns are signed 32-bit (PostgreSQL int4; db_sqlite binds with
 * sqlite3_bind_int), while flags, cflags and methods are unsigned in usrloc. Kamailio stores the
 * same bits, so we do too: 0xFFFFFFFF becomes -1 and reads back as 4294967295.
 */
export function toInt32(u: number): number {
  return u | 0;
}

export function fromInt32(i: number | null | undefined): number {
  return (Number(i ?? 0) | 0) >>> 0;
}

/** methods: NULL means all methods (usrloc writes NULL for 0xFFFFFFFF, and reads NULL back as all). */
export function encodeMethods(methods: number): number | null {
  return methods >>> 0 === ALL_METHODS ? null : toInt32(methods);
}

export function decodeMethods(v: number | null | undefined): number {
  return v === null || v === undefined ? ALL_METHODS : fromInt32(v);
}

/** Optional strings: usrloc writes NULL for empty received, path, socket and instance (§4.2). */
export function nullIfEmpty(s: string): string | null {
  return s === "" ? null : s;
}

/**
 * q is REAL: -1 = unspecified (Q_UNSPECIFIED), else 0..1. PostgreSQL's float4 gives 0.5 back
 * exactly but 0.1 as 0.100000001; usrloc keeps q in thousandths, so round to that.
 */
export function decodeQ(v: number | null | undefined): number {
  return Math.round(Number(v ?? -1) * 1000) / 1000;
}

/**
 * `user@domain` split at the first '@', as usrloc does (use_domain=1: memchr in ucontact.c's row
 * writes and udomain.c's db_load_urecord); no '@' → domain NULL (use_domain=0). An AoR can hold two:
 * the registrar unescapes the user part (`sip:john%40corp.com@example.com` is
 * `john@corp.com@example.com`), and split at the last one the agent's row was not the one Kamailio
 * reads or deletes (found by review).
 */
export function splitAor(aor: string): { username: string; domain: string | null } {
  const at = aor.indexOf("@");
  return at < 0 ? { username: aor, domain: null } : { username: aor.slice(0, at), domain: aor.slice(at + 1) };
}

export function joinAor(username: string, domain: string | null | undefined): string {
  return domain === null || domain === undefined || domain === "" ? username : `${username}@${domain}`;
}

/**
 * A dbaliases target: alias_db rewrites the R-URI to `sip:<username>@<domain>` (kamailio-5.6.md §5),
 * so a target URI is stored as its user and host[:port], without scheme or parameters.
 * Returns null when the target has no user part.
 */
export function splitSipUri(uri: string): { username: string; domain: string } | null {
  const bare = uri.trim().replace(/^<|>$/g, "").replace(/^sips?:/i, "").split(/[;?>]/)[0] ?? "";
  const at = bare.lastIndexOf("@");
  if (at <= 0 || at === bare.length - 1) return null;
  return { username: bare.slice(0, at), domain: bare.slice(at + 1) };
}
